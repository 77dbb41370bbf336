"""The web search form as a browser submits it (no browser needed): empty date fields arrive as
`date_from=&date_to=` and mean "no bound". They used to answer 422, so the search page showed
"Nie udało się wczytać danych (422)" instead of results (found by the browser journey)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Backend
from tests.helpers import letter_meta, register, token
from tests.test_process_library import drain


def test_search_form_with_empty_dates_finds_by_an_inflected_word(
    sqlite_backend: Backend,
) -> None:
    with sqlite_backend.client() as client:
        meta = letter_meta(subject="Informacja o dowozie uczniów niepełnosprawnych")
        assert register(client, token(client, "clerk.sp58"), meta).status_code == 201
        drain(sqlite_backend)  # indexing after commit
        web = TestClient(client.app)
        r = web.post("/api/v1/auth/login", data={"username": "auditor.wow", "password": "demo"})
        assert r.status_code in (200, 204), r.text
        page = web.get(
            "/web/search",
            params={"q": "dowozu ucznia niepełnosprawnego", "date_from": "", "date_to": ""},
        )
        assert page.status_code == 200, page.text[:500]
        assert "(422)" not in page.text
        assert "dowozie" in page.text and 'class="hit' in page.text
