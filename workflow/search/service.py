"""Search in the core: building index documents from the database, indexing through the outbox
(extraction first, outside the transaction), the query with the caller's access filter, opening
a result, reindex and verify.

Who may see what is decided here, never by an index: `SearchRequest.unit_ids` is computed from
the principal (a unit's staff and auditors see their units; the city's auditor sees all) and
every adapter applies it to hits and facet counts alike.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from workflow.db import utcnow
from workflow.errors import DomainError, NotFound
from workflow.org.repository import OrgRepository
from workflow.ports import BlobStore
from workflow.principal import Principal
from workflow.search.models import DocumentText
from workflow.search.port import (
    FACETS,
    KINDS,
    IndexDoc,
    SearchFilters,
    SearchIndex,
    SearchRequest,
    SearchResult,
    SortOrder,
    TextExtractor,
    chunked,
)
from workflow.search.query import parse_query
from workflow.search.repository import PendingVersion, SearchRepository
from workflow.uow import UnitOfWork

log = logging.getLogger(__name__)
WARSAW = ZoneInfo("Europe/Warsaw")
MAX_CONTENT_CHARS = 1_000_000
MAX_PAGE_SIZE = 100


def local_date(at: datetime) -> date:
    return at.astimezone(WARSAW).date()


def fingerprint(doc: IndexDoc) -> str:
    body = asdict(doc)
    body.pop("fingerprint")
    raw = json.dumps(body, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _finish(doc: IndexDoc) -> IndexDoc:
    content = doc.content[:MAX_CONTENT_CHARS]
    doc = replace(doc, content=content)
    return replace(doc, fingerprint=fingerprint(doc))


def _key(kind: str, object_id: object) -> str:
    return f"{kind}:{object_id}"


# --- building index documents -------------------------------------------------------------


def build_docs(repo: SearchRepository, kind: str, ids: Sequence[uuid.UUID]) -> list[IndexDoc]:
    """The index documents of `ids` as the database holds them now (missing ids are left
    out)."""
    docs: list[IndexDoc] = []
    if kind == "incoming":
        for item, unit, cls, case, case_cls in repo.incoming(ids):
            jrwa = cls or case_cls
            docs.append(
                IndexDoc(
                    key=_key("incoming", item.id),
                    kind="incoming",
                    object_id=str(item.id),
                    unit_id=str(item.unit_id),
                    unit=unit,
                    title=item.subject,
                    date=local_date(item.received_at),
                    number=item.rpw_number,
                    case_reference=case.reference if case else None,
                    sender=item.sender_name,
                    jrwa=jrwa.symbol if jrwa else None,
                    jrwa_title=jrwa.title if jrwa else None,
                    status=case.status if case else "registered",
                    retention=jrwa.category_lead if jrwa else None,
                    content="\n".join(x for x in (item.sender_reference, item.notes) if x),
                )
            )
    elif kind == "outgoing":
        for item, unit, case, cls in repo.outgoing(ids):
            names = [str(r.get("name", "")) for r in item.recipients if isinstance(r, dict)]
            docs.append(
                IndexDoc(
                    key=_key("outgoing", item.id),
                    kind="outgoing",
                    object_id=str(item.id),
                    unit_id=str(item.unit_id),
                    unit=unit,
                    title=item.subject,
                    date=local_date(item.created_at),
                    number=item.number,
                    case_reference=case.reference if case else None,
                    sender="; ".join(n for n in names if n) or None,
                    jrwa=cls.symbol if cls else None,
                    jrwa_title=cls.title if cls else None,
                    status=item.status,
                    retention=cls.category_lead if cls else None,
                )
            )
    elif kind == "case":
        for case, unit, cls in repo.cases(ids):
            docs.append(
                IndexDoc(
                    key=_key("case", case.id),
                    kind="case",
                    object_id=str(case.id),
                    unit_id=str(case.unit_id),
                    unit=unit,
                    title=case.title,
                    date=local_date(case.opened_at),
                    number=case.reference,
                    case_reference=case.reference,
                    jrwa=case.jrwa_symbol,
                    jrwa_title=cls.title,
                    status=case.status,
                    retention=cls.category_lead,
                )
            )
    elif kind == "document":
        rows = repo.documents(ids)
        texts = repo.version_texts([r[0].id for r in rows])
        for doc, unit, case, cls, rpw in rows:
            parts = [doc.description or ""]
            for _no, name, text in texts.get(doc.id, []):
                parts.append(name)
                parts.append(text or "")
            docs.append(
                IndexDoc(
                    key=_key("document", doc.id),
                    kind="document",
                    object_id=str(doc.id),
                    unit_id=str(doc.unit_id),
                    unit=unit,
                    title=doc.title,
                    date=doc.document_date,
                    number=doc.identifier,
                    case_reference=case.reference if case else rpw,
                    sender=doc.creator,
                    jrwa=cls.symbol if cls else None,
                    jrwa_title=cls.title if cls else None,
                    status=case.status if case else None,
                    retention=doc.qualification or (cls.category_lead if cls else None),
                    content="\n".join(p for p in parts if p),
                )
            )
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return [_finish(d) for d in docs]


def related_to_case(repo: SearchRepository, case_id: uuid.UUID) -> dict[str, list[uuid.UUID]]:
    """Items and documents of a case show its status and class: they change with it."""
    from workflow.documents.repository import DocumentRepository
    from workflow.registry.repository import RegistryRepository

    reg = RegistryRepository(repo.session)
    return {
        "incoming": [i.id for i in reg.incoming_for_case(case_id)],
        "document": [d.id for d in DocumentRepository(repo.session).for_case(case_id)],
    }


# --- indexing through the outbox ---------------------------------------------------------


@dataclass
class Indexer:
    """The `search.index` outbox handler. Idempotent: it indexes what the database holds when
    it runs, so a repeated or late event just writes the same document again."""

    index: SearchIndex
    extractor: TextExtractor
    blob_store: BlobStore
    read_uow: Callable[[], UnitOfWork]  # a short transaction of its own (extraction reads)
    max_file_bytes: int = 50 * 1024 * 1024

    def __call__(self, uow: UnitOfWork, payload: dict[str, Any]) -> None:
        kind, object_id = payload["kind"], uuid.UUID(payload["id"])
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        extracted: list[tuple[PendingVersion, DocumentText]] = []
        if kind == "document":
            # Read what needs extracting in a short transaction, extract with no transaction
            # open (OCR takes seconds; SQLite's write lock must not wait for it).
            with self.read_uow() as r:
                pending = SearchRepository(r.session).pending_versions(object_id)
            extracted = [(v, self.extract(v)) for v in pending]
        repo = SearchRepository(uow.session)
        for v, row in extracted:
            if not repo.has_text(v.version_id):  # another run may have stored it meanwhile
                repo.add_text(row)
        uow.flush()
        self.index_now(repo, kind, [object_id])
        if kind == "case":
            for k, ids in related_to_case(repo, object_id).items():
                self.index_now(repo, k, ids)

    def index_now(self, repo: SearchRepository, kind: str, ids: Sequence[uuid.UUID]) -> None:
        if not ids:
            return
        docs = build_docs(repo, kind, ids)
        found = {d.object_id for d in docs}
        gone = [_key(kind, i) for i in ids if str(i) not in found]
        if docs:
            self.index.upsert(docs)
        if gone:
            self.index.delete(gone)

    def extract(self, v: PendingVersion) -> DocumentText:
        def row(
            status: str, method: str, text: str = "", reason: str | None = None
        ) -> DocumentText:
            return DocumentText(
                version_id=v.version_id,
                document_id=v.document_id,
                status=status,
                method=method,
                reason=reason[:500] if reason else None,
                text=text,
                chars=len(text),
                extracted_at=utcnow(),
            )

        if v.size > self.max_file_bytes:
            return row("skipped", "none", reason=f"file too large ({v.size} bytes)")
        fd, name = tempfile.mkstemp(prefix="ezd-extract-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in self.blob_store.open(v.blob_key):
                    f.write(chunk)
            result = self.extractor.extract(path, v.media_type, v.file_name)
        finally:
            path.unlink(missing_ok=True)
        if result.status != "ok":
            log.info(
                "extraction of %s (%s): %s %s",
                v.file_name,
                v.version_id,
                result.status,
                result.reason,
            )
        return row(result.status, result.method, result.text, result.reason)


# --- querying -----------------------------------------------------------------------------


class InvalidCursor(DomainError):
    code = "invalid_cursor"
    status = 400
    message_pl = "Kursor stronicowania jest nieprawidłowy lub należy do innego zapytania."
    message_en = "The pagination cursor is invalid or belongs to another query."


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    filters: SearchFilters = field(default_factory=SearchFilters)
    sort: SortOrder = "relevance"
    size: int = 20
    cursor: str | None = None


@dataclass(frozen=True)
class SearchPage:
    result: SearchResult
    next_cursor: str | None


def _query_hash(p: SearchParams) -> str:
    raw = json.dumps([p.q, asdict(p.filters), p.sort], default=str, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_cursor(p: SearchParams, sort_values: Sequence[Any]) -> str:
    raw = json.dumps({"h": _query_hash(p), "s": list(sort_values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(p: SearchParams) -> tuple[Any, ...] | None:
    if not p.cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(p.cursor + "=" * (-len(p.cursor) % 4))
        data = json.loads(raw)
        values = data["s"]
        ok = (
            isinstance(values, list)
            and len(values) == 2
            and isinstance(values[1], str)
            and (values[0] is None or isinstance(values[0], int | float | str))
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok or data.get("h") != _query_hash(p):
        raise InvalidCursor(details={"cursor": p.cursor[:100]})
    return tuple(values)


def access_units(actor: Principal) -> tuple[str, ...] | None:
    """The unit ids the actor may search, None for every unit."""
    if actor.system:
        return None
    units = actor.readable_units()
    return None if units is None else tuple(sorted(str(u) for u in units))


def is_auditing(actor: Principal) -> bool:
    from workflow.org.models import Role

    return actor.is_auditor or bool(actor.units_with(Role.auditor))


def search_request(actor: Principal, p: SearchParams, *, facets: bool = True) -> SearchRequest:
    """The index request for `p`, trimmed to what `actor` may read; bad input raises."""
    query = parse_query(p.q)
    if not 1 <= p.size <= MAX_PAGE_SIZE:
        raise DomainError(
            f"Rozmiar strony musi mieścić się w zakresie 1–{MAX_PAGE_SIZE}.",
            f"The page size must be between 1 and {MAX_PAGE_SIZE}.",
            code="invalid_page_size",
            status=400,
        )
    if p.filters.date_from and p.filters.date_to and p.filters.date_from > p.filters.date_to:
        raise DomainError(
            "Data początkowa jest późniejsza niż końcowa.",
            "The start date is after the end date.",
            code="invalid_date_range",
            status=400,
        )
    unknown = set(p.filters.kinds) - set(KINDS)
    if unknown:
        raise DomainError(
            "Nieznany typ obiektu.",
            "Unknown object type.",
            code="unknown_filter_value",
            status=400,
            details={"type": sorted(unknown), "allowed": list(KINDS)},
        )
    return SearchRequest(
        query=query,
        filters=p.filters,
        unit_ids=access_units(actor),
        sort=p.sort,
        size=p.size,
        search_after=decode_cursor(p),
        facets=facets,
    )


def search_page(
    uow: UnitOfWork, actor: Principal, p: SearchParams, result: SearchResult
) -> SearchPage:
    """The page for the index's `result`; an auditor's query is recorded in the audit trail."""
    next_cursor = (
        encode_cursor(p, result.hits[-1].sort)
        if len(result.hits) == p.size and result.hits
        else None
    )
    if is_auditing(actor):
        uow.audit(
            "search.query",
            "search",
            uuid.uuid4(),
            details={
                "q": p.q,
                "filters": {k: v for k, v in asdict(p.filters).items() if v},
                "sort": p.sort,
                "cursor": bool(p.cursor),
                "total": result.total,
                "returned": [h.key for h in result.hits],
            },
        )
    return SearchPage(result, next_cursor)


def search(
    uow: UnitOfWork,
    actor: Principal,
    index: SearchIndex,
    p: SearchParams,
    *,
    facets: bool = True,
) -> SearchPage:
    """`search_request`, the index, `search_page`, in the caller's transaction."""
    return search_page(uow, actor, p, index.search(search_request(actor, p, facets=facets)))


