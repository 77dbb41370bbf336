"""Citizen e-services, public JSON API (no account): the catalogue, submission with the signed
receipt, tracking by code and PIN, supplements and the signed decision. The city's portal or a
mobile app use it; the public web pages (api/web/public.py) call the same services.

Every request counts against a per-client rate limit; tracking logins also against the PIN
throttle of the code and the client (workflow/eservices/access.py), committed even when the
answer is a refusal. Credentials travel in the body, never in the URL (URLs end up in logs).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from api.bootstrap import eservice_sealer
from api.deps import container, run_in_transaction
from api.errors import PUBLIC_ERRORS, error_responses
from api.multipart import ParsedForm, read_multipart
from api.routers.uploads import multipart_openapi
from api.web.public_receipt import read_receipt, receipt_html, receipt_pdf
from workflow.errors import DomainError
from workflow.eservices import access
from workflow.eservices import service as es
from workflow.eservices.catalogue import Catalogue, load_catalogue
from workflow.eservices.models import Submission
from workflow.principal import SYSTEM
from workflow.uow import UnitOfWork

router = APIRouter(
    prefix="/api/v1/public", tags=["e-services (public)"], responses=error_responses(*PUBLIC_ERRORS)
)
T = TypeVar("T")
IdempotencyKey = Annotated[
    str | None, Header(max_length=100, pattern=r"^[\x21-\x7e]+$", alias="Idempotency-Key")
]


# ---------------------------------------------------------------------------------------------
# Shared with the web pages


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    message_pl = "Zbyt wiele żądań. Odczekaj chwilę i spróbuj ponownie."
    message_en = "Too many requests. Wait a moment and try again."


class RateLimiter:
    """Sliding one-minute window per client, in this process."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str, limit: int) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 100_000:
                self._hits.clear()
            q = self._hits.setdefault(client, deque())
            while q and now - q[0] > 60:
                q.popleft()
            if len(q) >= limit:
                raise RateLimited(details={"retry_after_seconds": int(60 - (now - q[0])) + 1})
            q.append(now)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit(request: Request) -> None:
    state = request.app.state
    if getattr(state, "public_rate", None) is None:
        state.public_rate = RateLimiter()
    state.public_rate.check(
        client_of(request), container(request).settings.eservice_rate_per_minute
    )


def catalogue(request: Request) -> Catalogue:
    return load_catalogue(container(request).settings.bpmn_dir)


def policy(request: Request) -> access.ThrottlePolicy:
    s = container(request).settings
    return access.ThrottlePolicy(
        per_code=s.eservice_pin_attempts_per_code,
        per_client=s.eservice_pin_attempts_per_client,
        window=timedelta(minutes=s.eservice_lockout_minutes),
        lockout=timedelta(minutes=s.eservice_lockout_minutes),
    )


async def in_transaction(request: Request, work: Callable[[UnitOfWork], T]) -> T:
    """A citizen's request: no account, the system acts."""
    return await run_in_transaction(request, SYSTEM, work)


async def authorised(request: Request, code: str, pin: str) -> Submission:
    """The submission behind a code and PIN. The throttle's count is committed first, then a
    refusal is raised (the same one for an unknown code and a wrong PIN)."""
    limit(request)
    result = await in_transaction(
        request,
        lambda uow: access.check_access(uow, code, pin, client_of(request), policy(request)),
    )
    if result.error is not None:
        raise result.error
    assert result.submission is not None
    return result.submission


async def read_public_multipart(request: Request) -> ParsedForm:
    s = container(request).settings
    return await read_multipart(
        request, max_file_bytes=s.eservice_max_upload_bytes, max_files=s.eservice_max_files
    )


async def submit_form(
    request: Request, service_code: str, form: ParsedForm, idempotency_key: str | None
) -> es.Submitted:
    c = container(request)
    sealer = eservice_sealer(c.settings)
    cat = catalogue(request)

    def work(uow: UnitOfWork) -> es.Submitted:
        return es.submit(
            uow,
            c.blob_store,
            c.engine_runtime,
            sealer,
            cat,
            service_code=service_code,
            unit_code=form.fields.get("unit", ""),
            form_json=form.fields.get("form", ""),
            uploads=form.files,
            idempotency_key=idempotency_key,
            max_files=c.settings.eservice_max_files,
        )

    return await in_transaction(request, work)


