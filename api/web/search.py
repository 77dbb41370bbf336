"""The search page (facets, highlights) and opening a result; the auditor's read-only view
across units."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any, Literal

from fastapi import Query, Request
from markupsafe import Markup, escape
from starlette.responses import Response

from api.deps import Actor, UoW, container
from api.presenters import Presenter
from api.search_wiring import search_index
from api.web.deps import web_router
from api.web.render import PREFIX, pick_message, redirect, render
from workflow.cases.service import case_list, office_year
from workflow.db import utcnow
from workflow.documents.service import readable_document
from workflow.errors import DomainError, Forbidden
from workflow.org.models import Role
from workflow.org.repository import OrgRepository
from workflow.registry.repository import RegistryRepository
from workflow.registry.service import readable_incoming, readable_unit
from workflow.search import service
from workflow.search.port import SearchFilters

router = web_router()
FACET_ORDER = ("type", "unit", "status", "jrwa", "retention", "year")
_EM = re.compile(r"(</?em>)")


def highlight(fragment: str) -> Markup:
    """The index returns escaped text with matches in <em>; anything else is escaped again."""
    parts = _EM.split(fragment)
    out = []
    for part in parts:
        if part in ("<em>", "</em>"):
            out.append(Markup("<mark>" if part == "<em>" else "</mark>"))
        elif "<" in part or ">" in part:
            out.append(escape(part))
        else:
            out.append(Markup(part))
    return Markup("").join(out)


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value.strip() else None
    except ValueError:
        return None  # a browser's date input only sends valid dates; anything else: no bound


@router.get("/search")
def search_page(
    request: Request,
    uow: UoW,
    actor: Actor,
    q: str = Query("", max_length=500),
    unit: list[str] = Query([]),
    jrwa: list[str] = Query([]),
    status: list[str] = Query([]),
    type: list[str] = Query([]),
    retention: list[str] = Query([]),
    date_from_text: str = Query("", alias="date_from", max_length=10),
    date_to_text: str = Query("", alias="date_to", max_length=10),
    sort: Literal["relevance", "date_desc", "date_asc"] = "relevance",
    cursor: str | None = Query(None, max_length=1000),
) -> Response:
    # An empty date field of the form arrives as `date_from=`: it means "no bound", not a 422.
    date_from, date_to = _day(date_from_text), _day(date_to_text)
    ctx: dict[str, Any] = {
        "q": q,
        "selected": {
            "unit": unit,
            "jrwa": jrwa,
            "status": status,
            "type": type,
            "retention": retention,
        },
        "date_from": date_from,
        "date_to": date_to,
        "sort": sort,
        "page": None,
        "error": None,
    }
    if q.strip() or any((unit, jrwa, status, type, retention, date_from, date_to)):
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
            size=20,
            cursor=cursor,
        )
        try:
            page = service.search(uow, actor, search_index(container(request)), params)
        except DomainError as e:
            ctx["error"] = pick_message(request, e.message_pl, e.message_en)
        else:
            ctx["page"] = page
            ctx["facets"] = sorted(
                page.result.facets.items(),
                key=lambda kv: FACET_ORDER.index(kv[0]) if kv[0] in FACET_ORDER else 99,
            )
            ctx["highlight"] = highlight
    template = "_search_results.html" if request.headers.get("hx-request") else "search.html"
    return render(request, template, ctx, actor=actor)


@router.get("/search/open/{kind}/{object_id}")
def open_result(
    kind: Literal["incoming", "outgoing", "case", "document"],
    object_id: uuid.UUID,
    uow: UoW,
    actor: Actor,
) -> Response:
    path = service.open_result(uow, actor, kind, object_id)  # checks access, writes the audit
    p = Presenter(uow)
    ref: str | None = None
    if kind == "case":
        case = p.cases.by_id(object_id)
        ref = case.reference if case else None
    elif kind == "incoming":
        ref = p.case_reference(readable_incoming(uow, actor, object_id).case_id)
    elif kind == "document":
        ref = p.case_reference(readable_document(uow, actor, object_id).case_id)
    elif kind == "outgoing":  # access checked by open_result
        item = RegistryRepository(uow.session).outgoing(object_id)
        ref = p.case_reference(item.case_id) if item else None
    return redirect(f"{PREFIX}/cases/{ref}" if ref else path)


@router.get("/audit")
def audit_view(
    request: Request,
    uow: UoW,
    actor: Actor,
    unit: str | None = Query(None, max_length=20),
    year: int | None = Query(None, ge=1990, le=2200),
) -> Response:
    """Read-only: units the auditor may read, the case list (spis spraw) of one of them."""
    readable = actor.readable_units()
    if not (actor.is_auditor or actor.units_with(Role.auditor)):
        raise Forbidden("Dostępne dla audytora.", "Available to auditors.")
    units = [u for u in OrgRepository(uow.session).units() if readable is None or u.id in readable]
    ctx: dict[str, Any] = {"units": units, "unit": None, "cases": [], "year": None}
    if unit:
        u = readable_unit(uow, actor, unit)
        y = year or office_year(utcnow())
        uow.audit("case_list.read", "unit", u.id, unit_id=u.id, details={"year": y})
        p = Presenter(uow)
        ctx.update(unit=u, year=y, cases=[p.case(c) for c in case_list(uow, u, y, None)])
    return render(request, "audit.html", ctx, actor=actor)
