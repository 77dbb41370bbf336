"""Register services: `register_incoming_item` (RPW), `register_outgoing_item` and dispatch.

Order inside the transaction matters for throughput and for invariant 1: read and validate
first, store the files (verified) next, and take the gapless numbers last, so the counter row
locks are held only for the few inserts before commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from workflow.cases.models import Case
from workflow.cases.service import OPENING_ROLES, WARSAW, case_for_filing, office_year, open_case
from workflow.db import new_id, utcnow
from workflow.documents.models import Document
from workflow.documents.service import DocumentMeta, StoredFile, create_document, store_uploads
from workflow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from workflow.jrwa.repository import JrwaRepository
from workflow.jrwa.service import ResolvedClass, resolve_leaf_class
from workflow.org.models import Department, Role, Unit
from workflow.org.repository import OrgRepository
from workflow.org.service import get_unit
from workflow.ports import BlobStore, SpooledUpload
from workflow.principal import Principal
from workflow.registry.models import IncomingItem, OutgoingItem, OutgoingStatus
from workflow.registry.repository import NumberingRepository, RegistryRepository
from workflow.registry.schemas import RegisterIncoming, RegisterOutgoing
from workflow.uow import UnitOfWork


def acting_unit(uow: UnitOfWork, code: str | None, *roles: str) -> Unit:
    """The unit named by `code`, or the actor's only unit where they hold one of `roles`."""
    unit = _named_or_only_unit(uow, code, uow.actor.units_with(*roles))
    uow.actor.require_role(unit.id, *roles)
    return unit


def _named_or_only_unit(
    uow: UnitOfWork, code: str | None, candidates: Sequence[uuid.UUID] | None
) -> Unit:
    """The unit named by `code`; without a code, the one unit in `candidates`."""
    repo = OrgRepository(uow.session)
    if code:
        return get_unit(repo, code)
    if not candidates or len(candidates) != 1:
        raise ValidationFailed(
            "Wskaż jednostkę (pole unit): masz uprawnienia w kilku jednostkach lub w żadnej.",
            "Name the unit (field unit): you hold roles in several units or in none.",
            code="unit_required",
        )
    unit = repo.unit(candidates[0])
    assert unit is not None
    return unit


def department_of(uow: UnitOfWork, unit: Unit, code: str | None) -> Department | None:
    if code is None:
        return None
    dept = OrgRepository(uow.session).department(unit.id, code)
    if dept is None:
        raise ValidationFailed(
            f"Jednostka {unit.code} nie ma komórki „{code}”.",
            f"Unit {unit.code} has no department '{code}'.",
            code="unknown_department",
        )
    return dept


def duplicate_submission(item: IncomingItem) -> Conflict:
    return Conflict(
        f"To zgłoszenie już zarejestrowano jako {item.rpw_number}.",
        f"This submission was already registered as {item.rpw_number}.",
        code="duplicate_submission",
        details={"id": str(item.id), "rpw_number": item.rpw_number},
    )


def check_idempotency(uow: UnitOfWork, key: str | None) -> None:
    """Refuse a repeated submission before anything is stored."""
    if key:
        earlier = RegistryRepository(uow.session).incoming_by_idempotency_key(
            uow.actor.user_id, key
        )
        if earlier is not None:
            raise duplicate_submission(earlier)


@dataclass(frozen=True)
class RegisteredItem:
    """What was registered, all in memory, so the answer needs no further queries."""

    item: IncomingItem
    unit_code: str
    jrwa_symbol: str | None
    case: Case | None
    documents: list[tuple[Document, StoredFile]]


