"""Audit trail checks for admins and auditors."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Actor, UoW
from api.schemas import AuditVerifyOut
from workflow.audit.repository import AuditRepository
from workflow.audit.service import verify_chain
from workflow.errors import Forbidden

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("/verify", response_model=AuditVerifyOut, summary="Verify the hash chain")
def verify(uow: UoW, actor: Actor) -> AuditVerifyOut:
    if not (actor.is_admin or actor.is_auditor):
        raise Forbidden(
            "Dostępne dla administratora i audytora.", "Available to administrators and auditors."
        )
    v = verify_chain(AuditRepository(uow.session))
    return AuditVerifyOut(
        ok=v.ok, entries_checked=v.entries_checked, first_bad_seq=v.first_bad_seq, problem=v.problem
    )
