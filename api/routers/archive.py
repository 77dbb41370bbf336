"""Closing and reopening cases, the unit archive (register, transfer, loans) and disposal."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Actor, UoW, container
from api.errors import STAFF_ERRORS, error_responses
from api.printing import record_html, record_pdf
from workflow.archive import service
from workflow.archive.models import ArchiveEntry, ArchiveLoan, Disposal
from workflow.cases.models import Case
from workflow.cases.service import (
    CaseRecordEntry,
    case_record,
    close_case_by_hand,
    readable_case,
    reopen_case,
)
from workflow.org.repository import OrgRepository

router = APIRouter(prefix="/api/v1", tags=["archive"], responses=error_responses(*STAFF_ERRORS))


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class CaseStateOut(BaseModel):
    reference: str
    status: str
    closed_at: datetime | None


class EntryOut(BaseModel):
    id: uuid.UUID
    number: str
    case_reference: str
    title: str
    category: str
    retention_until: date | None
    locked_until: datetime | None
    status: str
    location: str
    transferred_at: datetime
    disposed_at: datetime | None


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str = Field(max_length=20)
    case_references: list[str] = Field(min_length=1, max_length=1000)
    location: str = Field("", max_length=200)


class EligibleOut(BaseModel):
    case_reference: str
    title: str
    closed_at: datetime | None
    eligible_from: date
    blocked_by: str | None = Field(description="open_tasks, too_early, or null when it can go")


class LoanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    borrower: str = Field(min_length=2, max_length=80)
    purpose: str = Field(min_length=1, max_length=2000)
    due_on: date


class LoanOut(BaseModel):
    id: uuid.UUID
    entry_id: uuid.UUID
    borrower: str
    purpose: str
    due_on: date
    lent_at: datetime
    returned_at: datetime | None


class DisposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str = Field(max_length=20)
    entries: list[uuid.UUID] = Field(min_length=1, max_length=10_000)
    reason: str = Field("", max_length=2000)


class DisposalOut(BaseModel):
    id: uuid.UUID
    number: str
    status: str
    reason: str
    proposed_at: datetime
    decided_at: datetime | None
    decision_comment: str
    consent_reference: str | None
    consent_date: date | None
    executed_at: datetime | None
    instance_id: uuid.UUID | None
    entries: list[str]


def _case_state(case: Case) -> CaseStateOut:
    return CaseStateOut(reference=case.reference, status=case.status, closed_at=case.closed_at)


def _entry_out(entry: ArchiveEntry, case: Case) -> EntryOut:
    return EntryOut(
        id=entry.id,
        number=entry.number,
        case_reference=case.reference,
        title=case.title,
        category=entry.category,
        retention_until=entry.retention_until,
        locked_until=entry.locked_until,
        status=entry.status,
        location=entry.location,
        transferred_at=entry.transferred_at,
        disposed_at=entry.disposed_at,
    )


def _loan_out(uow: UoW, loan: ArchiveLoan) -> LoanOut:
    user = OrgRepository(uow.session).user(loan.borrower_id)
    return LoanOut(
        id=loan.id,
        entry_id=loan.entry_id,
        borrower=user.username if user else "?",
        purpose=loan.purpose,
        due_on=loan.due_on,
        lent_at=loan.lent_at,
        returned_at=loan.returned_at,
    )


def _disposal_out(disposal: Disposal, entries: list[ArchiveEntry]) -> DisposalOut:
    return DisposalOut(
        id=disposal.id,
        number=disposal.number,
        status=disposal.status,
        reason=disposal.reason,
        proposed_at=disposal.proposed_at,
        decided_at=disposal.decided_at,
        decision_comment=disposal.decision_comment,
        consent_reference=disposal.consent_reference,
        consent_date=disposal.consent_date,
        executed_at=disposal.executed_at,
        instance_id=disposal.instance_id,
        entries=[e.number for e in entries],
    )


# -- closing and reopening ---------------------------------------------------------------------


@router.post(
    "/cases/{reference}/close",
    response_model=CaseStateOut,
    summary="Close a case (no open tasks, every outgoing item sent)",
)
def close(reference: str, body: ReasonIn, uow: UoW, actor: Actor) -> CaseStateOut:
    case = readable_case(uow, actor, reference)
    return _case_state(close_case_by_hand(uow, case, body.reason))


@router.post(
    "/cases/{reference}/reopen",
    response_model=CaseStateOut,
    summary="Reopen a closed case with a reason (not once it is archived)",
)
def reopen(reference: str, body: ReasonIn, uow: UoW, actor: Actor) -> CaseStateOut:
    case = readable_case(uow, actor, reference)
    return _case_state(reopen_case(uow, case, body.reason))


@router.get(
    "/cases/{reference}/record.html",
    summary="Printable case record (metryka sprawy), HTML",
    response_class=HTMLResponse,
)
def record_page(reference: str, uow: UoW, actor: Actor) -> HTMLResponse:
    case, unit_name, entries = _record(uow, actor, reference)
    return HTMLResponse(record_html(case, unit_name, entries))


@router.get(
    "/cases/{reference}/record.pdf",
    summary="Printable case record (metryka sprawy), PDF",
    response_class=Response,
)
def record_document(reference: str, uow: UoW, actor: Actor) -> Response:
    case, unit_name, entries = _record(uow, actor, reference)
    return Response(
        record_pdf(case, unit_name, entries),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="metryka-{case.reference}.pdf"'},
    )


def _record(uow: UoW, actor: Actor, reference: str) -> tuple[Case, str, list[CaseRecordEntry]]:
    case = readable_case(uow, actor, reference)
    unit = OrgRepository(uow.session).unit(case.unit_id)
    return case, unit.name if unit else "", case_record(uow, actor, reference)


# -- the unit archive --------------------------------------------------------------------------


@router.get(
    "/archive/{unit}/register",
    response_model=list[EntryOut],
    summary="The unit archive's register (spis zdawczo-odbiorczy)",
)
def register(
    unit: str, uow: UoW, year: int | None = Query(None, ge=1990, le=2200)
) -> list[EntryOut]:
    u = service.readable_archive_unit(uow, unit)
    uow.audit("archive_register.read", "unit", u.id, unit_id=u.id, details={"year": year})
    return [_entry_out(e, c) for e, c in service.archive_register(uow, u, year)]


@router.get(
    "/archive/{unit}/eligible",
    response_model=list[EligibleOut],
    summary="Closed cases not yet archived, with the date each may be taken over",
)
def eligible(unit: str, request: Request, uow: UoW) -> list[EligibleOut]:
    u = service.archive_unit(uow, unit)
    after = container(request).settings.archive_after_years
    return [
        EligibleOut(
            case_reference=e.case.reference,
            title=e.case.title,
            closed_at=e.case.closed_at,
            eligible_from=e.eligible_from,
            blocked_by=e.reason,
        )
        for e in service.eligibility(uow, u, after_years=after)
    ]


@router.post(
    "/archive/transfers",
    response_model=list[EntryOut],
    status_code=201,
    summary="The archivist takes closed cases over into the unit archive (WORM after commit)",
)
def transfer(body: TransferIn, request: Request, uow: UoW) -> list[EntryOut]:
    settings = container(request).settings
    u = service.archive_unit(uow, body.unit)
    entries = service.transfer_to_archive(
        uow,
        u,
        body.case_references,
        after_years=settings.archive_after_years,
        a_years=settings.archive_state_transfer_years,
        location=body.location,
    )
    return [_entry_out(e, c) for e, c in entries]


@router.post(
    "/archive/{unit}/entries/{entry_id}/loans",
    response_model=LoanOut,
    status_code=201,
    summary="Lend archived records to a member of the unit's staff for inspection",
)
def lend(unit: str, entry_id: uuid.UUID, body: LoanIn, uow: UoW) -> LoanOut:
    u = service.archive_unit(uow, unit)
    loan = service.lend_record(
        uow, u, entry_id, borrower=body.borrower, purpose=body.purpose, due_on=body.due_on
    )
    return _loan_out(uow, loan)


@router.post(
    "/archive/{unit}/loans/{loan_id}/return",
    response_model=LoanOut,
    summary="Record the return of lent records",
)
def give_back(unit: str, loan_id: uuid.UUID, uow: UoW) -> LoanOut:
    u = service.archive_unit(uow, unit)
    return _loan_out(uow, service.return_record(uow, u, loan_id))


@router.get("/archive/{unit}/loans", response_model=list[LoanOut], summary="Loans of the archive")
def list_loans(unit: str, uow: UoW) -> list[LoanOut]:
    u = service.archive_unit(uow, unit)
    return [_loan_out(uow, loan) for loan in service.loans(uow, u)]


# -- disposal ----------------------------------------------------------------------------------


@router.get(
    "/archive/{unit}/disposal-candidates",
    response_model=list[uuid.UUID],
    summary="Archived category-B records past retention, not on a list yet",
)
def candidates(unit: str, uow: UoW) -> list[uuid.UUID]:
    u = service.archive_unit(uow, unit)
    return [e.id for e in service.disposal_candidates(uow, u)]


@router.post(
    "/archive/disposals",
    response_model=DisposalOut,
    status_code=201,
    summary="Propose a disposal list and start its process (head approves, consent recorded)",
)
def propose(body: DisposalIn, request: Request, uow: UoW) -> DisposalOut:
    u = service.archive_unit(uow, body.unit)
    disposal = service.start_disposal(
        uow, container(request).engine_runtime, u, body.entries, body.reason
    )
    return _disposal_out(*service.readable_disposal(uow, disposal.id))


@router.get("/archive/disposals/{disposal_id}", response_model=DisposalOut)
def get_disposal(disposal_id: uuid.UUID, uow: UoW) -> DisposalOut:
    return _disposal_out(*service.readable_disposal(uow, disposal_id))
