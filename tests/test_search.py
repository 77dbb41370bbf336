"""Search on both indices: the embedded one (SQLite + local files) and a real Elasticsearch
(with PostgreSQL + S3). Polish inflection, diacritics, phrases, prefixes, typos, permission
trimming (facet counts included), the audit trail, bad input, deep pagination, reindex without
downtime, verify, and an Elasticsearch outage with catch-up through the outbox."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import Backend, need_elasticsearch
from tests.helpers import error_code, letter_meta, register, token
from workflow.audit.models import AuditEntry
from workflow.db import utcnow
from workflow.outbox.models import OutboxEvent
from workflow.search import service
from workflow.search.port import FACETS, IndexDoc, SearchFilters, SearchIndex

LETTERS = [
    ("Skarga rodzica na ocenę z matematyki", "Jan Nowak", "sp58"),
    ("Zwolnienie lekarskie nauczyciela wychowania fizycznego", "Przychodnia Zdrowie", "sp58"),
    ("Wniosek o przyjęcie dziecka do szkoły", "Ewa Wiśniewska", "sp58"),
    ("Dostawa monitorów interaktywnych do sal lekcyjnych", "Firma Ekran sp. z o.o.", "sp58"),
    ("Skarga na hałas podczas przerw", "Rada Rodziców", "sp12"),
]


def drain(backend: Backend) -> None:
    """Run the outbox until nothing is due, then make the index current."""
    later = utcnow() + timedelta(hours=2)
    while backend.container.worker.run_once(later):
        pass
    backend.container.search_index.refresh()


def index_of(backend: Backend) -> SearchIndex:
    index: SearchIndex = backend.container.search_index
    return index


def seed(client: TestClient, backend: Backend) -> dict[str, dict[str, Any]]:
    out = {}
    for subject, sender, unit in LETTERS:
        h = token(client, f"clerk.{unit}")
        r = register(client, h, letter_meta(subject=subject, sender={"name": sender}))
        assert r.status_code == 201, r.text
        out[subject] = r.json()
    drain(backend)
    return out


def find(client: TestClient, h: dict[str, str], q: str, **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/search", params={"q": q, **params}, headers=h)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def subjects(body: dict[str, Any], kind: str = "incoming") -> set[str]:
    return {h["title"] for h in body["hits"] if h["type"] == kind}


@pytest.fixture
def sclient(search_backend: Backend) -> Any:
    with search_backend.client() as c:
        yield c


def test_polish_inflection_diacritics_phrases_prefixes_typos(
    search_backend: Backend, sclient: TestClient
) -> None:
    seed(sclient, search_backend)
    h = token(sclient, "clerk.sp58")
    skarga = "Skarga rodzica na ocenę z matematyki"
    zwolnienie = "Zwolnienie lekarskie nauczyciela wychowania fizycznego"
    szkola = "Wniosek o przyjęcie dziecka do szkoły"
    monitory = "Dostawa monitorów interaktywnych do sal lekcyjnych"
    cases = {
        "skargi rodziców": {skarga},  # inflection: gen./pl. forms find the nominative
        "skargi rodzicow": {skarga},  # and typed without diacritics
        "szkole": {szkola},  # "szkole" (loc.) finds "szkoły" (gen.): lemma szkoła
        "zwolnienie lekarskie": {zwolnienie},
        "ZWOLNIENIA LEKARSKIEGO": {zwolnienie},
        "ocene z matematyki": {skarga},  # no ę
        '"zwolnienie lekarskie"': {zwolnienie},  # a phrase
        '"lekarskie zwolnienie"': set(),  # words in another order are not the phrase
        "monitor*": {monitory},  # a prefix
        "interaktwynych": {monitory},  # a typo (transposition)
        "monitorow intreaktywnych": {monitory},
        "skarga -matematyki": set(),  # sp12's complaint is not visible to sp58's clerk
        "skarga": {skarga},
        "Kowalski": set(),
    }
    for q, expected in cases.items():
        got = find(sclient, h, q)
        assert subjects(got) == expected, (
            q,
            [(x["title"], x["highlights"], x["number"]) for x in got["hits"]],
        )
    # Highlights come from the original text, with the diacritics.
    body = find(sclient, h, "skargi rodzicow")
    hit = next(x for x in body["hits"] if x["type"] == "incoming")
    assert hit["highlights"]["title"] == ["<em>Skarga</em> <em>rodzica</em> na ocenę z matematyki"]


def test_permission_trimming_includes_facets_and_auditor_is_logged(
    search_backend: Backend, sclient: TestClient
) -> None:
    items = seed(sclient, search_backend)
    clerk58, clerk12 = token(sclient, "clerk.sp58"), token(sclient, "clerk.sp12")
    b58 = find(sclient, clerk58, "skarga")
    b12 = find(sclient, clerk12, "skarga")
    assert {h["unit"] for h in b58["hits"]} == {"SP58"}
    assert {h["unit"] for h in b12["hits"]} == {"SP12"}
    assert b58["facets"]["unit"] == [{"value": "SP58", "count": b58["total"]}]
    assert [f["value"] for f in b12["facets"]["unit"]] == ["SP12"]
    # Filtering on another unit reveals nothing, not even a count.
    other = find(sclient, clerk58, "skarga", unit="sp12")
    assert other["total"] == 0 and all(not v for v in other["facets"].values())

    auditor = token(sclient, "auditor.wow")
    ab = find(sclient, auditor, "skarga", type="incoming")
    assert {h["unit"] for h in ab["hits"]} == {"SP58", "SP12"}
    assert ab["total"] == 2
    assert {f["value"] for f in ab["facets"]["unit"]} == {"SP58", "SP12"}

    # Opening a result: the auditor's view is recorded; another unit's clerk gets 404.
    sp12_item = items["Skarga na hałas podczas przerw"]["id"]
    r = sclient.get(f"/api/v1/search/open/incoming/{sp12_item}", headers=clerk58,
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 404
    r = sclient.get(f"/api/v1/search/open/incoming/{sp12_item}", headers=auditor,
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == f"/api/v1/incoming/{sp12_item}"
    with search_backend.container.uow() as uow:
        entries = (
            uow.session.execute(
                select(AuditEntry)
                .where(AuditEntry.action.like("search.%"))
                .order_by(AuditEntry.seq)
            )
            .scalars()
            .all()
        )
        uow.session.expunge_all()
    query_entries = [e for e in entries if e.action == "search.query"]
    assert len(query_entries) == 1  # the clerks' queries are not audit events
    assert query_entries[0].details["q"] == "skarga"
    assert query_entries[0].details["filters"] == {"kinds": ["incoming"]}
    opened = [e for e in entries if e.action == "search.result_opened"]
    assert len(opened) == 1 and opened[0].object_id == sp12_item


def test_no_database_connection_waits_on_the_index(
    search_backend: Backend, sclient: TestClient
) -> None:
    """The caller is checked and that transaction ends before the index is asked: a slow or
    hung index holds no pooled connection (nor, on SQLite, the write lock). An auditor's query
    is still written to the audit trail, after the answer."""
    seed(sclient, search_backend)
    c = search_backend.container
    index = index_of(search_backend)
    held: list[int] = []
    real_search = index.search

    def spy(request: Any) -> Any:
        held.append(c.engine.pool.checkedout())  # type: ignore[attr-defined]
        return real_search(request)

    index.search = spy  # type: ignore[method-assign]
    try:
        assert find(sclient, token(sclient, "clerk.sp58"), "skarga")["total"] >= 1
        before = _audited_queries(c)
        auditor = find(sclient, token(sclient, "auditor.wow"), "skarga")
        assert auditor["total"] >= 2
        assert _audited_queries(c) == before + 1
        assert held == [0, 0], held
    finally:
        del index.search


def _audited_queries(c: Any) -> int:
    with c.uow() as uow:
        return len(
            uow.session.execute(
                select(AuditEntry.seq).where(AuditEntry.action == "search.query")
            ).all()
        )


def test_bad_input_gets_clear_codes(search_backend: Backend, sclient: TestClient) -> None:
    h = token(sclient, "clerk.sp58")
    bad = {
        '"niezamknięty cudzysłów': "query_syntax",
        "*": "query_wildcard_only",
        "** *": "query_wildcard_only",
        "s*": "query_prefix_too_short",
        "sz*ko": "query_wildcard_position",
        "-skarga": "query_only_negative",
        "!!! ???": "query_syntax",
        "skarga " * 200: "query_too_long",
        " ".join(f"w{i}" for i in range(30)): "query_too_long",
    }
    for q, code in bad.items():
        r = sclient.get("/api/v1/search", params={"q": q}, headers=h)
        assert r.status_code == 400, (q, r.text)
        assert error_code(r) == code, q
    r = sclient.get("/api/v1/search", params={"q": "a", "owner": "x"}, headers=h)
    assert r.status_code == 400 and error_code(r) == "unknown_filter"
    assert r.json()["error"]["details"]["unknown"] == ["owner"]
    r = sclient.get("/api/v1/search", params={"q": "a", "cursor": "garbage"}, headers=h)
    assert r.status_code == 400 and error_code(r) == "invalid_cursor"
    r = sclient.get("/api/v1/search", params={"type": "letter"}, headers=h)
    assert r.status_code == 400 and error_code(r) == "unknown_filter_value"
    r = sclient.get(
        "/api/v1/search", params={"date_from": "2026-02-01", "date_to": "2026-01-01"}, headers=h
    )
    assert r.status_code == 400 and error_code(r) == "invalid_date_range"
    r = sclient.get("/api/v1/search", params={"size": 5000}, headers=h)
    assert r.status_code == 422
    r = sclient.get("/api/v1/search", params={"sort": "random"}, headers=h)
    assert r.status_code == 422
    assert sclient.get("/api/v1/search", params={"q": "x"}).status_code == 401


def _doc(i: int, unit_id: str, unit: str, **kw: Any) -> IndexDoc:
    d = IndexDoc(
        key=f"document:{uuid.UUID(int=i)}",
        kind="document",
        object_id=str(uuid.UUID(int=i)),
        unit_id=unit_id,
        unit=unit,
        title=kw.pop("title", f"Protokół kontroli numer {i}"),
        date=kw.pop("date", date(2025, 1, 1) + timedelta(days=i)),
        jrwa=kw.pop("jrwa", "0430" if i % 2 else "431"),
        status=kw.pop("status", "open"),
        retention=kw.pop("retention", "B5"),
        content=kw.pop("content", f"Treść protokołu z kontroli arkusza organizacyjnego {i}."),
        **kw,
    )
    return service._finish(d)


def _units(backend: Backend) -> dict[str, str]:
    from workflow.org.repository import OrgRepository

    with backend.container.uow() as uow:
        return {u.code: str(u.id) for u in OrgRepository(uow.session).units()}


def test_deep_pagination_filters_and_sorting(search_backend: Backend, sclient: TestClient) -> None:
    units = _units(search_backend)
    index = index_of(search_backend)
    index.ensure()
    docs = [_doc(i, units["SP58"], "SP58") for i in range(1, 48)]
    docs += [_doc(i, units["SP12"], "SP12") for i in range(100, 110)]
    index.upsert(docs)
    index.refresh()
    h = token(sclient, "clerk.sp58")
    for sort in ("relevance", "date_desc", "date_asc"):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"q": "protokołów kontroli", "size": 10, "sort": sort}
            if cursor:
                params["cursor"] = cursor
            body = find(sclient, h, **params)
            assert body["total"] == 47
            seen += [x["id"] for x in body["hits"]]
            pages += 1
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 47 and len(set(seen)) == 47, sort
        assert pages == 5
        if sort != "relevance":
            dates = [d.date for d in sorted(docs[:47], key=lambda d: d.date)]
            assert len(dates) == 47
    # Past the end: the last page's cursor gives an empty page, not an error.
    body = find(sclient, h, "protokołów", size=47)
    assert body["next_cursor"] is not None
    last = find(sclient, h, "protokołów", size=47, cursor=body["next_cursor"])
    assert last["hits"] == [] and last["next_cursor"] is None
    # A cursor from another query is refused.
    r = sclient.get(
        "/api/v1/search", params={"q": "kontroli", "cursor": body["next_cursor"]}, headers=h
    )
    assert r.status_code == 400 and error_code(r) == "invalid_cursor"
    # Filters: JRWA class with its subclasses, date range, retention; facets follow them.
    b = find(sclient, h, "protokół", jrwa="43", size=100)
    assert b["total"] == 23 and {x["jrwa"] for x in b["hits"]} == {"431"}
    b = find(sclient, h, "", date_from="2025-01-02", date_to="2025-01-11", type="document")
    assert b["total"] == 10
    assert b["facets"]["year"] == [{"value": "2025", "count": 10}]
    assert {f["value"] for f in b["facets"]["jrwa"]} == {"431", "0430"}
    b = find(sclient, h, "protokół", retention="A")
    assert b["total"] == 0


def test_same_hits_on_both_indices(tmp_path: Any) -> None:
    """The adapters agree on every supported query form over the same documents."""
    from search.elastic import ElasticsearchIndex
    from search.embedded import EmbeddedIndex
    from workflow.search.port import SearchRequest
    from workflow.search.query import parse_query

    url = need_elasticsearch()
    alias = f"ezd-t-{uuid.uuid4().hex[:12]}"
    es = ElasticsearchIndex(url, alias)
    emb = EmbeddedIndex(tmp_path / "search")
    texts = [
        "Skarga rodzica na ocenę z matematyki",
        "Skargi rodziców na hałas w szkole",
        "Zwolnienie lekarskie nauczycielki",
        "Zwolnienia lekarskie pracowników obsługi",
        "Monitory interaktywne dla szkoły podstawowej",
        "Monitor interaktywny — reklamacja",
        "Arkusz organizacyjny szkoły na rok 2026/2027",
        "Wniosek o duplikat legitymacji szkolnej",
        "Decyzja w sprawie przyjęcia do przedszkola",
        "Odwołanie od decyzji dyrektora szkoły",
    ]
    docs = [
        _doc(i, "u1" if i % 3 else "u2", "SP58" if i % 3 else "SP12", title=t, content=t)
        for i, t in enumerate(texts, start=1)
    ]
    try:
        for ix in (es, emb):
            ix.ensure()
            ix.upsert(docs)
            ix.refresh()
        queries = [
            "skarga", "skargi rodzicow", "szkoła", "szkole", "zwolnienie lekarskie",
            '"zwolnienie lekarskie"', '"lekarskie zwolnienie"', "monitor*", "interaktywne",
            "intreaktywne", "szk*", "decyzja -odwołanie", "2026", "legitymacja szkolna",
            "przedszkole", "dyrektor", "reklamacje", "hałasu", "organizacyjnego arkusza",
        ]  # fmt: skip
        for q in queries:
            for unit_ids in (None, ("u1",)):
                req = SearchRequest(parse_query(q), SearchFilters(), unit_ids, size=50)
                a, b = es.search(req), emb.search(req)
                assert {h.key for h in a.hits} == {h.key for h in b.hits}, q
                assert a.total == b.total, q
                assert dict(a.facets["unit"]) == dict(b.facets["unit"]), q
                assert dict(a.facets["jrwa"]) == dict(b.facets["jrwa"]), q
    finally:
        es.close()
        emb.close()
        from tests.conftest import drop_es_indices

        drop_es_indices(url, alias)


def test_a_search_before_the_first_index_creates_it_and_finds_nothing() -> None:
    """A fresh installation is searched before anything was indexed: the alias has no index yet
    (Elasticsearch answers the parts of an `_msearch` with index_not_found in the body)."""
    from search.elastic import ElasticsearchIndex
    from workflow.search.port import SearchRequest
    from workflow.search.query import parse_query

    url = need_elasticsearch()
    alias = f"ezd-t-{uuid.uuid4().hex[:12]}"
    es = ElasticsearchIndex(url, alias)
    try:
        req = SearchRequest(parse_query("skarga"), SearchFilters(), ("u1",))
        r = es.search(req)
        assert (r.total, r.hits) == (0, [])
        assert set(r.facets) == set(FACETS) and not any(r.facets.values())
        assert es._indices_of(alias), "the search created the index behind the alias"
    finally:
        es.close()
        from tests.conftest import drop_es_indices

        drop_es_indices(url, alias)


def test_reindex_without_downtime_and_verify(search_backend: Backend, sclient: TestClient) -> None:
    seed(sclient, search_backend)
    c = search_backend.container
    index = index_of(search_backend)
    h = token(sclient, "clerk.sp58")
    before = find(sclient, h, "skarga")["total"]
    assert before >= 1
    report = service.verify(c.uow, index)
    assert report.ok, report

    calls = {"n": 0}

    def during(_n: int) -> None:
        # Mid-rebuild: searches still answer from the live generation, and a registration
        # made now reaches the new generation through the outbox.
        if calls["n"] == 0:
            index.refresh()
            assert find(sclient, h, "skarga")["total"] == before
            r = register(sclient, h, letter_meta(subject="Skarga na dowóz uczniów"))
            assert r.status_code == 201
            drain(search_backend)
        calls["n"] += 1

    n = service.reindex(c.uow, index, progress=during, batch=2)
    assert n >= 5 and calls["n"] > 1
    index.refresh()
    assert "Skarga na dowóz uczniów" in subjects(find(sclient, h, "skarga dowozu"))
    assert find(sclient, h, "skarga")["total"] == before + 3  # its item, case and document
    report = service.verify(c.uow, index)
    assert report.ok, report

    # verify finds what is missing, stale or extra; repair fixes it.
    any_doc = next(iter(dict(index.fingerprints())))
    index.delete([any_doc])
    docs = [_doc(999, _units(search_backend)["SP58"], "SP58")]
    index.upsert(docs)
    index.refresh()
    report = service.verify(c.uow, index)
    assert report.missing == [any_doc] and report.extra == [docs[0].key]
    service.repair(c.uow, index, report)
    index.refresh()
    assert service.verify(c.uow, index).ok


# Elasticsearch only: the embedded index is a local file and has no outage of its own.
@pytest.mark.parametrize("search_backend", ["elasticsearch"], indirect=True)
def test_elasticsearch_outage_registration_works_search_503_outbox_catches_up(
    tmp_path: Any, search_backend: Backend, sclient: TestClient
) -> None:
    from elasticsearch import Elasticsearch

    from search.elastic import ElasticsearchIndex

    index = index_of(search_backend)
    assert isinstance(index, ElasticsearchIndex)
    real = index.es
    index.es = Elasticsearch("http://127.0.0.1:9", request_timeout=2, max_retries=0)
    h = token(sclient, "clerk.sp58")
    try:
        r = register(sclient, h, letter_meta(subject="Skarga podczas awarii wyszukiwarki"))
        assert r.status_code == 201, r.text  # registration does not need the index
        r = sclient.get("/api/v1/search", params={"q": "awarii"}, headers=h)
        assert r.status_code == 503 and error_code(r) == "search_unavailable"
        c = search_backend.container
        c.worker.run_once(utcnow() + timedelta(hours=2))
        with c.uow() as uow:
            pending = (
                uow.session.execute(select(OutboxEvent).where(OutboxEvent.topic == "search.index"))
                .scalars()
                .all()
            )
            assert pending and all(e.status == "pending" for e in pending)
            assert any("SearchUnavailable" in (e.last_error or "") for e in pending)
    finally:
        index.es = real
    drain(search_backend)  # Elasticsearch is back: the retries go through
    body = find(sclient, h, "awarii")
    assert subjects(body) == {"Skarga podczas awarii wyszukiwarki"}