async def add_supplement(
    request: Request, submission: Submission, form: ParsedForm, idempotency_key: str | None
) -> str:
    c = container(request)

    def work(uow: UnitOfWork) -> str:
        s = uow.session.get(Submission, submission.id, with_for_update=True)
        assert s is not None
        return es.add_supplement(
            uow,
            c.blob_store,
            s,
            form.files,
            note=form.fields.get("note", ""),
            idempotency_key=idempotency_key,
            max_files=c.settings.eservice_max_files,
        )

    return await in_transaction(request, work)


async def tracking(request: Request, submission: Submission) -> es.TrackingView:
    cat = catalogue(request)

    def work(uow: UnitOfWork) -> es.TrackingView:
        uow.audit(
            "eservice.tracked",
            "eservice_submission",
            submission.id,
            unit_id=submission.unit_id,
            case_id=submission.case_id,
        )
        return es.tracking_view(uow, cat, submission)

    return await in_transaction(request, work)


async def receipt_bytes(request: Request, submission: Submission) -> bytes:
    store = container(request).blob_store
    return await in_transaction(request, lambda uow: es.receipt_xml(uow, store, submission))


async def decision_bytes(request: Request, submission: Submission) -> bytes:
    store = container(request).blob_store
    return await in_transaction(request, lambda uow: es.decision_xml(uow, store, submission))


def receipt_response(xml: bytes, fmt: str, pin: str | None) -> Response:
    view = read_receipt(xml)
    name = f"potwierdzenie-{view.tracking_code}"
    headers = {"Cache-Control": "no-store"}
    if fmt == "pdf":
        return Response(
            receipt_pdf(view, pin),
            media_type="application/pdf",
            headers={**headers, "Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    if fmt == "html":
        return HTMLResponse(receipt_html(view, pin), headers=headers)
    return Response(
        xml,
        media_type="application/xml",
        headers={**headers, "Content-Disposition": f'attachment; filename="{name}.xml"'},
    )


def decision_response(xml: bytes, submission: Submission) -> Response:
    return Response(
        xml,
        media_type="application/xml",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": (
                f'attachment; filename="rozstrzygniecie-{submission.tracking_code}.xml"'
            ),
        },
    )


# ---------------------------------------------------------------------------------------------
# Schemas


class UnitOut(BaseModel):
    code: str
    name: str


class ServiceOut(BaseModel):
    code: str
    title: str
    summary: str
    schema_url: str


class ServiceDetailOut(ServiceOut):
    form_schema: dict[str, Any]
    units: list[UnitOut]
    max_files: int
    max_file_bytes: int
    allowed_types: list[str]


class SubmittedOut(BaseModel):
    tracking_code: str = Field(description="Shown as XXXX-XXXX-XXXX; give it with the PIN")
    pin: str = Field(description="Shown only in this answer: ezd keeps only its hash")
    service: str
    unit: str
    rpw_number: str
    case_reference: str
    submitted_at: datetime
    deadline: datetime | None
    receipt_url: str = Field(description="POST code and PIN here for the receipt (xml|html|pdf)")
    tracking_url: str


class Credentials(BaseModel):
    code: str = Field(min_length=1, max_length=40)
    pin: str = Field(min_length=1, max_length=20)


class StepOut(BaseModel):
    status: str
    label: str
    label_en: str
    at: datetime
    note: str | None


class TrackingOut(BaseModel):
    tracking_code: str
    service: str
    service_title: str
    unit: str
    unit_name: str
    status: str
    status_label: str
    status_label_en: str
    submitted_at: datetime
    deadline: datetime | None
    rpw_number: str
    case_reference: str
    timeline: list[StepOut]
    expected_action: str | None
    supplement_allowed: bool
    decision_available: bool
    decision: str | None


class SupplementOut(BaseModel):
    rpw_number: str
    status: str


def tracking_out(v: es.TrackingView) -> TrackingOut:
    fields = dataclasses.asdict(v)
    return TrackingOut.model_validate(
        {
            **fields,
            "tracking_code": access.display_code(v.tracking_code),
            "service": v.service_code,
            "unit": v.unit_code,
        }
    )


# ---------------------------------------------------------------------------------------------
# Endpoints


@router.get("/services", response_model=list[ServiceOut], summary="The e-service catalogue")
def list_services(request: Request) -> list[ServiceOut]:
    limit(request)
    return [
        ServiceOut(
            code=s.code,
            title=s.title,
            summary=s.summary,
            schema_url=f"/api/v1/public/services/{s.code}/schema",
        )
        for s in catalogue(request).services
    ]