def open_result(uow: UnitOfWork, actor: Principal, kind: str, object_id: uuid.UUID) -> str:
    """Check that the actor may read the hit, write the audit entry, give its canonical path."""
    from workflow.cases.repository import CaseRepository
    from workflow.documents.service import readable_document
    from workflow.registry.repository import RegistryRepository
    from workflow.registry.service import readable_incoming

    unit_id: uuid.UUID
    if kind == "incoming":
        unit_id = readable_incoming(uow, actor, object_id).unit_id
        path = f"/api/v1/incoming/{object_id}"
    elif kind == "document":
        unit_id = readable_document(uow, actor, object_id).unit_id
        path = f"/api/v1/documents/{object_id}"
    elif kind == "outgoing":
        item = RegistryRepository(uow.session).outgoing(object_id)
        if item is None or not actor.can_read_unit(item.unit_id):
            raise NotFound("Nie znaleziono przesyłki.", "Item not found.", code="item_not_found")
        unit_id = item.unit_id
        unit = OrgRepository(uow.session).unit(unit_id)
        path = f"/api/v1/outgoing?unit={unit.code if unit else ''}"
    elif kind == "case":
        case = CaseRepository(uow.session).by_id(object_id)
        if case is None or not actor.can_read_unit(case.unit_id):
            raise NotFound("Nie znaleziono sprawy.", "Case not found.", code="case_not_found")
        unit_id = case.unit_id
        path = f"/api/v1/cases/{case.reference}"
    else:
        raise NotFound("Nie znaleziono.", "Not found.", code="not_found")
    uow.audit(
        "search.result_opened",
        {"incoming": "incoming_item", "outgoing": "outgoing_item"}.get(kind, kind),
        object_id,
        unit_id=unit_id,
        details={"via": "search"},
    )
    return path


