"""File plan services: loading plan versions and resolving the class a case is opened under."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from workflow.errors import Conflict, ValidationFailed
from workflow.jrwa.loader import PlanFile
from workflow.jrwa.models import JrwaClass, JrwaPlan
from workflow.jrwa.repository import JrwaRepository
from workflow.org.models import Unit
from workflow.uow import UnitOfWork


def load_plan(uow: UnitOfWork, plan: PlanFile) -> tuple[JrwaPlan, bool]:
    """Store a plan version. Versions are immutable: loading the same file again is a no-op,
    loading different content under an existing version is refused. Returns (plan, created)."""
    repo = JrwaRepository(uow.session)
    existing = repo.plan(plan.code, plan.version)
    if existing is not None:
        if existing.source_sha256 != plan.sha256:
            raise Conflict(
                f"Wersja {plan.version} wykazu {plan.code} jest już wczytana z inną treścią.",
                f"Version {plan.version} of plan {plan.code} is already loaded with other content.",
                code="jrwa_version_exists",
            )
        return existing, False
    row = JrwaPlan(
        code=plan.code,
        version=plan.version,
        title=plan.title,
        legal_basis=plan.legal_basis,
        valid_from=plan.valid_from,
        valid_to=plan.valid_to,
        source_sha256=plan.sha256,
    )
    repo.add(row)
    uow.flush()
    for c in plan.classes:
        repo.add(
            JrwaClass(
                plan_id=row.id,
                symbol=c.symbol,
                parent_symbol=c.parent_symbol,
                title=c.title,
                is_leaf=c.is_leaf,
                category_lead=c.category_lead,
                category_other=c.category_other,
                notes=c.notes,
            )
        )
    uow.audit(
        "jrwa.plan_loaded",
        "jrwa_plan",
        row.id,
        details={
            "code": plan.code,
            "version": plan.version,
            "classes": len(plan.classes),
            "sha256": plan.sha256,
        },
    )
    return row, True


def plan_for_unit(repo: JrwaRepository, unit: Unit, on: date) -> JrwaPlan:
    plan = repo.plan_in_force(unit.jrwa_plan, on)
    if plan is None:
        raise ValidationFailed(
            f"Jednostka {unit.code} nie ma wykazu akt obowiązującego w dniu {on.isoformat()}.",
            f"Unit {unit.code} has no file plan in force on {on.isoformat()}.",
            code="no_jrwa_plan",
        )
    return plan


@dataclass(frozen=True)
class ResolvedClass:
    plan: JrwaPlan
    cls: JrwaClass


def resolve_leaf_class(repo: JrwaRepository, unit: Unit, symbol: str, on: date) -> ResolvedClass:
    """The leaf class `symbol` in the unit's plan in force on `on`; refuse unknown and non-leaf."""
    plan = plan_for_unit(repo, unit, on)
    cls = repo.class_by_symbol(plan.id, symbol)
    if cls is None:
        raise ValidationFailed(
            f"Klasa „{symbol}” nie istnieje w wykazie akt jednostki.",
            f"Class '{symbol}' does not exist in the unit's file plan.",
            code="unknown_jrwa_class",
            details={"jrwa": symbol, "plan_version": plan.version},
        )
    if not cls.is_leaf:
        raise ValidationFailed(
            f"Klasa „{symbol}” nie jest końcowa: sprawy zakłada się tylko w klasach końcowych.",
            f"Class '{symbol}' is not a leaf class: cases are opened only in leaf classes.",
            code="jrwa_class_not_leaf",
            details={"jrwa": symbol},
        )
    return ResolvedClass(plan, cls)
