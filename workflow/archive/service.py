"""The unit archive: taking closed cases over, retention, loans for inspection, disposal.

Rules (instrukcja kancelaryjna and instrukcja archiwalna, as ezd reads them):

* A closed case goes to the unit archive `archive_after_years` (two by default) after 1 January
  of the year following its closing; the archivist of the unit takes it over, and it gets the
  next number of the unit's archive register (`SZO/<n>/<year>`). A case with open tasks, or
  one that is not closed, is refused.
* Its retention category is its JRWA class's (for the unit that leads the matter): `A` is kept
  for ever and handed to the state archive, so its content is retained (WORM) for
  `archive_state_transfer_years`; `Bn` and `BEn` are kept n years from 1 January of the year
  after closing (`Bc`: until that date). The blobs are locked in the store until then, after
  commit, through the outbox (`archive.lock`).
* Disposal (brakowanie) is only for `B` entries past retention: `A` is never disposed of, and
  `BE` goes to the state archive's expert examination instead. The archivist proposes a list,
  the head approves it, the archivist records the state archive's consent, and then the worker
  deletes the content (`archive.dispose`) and keeps the metadata, the audit trail and a
  tombstone on each blob.
* Everything is per unit: an archivist of one school cannot act on another's records.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from workflow.archive.models import (
    ArchiveEntry,
    ArchiveLoan,
    Disposal,
    DisposalItem,
    DisposalStatus,
    EntryStatus,
)
from workflow.archive.repository import ArchiveRepository
from workflow.cases.models import Case, CaseStatus
from workflow.cases.repository import CaseRepository
from workflow.cases.service import WARSAW, office_year
from workflow.db import utcnow
from workflow.engine.runtime import Engine
from workflow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from workflow.jrwa.repository import JrwaRepository
from workflow.org.models import Role, Unit
from workflow.org.repository import OrgRepository
from workflow.org.service import principal_for
from workflow.ports import BlobStore
from workflow.processes.repository import ProcessRepository
from workflow.registry.repository import NumberingRepository
from workflow.uow import UnitOfWork

_CATEGORY = re.compile(r"^(A|BE|B)(\d{1,3})?$|^Bc$")


class ArchiveRefused(Conflict):
    code = "archive_refused"


@dataclass(frozen=True)
class Retention:
    category: str
    until: date | None  # None: category A, kept for ever
    lock_until: datetime  # WORM retention of the content in the store


def retention_for(category: str | None, closed_at: datetime, *, a_years: int) -> Retention:
    """Counted from 1 January of the year after the case closed."""
    code = (category or "").strip()
    match = _CATEGORY.match(code)
    if not match:
        raise ArchiveRefused(
            f"Klasa sprawy nie ma poprawnej kategorii archiwalnej ({code or 'brak'}).",
            f"The case's class has no valid retention category ({code or 'none'}).",
            code="retention_category_invalid",
        )
    start_year = closed_at.astimezone(WARSAW).year + 1
    if code == "Bc":
        until: date | None = date(start_year, 1, 1)
    elif match[1] == "A":
        until = None
    else:
        until = date(start_year + int(match[2] or 0), 1, 1)
    lock_day = until or date(start_year + a_years, 1, 1)
    return Retention(code, until, datetime(lock_day.year, 1, 1, tzinfo=WARSAW).astimezone(UTC))


def eligible_from(closed_at: datetime, after_years: int) -> date:
    return date(closed_at.astimezone(WARSAW).year + 1 + after_years, 1, 1)


def today() -> date:
    return utcnow().astimezone(WARSAW).date()


# ---------------------------------------------------------------------------------------------
# Access


def archive_unit(uow: UnitOfWork, code: str) -> Unit:
    """The unit whose archive the actor keeps (its archivist) — or ezd itself."""
    unit = OrgRepository(uow.session).unit_by_code(code)
    if unit is None or not (uow.actor.has_role(unit.id, Role.archivist) or uow.actor.is_admin):
        # another unit's archive is not even confirmed to exist
        raise NotFound(
            "Nie znaleziono archiwum jednostki.", "Unit archive not found.", code="unit_not_found"
        )
    if not uow.actor.has_role(unit.id, Role.archivist):
        raise Forbidden(
            "Archiwum zakładowe prowadzi archiwista jednostki.",
            "Only the unit's archivist keeps its archive.",
        )
    return unit


def readable_archive_unit(uow: UnitOfWork, code: str) -> Unit:
    """Reading the archive register: the unit's staff and auditors, the city's auditor."""
    unit = OrgRepository(uow.session).unit_by_code(code)
    if unit is None or not uow.actor.can_read_unit(unit.id):
        raise NotFound(
            "Nie znaleziono archiwum jednostki.", "Unit archive not found.", code="unit_not_found"
        )
    return unit


def _entry_of_unit(uow: UnitOfWork, unit: Unit, entry_id: uuid.UUID) -> ArchiveEntry:
    entry = ArchiveRepository(uow.session).entry(entry_id, lock=True)
    if entry is None or entry.unit_id != unit.id:
        raise NotFound(
            "Nie ma takiej pozycji archiwum.", "No such archive entry.", code="entry_not_found"
        )
    return entry


# ---------------------------------------------------------------------------------------------
# Transfer to the archive


@dataclass(frozen=True)
class Eligibility:
    case: Case
    eligible_from: date
    reason: str | None  # why it cannot be taken over yet; None: it can


def eligibility(uow: UnitOfWork, unit: Unit, *, after_years: int) -> list[Eligibility]:
    """Closed cases of the unit not yet archived, each with the date it may be taken over."""
    processes = ProcessRepository(uow.session)
    out = []
    for case in ArchiveRepository(uow.session).closed_cases_not_archived(unit.id):
        assert case.closed_at is not None
        start = eligible_from(case.closed_at, after_years)
        reason = None
        if processes.open_tasks_of_case(case.id):
            reason = "open_tasks"
        elif start > today():
            reason = "too_early"
        out.append(Eligibility(case, start, reason))
    return out


def transfer_to_archive(
    uow: UnitOfWork,
    unit: Unit,
    references: Sequence[str],
    *,
    after_years: int,
    a_years: int,
    location: str = "",
) -> list[tuple[ArchiveEntry, Case]]:
    """Take the named closed cases into the unit archive (all or nothing)."""
    if not references:
        raise ValidationFailed("Podaj sprawy do przejęcia.", "Name the cases to take over.")
    cases = CaseRepository(uow.session)
    repo = ArchiveRepository(uow.session)
    jrwa = JrwaRepository(uow.session)
    entries = []
    now = utcnow()
    for reference in dict.fromkeys(references):
        case = cases.by_reference(reference)
        if case is None or case.unit_id != unit.id:
            raise NotFound(
                f"Nie znaleziono sprawy {reference} w tej jednostce.",
                f"Case {reference} not found in this unit.",
                code="case_not_found",
            )
        cases.lock(case.id)
        if repo.entry_for_case(case.id) is not None:
            raise ArchiveRefused(
                f"Sprawa {reference} jest już w archiwum.",
                f"Case {reference} is already archived.",
                code="case_archived",
            )
        if case.status != CaseStatus.closed or case.closed_at is None:
            raise ArchiveRefused(
                f"Sprawa {reference} nie jest zakończona.",
                f"Case {reference} is not closed.",
                code="case_not_closed",
            )
        open_tasks = ProcessRepository(uow.session).open_tasks_of_case(case.id)
        if open_tasks:
            raise ArchiveRefused(
                f"Sprawa {reference} ma otwarte zadania ({len(open_tasks)}).",
                f"Case {reference} has open tasks ({len(open_tasks)}).",
                code="case_has_open_tasks",
            )
        start = eligible_from(case.closed_at, after_years)
        if start > today():
            raise ArchiveRefused(
                f"Sprawę {reference} można przekazać do archiwum od {start.isoformat()}.",
                f"Case {reference} may go to the archive from {start.isoformat()}.",
                code="archive_too_early",
            )
        cls = jrwa.class_by_id(case.jrwa_class_id)
        retention = retention_for(
            cls.category_lead if cls else None, case.closed_at, a_years=a_years
        )
        year = office_year(now)
        seq = NumberingRepository(uow.session).next_value(unit.id, "archive", year)
        entry = ArchiveEntry(
            id=uuid.uuid4(),
            unit_id=unit.id,
            case_id=case.id,
            seq=seq,
            year=year,
            number=f"SZO/{seq}/{year}",
            category=retention.category,
            retention_until=retention.until,
            locked_until=None,
            status=EntryStatus.archived,
            location=location[:200],
            transferred_by=uow.actor.user_id,
            transferred_at=now,
        )
        repo.add(entry)
        uow.audit(
            "archive.transferred",
            "case",
            case.id,
            unit_id=unit.id,
            case_id=case.id,
            details={
                "reference": case.reference,
                "number": entry.number,
                "category": retention.category,
                "retention_until": retention.until.isoformat() if retention.until else None,
            },
        )
        if retention.lock_until > now:
            uow.enqueue(
                "archive.lock",
                {"entry_id": str(entry.id), "until": retention.lock_until.isoformat()},
                dedupe_key=f"archive.lock:{entry.id}",
            )
        entries.append((entry, case))
    return entries


def lock_archived_content(
    uow: UnitOfWork, store: BlobStore, entry_id: uuid.UUID, until: datetime
) -> int:
    """The worker's half of a transfer: retain every file of the case (WORM) until `until`.
    Idempotent (a lock is never shortened); returns how many objects it locked."""
    repo = ArchiveRepository(uow.session)
    entry = repo.entry(entry_id, lock=True)
    if entry is None or entry.status != EntryStatus.archived:
        return 0
    n = 0
    for _document, _version, blob in repo.blobs_of_case(entry.case_id):
        if blob.disposed_at is not None:
            continue
        store.lock(blob.key, until)
        if blob.locked_until is None or blob.locked_until < until:
            blob.locked_until = until
        n += 1
    entry.locked_until = until
    uow.audit(
        "archive.locked",
        "archive_entry",
        entry.id,
        unit_id=entry.unit_id,
        case_id=entry.case_id,
        details={"number": entry.number, "until": until.isoformat(), "files": n},
    )
    return n


def archive_register(
    uow: UnitOfWork, unit: Unit, year: int | None = None
) -> Sequence[tuple[ArchiveEntry, Case]]:
    return ArchiveRepository(uow.session).register(unit.id, year)


# ---------------------------------------------------------------------------------------------
# Loans for inspection


def lend_record(
    uow: UnitOfWork,
    unit: Unit,
    entry_id: uuid.UUID,
    *,
    borrower: str,
    purpose: str,
    due_on: date,
) -> ArchiveLoan:
    entry = _entry_of_unit(uow, unit, entry_id)
    if entry.status != EntryStatus.archived:
        raise ArchiveRefused(
            "Akta zostały wybrakowane: nie można ich udostępnić.",
            "The records were disposed of and cannot be lent.",
            code="entry_disposed",
        )
    repo = ArchiveRepository(uow.session)
    if repo.open_loans(entry.id):
        raise ArchiveRefused(
            "Akta są już wypożyczone.", "The records are already lent.", code="entry_on_loan"
        )
    org = OrgRepository(uow.session)
    user = org.user_by_username(borrower)
    if user is None or not user.active or not principal_for(org, user).roles.get(unit.id):
        raise ValidationFailed(
            "Akta udostępnia się pracownikom jednostki.",
            "Records are lent to the unit's staff.",
            code="borrower_invalid",
        )
    if due_on < today():
        raise ValidationFailed(
            "Termin zwrotu minął.", "The return date is in the past.", code="due_date_past"
        )
    if not purpose.strip():
        raise ValidationFailed("Podaj cel udostępnienia.", "Give the purpose of the loan.")
    loan = ArchiveLoan(
        id=uuid.uuid4(),
        entry_id=entry.id,
        unit_id=unit.id,
        borrower_id=user.id,
        purpose=purpose[:2000],
        due_on=due_on,
        lent_by=uow.actor.user_id,
        lent_at=utcnow(),
    )
    repo.add(loan)
    uow.audit(
        "archive.lent",
        "archive_entry",
        entry.id,
        unit_id=unit.id,
        case_id=entry.case_id,
        details={"number": entry.number, "borrower": borrower, "due_on": due_on.isoformat()},
    )
    return loan


def _member_of(uow: UnitOfWork, user_id: uuid.UUID, unit: Unit) -> bool:
    from workflow.org.service import principal_for

    user = OrgRepository(uow.session).user(user_id)
    return user is not None and bool(
        principal_for(OrgRepository(uow.session), user).roles.get(unit.id)
    )


def return_record(uow: UnitOfWork, unit: Unit, loan_id: uuid.UUID) -> ArchiveLoan:
    repo = ArchiveRepository(uow.session)
    loan = repo.loan(loan_id, lock=True)
    if loan is None or loan.unit_id != unit.id:
        raise NotFound("Nie ma takiego wypożyczenia.", "No such loan.", code="loan_not_found")
    if loan.returned_at is not None:
        raise Conflict(
            "Akta już zwrócono.", "The records were already returned.", code="loan_returned"
        )
    loan.returned_at = utcnow()
    loan.returned_to = uow.actor.user_id
    entry = repo.entry(loan.entry_id)
    uow.audit(
        "archive.returned",
        "archive_entry",
        loan.entry_id,
        unit_id=unit.id,
        case_id=entry.case_id if entry else None,
        details={"number": entry.number if entry else None},
    )
    return loan


def loans(uow: UnitOfWork, unit: Unit) -> Sequence[ArchiveLoan]:
    return ArchiveRepository(uow.session).loans_of_unit(unit.id)


# ---------------------------------------------------------------------------------------------
# Disposal (brakowanie)


def disposal_candidates(uow: UnitOfWork, unit: Unit) -> Sequence[ArchiveEntry]:
    return [
        e
        for e in ArchiveRepository(uow.session).disposal_candidates(unit.id, today())
        if e.category.startswith("B") and not e.category.startswith("BE")
    ]


def propose_disposal(
    uow: UnitOfWork, unit: Unit, entry_ids: Sequence[uuid.UUID], reason: str
) -> Disposal:
    """The archivist's list of B records past retention (spis dokumentacji niearchiwalnej)."""
    if not entry_ids:
        raise ValidationFailed("Lista akt do brakowania jest pusta.", "The list is empty.")
    candidates = {e.id for e in disposal_candidates(uow, unit)}
    repo = ArchiveRepository(uow.session)
    entries = []
    for entry_id in dict.fromkeys(entry_ids):
        entry = _entry_of_unit(uow, unit, entry_id)
        if entry.category.startswith("A") or entry.category.startswith("BE"):
            raise ArchiveRefused(
                f"Akt {entry.number} (kategoria {entry.category}) nie brakuje się: "
                + (
                    "materiały archiwalne przechowuje się wieczyście."
                    if entry.category.startswith("A")
                    else "dokumentację BE ocenia archiwum państwowe."
                ),
                f"Records {entry.number} (category {entry.category}) are never disposed of.",
                code="category_not_disposable",
            )
        if entry.id not in candidates:
            raise ArchiveRefused(
                f"Akta {entry.number} nie są do brakowania (okres przechowywania trwa do "
                f"{entry.retention_until}, albo są już na innej liście).",
                f"Records {entry.number} cannot be disposed of yet (retained until "
                f"{entry.retention_until}, or already on another list).",
                code="retention_not_ended",
            )
        entries.append(entry)
    now = utcnow()
    year = office_year(now)
    seq = NumberingRepository(uow.session).next_value(unit.id, "disposal", year)
    disposal = Disposal(
        id=uuid.uuid4(),
        unit_id=unit.id,
        seq=seq,
        year=year,
        number=f"BR/{seq}/{year}",
        status=DisposalStatus.proposed,
        reason=reason[:2000],
        proposed_by=uow.actor.user_id,
        proposed_at=now,
        decision_comment="",
    )
    repo.add(disposal)
    uow.flush()
    for entry in entries:
        repo.add(DisposalItem(disposal_id=disposal.id, entry_id=entry.id))
    uow.audit(
        "disposal.proposed",
        "disposal",
        disposal.id,
        unit_id=unit.id,
        details={"number": disposal.number, "entries": [e.number for e in entries]},
    )
    return disposal