# --- reindex and verify -------------------------------------------------------------------


def expected_docs(read_uow: Callable[[], UnitOfWork], batch: int = 500) -> Iterator[list[IndexDoc]]:
    """Every index document the database implies, in batches (each batch its own short read
    transaction, so a long rebuild never holds a lock)."""
    for kind in KINDS:
        with read_uow() as uow:
            batches = list(SearchRepository(uow.session).id_batches(kind, batch))
        for ids in batches:
            with read_uow() as uow:
                docs = build_docs(SearchRepository(uow.session), kind, ids)
            yield docs  # with no transaction open while the caller indexes them


def count_all(read_uow: Callable[[], UnitOfWork]) -> int:
    with read_uow() as uow:
        repo = SearchRepository(uow.session)
        return sum(repo.count(k) for k in KINDS)


def reindex(
    read_uow: Callable[[], UnitOfWork],
    index: SearchIndex,
    progress: Callable[[int], None] = lambda n: None,
    batch: int = 500,
) -> int:
    """Rebuild the index from the database beside the live one and swap it in atomically:
    searches keep answering from the old generation until the swap, and changes committed
    meanwhile reach both (the outbox writes to the new generation too)."""
    index.ensure()
    generation = index.begin_rebuild()
    n = 0
    try:
        for docs in expected_docs(read_uow, batch):
            index.add_to_rebuild(generation, docs)
            n += len(docs)
            progress(len(docs))
        index.finish_rebuild(generation)
    except BaseException:
        index.abort_rebuild(generation)
        raise
    return n


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)  # in the database, not in the index
    stale: list[str] = field(default_factory=list)  # indexed from an older state
    extra: list[str] = field(default_factory=list)  # in the index, not in the database

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.extra)


def verify(read_uow: Callable[[], UnitOfWork], index: SearchIndex) -> VerifyReport:
    indexed = dict(index.fingerprints())
    report = VerifyReport()
    for docs in expected_docs(read_uow):
        for d in docs:
            report.checked += 1
            have = indexed.pop(d.key, None)
            if have is None:
                report.missing.append(d.key)
            elif have != d.fingerprint:
                report.stale.append(d.key)
    report.extra = sorted(indexed)
    return report


def repair(read_uow: Callable[[], UnitOfWork], index: SearchIndex, report: VerifyReport) -> int:
    """Index what `verify` found missing or stale, delete what is extra."""
    by_kind: dict[str, list[uuid.UUID]] = {}
    for key in [*report.missing, *report.stale]:
        kind, _, oid = key.partition(":")
        by_kind.setdefault(kind, []).append(uuid.UUID(oid))
    n = 0
    for kind, ids in by_kind.items():
        for part in chunked(ids, 500):
            with read_uow() as uow:
                docs = build_docs(SearchRepository(uow.session), kind, part)
            index.upsert(docs)
            n += len(docs)
    if report.extra:
        index.delete(report.extra)
    return n + len(report.extra)


__all__ = ["FACETS"]
