"""The file plan (JRWA) in force for a unit."""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import Actor, UoW
from api.errors import STAFF_ERRORS, error_responses
from api.schemas import JrwaClassOut, JrwaPlanOut
from workflow.cases.service import WARSAW
from workflow.db import utcnow
from workflow.jrwa.repository import JrwaRepository
from workflow.jrwa.service import plan_for_unit
from workflow.registry.service import readable_unit

router = APIRouter(prefix="/api/v1", tags=["jrwa"], responses=error_responses(*STAFF_ERRORS))


@router.get(
    "/jrwa",
    response_model=JrwaPlanOut,
    summary="The file plan in force for a unit, with `leaf` per class",
)
def get_file_plan(
    uow: UoW,
    actor: Actor,
    unit: str | None = Query(None, description="Unit code; default: your unit"),
) -> JrwaPlanOut:
    u = readable_unit(uow, actor, unit)
    repo = JrwaRepository(uow.session)
    plan = plan_for_unit(repo, u, utcnow().astimezone(WARSAW).date())
    return JrwaPlanOut(
        code=plan.code,
        version=plan.version,
        title=plan.title,
        legal_basis=plan.legal_basis,
        valid_from=plan.valid_from,
        valid_to=plan.valid_to,
        classes=[
            JrwaClassOut(
                symbol=c.symbol,
                title=c.title,
                leaf=c.is_leaf,
                parent=c.parent_symbol,
                category_lead=c.category_lead,
                category_other=c.category_other,
                source=c.notes,
            )
            for c in repo.classes(plan.id)
        ],
    )