def _disposal(uow: UnitOfWork, disposal_id: uuid.UUID, *expected: DisposalStatus) -> Disposal:
    disposal = ArchiveRepository(uow.session).disposal(disposal_id, lock=True)
    if disposal is None:
        raise NotFound(
            "Nie ma takiego protokołu brakowania.", "No such disposal.", code="disposal_not_found"
        )
    if expected and disposal.status not in expected:
        raise Conflict(
            f"Brakowanie {disposal.number} ma stan {disposal.status}.",
            f"Disposal {disposal.number} is {disposal.status}.",
            code="disposal_state",
        )
    return disposal


def decide_disposal(
    uow: UnitOfWork,
    disposal_id: uuid.UUID,
    *,
    approve: bool,
    comment: str,
    decided_by: uuid.UUID,
) -> Disposal:
    """The head's decision (from the disposal process; `decided_by` is who completed it)."""
    disposal = _disposal(uow, disposal_id, DisposalStatus.proposed)
    disposal.status = DisposalStatus.approved if approve else DisposalStatus.rejected
    disposal.decided_by = decided_by
    disposal.decided_at = utcnow()
    disposal.decision_comment = comment[:2000]
    uow.audit(
        "disposal.approved" if approve else "disposal.rejected",
        "disposal",
        disposal.id,
        unit_id=disposal.unit_id,
        details={"number": disposal.number, "comment": comment[:500]},
    )
    return disposal


