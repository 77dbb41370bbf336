"""Exports of the audit trail: a case's whole trail and a person's actions, for inspections.

Who may export: a case's trail — the unit's head, administrator, auditor and archivist, and the
city's administrator and auditor; a person's actions — the city's administrator and auditor.
Every export is itself written to the trail.
"""

from __future__ import annotations

from collections.abc import Sequence

from workflow.audit.models import AuditEntry
from workflow.audit.repository import AuditRepository
from workflow.cases.models import Case
from workflow.cases.service import readable_case
from workflow.errors import Forbidden, NotFound
from workflow.org.models import Role
from workflow.org.repository import OrgRepository
from workflow.principal import Principal
from workflow.uow import UnitOfWork

TRAIL_ROLES = (Role.headteacher, Role.admin, Role.auditor, Role.archivist)
MAX_USER_ENTRIES = 100_000


def case_trail(
    uow: UnitOfWork, actor: Principal, reference: str
) -> tuple[Case, Sequence[AuditEntry]]:
    case = readable_case(uow, actor, reference)
    if not (actor.is_admin or actor.is_auditor or actor.has_role(case.unit_id, *TRAIL_ROLES)):
        raise Forbidden(
            "Dziennik zdarzeń sprawy eksportuje dyrektor, administrator, audytor lub archiwista.",
            "A case's audit trail is exported by the head, an administrator, auditor or archivist.",
        )
    entries = AuditRepository(uow.session).for_case(case.id)
    uow.audit(
        "audit.case_trail_exported",
        "case",
        case.id,
        unit_id=case.unit_id,
        case_id=case.id,
        details={"reference": case.reference, "entries": len(entries)},
    )
    return case, entries


def user_trail(uow: UnitOfWork, actor: Principal, username: str) -> Sequence[AuditEntry]:
    if not (actor.is_admin or actor.is_auditor):
        raise Forbidden(
            "Działania osoby eksportuje administrator lub audytor miasta.",
            "A person's actions are exported by the city's administrator or auditor.",
        )
    user = OrgRepository(uow.session).user_by_username(username)
    if user is None:
        raise NotFound("Nie ma takiego użytkownika.", "No such user.", code="user_not_found")
    entries = AuditRepository(uow.session).for_actor(user.id, MAX_USER_ENTRIES)
    uow.audit(
        "audit.user_trail_exported",
        "user",
        user.id,
        details={"username": username, "entries": len(entries)},
    )
    return entries
