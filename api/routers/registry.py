"""Registers: incoming items (RPW) with their scans, outgoing items and their dispatch."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Header, Query, Request

from api.deps import Actor, UoW, container, run_in_transaction
from api.errors import UPLOAD_ERRORS, error_responses
from api.presenters import Presenter
from api.routers.uploads import multipart_openapi, multipart_upload, parse_meta
from api.schemas import IncomingListOut, IncomingOut, OutgoingOut
from workflow.registry import service
from workflow.registry.schemas import RegisterIncoming, RegisterOutgoing
from workflow.uow import UnitOfWork

router = APIRouter(prefix="/api/v1", tags=["registers"], responses=error_responses(*UPLOAD_ERRORS))


@router.post(
    "/incoming",
    response_model=IncomingOut,
    status_code=201,
    summary="Register an incoming item with its files",
    description="multipart/form-data: a `meta` part (JSON, schema RegisterIncoming: subject, "
    "sender.name, channel, jrwa, new_case or case_reference, …) and any number of `files` "
    "parts. Answers with the RPW number and, when a case was opened, its reference. "
    "An `Idempotency-Key` header makes a repeated submission fail with 409 "
    "`duplicate_submission` instead of registering twice.",
    openapi_extra=multipart_openapi("RegisterIncoming", "files", many=True),
)
async def register_incoming(
    request: Request,
    actor: Actor,
    idempotency_key: str | None = Header(None, max_length=100, pattern=r"^[\x21-\x7e]+$"),
) -> IncomingOut:
    store = container(request).blob_store
    async with multipart_upload(request) as form:
        cmd = parse_meta(form, RegisterIncoming)

        def work(uow: UnitOfWork) -> IncomingOut:
            result = service.register_incoming_item(uow, store, cmd, form.files, idempotency_key)
            return Presenter(uow).registered(result)

        return await run_in_transaction(request, actor, work)


@router.get("/incoming", response_model=IncomingListOut, summary="The incoming register")
def list_incoming(
    uow: UoW,
    actor: Actor,
    unit: str | None = None,
    year: int | None = Query(None, ge=1990, le=2200),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2_147_483_647),
) -> IncomingListOut:
    items = service.incoming_register(uow, actor, unit, year, limit=limit, offset=offset)
    p = Presenter(uow)
    return IncomingListOut(items=[p.incoming(i, with_documents=False) for i in items])


@router.get("/incoming/{item_id}", response_model=IncomingOut, summary="One incoming item")
def get_incoming(item_id: uuid.UUID, uow: UoW, actor: Actor) -> IncomingOut:
    item = service.readable_incoming(uow, actor, item_id)
    uow.audit("incoming.read", "incoming_item", item.id, unit_id=item.unit_id)
    return Presenter(uow).incoming(item)


@router.post(
    "/outgoing",
    response_model=OutgoingOut,
    status_code=201,
    summary="Register an outgoing item, ready for dispatch",
)
def register_outgoing(body: RegisterOutgoing, uow: UoW, actor: Actor) -> OutgoingOut:
    return Presenter(uow).outgoing(service.register_outgoing_item(uow, body))


@router.get("/outgoing", response_model=list[OutgoingOut], summary="The outgoing register")
def list_outgoing(
    uow: UoW,
    actor: Actor,
    unit: str | None = None,
    year: int | None = Query(None, ge=1990, le=2200),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2_147_483_647),
) -> list[OutgoingOut]:
    p = Presenter(uow)
    return [
        p.outgoing(i)
        for i in service.outgoing_register(uow, actor, unit, year, limit=limit, offset=offset)
    ]


@router.post(
    "/outgoing/{item_id}/dispatch",
    response_model=OutgoingOut,
    summary="Record that an outgoing item was sent",
)
def dispatch_outgoing(item_id: uuid.UUID, uow: UoW, actor: Actor) -> OutgoingOut:
    return Presenter(uow).outgoing(service.dispatch_outgoing_item(uow, item_id))
