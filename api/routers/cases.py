"""Cases: open, list (spis spraw), read, case record (metryka), add documents."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from api.deps import Actor, UoW, container, run_in_transaction
from api.errors import STAFF_ERRORS, error_responses
from api.presenters import Presenter
from api.routers.uploads import multipart_openapi, multipart_upload, one_file, parse_meta
from api.schemas import CaseListOut, CaseOut, DocumentOut, RecordEntryOut
from workflow.cases import service
from workflow.db import utcnow
from workflow.registry.schemas import AddDocument, OpenCase
from workflow.registry.service import acting_unit, department_of, readable_unit
from workflow.uow import UnitOfWork

router = APIRouter(prefix="/api/v1", tags=["cases"], responses=error_responses(*STAFF_ERRORS))


@router.post(
    "/cases", response_model=CaseOut, status_code=201, summary="Open a case under a JRWA leaf class"
)
def open_case(body: OpenCase, uow: UoW, actor: Actor) -> CaseOut:
    unit = acting_unit(uow, body.unit, *service.OPENING_ROLES)
    case = service.open_case(
        uow,
        unit,
        jrwa_symbol=body.jrwa,
        title=body.title,
        department=department_of(uow, unit, body.department),
    )
    return Presenter(uow).case(case)


@router.get("/cases", response_model=CaseListOut, summary="Case list (spis spraw)")
def list_cases(
    uow: UoW,
    actor: Actor,
    unit: str | None = None,
    year: int | None = Query(None, ge=1990, le=2200),
    jrwa: str | None = Query(None, pattern=r"^\d{1,6}$"),
) -> CaseListOut:
    u = readable_unit(uow, actor, unit)
    y = year or service.office_year(utcnow())
    uow.audit("case_list.read", "unit", u.id, unit_id=u.id, details={"year": y, "jrwa": jrwa})
    p = Presenter(uow)
    return CaseListOut(
        unit=u.code,
        year=y,
        jrwa=jrwa,
        cases=[p.case(c) for c in service.case_list(uow, u, y, jrwa)],
    )


@router.get("/cases/{reference}", response_model=CaseOut, summary="A case with its documents")
def get_case(reference: str, uow: UoW, actor: Actor) -> CaseOut:
    case = service.readable_case(uow, actor, reference)
    uow.audit("case.read", "case", case.id, unit_id=case.unit_id)
    return Presenter(uow).case(case, full=True)


@router.get(
    "/cases/{reference}/record",
    response_model=list[RecordEntryOut],
    summary="Case record (metryka sprawy) from the audit trail",
)
def get_case_record(reference: str, uow: UoW, actor: Actor) -> list[RecordEntryOut]:
    return [
        RecordEntryOut(
            at=e.at, person=e.person, action=e.action, document_id=e.document_id, details=e.details
        )
        for e in service.case_record(uow, actor, reference)
    ]


@router.post(
    "/cases/{reference}/documents",
    response_model=DocumentOut,
    status_code=201,
    summary="Add a document to a case",
    openapi_extra=multipart_openapi("AddDocument", "file", many=False),
)
async def add_case_document(reference: str, request: Request, actor: Actor) -> DocumentOut:
    store = container(request).blob_store
    async with multipart_upload(request) as form:
        cmd = parse_meta(form, AddDocument)
        upload = one_file(form)

        def work(uow: UnitOfWork) -> DocumentOut:
            doc = service.add_document_to_case(uow, store, reference, cmd, upload)
            return Presenter(uow).document(doc)

        return await run_in_transaction(request, actor, work)