def record_consent(
    uow: UnitOfWork, disposal_id: uuid.UUID, *, reference: str, consented_on: date
) -> Disposal:
    """The state archive's consent (zgoda archiwum państwowego): then the content goes."""
    disposal = _disposal(uow, disposal_id, DisposalStatus.approved)
    if not reference.strip():
        raise ValidationFailed(
            "Podaj znak zgody archiwum państwowego.", "Give the reference of the consent."
        )
    if consented_on > today() or consented_on < disposal.proposed_at.astimezone(WARSAW).date():
        raise ValidationFailed(
            "Data zgody musi przypadać między zgłoszeniem a dniem dzisiejszym.",
            "The consent date must fall between the proposal and today.",
            code="consent_date_invalid",
        )
    disposal.status = DisposalStatus.consented
    disposal.consent_reference = reference[:200]
    disposal.consent_date = consented_on
    uow.audit(
        "disposal.consented",
        "disposal",
        disposal.id,
        unit_id=disposal.unit_id,
        details={"number": disposal.number, "consent": reference[:200]},
    )
    uow.enqueue(
        "archive.dispose", {"disposal_id": str(disposal.id)}, dedupe_key=f"dispose:{disposal.id}"
    )
    return disposal


def execute_disposal(uow: UnitOfWork, store: BlobStore, disposal_id: uuid.UUID) -> int:
    """The worker deletes the content of every entry on a consented list and keeps the
    metadata, the audit trail and a tombstone (`disposed_at`) on each file. Safe to run again:
    an object already gone is fine, a file already marked is skipped. Returns files deleted."""
    disposal = _disposal(uow, disposal_id)
    if disposal.status == DisposalStatus.executed:
        return 0
    if disposal.status != DisposalStatus.consented:
        raise Conflict(f"disposal {disposal.number} is {disposal.status}")
    repo = ArchiveRepository(uow.session)
    now = utcnow()
    deleted = 0
    for entry in repo.disposal_entries(disposal.id):
        # checked again here: nothing but an expired B entry ever loses its content
        if not entry.category.startswith("B") or entry.category.startswith("BE"):
            raise ArchiveRefused(f"{entry.number}: category {entry.category} is not disposable")
        if entry.retention_until is None or entry.retention_until > today():
            raise ArchiveRefused(f"{entry.number}: retained until {entry.retention_until}")
        for document, _version, blob in repo.blobs_of_case(entry.case_id):
            if blob.disposed_at is not None:
                continue
            store.delete(blob.key)  # refused by the store while a lock holds
            blob.disposed_at = now
            document_audit = {"identifier": document.identifier, "sha256": blob.sha256}
            uow.audit(
                "document.content_disposed",
                "document",
                document.id,
                unit_id=entry.unit_id,
                case_id=entry.case_id,
                document_id=document.id,
                details={**document_audit, "disposal": disposal.number},
            )
            deleted += 1
        entry.status = EntryStatus.disposed
        entry.disposal_id = disposal.id
        entry.disposed_at = now
    disposal.status = DisposalStatus.executed
    disposal.executed_at = now
    uow.audit(
        "disposal.executed",
        "disposal",
        disposal.id,
        unit_id=disposal.unit_id,
        details={"number": disposal.number, "files": deleted},
    )
    return deleted


def readable_disposal(
    uow: UnitOfWork, disposal_id: uuid.UUID
) -> tuple[Disposal, list[ArchiveEntry]]:
    repo = ArchiveRepository(uow.session)
    disposal = repo.disposal(disposal_id)
    if disposal is None or not uow.actor.can_read_unit(disposal.unit_id):
        raise NotFound(
            "Nie ma takiego protokołu brakowania.", "No such disposal.", code="disposal_not_found"
        )
    return disposal, list(repo.disposal_entries(disposal.id))


def start_disposal(
    uow: UnitOfWork, engine: Engine, unit: Unit, entry_ids: Sequence[uuid.UUID], reason: str
) -> Disposal:
    """Propose the list and start the disposal process (`bpmn/records_disposal.bpmn`): the
    head approves it, the archivist records the state archive's consent."""
    from workflow.processes.service import start_process

    disposal = propose_disposal(uow, unit, entry_ids, reason)
    instance = start_process(
        uow,
        engine,
        "records_disposal",
        unit,
        data={"disposal_id": str(disposal.id), "disposal_number": disposal.number},
        correlation_key=f"disposal:{disposal.id}",
    )
    disposal.instance_id = instance.id
    return disposal
