"""Full-text search over registers, cases and documents, trimmed to what the caller may read."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

import pydantic_core
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Actor, UoW, container, run_authenticated
from api.errors import STAFF_ERRORS, error_responses
from api.schemas import SearchOut
from api.search_wiring import search_index
from workflow.errors import DomainError
from workflow.search import service
from workflow.search.port import SearchFilters
from workflow.uow import UnitOfWork

router = APIRouter(prefix="/api/v1", tags=["search"], responses=error_responses(*STAFF_ERRORS))

PARAMS = {
    "q", "unit", "jrwa", "status", "type", "retention", "date_from", "date_to", "sort", "size",
    "cursor", "facets",
}  # fmt: skip


class UnknownFilter(DomainError):
    code = "unknown_filter"
    status = 400
    message_pl = "Nieznany parametr lub filtr wyszukiwania."
    message_en = "Unknown search parameter or filter."


@router.get(
    "/search",
    response_model=SearchOut,
    summary="Full-text search (Polish: inflection, no diacritics needed, typos tolerated)",
    description="`q`: words (all must match, in any inflected form, typos tolerated), "
    '`"a phrase"`, `prefix*`, `-excluded`. Filters may repeat: `unit`, `jrwa` (a class and '
    "its subclasses), `status`, `type` (incoming, outgoing, case, document), `retention` "
    "(A, B5, BE10, …), `date_from`, `date_to`. Deep pagination: pass `next_cursor` as "
    "`cursor`. Hits and facet counts cover only the units the caller may read; an auditor's "
    "queries are written to the audit trail.",
)
async def search(
    request: Request,
    q: str = "",
    unit: list[str] = Query([]),
    jrwa: list[str] = Query([]),
    status: list[str] = Query([]),
    type: list[str] = Query([]),
    retention: list[str] = Query([]),
    date_from: date | None = None,
    date_to: date | None = None,
    sort: Literal["relevance", "date_desc", "date_asc"] = "relevance",
    size: int = Query(20, ge=1, le=service.MAX_PAGE_SIZE),
    cursor: str | None = Query(None, max_length=1000),
    facets: bool = True,
) -> Response:
    unknown = sorted(set(request.query_params) - PARAMS)
    if unknown:
        raise UnknownFilter(details={"unknown": unknown, "allowed": sorted(PARAMS)})
    params = service.SearchParams(
        q=q,
        filters=SearchFilters(
            units=tuple(u.upper() for u in unit),
            jrwa=tuple(jrwa),
            status=tuple(status),
            kinds=tuple(type),
            retention=tuple(retention),
            date_from=date_from,
            date_to=date_to,
        ),
        sort=sort,
        size=size,
        cursor=cursor,
    )
    index = search_index(container(request))

    def work(uow: UnitOfWork) -> service.SearchPage:
        query = service.search_request(uow.actor, params, facets=facets)
        # The caller is checked: end that transaction before the index is asked, so that no
        # database connection (nor, on SQLite, the write lock) waits on the index. An
        # auditor's entry is written after the answer, in a short transaction of its own.
        uow.commit()
        return service.search_page(uow, uow.actor, params, index.search(query))

    page = await run_authenticated(request, work)
    return Response(search_out(page), media_type="application/json")


def search_out(page: service.SearchPage) -> bytes:
    """The JSON of `SearchOut` for a page, from plain values by pydantic-core in one step (the
    hot path: FastAPI's route serialisation (dump, validate again, encode) and even unvalidated
    models cost more than the search's own work here). The schema tests and the OpenAPI fuzzing
    hold the body to `SearchOut`."""
    r = page.result
    body = {
        "total": r.total,
        "hits": [
            {
                "type": h.kind,
                "id": h.object_id,
                "unit": h.unit,
                "title": h.title,
                "date": h.date,
                "number": h.number,
                "case_reference": h.case_reference,
                "sender": h.sender,
                "jrwa": h.jrwa,
                "status": h.status,
                "retention_category": h.retention,
                "score": h.score,
                "highlights": h.highlights,
                "open_url": f"/api/v1/search/open/{h.kind}/{h.object_id}",
            }
            for h in r.hits
        ],
        "facets": {k: [{"value": v, "count": n} for v, n in b] for k, b in r.facets.items()},
        "next_cursor": page.next_cursor,
    }
    return pydantic_core.to_json(body)


@router.get(
    "/search/open/{kind}/{object_id}",
    status_code=303,
    response_class=RedirectResponse,
    summary="Open a search result: checks access, records the view, redirects to the object",
)
def open_result(
    kind: Literal["incoming", "outgoing", "case", "document"],
    object_id: uuid.UUID,
    uow: UoW,
    actor: Actor,
) -> RedirectResponse:
    return RedirectResponse(service.open_result(uow, actor, kind, object_id), status_code=303)
