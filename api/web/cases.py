"""The case view (metadata, documents with versions and previews, signature badges, case
record, timeline, process diagrams, task forms) and the task actions it offers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from fastapi import Form, Request
from fastapi.responses import StreamingResponse
from lxml import etree
from starlette.responses import Response

from api.deps import Actor, UoW, container, run_in_transaction
from api.presenters import Presenter
from api.routers.processes import _Names as TaskNames
from api.web.deps import web_router
from api.web.forms import data_from_form, fields_of
from api.web.render import PREFIX, pick_message, redirect, render, translate
from workflow.cases.models import Case
from workflow.cases.service import case_record, readable_case
from workflow.documents.service import open_version
from workflow.errors import DomainError
from workflow.org.repository import OrgRepository
from workflow.processes import service as processes
from workflow.processes.models import ProcessTask
from workflow.processes.repository import ProcessRepository
from workflow.uow import UnitOfWork
from workflow.xmlsafe import hardened_parser

router = web_router()
INLINE_TYPES = (
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "text/plain",
)
CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
PDF_CSP = "default-src 'self'; script-src 'none'"
BPMN_NS = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


@dataclass
class FormState:
    """What the user typed into a task form that the service refused, to show it again."""

    values: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    field_errors: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=64)
def element_names(definition_id: uuid.UUID, bpmn_xml: str) -> dict[str, str]:
    root = etree.fromstring(
        bpmn_xml.encode("utf-8"), hardened_parser(huge_tree=False, keep_pis=False)
    )
    return {
        str(el.get("id")): str(el.get("name") or el.get("id"))
        for el in root.iter()
        if isinstance(el.tag, str) and el.tag.startswith(BPMN_NS) and el.get("id")
    }


def case_context(
    uow: UnitOfWork, actor: Any, case: Case, form_state: dict[uuid.UUID, FormState] | None = None
) -> dict[str, Any]:
    p = Presenter(uow)
    names = TaskNames(uow)
    repo = ProcessRepository(uow.session)
    out = p.case(case, full=True)
    workable = {
        t.id for t in processes.inbox(uow, processes.InboxFilter(case_id=case.id, limit=200))
    }
    instances = []
    open_tasks = []
    timeline: list[dict[str, Any]] = []
    for i in repo.instances_for_case(case.id):
        d = repo.definition(i.definition_id)
        assert d is not None
        labels = element_names(d.id, d.bpmn_xml)
        instances.append(
            {
                "out": names.instance_out(i),
                "name": d.name,
                "active": [labels.get(e, e) for e in i.active_elements or []],
                "completed": [labels.get(e, e) for e in i.completed_elements or []],
            }
        )
        for t in repo.tasks_of_instance(i.id):
            view = names.task(t)
            timeline.append({"at": t.created_at, "what": "task_created", "task": view})
            if t.completed_at:
                who = names.user(t.completed_by) if t.completed_by else None
                timeline.append(
                    {"at": t.completed_at, "what": "task_completed", "task": view, "who": who}
                )
            if t.status == "open":
                open_tasks.append(_task_view(uow, t, view, t.id in workable, actor, form_state))
    for doc in out.documents:
        timeline.append({"at": doc.versions[0].created_at, "what": "document", "document": doc})
    timeline.sort(key=lambda e: e["at"])
    users = OrgRepository(uow.session).users_in_units([case.unit_id])
    return {
        "case": out,
        "instances": instances,
        "open_tasks": open_tasks,
        "timeline": timeline,
        "record": case_record(uow, actor, case.reference),
        "unit_users": [u.username for u in users if u.active],
        "can_start": actor.has_role(case.unit_id, *processes.STARTING_ROLES)
        and case.status == "open",
        "startable": _startable(repo),
        "business_now": processes.business_now(),
    }


def _startable(repo: ProcessRepository) -> list[tuple[str, str]]:
    latest = {d.key: d.name for d in repo.definitions() if not d.message_starts}
    return sorted(latest.items(), key=lambda kv: kv[1])


def _task_view(
    uow: UnitOfWork,
    t: ProcessTask,
    view: Any,
    workable: bool,
    actor: Any,
    form_state: dict[uuid.UUID, FormState] | None,
) -> dict[str, Any]:
    schema = processes.form_schema(uow, t) if workable else None
    return {
        "task": view,
        "workable": workable,
        "fields": fields_of(schema),
        "description": (schema or {}).get("description"),
        "can_assign": actor.has_role(t.unit_id, *processes.ASSIGNING_ROLES) or workable,
        "can_claim": workable and t.assignee_id is None,
        "can_release": workable and t.assignee_id is not None,
        "state": (form_state or {}).get(t.id, FormState()),
    }


@router.get("/cases/{reference}")
def case_page(reference: str, request: Request, uow: UoW, actor: Actor) -> Response:
    case = readable_case(uow, actor, reference)
    uow.audit("case.read", "case", case.id, unit_id=case.unit_id)
    return render(request, "case.html", case_context(uow, actor, case), actor=actor)


@router.get("/tasks/{task_id}")
def task_page(task_id: uuid.UUID, request: Request, uow: UoW, actor: Actor) -> Response:
    task = processes.readable_task(uow, task_id)
    ref = Presenter(uow).case_reference(task.case_id)
    if ref:
        return redirect(f"{PREFIX}/cases/{ref}#task-{task.id}")
    workable = task.id in {t.id for t in processes.inbox(uow, processes.InboxFilter(limit=500))}
    view = _task_view(uow, task, TaskNames(uow).task(task), workable, actor, None)
    return render(
        request, "task.html", {"t": view, "business_now": processes.business_now()}, actor=actor
    )


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _back(uow: UnitOfWork, task: ProcessTask) -> str:
    ref = Presenter(uow).case_reference(task.case_id)
    return f"{PREFIX}/cases/{ref}" if ref else f"{PREFIX}/"


@router.post("/tasks/{task_id}/complete")
async def complete(task_id: uuid.UUID, request: Request, actor: Actor) -> Response:
    values = await _form(request)
    engine = container(request).engine_runtime

    def work(uow: UnitOfWork) -> tuple[str, str]:
        task = processes.readable_task(uow, task_id)
        data = data_from_form(processes.form_schema(uow, task), values)
        done = processes.complete_task(uow, engine, task_id, data)
        return _back(uow, done), done.name

    try:
        back, name = await run_in_transaction(request, actor, work)
    except DomainError as e:
        return await _refused(request, actor, task_id, values, e)
    return redirect(back, flash=translate(request, "Task “%(name)s” completed.") % {"name": name})


async def _refused(
    request: Request, actor: Any, task_id: uuid.UUID, values: dict[str, str], e: DomainError
) -> Response:
    """Show the case again with the refused form filled in and the service's reasons."""
    if e.status in (401, 404):
        raise e
    state = FormState(values=values, error=pick_message(request, e.message_pl, e.message_en))
    for err in e.details.get("errors", []):
        if err.get("field"):
            state.field_errors[str(err["field"])] = str(err.get("message", ""))

    def page(uow: UnitOfWork) -> dict[str, Any] | None:
        task = processes.readable_task(uow, task_id)
        case = Presenter(uow).cases.by_id(task.case_id) if task.case_id else None
        if case is None:
            return None
        return case_context(uow, actor, case, {task_id: state})

    ctx = await run_in_transaction(request, actor, page)
    if ctx is None:
        raise e
    return render(request, "case.html", ctx, actor=actor, status_code=e.status)


