"""Case services: allocating case references and opening cases, reading a case and its record
(metryka) built from the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from workflow.audit.models import AuditEntry
from workflow.audit.repository import AuditRepository
from workflow.cases.models import Case
from workflow.cases.repository import CaseRepository
from workflow.db import new_id, utcnow
from workflow.documents.models import Document, DocumentVersion
from workflow.documents.repository import DocumentRepository
from workflow.documents.service import (
    DocumentMeta,
    add_version,
    create_document,
    readable_document,
    store_uploads,
)
from workflow.errors import Conflict, NotFound, ValidationFailed
from workflow.jrwa.repository import JrwaRepository
from workflow.jrwa.service import ResolvedClass, resolve_leaf_class
from workflow.org.models import Department, Role, Unit
from workflow.ports import BlobStore, SpooledUpload
from workflow.principal import Principal
from workflow.registry.repository import NumberingRepository, RegistryRepository
from workflow.registry.schemas import AddDocument
from workflow.uow import UnitOfWork

WARSAW = ZoneInfo("Europe/Warsaw")
OPENING_ROLES = (Role.clerk, Role.handler, Role.headteacher, Role.city_officer)


def office_year(at: datetime) -> int:
    """Registers and case lists run by the calendar year in Poland, not in UTC."""
    return at.astimezone(WARSAW).year


def allocate_case_reference(
    uow: UnitOfWork, unit: Unit, department: Department | None, symbol: str, year: int
) -> tuple[str, int]:
    """Next reference `UNIT[-DEPT].JRWA.SEQ.YEAR`, gapless per unit (and department), class
    and year: the number is taken in the same transaction as the case row."""
    series = f"case:{department.code if department else ''}:{symbol}"
    seq = NumberingRepository(uow.session).next_value(unit.id, series, year)
    prefix = f"{unit.code}-{department.code}" if department else unit.code
    return f"{prefix}.{symbol}.{seq}.{year}", seq


def open_case(
    uow: UnitOfWork,
    unit: Unit,
    *,
    jrwa_symbol: str,
    title: str,
    department: Department | None = None,
    resolved: ResolvedClass | None = None,
) -> Case:
    uow.actor.require_role(unit.id, *OPENING_ROLES)
    now = utcnow()
    if resolved is None:
        resolved = resolve_leaf_class(
            JrwaRepository(uow.session), unit, jrwa_symbol, now.astimezone(WARSAW).date()
        )
    year = office_year(now)
    reference, seq = allocate_case_reference(uow, unit, department, jrwa_symbol, year)
    case = Case(
        id=new_id(),
        reference=reference,
        unit_id=unit.id,
        department_id=department.id if department else None,
        jrwa_class_id=resolved.class_id,
        jrwa_symbol=jrwa_symbol,
        seq=seq,
        year=year,
        title=title,
        opened_by=None if uow.actor.system else uow.actor.user_id,
        opened_at=now,
    )
    CaseRepository(uow.session).add(case)
    uow.audit(
        "case.opened",
        "case",
        case.id,
        unit_id=unit.id,
        case_id=case.id,
        details={
            "reference": reference,
            "title": title,
            "jrwa": jrwa_symbol,
            "jrwa_plan_version": resolved.plan_version,
        },
    )
    return case


def ensure_open(case: Case) -> None:
    """Closed cases take no new items, documents or versions."""
    if case.status != "open":
        raise ValidationFailed(
            f"Sprawa {case.reference} jest zakończona.",
            f"Case {case.reference} is closed.",
            code="case_closed",
        )


def _case_not_found(reference: str) -> NotFound:
    return NotFound(
        f"Nie znaleziono sprawy {reference}.", f"Case {reference} not found.", code="case_not_found"
    )


def readable_case(uow: UnitOfWork, actor: Principal, reference: str) -> Case:
    """The case if the actor may read it; 'not found' otherwise, so its existence stays hidden."""
    case = CaseRepository(uow.session).by_reference(reference)
    if case is None or not actor.can_read_unit(case.unit_id):
        raise _case_not_found(reference)
    return case


def case_for_filing(uow: UnitOfWork, unit: Unit, reference: str) -> Case:
    """An open case of `unit` that a new item or document may join."""
    case = readable_case(uow, uow.actor, reference)
    if case.unit_id != unit.id:
        raise _case_not_found(reference)
    ensure_open(case)
    return case


@dataclass(frozen=True)
class CaseRecordEntry:
    at: datetime
    person: str
    action: str
    document_id: str | None
    details: dict[str, object]


def case_record(uow: UnitOfWork, actor: Principal, reference: str) -> list[CaseRecordEntry]:
    """The metryka sprawy (KPA art. 66a): who did what and when, with document ids, straight
    from the audit trail, so it cannot disagree with it."""
    case = readable_case(uow, actor, reference)
    entries: Sequence[AuditEntry] = AuditRepository(uow.session).for_case(case.id)
    uow.audit("case.record_read", "case", case.id, unit_id=case.unit_id)
    return [
        CaseRecordEntry(
            e.occurred_at,
            e.actor_name,
            e.action,
            str(e.document_id) if e.document_id else None,
            e.details,
        )
        for e in entries
        if not e.action.endswith("_read")
    ]


def case_list(uow: UnitOfWork, unit: Unit, year: int, jrwa_symbol: str | None) -> list[Case]:
    """The spis spraw of a unit for a year (and class). The caller has checked read access."""
    return list(CaseRepository(uow.session).case_list(unit.id, year, jrwa_symbol))


def add_document_to_case(
    uow: UnitOfWork, store: BlobStore, reference: str, cmd: AddDocument, upload: SpooledUpload
) -> Document:
    """File a new document (e.g. a draft reply or a note) in an open case."""
    case = readable_case(uow, uow.actor, reference)
    uow.actor.require_role(case.unit_id, *OPENING_ROLES)
    ensure_open(case)
    cls = JrwaRepository(uow.session).class_by_id(case.jrwa_class_id)
    (file,) = store_uploads(uow, store, [upload])
    # Locked so two documents added at once do not both take the same number.
    CaseRepository(uow.session).lock(case.id)
    n = DocumentRepository(uow.session).count_for_case(case.id) + 1
    return create_document(
        uow,
        unit_id=case.unit_id,
        identifier=f"{case.reference}/{n}",
        meta=DocumentMeta(
            title=cmd.title,
            creator=cmd.creator or uow.actor.full_name,
            document_date=cmd.document_date or utcnow().astimezone(WARSAW).date(),
            access=cmd.access,
            recipient=cmd.recipient,
            grouping=case.reference,
            qualification=cls.category_lead if cls else None,
            language=cmd.language,
            description=cmd.description,
        ),
        file=file,
        case_id=case.id,
    )


def add_document_version(
    uow: UnitOfWork, store: BlobStore, document_id: uuid.UUID, upload: SpooledUpload, note: str
) -> DocumentVersion:
    doc = readable_document(uow, uow.actor, document_id)
    uow.actor.require_role(doc.unit_id, *OPENING_ROLES)
    if doc.case_id is not None:
        case = CaseRepository(uow.session).by_id(doc.case_id)
        if case is not None:
            ensure_open(case)
    (file,) = store_uploads(uow, store, [upload])
    return add_version(uow, doc, file, note)


def close_case(
    uow: UnitOfWork, case: Case, reason: str, *, except_instance: uuid.UUID | None = None
) -> Case:
    """Close a case (zakończenie sprawy) when nothing is left to do in it: no open task (but
    those of `except_instance`, the process that is closing it) and every outgoing item sent.
    Idempotent: closing a closed case changes nothing."""
    from workflow.processes.repository import ProcessRepository

    if case.status == "closed":
        return case
    open_tasks = ProcessRepository(uow.session).open_tasks_of_case(case.id, except_instance)
    if open_tasks:
        raise Conflict(
            f"Sprawa {case.reference} ma otwarte zadania ({len(open_tasks)}): "
            "zakończ je przed zamknięciem sprawy.",
            f"Case {case.reference} has open tasks ({len(open_tasks)}): finish them first.",
            code="case_has_open_tasks",
            details={"tasks": [t.name for t in open_tasks[:20]]},
        )
    unsent = RegistryRepository(uow.session).undispatched_outgoing(case.id)
    if unsent:
        raise Conflict(
            f"Sprawa {case.reference} ma niewysłane przesyłki: "
            + ", ".join(i.number for i in unsent[:10])
            + ".",
            f"Case {case.reference} has outgoing items not yet sent: "
            + ", ".join(i.number for i in unsent[:10])
            + ".",
            code="case_has_unsent_items",
        )
    case.status = "closed"
    case.closed_at = utcnow()
    uow.audit(
        "case.closed",
        "case",
        case.id,
        unit_id=case.unit_id,
        case_id=case.id,
        details={"reference": case.reference, "reason": reason[:500]},
    )
    return case


# Who may close a case by hand (a process closes it as ezd) or reopen it.
CLOSING_ROLES = (Role.clerk, Role.headteacher, Role.city_officer)


def close_case_by_hand(uow: UnitOfWork, case: Case, reason: str) -> Case:
    uow.actor.require_role(case.unit_id, *CLOSING_ROLES)
    return close_case(uow, case, reason)


def reopen_case(uow: UnitOfWork, case: Case, reason: str) -> Case:
    """Reopen a closed case (wznowienie) with a reason; an archived case stays closed."""
    from workflow.archive.repository import ArchiveRepository

    uow.actor.require_role(case.unit_id, *CLOSING_ROLES)
    if case.status != "closed":
        raise Conflict(
            f"Sprawa {case.reference} nie jest zakończona.",
            f"Case {case.reference} is not closed.",
            code="case_not_closed",
        )
    if ArchiveRepository(uow.session).entry_for_case(case.id) is not None:
        raise Conflict(
            f"Sprawa {case.reference} jest w archiwum zakładowym: nie można jej wznowić.",
            f"Case {case.reference} is in the unit archive and cannot be reopened.",
            code="case_archived",
        )
    if not reason.strip():
        raise ValidationFailed(
            "Podaj powód wznowienia sprawy.", "Give the reason for reopening the case."
        )
    CaseRepository(uow.session).lock(case.id)
    case.status = "open"
    case.closed_at = None
    uow.audit(
        "case.reopened",
        "case",
        case.id,
        unit_id=case.unit_id,
        case_id=case.id,
        details={"reference": case.reference, "reason": reason[:500]},
    )
    return case
    case.status = "closed"
    case.closed_at = utcnow()
    uow.audit(
        "case.closed",
        "case",
        case.id,
        unit_id=case.unit_id,
        case_id=case.id,
        details={"reference": case.reference, "reason": reason[:500]},
    )
    return case
