"""The clerk's registration form, built for speed: keyboard only, sender autocomplete from
earlier senders, a JRWA picker with search, scans dropped with a preview, "register and next"."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from api.deps import Actor, UoW, container, run_in_transaction
from api.routers.uploads import multipart_upload
from api.web.deps import web_router
from api.web.render import PREFIX, pick_message, redirect, render, translate
from api.web.security import CSRF_FIELD, check_csrf, checks_csrf_after_upload
from workflow.cases.service import WARSAW
from workflow.db import utcnow
from workflow.errors import DomainError
from workflow.jrwa.repository import JrwaRepository
from workflow.jrwa.service import plan_for_unit
from workflow.org.models import Role
from workflow.processes import service as processes
from workflow.processes.repository import ProcessRepository
from workflow.registry.models import Channel
from workflow.registry.schemas import RegisterIncoming
from workflow.registry.service import acting_unit, earlier_senders, register_incoming_item
from workflow.uow import UnitOfWork

router = web_router()
FIELDS = (
    "subject", "sender_name", "sender_kind", "sender_address", "channel", "jrwa", "case_mode",
    "case_reference", "letter_date", "sender_reference", "notes", "start_process",
)  # fmt: skip
DEFAULT_PROCESS = "incoming_letter"


def form_options(uow: UnitOfWork) -> dict[str, Any]:
    unit = acting_unit(uow, None, Role.clerk)
    repo = JrwaRepository(uow.session)
    plan = plan_for_unit(repo, unit, utcnow().astimezone(WARSAW).date())
    classes = [c for c in repo.classes(plan.id) if c.is_leaf]
    latest: dict[str, str] = {}
    for d in ProcessRepository(uow.session).definitions():
        if not d.message_starts:
            latest[d.key] = d.name
    return {
        "unit": unit,
        "jrwa_classes": classes,
        "channels": [c.value for c in Channel if c != Channel.internal],
        "processes": sorted(latest.items(), key=lambda kv: kv[1]),
    }


@router.get("/register")
def register_form(request: Request, uow: UoW, actor: Actor) -> Response:
    values = {"channel": "paper", "case_mode": "new", "start_process": DEFAULT_PROCESS}
    return render(
        request,
        "register.html",
        {**form_options(uow), "values": values, "errors": {}},
        actor=actor,
    )


@router.get("/senders")
def senders(
    request: Request, uow: UoW, actor: Actor, sender_name: str = Query("", max_length=100)
) -> Response:
    names = earlier_senders(uow, None, sender_name)
    return render(request, "_senders.html", {"names": names}, actor=actor)


def _jrwa_symbol(raw: str) -> str | None:
    m = re.match(r"\s*(\d{1,6})\b", raw)
    return m.group(1) if m else None


def _command(values: dict[str, str]) -> RegisterIncoming:
    new_case = values.get("case_mode") == "new"
    data: dict[str, Any] = {
        "subject": values.get("subject", ""),
        "sender": {
            "name": values.get("sender_name", ""),
            **({"kind": values["sender_kind"]} if values.get("sender_kind") else {}),
            **({"address": values["sender_address"]} if values.get("sender_address") else {}),
        },
        "channel": values.get("channel", ""),
        "jrwa": _jrwa_symbol(values.get("jrwa", "")),
        "new_case": new_case,
        "case_reference": None if new_case else (values.get("case_reference") or None),
        "notes": values.get("notes", ""),
    }
    if values.get("letter_date"):
        data["letter_date"] = values["letter_date"]
    if values.get("sender_reference"):
        data["sender_reference"] = values["sender_reference"]
    return RegisterIncoming.model_validate(data)


FIELD_OF = {
    "sender.name": "sender_name",
    "sender.address": "sender_address",
    "sender.kind": "sender_kind",
}


@router.post("/register")
@checks_csrf_after_upload
async def register_submit(request: Request, actor: Actor) -> Response:
    c = container(request)
    async with multipart_upload(request) as form:
        if getattr(request.state, "csrf_pending", False):
            check_csrf(request, form.fields.get(CSRF_FIELD))
        values = {k: form.fields.get(k, "").strip() for k in FIELDS}
        files = [f for f in form.files if f.size > 0]
        errors: dict[str, str] = {}
        try:
            cmd = _command(values)
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(x) for x in err["loc"])
                errors[FIELD_OF.get(loc, loc or "form")] = translate(request, "Check this field.")
            cmd = None
        if cmd is not None and values["case_mode"] == "new" and not cmd.jrwa:
            errors["jrwa"] = translate(request, "Choose a JRWA class for the new case.")

        def work(uow: UnitOfWork) -> tuple[str, str | None]:
            assert cmd is not None
            result = register_incoming_item(uow, c.blob_store, cmd, files)
            key = values.get("start_process")
            if key and result.case is not None:
                unit = acting_unit(uow, result.unit_code, Role.clerk)
                processes.start_process(uow, c.engine_runtime, key, unit, case=result.case)
            return result.item.rpw_number, result.case.reference if result.case else None

        if not errors:
            try:
                rpw, case_ref = await run_in_transaction(request, actor, work)
            except DomainError as e:
                errors["form"] = pick_message(request, e.message_pl, e.message_en)
        if errors:

            def options(uow: UnitOfWork) -> dict[str, Any]:
                return form_options(uow)

            ctx = await run_in_transaction(request, actor, options)
            return render(
                request,
                "register.html",
                {**ctx, "values": values, "errors": errors, "files_lost": bool(files)},
                actor=actor,
                status_code=422,
            )
    message = translate(request, "Registered %(rpw)s.") % {"rpw": rpw}
    if case_ref:
        message += " " + translate(request, "Case %(ref)s opened.") % {"ref": case_ref}
    if form.fields.get("action") == "next" or not case_ref:
        return redirect(f"{PREFIX}/register", flash=message)
    return redirect(f"{PREFIX}/cases/{case_ref}", flash=message)
