"""Public citizen pages under /e-uslugi (no login, Polish first): the catalogue, each service's
form drawn from its JSON Schema (checked as the user types by static/public.js, from the same
schema, and again by the service), the receipt with the tracking code and the PIN shown once,
and tracking with the timeline, the supplement upload and the signed decision. The pages call
the same services as the public JSON API (api/routers/public.py), with its rate limit and PIN
throttle. No cookies carry authority here, so there is nothing for CSRF to abuse; the code and
PIN travel in POST bodies, never in URLs."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from api.routers import public as api
from api.web.forms import data_from_form, fields_of
from api.web.i18n import LANG_COOKIE, LANGUAGES, choose_language
from api.web.render import pick_message, redirect, render
from workflow.errors import DomainError
from workflow.eservices import access
from workflow.eservices import service as es
from workflow.eservices.catalogue import Service

PUBLIC = "/e-uslugi"
router = APIRouter(prefix=PUBLIC, include_in_schema=False)
ACCEPT = ".pdf,.jpg,.jpeg,.png,.odt,.docx,application/pdf,image/jpeg,image/png"


def page(
    request: Request, template: str, ctx: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A citizen page (its security headers come from api/web/headers.py, like every page's)."""
    return render(request, f"public/{template}", {"PUBLIC": PUBLIC, **ctx}, status_code=status_code)


def message(request: Request, e: DomainError) -> str:
    return pick_message(request, e.message_pl, e.message_en)


@router.get("/jezyk/{lang}")
def switch_language(lang: str, next: str = PUBLIC) -> Response:
    target = next if next.startswith(f"{PUBLIC}") and "://" not in next else PUBLIC
    response = redirect(target)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax")
    return response


@router.get("")
@router.get("/")
def catalogue_page(request: Request) -> HTMLResponse:
    try:
        api.limit(request)
    except DomainError as e:
        return page(request, "error.html", {"message": message(request, e)}, e.status)
    return page(request, "catalogue.html", {"services": api.catalogue(request).services})


def _form_context(
    request: Request, service: Service, units: list[Any], values: dict[str, str], **extra: Any
) -> dict[str, Any]:
    settings = api.container(request).settings
    return {
        "service": service,
        "fields": fields_of(service.schema),
        "props": service.schema.get("properties", {}),
        "schema": service.schema,
        "units": units,
        "values": values,
        "errors": {},
        "error": None,
        "idempotency_key": values.get("idempotency_key") or str(uuid.uuid4()),
        "accept": ACCEPT,
        "max_files": settings.eservice_max_files,
        "max_mb": settings.eservice_max_upload_bytes // (1024 * 1024),
        **extra,
    }


async def _units(request: Request, service: Service) -> list[Any]:
    return await api.in_transaction(request, lambda uow: es.addressable_units(uow, service))


@router.get("/sledzenie")
def track_page(request: Request, kod: str = "") -> HTMLResponse:
    return page(request, "track.html", {"code": kod[:40], "error": None})


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)


def _receipt_view(xml: bytes) -> Any:
    from api.web.public_receipt import read_receipt

    return read_receipt(xml)


async def _form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _status(request: Request, code: str, pin: str, **extra: Any) -> HTMLResponse:
    try:
        submission = await api.authorised(request, code, pin)
        view = await api.tracking(request, submission)
    except DomainError as e:
        return page(
            request, "track.html", {"code": code[:40], "error": message(request, e)}, e.status
        )
    settings = api.container(request).settings
    return page(
        request,
        "status.html",
        {
            "v": view,
            "code": access.display_code(view.tracking_code),
            "pin": pin,
            "accept": ACCEPT,
            "max_files": settings.eservice_max_files,
            "max_mb": settings.eservice_max_upload_bytes // (1024 * 1024),
            "english": choose_language(request) == "en",
            **extra,
        },
    )


@router.post("/sledzenie")
async def status_page(request: Request) -> HTMLResponse:
    f = await _form_fields(request)
    return await _status(request, f.get("code", ""), f.get("pin", ""))


@router.post("/sledzenie/potwierdzenie")
async def receipt_download(request: Request, format: str = "pdf") -> Response:
    f = await _form_fields(request)
    try:
        submission = await api.authorised(request, f.get("code", ""), f.get("pin", ""))
        xml = await api.receipt_bytes(request, submission)
    except DomainError as e:
        return page(request, "track.html", {"code": "", "error": message(request, e)}, e.status)
    fmt = format if format in ("xml", "html", "pdf") else "pdf"
    return api.receipt_response(xml, fmt, f.get("pin"))


@router.post("/sledzenie/rozstrzygniecie")
async def decision_download(request: Request) -> Response:
    f = await _form_fields(request)
    try:
        submission = await api.authorised(request, f.get("code", ""), f.get("pin", ""))
        xml = await api.decision_bytes(request, submission)
    except DomainError as e:
        return page(request, "track.html", {"code": "", "error": message(request, e)}, e.status)
    return api.decision_response(xml, submission)


@router.post("/sledzenie/uzupelnienie")
async def supplement_upload(request: Request) -> HTMLResponse:
    try:
        api.limit(request)
        form = await api.read_public_multipart(request)
    except DomainError as e:
        return page(request, "track.html", {"code": "", "error": message(request, e)}, e.status)
    code, pin = form.fields.get("code", ""), form.fields.get("pin", "")
    try:
        submission = await api.authorised(request, code, pin)
        number = await api.add_supplement(
            request, submission, form, form.fields.get("idempotency_key") or None
        )
    except DomainError as e:
        return await _status(request, code, pin, upload_error=message(request, e))
    finally:
        form.cleanup()
    return await _status(request, code, pin, uploaded=number)


# The service pages last: their path would match every other page's.
@router.get("/{code}")
async def form_page(code: str, request: Request) -> HTMLResponse:
    try:
        api.limit(request)
        service = api.catalogue(request).get(code)
    except DomainError as e:
        return page(request, "error.html", {"message": message(request, e)}, e.status)
    units = await _units(request, service)
    return page(request, "form.html", _form_context(request, service, units, {}))


@router.post("/{code}")
async def submit_page(code: str, request: Request) -> HTMLResponse:
    try:
        api.limit(request)
        service = api.catalogue(request).get(code)
        form = await api.read_public_multipart(request)
    except DomainError as e:
        return page(request, "error.html", {"message": message(request, e)}, e.status)
    values = dict(form.fields)
    try:
        data = data_from_form(service.schema, values)
        form.fields["form"] = _json(data)
        done = await api.submit_form(request, code, form, values.get("idempotency_key") or None)
    except DomainError as e:
        units = await _units(request, service)
        fields = e.details.get("fields") if isinstance(e.details.get("fields"), dict) else {}
        ctx = _form_context(
            request, service, units, values, errors=fields, error=message(request, e)
        )
        return page(request, "form.html", ctx, e.status)
    finally:
        form.cleanup()
    view = _receipt_view(done.receipt_xml)
    return page(
        request,
        "submitted.html",
        {
            "done": done,
            "code": access.display_code(done.submission.tracking_code),
            "pin": done.pin,
            "view": view,
            "rows": view.rows(done.pin),
        },
        201,
    )
