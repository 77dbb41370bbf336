"""File plan services: loading plan versions and resolving the class a case is opened under."""

from __future__ import annotations

import threading
import time
import uuid
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
    uow.after_commit(_cache.clear)
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
        raise _no_plan(unit, on)
    return plan


def _no_plan(unit: Unit, on: date) -> ValidationFailed:
    return ValidationFailed(
        f"Jednostka {unit.code} nie ma wykazu akt obowiązującego w dniu {on.isoformat()}.",
        f"Unit {unit.code} has no file plan in force on {on.isoformat()}.",
        code="no_jrwa_plan",
    )


@dataclass(frozen=True)
class ResolvedClass:
    """A leaf class as it stands in one plan version (versions never change, so this is a
    plain snapshot that can be cached)."""

    plan_id: uuid.UUID
    plan_version: str
    class_id: uuid.UUID
    symbol: str
    title: str
    is_leaf: bool
    category_lead: str | None


class _Cache:
    """Which plan version is in force is re-read every PLAN_TTL seconds (a new version loaded by
    another process is seen within that time); the classes of a version are immutable and
    cached for good. Registration resolves a class on every letter, so this saves two queries."""

    PLAN_TTL = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by database too: one process may talk to several (the tests do).
        self._plans: dict[tuple[str, str, date], tuple[float, tuple[uuid.UUID, str] | None]] = {}
        self._classes: dict[uuid.UUID, dict[str, ResolvedClass]] = {}

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()

    def plan(self, repo: JrwaRepository, code: str, on: date) -> tuple[uuid.UUID, str] | None:
        now = time.monotonic()
        key = (str(repo.session.get_bind().engine.url), code, on)
        with self._lock:
            hit = self._plans.get(key)
        if hit and now - hit[0] < self.PLAN_TTL:
            return hit[1]
        plan = repo.plan_in_force(code, on)
        value = (plan.id, plan.version) if plan else None
        with self._lock:
            self._plans[key] = (now, value)
        return value

    def classes(
        self, repo: JrwaRepository, plan_id: uuid.UUID, version: str
    ) -> dict[str, ResolvedClass]:
        with self._lock:
            found = self._classes.get(plan_id)
        if found is None:
            found = {
                c.symbol: ResolvedClass(
                    plan_id, version, c.id, c.symbol, c.title, c.is_leaf, c.category_lead
                )
                for c in repo.classes(plan_id)
            }
            with self._lock:
                self._classes[plan_id] = found
        return found


_cache = _Cache()


def resolve_leaf_class(repo: JrwaRepository, unit: Unit, symbol: str, on: date) -> ResolvedClass:
    """The leaf class `symbol` in the unit's plan in force on `on`; refuse unknown and non-leaf."""
    plan = _cache.plan(repo, unit.jrwa_plan, on)
    if plan is None:
        raise _no_plan(unit, on)
    cls = _cache.classes(repo, *plan).get(symbol)
    if cls is None:
        raise ValidationFailed(
            f"Klasa „{symbol}” nie istnieje w wykazie akt jednostki.",
            f"Class '{symbol}' does not exist in the unit's file plan.",
            code="unknown_jrwa_class",
            details={"jrwa": symbol, "plan_version": plan[1]},
        )
    if not cls.is_leaf:
        raise ValidationFailed(
            f"Klasa „{symbol}” nie jest końcowa: sprawy zakłada się tylko w klasach końcowych.",
            f"Class '{symbol}' is not a leaf class: cases are opened only in leaf classes.",
            code="jrwa_class_not_leaf",
            details={"jrwa": symbol},
        )
    return cls
