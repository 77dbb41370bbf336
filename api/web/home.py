"""The home page of each role: the inbox with deadlines, recent items, quick search."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from starlette.responses import Response

from api.deps import Actor, UoW
from api.presenters import Presenter
from api.routers.processes import _Names as TaskNames
from api.web.deps import web_router
from api.web.render import render
from workflow.org.models import Role
from workflow.processes import service as processes
from workflow.registry.service import incoming_register
from workflow.uow import UnitOfWork

router = web_router()
PAGE = 25


def inbox_context(uow: UnitOfWork, *, mine: bool, overdue: bool, page: int) -> dict[str, Any]:
    now = processes.business_now()
    rows = processes.inbox(
        uow,
        processes.InboxFilter(
            mine_only=mine,
            due_before=now if overdue else None,
            limit=PAGE + 1,
            offset=(page - 1) * PAGE,
        ),
    )
    tasks = TaskNames(uow).tasks(rows[:PAGE])
    return {
        "tasks": tasks,
        "mine": mine,
        "overdue_only": overdue,
        "page": page,
        "has_next": len(rows) > PAGE,
        "business_now": now,
    }


@router.get("/")
def home(
    request: Request,
    uow: UoW,
    actor: Actor,
    mine: bool = False,
    overdue: bool = False,
    page: int = Query(1, ge=1, le=10_000),
) -> Response:
    ctx = inbox_context(uow, mine=mine, overdue=overdue, page=page)
    roles = {r for rs in actor.roles.values() for r in rs}
    recent: list[Any] = []
    if Role.clerk in roles:
        unit_id = actor.units_with(Role.clerk)[0]
        p = Presenter(uow)
        recent = [
            p.incoming(i, with_documents=False)
            for i in incoming_register(uow, actor, p.unit_code(unit_id), None, limit=8, offset=0)
        ]
    done = TaskNames(uow)
    completed = [
        done.task(t)
        for t in processes.inbox(
            uow, processes.InboxFilter(status="completed", mine_only=True, limit=8)
        )
    ]
    ctx.update(
        recent_incoming=recent,
        recent_tasks=completed,
        is_clerk=Role.clerk in roles,
        is_auditor=actor.is_auditor or Role.auditor in roles,
        is_admin=actor.is_any_admin,
    )
    template = "_inbox.html" if request.headers.get("hx-request") else "home.html"
    return render(request, template, ctx, actor=actor)
