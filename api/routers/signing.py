"""Signing keys of units, trust anchors, and verification of signed files."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.bootstrap import key_encryption_key
from api.deps import Actor, UoW, container, run_in_transaction
from api.errors import BODY_ERRORS, error_responses
from api.presenters import Presenter
from api.schemas import IncomingOut
from workflow.correspondence.service import receive_official_letter
from workflow.errors import PayloadTooLarge, ValidationFailed
from workflow.org.repository import OrgRepository
from workflow.org.service import get_unit
from workflow.signing import service
from workflow.signing.models import TrustAnchor, UnitSigningKey
from workflow.signing.verify import verify_xades
from workflow.uow import UnitOfWork

router = APIRouter(prefix="/api/v1", tags=["signing"], responses=error_responses(*BODY_ERRORS))


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=200)
    key_base64: str = Field(description="PKCS#12 (.p12/.pfx) or PEM (key + certificates), base64")
    password: str | None = Field(None, max_length=1000)


class KeyOut(BaseModel):
    id: uuid.UUID
    unit: str
    label: str
    subject: str
    issuer: str
    certificate_sha256: str
    not_before: datetime
    not_after: datetime
    active: bool


class AnchorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=200)
    pem: str = Field(min_length=1, max_length=1_000_000)


class AnchorOut(BaseModel):
    id: uuid.UUID
    label: str
    subject: str
    certificate_sha256: str
    source: str
    not_after: datetime


def _key_out(k: UnitSigningKey, unit_code: str) -> KeyOut:
    return KeyOut(
        id=k.id,
        unit=unit_code,
        label=k.label,
        subject=k.subject,
        issuer=k.issuer,
        certificate_sha256=k.certificate_sha256,
        not_before=k.not_before,
        not_after=k.not_after,
        active=k.active,
    )


def _anchor_out(a: TrustAnchor) -> AnchorOut:
    return AnchorOut(
        id=a.id,
        label=a.label,
        subject=a.subject,
        certificate_sha256=a.certificate_sha256,
        source=a.source,
        not_after=a.not_after,
    )


@router.post(
    "/units/{code}/signing-keys",
    response_model=KeyOut,
    status_code=201,
    summary="Import a unit's signing key (seal or qualified certificate); stored encrypted",
)
def import_key(code: str, body: KeyIn, request: Request, uow: UoW, actor: Actor) -> KeyOut:
    unit = get_unit(OrgRepository(uow.session), code)
    try:
        data = base64.b64decode(body.key_base64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValidationFailed(
            "Plik klucza nie jest poprawnym base64.",
            "The key file is not valid base64.",
            code="key_invalid",
        ) from e
    record = service.import_signing_key(
        uow,
        unit,
        data,
        body.password.encode("utf-8") if body.password is not None else None,
        label=body.label,
        key_encryption_key=lambda: key_encryption_key(container(request).settings),
    )
    return _key_out(record, unit.code)


@router.get("/units/{code}/signing-keys", response_model=list[KeyOut], summary="A unit's keys")
def list_keys(code: str, uow: UoW, actor: Actor) -> list[KeyOut]:
    unit = get_unit(OrgRepository(uow.session), code)
    return [_key_out(k, unit.code) for k in service.unit_keys(uow, unit)]


@router.post("/signing-keys/{key_id}/deactivate", response_model=KeyOut, summary="Stop using a key")
def deactivate_key(key_id: uuid.UUID, uow: UoW, actor: Actor) -> KeyOut:
    record = service.deactivate_key(uow, key_id)
    unit = OrgRepository(uow.session).unit(record.unit_id)
    return _key_out(record, unit.code if unit else "?")


@router.get("/trust-anchors", response_model=list[AnchorOut], summary="Trusted CA certificates")
def list_anchors(uow: UoW, actor: Actor) -> list[AnchorOut]:
    return [_anchor_out(a) for a in service.trust_anchors(uow)]


@router.post(
    "/trust-anchors", response_model=list[AnchorOut], status_code=201, summary="Add CA certificates"
)
def add_anchors(body: AnchorIn, uow: UoW, actor: Actor) -> list[AnchorOut]:
    return [
        _anchor_out(a) for a in service.add_trust_anchors(uow, body.pem.encode(), label=body.label)
    ]


@router.post(
    "/signatures/verify",
    summary="Verify a signed XML file (XAdES) against the trust anchors, at its signing time",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def verify(request: Request, actor: Actor) -> dict[str, Any]:
    limit = container(request).settings.max_upload_bytes
    body = await _read_body(request, limit)

    def run() -> dict[str, Any]:
        with container(request).uow() as uow:
            store = service.trust_store(uow)
        report = verify_xades(body, trust=store, at="signing_time", max_bytes=limit)
        return report.to_json()

    return await run_in_threadpool(run)


@router.post(
    "/units/{code}/official-letters",
    response_model=IncomingOut,
    status_code=201,
    summary="Register a signed official letter addressed to the unit, with its signature report",
    description="The body is the signed letter (XML, wnio:Dokument with an enveloped XAdES "
    "signature). It is verified against the trust anchors at its signing time, registered in "
    "the unit's incoming register (channel internal) with a new case, and the report is "
    "stored with the document. A letter whose signature fails is registered too, marked so.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def receive_letter(code: str, request: Request, actor: Actor) -> IncomingOut:
    c = container(request)
    body = await _read_body(request, c.settings.max_upload_bytes)

    def work(uow: UnitOfWork) -> IncomingOut:
        unit = get_unit(OrgRepository(uow.session), code)
        received = receive_official_letter(
            uow,
            c.blob_store,
            unit,
            body,
            trust=service.trust_store(uow),
            jrwa=c.settings.internal_letter_jrwa,
            max_bytes=c.settings.max_upload_bytes,
        )
        return Presenter(uow).registered(received.registered)

    return await run_in_transaction(request, actor, work)


async def _read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(
                f"Plik jest za duży (limit {limit} bajtów).",
                f"The file is too large (limit {limit} bytes).",
            )
    return bytes(body)