def register_incoming_item(
    uow: UnitOfWork,
    store: BlobStore,
    cmd: RegisterIncoming,
    uploads: Sequence[SpooledUpload],
    idempotency_key: str | None = None,
) -> RegisteredItem:
    unit = acting_unit(uow, cmd.unit, Role.clerk)
    check_idempotency(uow, idempotency_key)
    now = utcnow()
    today = now.astimezone(WARSAW).date()
    department = department_of(uow, unit, cmd.department)

    case: Case | None = None
    resolved: ResolvedClass | None = None
    jrwa_class_id: uuid.UUID | None = None
    qualification: str | None = None
    if cmd.case_reference:
        case = case_for_filing(uow, unit, cmd.case_reference)
        if cmd.jrwa and cmd.jrwa != case.jrwa_symbol:
            raise ValidationFailed(
                f"Sprawa {case.reference} należy do klasy {case.jrwa_symbol}, nie {cmd.jrwa}.",
                f"Case {case.reference} is in class {case.jrwa_symbol}, not {cmd.jrwa}.",
                code="jrwa_mismatch",
            )
        jrwa_class_id = case.jrwa_class_id
        cls = JrwaRepository(uow.session).class_by_id(case.jrwa_class_id)
        qualification = cls.category_lead if cls else None
    elif cmd.jrwa:
        resolved = resolve_leaf_class(JrwaRepository(uow.session), unit, cmd.jrwa, today)
        jrwa_class_id, qualification = resolved.class_id, resolved.category_lead
    if cmd.new_case:
        uow.actor.require_role(unit.id, *OPENING_ROLES)

    files = store_uploads(uow, store, uploads)
    uow.flush()  # blob rows need no number: insert them before the counter lock is taken

    year = office_year(now)
    seq = NumberingRepository(uow.session).next_value(unit.id, "rpw", year)
    rpw_number = f"RPW/{seq}/{year}"
    if cmd.new_case:
        assert cmd.jrwa is not None
        case = open_case(
            uow,
            unit,
            jrwa_symbol=cmd.jrwa,
            title=cmd.case_title or cmd.subject,
            department=department,
            resolved=resolved,
        )
    item = IncomingItem(
        id=new_id(),
        unit_id=unit.id,
        rpw_seq=seq,
        rpw_year=year,
        rpw_number=rpw_number,
        received_at=cmd.received_at or now,
        channel=cmd.channel,
        sender=cmd.sender.model_dump(mode="json"),
        sender_name=cmd.sender.name,
        sender_reference=cmd.sender_reference,
        letter_date=cmd.letter_date,
        subject=cmd.subject,
        attachments_count=cmd.attachments_count
        if cmd.attachments_count is not None
        else len(uploads),
        notes=cmd.notes,
        jrwa_class_id=jrwa_class_id,
        case_id=case.id if case else None,
        registered_by=uow.actor.user_id,
        registered_at=now,
        idempotency_key=idempotency_key,
    )
    RegistryRepository(uow.session).add(item)
    uow.audit(
        "incoming.registered",
        "incoming_item",
        item.id,
        unit_id=unit.id,
        case_id=item.case_id,
        details={
            "rpw_number": rpw_number,
            "subject": cmd.subject,
            "sender": cmd.sender.name,
            "channel": cmd.channel,
            "case_reference": case.reference if case else None,
            "files": len(files),
        },
    )
    documents = []
    for n, f in enumerate(files, start=1):
        doc = create_document(
            uow,
            unit_id=unit.id,
            identifier=f"{unit.code}/{rpw_number}/{n}",
            meta=DocumentMeta(
                title=f.upload.file_name,
                creator=cmd.sender.name,
                document_date=cmd.letter_date or today,
                relation=rpw_number,
                grouping=case.reference if case else None,
                qualification=qualification,
                description=cmd.subject,
            ),
            file=f,
            case_id=case.id if case else None,
            incoming_item_id=item.id,
        )
        documents.append((doc, f))
    try:
        # One INSERT per table, without the ORM's per-row bookkeeping: the counters are locked.
        RegistryRepository(uow.session).insert_pending()
    except IntegrityError:
        # A concurrent twin with the same idempotency key committed first.
        uow.rollback()
        earlier = RegistryRepository(uow.session).incoming_by_idempotency_key(
            uow.actor.user_id, idempotency_key or ""
        )
        if earlier is not None:
            raise duplicate_submission(earlier) from None
        raise
    jrwa_symbol = case.jrwa_symbol if case else cmd.jrwa
    return RegisteredItem(item, unit.code, jrwa_symbol, case, documents)


def readable_incoming(uow: UnitOfWork, actor: Principal, item_id: uuid.UUID) -> IncomingItem:
    item = RegistryRepository(uow.session).incoming(item_id)
    if item is None or not actor.can_read_unit(item.unit_id):
        raise NotFound("Nie znaleziono przesyłki.", "Item not found.", code="item_not_found")
    return item


