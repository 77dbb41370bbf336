"""Registering incoming items over HTTP: the happy paths on both backends."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import Backend
from tests.helpers import PDF, PNG, error_code, letter_meta, register, token


def test_register_letter_opens_case_and_stores_file(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    r = register(
        client,
        h,
        letter_meta(),
        [("wniosek.pdf", PDF, "application/pdf"), ("zdjęcie.png", PNG, "image/png")],
    )
    assert r.status_code == 201, r.text
    body = r.json()
    year = body["rpw_number"].split("/")[2]
    assert body["rpw_number"] == f"RPW/1/{year}"
    assert body["case_reference"] == f"SP58.431.1.{year}"
    assert body["unit"] == "SP58"
    assert body["sender_reference"] == "brak danych"
    assert [d["format"] for d in body["documents"]] == ["application/pdf", "image/png"]
    assert body["documents"][1]["type"] == "StillImage"
    doc = body["documents"][0]
    assert doc["identifier"] == f"SP58/RPW/1/{year}/1"
    assert doc["qualification"] == "B5"
    assert doc["versions"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()

    # The content comes back byte for byte, with its digest.
    c = client.get(f"/api/v1/documents/{doc['id']}/versions/1/content", headers=h)
    assert c.status_code == 200
    assert c.content == PDF
    assert c.headers["x-content-sha256"] == hashlib.sha256(PDF).hexdigest()

    # The case shows the document and the item; the case list has it.
    case = client.get(f"/api/v1/cases/{body['case_reference']}", headers=h).json()
    assert case["jrwa"] == "431" and case["retention_category"] == "B5"
    assert case["incoming"] == [body["rpw_number"]]
    assert len(case["documents"]) == 2
    listing = client.get("/api/v1/cases", params={"jrwa": "431"}, headers=h).json()
    assert [c["reference"] for c in listing["cases"]] == [body["case_reference"]]


def test_second_letter_joins_existing_case(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    first = register(client, h, letter_meta()).json()
    r = register(
        client,
        h,
        letter_meta(
            new_case=False,
            jrwa=None,
            case_reference=first["case_reference"],
            subject="Uzupełnienie wniosku",
        ),
    )
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["case_reference"] == first["case_reference"]
    assert second["rpw_number"].startswith("RPW/2/")
    record = client.get(f"/api/v1/cases/{first['case_reference']}/record", headers=h).json()
    actions = [e["action"] for e in record]
    assert actions.count("incoming.registered") == 2
    assert "case.opened" in actions
    assert all(e["person"] == "clerk SP58 (demo)" for e in record)
    assert any(e["document_id"] for e in record)


def test_item_without_case_and_registers_are_per_unit(backend: Backend, client: TestClient) -> None:
    h58 = token(client, "clerk.sp58")
    h12 = token(client, "clerk.sp12")
    a = register(client, h58, letter_meta(new_case=False)).json()
    b = register(client, h12, letter_meta(new_case=False)).json()
    assert a["case_reference"] is None
    assert a["rpw_number"].startswith("RPW/1/") and b["rpw_number"].startswith("RPW/1/")
    listing = client.get("/api/v1/incoming", headers=h58).json()["items"]
    assert [i["rpw_number"] for i in listing] == [a["rpw_number"]]


def test_case_reference_with_department(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.wow")
    r = register(
        client, h, letter_meta(jrwa="43170", department="OS", subject="Arkusz organizacji SP58")
    )
    assert r.status_code == 201, r.text
    year = r.json()["rpw_number"].split("/")[2]
    assert r.json()["case_reference"] == f"WOW-OS.43170.1.{year}"


def test_outgoing_register_and_dispatch(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    case_ref = register(client, h, letter_meta()).json()["case_reference"]
    r = client.post(
        "/api/v1/outgoing",
        headers=h,
        json={
            "subject": "Odpowiedź na wniosek",
            "channel": "paper",
            "case_reference": case_ref,
            "recipients": [{"name": "Anna Kowalska", "address": "ul. Polna 5, 00-100 Miasto"}],
        },
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["number"].startswith("WYCH/1/") and out["status"] == "ready"
    d = client.post(f"/api/v1/outgoing/{out['id']}/dispatch", headers=h)
    assert d.status_code == 200 and d.json()["status"] == "dispatched"
    again = client.post(f"/api/v1/outgoing/{out['id']}/dispatch", headers=h)
    assert again.status_code == 409 and error_code(again) == "already_dispatched"


def test_document_versions_are_immutable(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    body = register(client, h, letter_meta()).json()
    doc = body["documents"][0]
    r = client.post(
        f"/api/v1/documents/{doc['id']}/versions",
        headers=h,
        data={"note": "skan lepszej jakości"},
        files=[("file", ("wniosek-v2.pdf", PDF + b"%v2\n", "application/pdf"))],
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    v1 = client.get(f"/api/v1/documents/{doc['id']}/versions/1/content", headers=h)
    v2 = client.get(f"/api/v1/documents/{doc['id']}/versions/2/content", headers=h)
    assert v1.content == PDF and v2.content == PDF + b"%v2\n"
    added = client.post(
        f"/api/v1/cases/{body['case_reference']}/documents",
        headers=h,
        data={"meta": '{"title": "Notatka służbowa"}'},
        files=[("file", ("notatka.txt", b"Notatka.", "text/plain"))],
    )
    assert added.status_code == 201, added.text
    assert added.json()["identifier"] == f"{body['case_reference']}/2"


def test_unforeseen_uniqueness_race_is_a_409_not_a_500(
    backend: Backend, client: TestClient
) -> None:
    """A document identifier taken between counting and inserting (another request got there
    first) must come back as a retryable 409, with nothing written."""
    from sqlalchemy import func, select

    from workflow.cases.models import Case
    from workflow.documents.models import Document

    h = token(client, "clerk.sp58")
    ref = register(client, h, letter_meta()).json()["case_reference"]
    with backend.container.uow() as uow:
        case = uow.session.execute(select(Case).where(Case.reference == ref)).scalar_one()
        first = uow.session.execute(
            select(Document).where(Document.case_id == case.id)
        ).scalar_one()
        # The identifier the next document of the case will get, taken by a document that is
        # not (yet) counted in the case, as if a concurrent request had just inserted it.
        uow.session.execute(
            Document.__table__.insert().values(
                id=__import__("uuid").uuid4(),
                unit_id=case.unit_id,
                identifier=f"{ref}/2",
                title="x",
                creator="x",
                document_date=first.document_date,
                format="text/plain",
                access="ograniczony",
                type="Text",
                language="pol",
                created_by=first.created_by,
                created_at=first.created_at,
            )
        )
        uow.commit()
        docs_before = uow.session.execute(select(func.count()).select_from(Document)).scalar_one()
    r = client.post(
        f"/api/v1/cases/{ref}/documents",
        headers=h,
        data={"meta": '{"title": "Notatka"}'},
        files=[("file", ("n.txt", b"Notatka.", "text/plain"))],
    )
    assert r.status_code == 409, r.text
    assert error_code(r) == "concurrent_change"
    with backend.container.uow() as uow:
        assert (
            uow.session.execute(select(func.count()).select_from(Document)).scalar_one()
            == docs_before
        )


def test_unreachable_database_is_a_503(tmp_path: Path) -> None:
    """A database that cannot be opened answers 503 with a retry hint, not a 500."""
    from api.app import create_app
    from api.bootstrap import bootstrap
    from workflow.settings import Settings

    settings = Settings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/missing-dir/ezd.sqlite3"
    )
    c = bootstrap(settings)
    with TestClient(create_app(c, start_worker=False), raise_server_exceptions=False) as client:
        r = client.post("/api/v1/auth/token", data={"username": "clerk.sp58", "password": "x"})
    c.dispose()
    assert r.status_code == 503, r.text
    assert error_code(r) == "database_unavailable"
    assert r.headers["retry-after"] == "5"