@router.post("/tasks/{task_id}/claim")
def claim(task_id: uuid.UUID, request: Request, uow: UoW, actor: Actor) -> Response:
    task = processes.claim_task(uow, task_id)
    return redirect(_back(uow, task), flash=translate(request, "The task is yours now."))


@router.post("/tasks/{task_id}/release")
def release(task_id: uuid.UUID, request: Request, uow: UoW, actor: Actor) -> Response:
    task = processes.release_task(uow, task_id)
    return redirect(_back(uow, task), flash=translate(request, "The task is back in the pool."))


@router.post("/tasks/{task_id}/assign")
def assign(
    task_id: uuid.UUID,
    request: Request,
    uow: UoW,
    actor: Actor,
    username: str = Form(max_length=80),
    instruction: str = Form("", max_length=2000),
) -> Response:
    task = processes.reassign_task(uow, task_id, username.strip(), instruction.strip() or None)
    return redirect(
        _back(uow, task),
        flash=translate(request, "Assigned to %(user)s.") % {"user": username.strip()},
    )


@router.post("/cases/{reference}/processes")
def start(
    reference: str,
    request: Request,
    uow: UoW,
    actor: Actor,
    key: str = Form(max_length=100),
) -> Response:
    case = readable_case(uow, actor, reference)
    unit = OrgRepository(uow.session).unit(case.unit_id)
    assert unit is not None
    processes.start_process(uow, container(request).engine_runtime, key, unit, case=case)
    return redirect(
        f"{PREFIX}/cases/{case.reference}", flash=translate(request, "Process started.")
    )


@router.get("/documents/{document_id}/versions/{version}")
def content(
    document_id: uuid.UUID,
    version: int,
    request: Request,
    uow: UoW,
    actor: Actor,
    download: bool = False,
) -> StreamingResponse:
    c = open_version(uow, container(request).blob_store, actor, document_id, version)
    inline = c.blob.media_type in INLINE_TYPES and not download
    disposition = "inline" if inline else "attachment"
    return StreamingResponse(
        c.chunks,
        media_type=c.blob.media_type,
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(c.version.file_name)}",
            "Content-Length": str(c.blob.size),
            "X-Content-Type-Options": "nosniff",
            # Chromium's PDF viewer does not run in a sandboxed document; anything else does.
            "Content-Security-Policy": PDF_CSP if c.blob.media_type == "application/pdf" else CSP,
        },
    )
