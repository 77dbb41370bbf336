"""Domain operations that service tasks call by name.

A definition's service task names one of `OPERATIONS` and passes parameters as expressions; the
engine never runs code from the definition for them. Each operation acts in the instance's unit
and case, inside the caller's transaction, and returns plain data for the task's result variable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from workflow.cases.repository import CaseRepository
from workflow.cases.service import WARSAW, close_case
from workflow.db import utcnow
from workflow.engine.scripting import UnknownOperation
from workflow.errors import DomainError
from workflow.org.models import Unit
from workflow.principal import SYSTEM, Principal
from workflow.processes.deadlines import KINDS, UnknownDeadlineKind, statutory_deadline
from workflow.processes.models import ProcessInstance
from workflow.uow import UnitOfWork


@dataclass(frozen=True)
class OperationContext:
    uow: UnitOfWork
    instance: ProcessInstance
    unit: Unit
    data: Mapping[str, Any]
    # Who completed the step that led here (the operation itself runs as ezd).
    actor: Principal = SYSTEM


class OperationFailed(Exception):
    """A service operation refused its input: the task becomes an incident."""


Operation = Callable[[OperationContext, dict[str, Any]], Any]


def _started_at(ctx: OperationContext) -> datetime:
    raw = ctx.data.get("registered_at") or ctx.data.get("received_at")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
            if parsed.tzinfo is not None:
                return parsed
        except ValueError:
            pass
    return ctx.instance.started_at or utcnow()


def compute_deadline(ctx: OperationContext, params: dict[str, Any]) -> str:
    kind = str(params.get("kind", "kpa_35_1m"))
    try:
        return statutory_deadline(kind, _started_at(ctx)).isoformat()
    except UnknownDeadlineKind as e:
        raise OperationFailed(
            f"unknown deadline kind {kind!r}; known: {sorted(KINDS)} or days:N"
        ) from e


def _case(ctx: OperationContext) -> Any:
    if ctx.instance.case_id is None:
        raise OperationFailed("the process has no case")
    case = CaseRepository(ctx.uow.session).by_id(ctx.instance.case_id)
    if case is None:
        raise OperationFailed("the process's case is gone")
    return case


def op_close_case(ctx: OperationContext, params: dict[str, Any]) -> bool:
    close_case(
        ctx.uow,
        _case(ctx),
        str(params.get("reason") or "zakończenie procesu"),
        except_instance=ctx.instance.id,
    )
    return True


def register_outgoing(ctx: OperationContext, params: dict[str, Any]) -> str:
    from workflow.registry.schemas import Party, RegisterOutgoing
    from workflow.registry.service import register_outgoing_item

    case = _case(ctx) if ctx.instance.case_id else None
    addressee = str(params.get("addressee") or ctx.data.get("sender_name") or "Adresat sprawy")
    cmd = RegisterOutgoing(
        unit=ctx.unit.code,
        subject=str(params.get("subject") or ctx.data.get("subject") or "Odpowiedź")[:500],
        recipients=[Party(name=addressee[:200])],
        channel=str(params.get("channel") or "epuap"),
        case_reference=case.reference if case else None,
    )
    return register_outgoing_item(ctx.uow, cmd).number


def _date(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as e:
        raise OperationFailed(f"{what} must be a date (YYYY-MM-DD), got {value!r}") from e


def dispatch_outgoing(ctx: OperationContext, params: dict[str, Any]) -> str:
    """Marks the outgoing item `number` (of this unit) as sent on `dispatched_on`."""
    from workflow.registry.repository import RegistryRepository
    from workflow.registry.service import dispatch_outgoing_item

    number = str(params.get("number") or "")
    item = RegistryRepository(ctx.uow.session).outgoing_by_number(ctx.unit.id, number)
    if item is None:
        raise OperationFailed(f"no outgoing item {number!r} in {ctx.unit.code}")
    day = _date(params.get("dispatched_on") or utcnow().date().isoformat(), "dispatched_on")
    if day > utcnow().astimezone(WARSAW).date():
        raise OperationFailed("dispatched_on is in the future")
    at = datetime.combine(day, datetime.min.time(), WARSAW).astimezone(UTC)
    return dispatch_outgoing_item(ctx.uow, item.id, max(at, item.created_at)).status


def decide_disposal(ctx: OperationContext, params: dict[str, Any]) -> str:
    from workflow.archive.service import decide_disposal as decide

    decision = str(params.get("decision") or "")
    if decision not in ("approve", "reject"):
        raise OperationFailed(f"decision must be approve or reject, got {decision!r}")
    return decide(
        ctx.uow,
        uuid.UUID(str(params.get("disposal_id"))),
        approve=decision == "approve",
        comment=str(ctx.data.get("decision_comment") or ""),
        decided_by=ctx.actor.user_id,
    ).status


def record_disposal_consent(ctx: OperationContext, params: dict[str, Any]) -> str:
    from workflow.archive.service import record_consent

    return record_consent(
        ctx.uow,
        uuid.UUID(str(params.get("disposal_id"))),
        reference=str(params.get("consent_reference") or ""),
        consented_on=_date(params.get("consent_date"), "consent_date"),
    ).status


def send_official_letter(ctx: OperationContext, params: dict[str, Any]) -> str:
    """Registers an outgoing item and sends it, signed with the unit's seal, to another unit
    (internal e-delivery; see workflow/correspondence/delivery.py). `message` names the process
    message the addressee gets (a new process for `pismo_urzedowe`, the waiting one for a
    reply), correlated by `correlation_key` (default: this process's). Returns the outgoing
    item's number."""
    from workflow.correspondence.delivery import DEFAULT_MESSAGE
    from workflow.correspondence.delivery import send_official_letter as send

    to_unit = str(params.get("to_unit") or "")
    if not to_unit:
        raise OperationFailed("to_unit is required")
    key = str(params.get("correlation_key") or ctx.instance.correlation_key or str(ctx.instance.id))
    item = send(
        ctx.uow,
        ctx.unit,
        to_unit=to_unit,
        subject=str(params.get("subject") or ""),
        body=str(params.get("body") or "")[:20000],
        case=_case(ctx) if ctx.instance.case_id else None,
        message=str(params.get("message") or DEFAULT_MESSAGE),
        correlation_key=key,
        your_reference=str(params["your_reference"]) if params.get("your_reference") else None,
        from_instance=str(ctx.instance.id),
    )
    return item.number


def notify(ctx: OperationContext, params: dict[str, Any]) -> bool:
    ctx.uow.enqueue(
        "notify",
        {
            "recipient": str(params.get("recipient") or ""),
            "template": str(params.get("template") or ""),
            "unit": ctx.unit.code,
            "instance": str(ctx.instance.id),
            "case_reference": ctx.instance.correlation_key,
        },
        dedupe_key=f"notify:{ctx.instance.id}:{uuid.uuid4()}",
    )
    return True


def hand_over_to_finance(ctx: OperationContext, params: dict[str, Any]) -> bool:
    ctx.uow.enqueue(
        "finance.handover",
        {
            "unit": ctx.unit.code,
            "invoice_number": str(params.get("invoice_number") or ""),
            "amount": str(params.get("amount") or ""),
            "case_reference": ctx.instance.correlation_key,
        },
    )
    ctx.uow.audit(
        "invoice.handed_over",
        "process_instance",
        ctx.instance.id,
        unit_id=ctx.unit.id,
        case_id=ctx.instance.case_id,
        details={"invoice_number": str(params.get("invoice_number") or "")},
    )
    return True


def eservice_status(ctx: OperationContext, params: dict[str, Any]) -> bool:
    """A step of the citizen's timeline (`status`, optional `note` shown to the citizen) for an
    e-service case; the applicant is e-mailed about it. A no-op for other cases."""
    from workflow.eservices.service import record_status, submission_of_case

    submission = submission_of_case(ctx.uow, ctx.instance.case_id)
    if submission is None:
        return False
    try:
        record_status(
            ctx.uow,
            submission,
            str(params.get("status") or ""),
            str(params["note"])[:5000] if params.get("note") else None,
            ctx.data.get("deadline"),
        )
    except ValueError as e:
        raise OperationFailed(f"unknown e-service status {params.get('status')!r}") from e
    return True


def eservice_issue_decision(ctx: OperationContext, params: dict[str, Any]) -> bool:
    """The decision of an e-service case: the worker writes it, signs it with the unit's seal
    and sends the process `decyzja_podpisana`. Without a seal the step becomes an incident."""
    from workflow.eservices.service import request_decision

    try:
        return request_decision(
            ctx.uow,
            ctx.instance.case_id,
            str(params.get("decision") or ""),
            str(params.get("justification") or ""),
            ctx.actor.user_id,
        )
    except ValueError as e:
        raise OperationFailed(str(e)) from e


OPERATIONS: dict[str, Operation] = {
    "compute_deadline": compute_deadline,
    "close_case": op_close_case,
    "register_outgoing_item": register_outgoing,
    "send_official_letter": send_official_letter,
    "dispatch_outgoing_item": dispatch_outgoing,
    "decide_disposal": decide_disposal,
    "record_disposal_consent": record_disposal_consent,
    "notify": notify,
    "hand_over_to_finance": hand_over_to_finance,
    "eservice_status": eservice_status,
    "eservice_issue_decision": eservice_issue_decision,
}


def call_operation(ctx: OperationContext, name: str, params: dict[str, Any]) -> Any:
    op = OPERATIONS.get(name)
    if op is None:
        raise UnknownOperation(f"unknown service operation {name!r}")
    # A failed operation leaves nothing behind: its writes roll back to a savepoint, its audit
    # entries and outbox events are dropped, and the task becomes an incident.
    mark = ctx.uow.audit_mark()
    savepoint = ctx.uow.session.begin_nested()
    # A service task acts for the process, as ezd: the person whose completed task led here
    # (or the admin retrying an incident) was authorised for that step, and need not hold
    # the roles the operation's own service checks (a headteacher registering an outgoing item).
    actor, ctx.uow.actor = ctx.uow.actor, SYSTEM
    try:
        result = op(ctx, params)
        savepoint.commit()
        return result
    except OperationFailed as e:
        savepoint.rollback()
        ctx.uow.audit_rewind(mark)
        raise UnknownOperation(f"{name}: {e}") from e
    except DomainError as e:
        savepoint.rollback()
        ctx.uow.audit_rewind(mark)
        raise UnknownOperation(f"{name}: {e.message_en}") from e
    finally:
        ctx.uow.actor = actor