def register_outgoing_item(uow: UnitOfWork, cmd: RegisterOutgoing) -> OutgoingItem:
    unit = acting_unit(uow, cmd.unit, Role.clerk, Role.handler, Role.headteacher, Role.city_officer)
    case = case_for_filing(uow, unit, cmd.case_reference) if cmd.case_reference else None
    now = utcnow()
    year = office_year(now)
    seq = NumberingRepository(uow.session).next_value(unit.id, "outgoing", year)
    item = OutgoingItem(
        unit_id=unit.id,
        seq=seq,
        year=year,
        number=f"WYCH/{seq}/{year}",
        case_id=case.id if case else None,
        subject=cmd.subject,
        recipients=[r.model_dump(mode="json") for r in cmd.recipients],
        channel=cmd.channel,
        created_by=uow.actor.user_id,
        created_at=now,
    )
    RegistryRepository(uow.session).add(item)
    uow.flush()
    uow.audit(
        "outgoing.registered",
        "outgoing_item",
        item.id,
        unit_id=unit.id,
        case_id=item.case_id,
        details={
            "number": item.number,
            "subject": cmd.subject,
            "channel": cmd.channel,
            "recipients": [r.name for r in cmd.recipients],
        },
    )
    return item


def dispatch_outgoing_item(
    uow: UnitOfWork, item_id: uuid.UUID, dispatched_at: datetime | None = None
) -> OutgoingItem:
    # Locked: two clerks dispatching at once must not both see it 'ready'.
    item = RegistryRepository(uow.session).outgoing(item_id, for_update=True)
    if item is None or not uow.actor.can_read_unit(item.unit_id):
        raise NotFound("Nie znaleziono przesyłki.", "Item not found.", code="item_not_found")
    uow.actor.require_role(item.unit_id, Role.clerk)
    if item.status == OutgoingStatus.dispatched:
        raise Conflict(
            "Przesyłkę już wysłano.", "The item was already dispatched.", code="already_dispatched"
        )
    item.status = OutgoingStatus.dispatched
    item.dispatched_at = dispatched_at or utcnow()
    uow.audit(
        "outgoing.dispatched",
        "outgoing_item",
        item.id,
        unit_id=item.unit_id,
        case_id=item.case_id,
        details={"number": item.number},
    )
    return item


def readable_unit(uow: UnitOfWork, actor: Principal, code: str | None) -> Unit:
    """The unit named by `code` (or the actor's only unit) if the actor may read it."""
    unit = _named_or_only_unit(uow, code, actor.readable_units())
    if not actor.can_read_unit(unit.id):
        raise Forbidden("Nie masz dostępu do tej jednostki.", "You have no access to this unit.")
    return unit


def _opened_register(
    uow: UnitOfWork, actor: Principal, unit_code: str | None, year: int | None, register: str
) -> tuple[Unit, int]:
    """The unit and year of a register the actor may read; the read is audited."""
    unit = readable_unit(uow, actor, unit_code)
    year = year or office_year(utcnow())
    uow.audit(
        "register.read",
        "unit",
        unit.id,
        unit_id=unit.id,
        details={"register": register, "year": year},
    )
    return unit, year


def incoming_register(
    uow: UnitOfWork,
    actor: Principal,
    unit_code: str | None,
    year: int | None,
    *,
    limit: int,
    offset: int,
) -> list[IncomingItem]:
    unit, year = _opened_register(uow, actor, unit_code, year, "incoming")
    repo = RegistryRepository(uow.session)
    return list(repo.incoming_register(unit.id, year, limit=limit, offset=offset))


def outgoing_register(
    uow: UnitOfWork,
    actor: Principal,
    unit_code: str | None,
    year: int | None,
    *,
    limit: int,
    offset: int,
) -> list[OutgoingItem]:
    unit, year = _opened_register(uow, actor, unit_code, year, "outgoing")
    repo = RegistryRepository(uow.session)
    return list(repo.outgoing_register(unit.id, year, limit=limit, offset=offset))


def earlier_senders(
    uow: UnitOfWork, unit_code: str | None, prefix: str, *, limit: int = 10
) -> list[str]:
    """Sender names the unit has registered before, for the clerk's autocomplete."""
    unit = acting_unit(uow, unit_code, Role.clerk)
    prefix = prefix.strip()[:100]
    if not prefix:
        return []
    return list(RegistryRepository(uow.session).sender_names(unit.id, prefix, limit))
