"""Audit trail checks for admins and auditors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import Actor, UoW
from api.errors import STAFF_ERRORS, error_responses
from api.printing import trail_csv, trail_json
from api.schemas import AuditVerifyOut
from workflow.audit import export
from workflow.audit.models import AuditEntry
from workflow.audit.repository import AuditRepository
from workflow.audit.service import verify_chain
from workflow.errors import Forbidden

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=error_responses(*STAFF_ERRORS))


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


def _trail_response(entries: Sequence[AuditEntry], fmt: str, name: str) -> Response:
    if fmt == "csv":
        return Response(
            trail_csv(entries),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        trail_json(entries),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
    )


@router.get(
    "/cases/{reference}",
    summary="Export a case's whole audit trail (JSON or CSV)",
    response_class=Response,
)
def case_trail(
    reference: str, uow: UoW, actor: Actor, format: Literal["json", "csv"] = "json"
) -> Response:
    case, entries = export.case_trail(uow, actor, reference)
    return _trail_response(entries, format, f"dziennik-{case.reference}")


@router.get(
    "/users/{username}",
    summary="Export a person's actions from the audit trail (JSON or CSV)",
    response_class=Response,
)
def user_trail(
    username: str, uow: UoW, actor: Actor, format: Literal["json", "csv"] = "json"
) -> Response:
    entries = export.user_trail(uow, actor, username)
    return _trail_response(entries, format, f"dziennik-{username}")