@router.get(
    "/services/{code}",
    response_model=ServiceDetailOut,
    summary="One e-service: its form (JSON Schema) and the units it may be addressed to",
)
async def get_service(code: str, request: Request) -> ServiceDetailOut:
    limit(request)
    service = catalogue(request).get(code)
    settings = container(request).settings
    units = await in_transaction(
        request,
        lambda uow: [UnitOut(code=u.code, name=u.name) for u in es.addressable_units(uow, service)],
    )
    return ServiceDetailOut(
        code=service.code,
        title=service.title,
        summary=service.summary,
        schema_url=f"/api/v1/public/services/{service.code}/schema",
        form_schema=service.schema,
        units=units,
        max_files=settings.eservice_max_files,
        max_file_bytes=settings.eservice_max_upload_bytes,
        allowed_types=sorted(es.ALLOWED_TYPES),
    )


@router.get("/services/{code}/schema", summary="The e-service's form as JSON Schema")
def get_schema(code: str, request: Request) -> dict[str, Any]:
    limit(request)
    return catalogue(request).get(code).schema


@router.post(
    "/services/{code}/submissions",
    response_model=SubmittedOut,
    status_code=201,
    summary="Submit an application",
    description="multipart/form-data: `unit` (code of the addressed school or kindergarten), "
    "`form` (JSON valid against the service's schema) and any `attachments` (PDF, JPEG, PNG, "
    "ODT, DOCX; recognised by content). Registers the application, starts the process and "
    "answers with the tracking code and the PIN — the PIN is shown only here. An "
    "`Idempotency-Key` header makes a replay answer 409 `duplicate_submission`.",
    openapi_extra=multipart_openapi(None, "attachments", many=True),
)
async def submit(
    code: str, request: Request, idempotency_key: IdempotencyKey = None
) -> SubmittedOut:
    limit(request)
    catalogue(request).get(code)
    form = await read_public_multipart(request)
    try:
        done = await submit_form(request, code, form, idempotency_key)
    finally:
        form.cleanup()
    s = done.submission
    return SubmittedOut(
        tracking_code=access.display_code(s.tracking_code),
        pin=done.pin,
        service=done.service.code,
        unit=done.unit.code,
        rpw_number=done.rpw_number,
        case_reference=done.case_reference,
        submitted_at=s.submitted_at,
        deadline=s.deadline,
        receipt_url="/api/v1/public/tracking/receipt",
        tracking_url="/api/v1/public/tracking",
    )


@router.post("/tracking", response_model=TrackingOut, summary="Status, timeline and deadline")
async def track(request: Request, body: Credentials) -> TrackingOut:
    submission = await authorised(request, body.code, body.pin)
    return tracking_out(await tracking(request, submission))


@router.post(
    "/tracking/receipt",
    summary="The receipt: signed XML (default), or its readable HTML or PDF view with the PIN",
    response_class=Response,
)
async def receipt(
    request: Request,
    body: Credentials,
    format: Annotated[Literal["xml", "html", "pdf"], Query()] = "xml",
) -> Response:
    submission = await authorised(request, body.code, body.pin)
    xml = await receipt_bytes(request, submission)
    return receipt_response(xml, format, body.pin)


@router.post(
    "/tracking/decision",
    summary="The decision, signed with the unit's seal (XML)",
    response_class=Response,
)
async def decision(request: Request, body: Credentials) -> Response:
    submission = await authorised(request, body.code, body.pin)
    return decision_response(await decision_bytes(request, submission), submission)


@router.post(
    "/tracking/supplements",
    response_model=SupplementOut,
    status_code=201,
    summary="Send the documents the case is waiting for",
    description="multipart/form-data: `code`, `pin`, optional `note` and one or more "
    "`attachments`. Accepted only while the case waits for a supplement.",
    openapi_extra=multipart_openapi(None, "attachments", many=True),
)
async def supplement(request: Request, idempotency_key: IdempotencyKey = None) -> SupplementOut:
    limit(request)
    form = await read_public_multipart(request)
    try:
        submission = await authorised(
            request, form.fields.get("code", ""), form.fields.get("pin", "")
        )
        number = await add_supplement(request, submission, form, idempotency_key)
    finally:
        form.cleanup()
    return SupplementOut(rpw_number=number, status="supplement_received")
