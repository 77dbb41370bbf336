"""Administration: units and departments, users and roles, the JRWA plans, process definitions
(upload with a diagram preview, versions, incidents with retry), signing keys, trust anchors.
Input is validated by the API's request models; the services decide who may do what."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from api.bootstrap import key_encryption_key
from api.deps import Actor, UoW, container, run_in_transaction
from api.presenters import Presenter
from api.routers.org import DepartmentIn, RoleIn, UnitIn, UserIn
from api.routers.uploads import multipart_upload
from api.web.deps import web_router
from api.web.render import PREFIX, pick_message, redirect, render, translate
from api.web.security import CSRF_FIELD, check_csrf, checks_csrf_after_upload
from workflow.cases.service import WARSAW
from workflow.db import utcnow
from workflow.errors import DomainError, Forbidden
from workflow.jrwa.repository import JrwaRepository
from workflow.jrwa.service import plan_for_unit
from workflow.org import service as org
from workflow.org.models import Role, UnitKind
from workflow.org.repository import OrgRepository
from workflow.processes import service as processes
from workflow.processes.repository import ProcessRepository
from workflow.signing import service as signing
from workflow.uow import UnitOfWork

router = web_router()
M = TypeVar("M", bound=BaseModel)


def _require_admin(actor: Any) -> None:
    if not actor.is_any_admin:
        raise Forbidden("Dostępne dla administratora.", "Available to administrators.")


def _validated(request: Request, model: type[M], data: dict[str, Any]) -> M | str:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        fields = ", ".join(".".join(str(x) for x in err["loc"]) for err in e.errors())
        return translate(request, "Check these fields: %(fields)s") % {"fields": fields}


def _fail(request: Request, e: DomainError, back: str) -> Response:
    return redirect(back, flash=pick_message(request, e.message_pl, e.message_en), kind="error")


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v.strip() for k, v in form.items() if isinstance(v, str)}


T = TypeVar("T")


async def _act(
    request: Request, actor: Any, back: str, work: Callable[[UnitOfWork], T], done: str
) -> Response:
    try:
        await run_in_transaction(request, actor, work)
    except DomainError as e:
        return _fail(request, e, back)
    return redirect(back, flash=done)


@router.get("/admin")
def admin_home(request: Request, uow: UoW, actor: Actor) -> Response:
    _require_admin(actor)
    scope = None if actor.is_admin else actor.units_with(Role.admin)
    incidents = ProcessRepository(uow.session).open_incidents(scope)
    return render(request, "admin/index.html", {"incident_count": len(incidents)}, actor=actor)


# -- units, departments ------------------------------------------------------------------------


@router.get("/admin/units")
def units_page(request: Request, uow: UoW, actor: Actor, unit: str | None = None) -> Response:
    _require_admin(actor)
    repo = OrgRepository(uow.session)
    selected = org.get_unit(repo, unit) if unit else None
    return render(
        request,
        "admin/units.html",
        {
            "units": repo.units(),
            "kinds": [k.value for k in UnitKind],
            "selected": selected,
            "departments": repo.departments(selected.id) if selected else [],
        },
        actor=actor,
    )


@router.post("/admin/units")
async def create_unit(request: Request, actor: Actor) -> Response:
    f = await _form(request)
    back = f"{PREFIX}/admin/units"
    body = _validated(request, UnitIn, {
        "code": f.get("code", ""), "name": f.get("name", ""), "kind": f.get("kind", ""),
        "jrwa_plan": f.get("jrwa_plan", ""), "address": f.get("address") or None,
    })  # fmt: skip
    if isinstance(body, str):
        return redirect(back, flash=body, kind="error")
    return await _act(
        request, actor, back,
        lambda uow: org.create_unit(
            uow, code=body.code, name=body.name, kind=body.kind, jrwa_plan=body.jrwa_plan,
            address=body.address,
        ),
        translate(request, "Unit created."),
    )  # fmt: skip


@router.post("/admin/units/{code}/departments")
async def create_department(code: str, request: Request, actor: Actor) -> Response:
    f = await _form(request)
    back = f"{PREFIX}/admin/units?unit={code}"
    body = _validated(request, DepartmentIn, {"code": f.get("code", ""), "name": f.get("name", "")})
    if isinstance(body, str):
        return redirect(back, flash=body, kind="error")
    return await _act(
        request, actor, back,
        lambda uow: org.create_department(uow, code, code=body.code, name=body.name),
        translate(request, "Department created."),
    )  # fmt: skip


# -- users and roles ----------------------------------------------------------------------------


@router.get("/admin/users")
def users_page(request: Request, uow: UoW, actor: Actor) -> Response:
    _require_admin(actor)
    repo = OrgRepository(uow.session)
    users = org.list_users(uow)
    units = {u.id: u.code for u in repo.units()}
    roles = {
        u.id: sorted(
            f"{r} @ {units.get(unit_id, '?')}"
            for unit_id, _kind, r in repo.roles_with_unit_kind(u.id)
        )
        for u in users
    }
    return render(
        request,
        "admin/users.html",
        {
            "users": users,
            "roles": roles,
            "units": repo.units(),
            "role_names": [r.value for r in Role],
        },
        actor=actor,
    )


@router.post("/admin/users")
async def create_user(request: Request, actor: Actor) -> Response:
    f = await _form(request)
    back = f"{PREFIX}/admin/users"
    body = _validated(request, UserIn, {
        "username": f.get("username", ""), "full_name": f.get("full_name", ""),
        "password": f.get("password", ""), "email": f.get("email") or None,
    })  # fmt: skip
    if isinstance(body, str):
        return redirect(back, flash=body, kind="error")
    return await _act(
        request, actor, back,
        lambda uow: org.create_user(
            uow, username=body.username, full_name=body.full_name, password=body.password,
            email=body.email,
        ),
        translate(request, "User created."),
    )  # fmt: skip


@router.post("/admin/users/{username}/roles")
async def grant_role(username: str, request: Request, actor: Actor) -> Response:
    f = await _form(request)
    back = f"{PREFIX}/admin/users"
    body = _validated(request, RoleIn, {
        "unit": f.get("unit", ""), "role": f.get("role", ""),
        "department": f.get("department") or None,
    })  # fmt: skip
    if isinstance(body, str):
        return redirect(back, flash=body, kind="error")
    return await _act(
        request, actor, back,
        lambda uow: org.grant_role(uow, username, body.unit, body.role, body.department),
        translate(request, "Role granted."),
    )  # fmt: skip


# -- JRWA ---------------------------------------------------------------------------------------


@router.get("/admin/jrwa")
def jrwa_page(request: Request, uow: UoW, actor: Actor, unit: str | None = None) -> Response:
    _require_admin(actor)
    repo = OrgRepository(uow.session)
    units = repo.units()
    chosen = org.get_unit(repo, unit) if unit else units[0]
    jrwa = JrwaRepository(uow.session)
    plan = plan_for_unit(jrwa, chosen, utcnow().astimezone(WARSAW).date())
    return render(
        request,
        "admin/jrwa.html",
        {
            "units": units,
            "unit": chosen,
            "plan": plan,
            "classes": jrwa.classes(plan.id),
            "plans": jrwa.plans(),
        },
        actor=actor,
    )


# -- process definitions and incidents --------------------------------------------------------


@router.get("/admin/processes")
def processes_page(request: Request, uow: UoW, actor: Actor) -> Response:
    _require_admin(actor)
    repo = ProcessRepository(uow.session)
    scope = None if actor.is_admin else actor.units_with(Role.admin)
    p = Presenter(uow)
    incidents = [(i, p.unit_code(i.unit_id)) for i in repo.open_incidents(scope)]
    return render(
        request,
        "admin/processes.html",
        {"definitions": repo.definitions(), "incidents": incidents, "preview": None},
        actor=actor,
    )


def _upload_parts(files: list[Any]) -> dict[str, Any]:
    """The BPMN file, the JSON Schema forms and DMN decisions among the uploaded files."""
    bpmn: bytes | None = None
    filename = "upload.bpmn"
    forms: dict[str, Any] = {}
    decisions: dict[str, str] = {}
    for f in files:
        data = Path(f.path).read_bytes()
        if f.file_name.endswith(".json"):
            try:
                forms[f.file_name] = json.loads(data)
            except ValueError:
                raise DomainError(
                    f"Plik {f.file_name} nie jest poprawnym JSON.",
                    f"File {f.file_name} is not valid JSON.",
                    code="form_invalid",
                    status=422,
                ) from None
        elif f.file_name.endswith(".dmn"):
            decisions[f.file_name] = data.decode("utf-8", "replace")
        elif bpmn is None:
            bpmn, filename = data, f.file_name
    if bpmn is None:
        raise DomainError(
            "Dołącz plik BPMN.", "Attach a BPMN file.", code="bpmn_missing", status=422
        )
    return {"bpmn": bpmn, "forms": forms, "decisions": decisions, "filename": filename}


@router.post("/admin/processes")
@checks_csrf_after_upload
async def upload_definition(request: Request, actor: Actor) -> Response:
    """Preview (default) or deploy the uploaded definition with its forms."""
    c = container(request)
    s = c.settings
    async with multipart_upload(request) as form:
        if getattr(request.state, "csrf_pending", False):
            check_csrf(request, form.fields.get(CSRF_FIELD))
        deploy = form.fields.get("action") == "deploy"
        try:
            parts = _upload_parts(form.files)

            def work(uow: UnitOfWork) -> Any:
                if deploy:
                    return processes.deploy_definition(
                        uow, c.engine_runtime, source="upload", max_bytes=s.bpmn_max_bytes,
                        max_flow_nodes=s.bpmn_max_flow_nodes, **parts,
                    )[0]  # fmt: skip
                return processes.preview_definition(
                    uow, c.engine_runtime, max_bytes=s.bpmn_max_bytes,
                    max_flow_nodes=s.bpmn_max_flow_nodes, **parts,
                )  # fmt: skip

            result = await run_in_transaction(request, actor, work)
        except DomainError as e:
            return _fail(request, e, f"{PREFIX}/admin/processes")
    if deploy:
        return redirect(
            f"{PREFIX}/admin/processes",
            flash=translate(request, "Deployed %(key)s version %(version)s.")
            % {"key": result.key, "version": result.version},
        )

    def page(uow: UnitOfWork) -> dict[str, Any]:
        repo = ProcessRepository(uow.session)
        return {"definitions": repo.definitions(), "incidents": []}

    ctx = await run_in_transaction(request, actor, page)
    ctx["preview"] = result
    ctx["preview_xml"] = parts["bpmn"].decode("utf-8", "replace")
    return render(request, "admin/processes.html", ctx, actor=actor)


@router.get("/admin/processes/{key}/{version}/xml")
def definition_xml(key: str, version: int, uow: UoW, actor: Actor) -> Response:
    _require_admin(actor)
    d = ProcessRepository(uow.session).definition_version(key, version)
    if d is None:
        raise DomainError(
            "Nie ma takiej wersji.", "No such version.", code="process_not_found", status=404
        )
    return Response(d.bpmn_xml, media_type="application/xml")


@router.post("/admin/incidents/{incident_id}/retry")
async def retry_incident(incident_id: uuid.UUID, request: Request, actor: Actor) -> Response:
    engine = container(request).engine_runtime
    return await _act(
        request, actor, f"{PREFIX}/admin/processes",
        lambda uow: processes.retry_incident(uow, engine, incident_id),
        translate(request, "Retried."),
    )  # fmt: skip


# -- signing keys and trust anchors ---------------------------------------------------------------


@router.get("/admin/signing")
def signing_page(request: Request, uow: UoW, actor: Actor, unit: str | None = None) -> Response:
    _require_admin(actor)
    repo = OrgRepository(uow.session)
    units = repo.units()
    chosen = org.get_unit(repo, unit) if unit else units[0]
    return render(
        request,
        "admin/signing.html",
        {
            "units": units,
            "unit": chosen,
            "keys": signing.unit_keys(uow, chosen),
            "anchors": signing.trust_anchors(uow),
        },
        actor=actor,
    )


@router.post("/admin/signing/{code}/keys")
@checks_csrf_after_upload
async def import_key(code: str, request: Request, actor: Actor) -> Response:
    settings = container(request).settings
    back = f"{PREFIX}/admin/signing?unit={code}"
    async with multipart_upload(request) as form:
        if getattr(request.state, "csrf_pending", False):
            check_csrf(request, form.fields.get(CSRF_FIELD))
        if len(form.files) != 1:
            return redirect(back, flash=translate(request, "Attach the key file."), kind="error")
        data = Path(form.files[0].path).read_bytes()
        password = form.fields.get("password", "")
        label = form.fields.get("label", "").strip() or form.files[0].file_name

        def work(uow: UnitOfWork) -> Any:
            unit = org.get_unit(OrgRepository(uow.session), code)
            return signing.import_signing_key(
                uow, unit, data, password.encode("utf-8") if password else None, label=label,
                key_encryption_key=lambda: key_encryption_key(settings),
            )  # fmt: skip

        return await _act(request, actor, back, work, translate(request, "Key imported."))


@router.post("/admin/signing/keys/{key_id}/deactivate")
async def deactivate_key(
    key_id: uuid.UUID, request: Request, actor: Actor, unit: str = Query("")
) -> Response:
    return await _act(
        request, actor, f"{PREFIX}/admin/signing?unit={unit}",
        lambda uow: signing.deactivate_key(uow, key_id),
        translate(request, "Key deactivated."),
    )  # fmt: skip


@router.post("/admin/signing/anchors")
async def add_anchor(request: Request, actor: Actor) -> Response:
    f = await _form(request)
    back = f"{PREFIX}/admin/signing"
    pem = f.get("pem", "")
    label = f.get("label", "")
    return await _act(
        request, actor, back,
        lambda uow: signing.add_trust_anchors(uow, pem.encode("ascii", "replace"), label=label),
        translate(request, "Trust anchors added."),
    )  # fmt: skip
