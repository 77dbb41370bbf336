"""SQL for cases."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.cases.models import Case


class CaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, case: Case) -> None:
        self.session.add(case)

    def by_reference(self, reference: str) -> Case | None:
        return self.session.execute(
            select(Case).where(Case.reference == reference)
        ).scalar_one_or_none()

    def lock(self, case_id: uuid.UUID) -> None:
        """Hold the case row until commit (no-op on SQLite, where writers are serialised)."""
        self.session.execute(select(Case.id).where(Case.id == case_id).with_for_update())

    def by_id(self, case_id: uuid.UUID) -> Case | None:
        return self.session.get(Case, case_id)

    def by_ids(self, case_ids: Sequence[uuid.UUID]) -> Sequence[Case]:
        """Load many cases at once (into the session's identity map for `by_id`)."""
        if not case_ids:
            return []
        return self.session.execute(select(Case).where(Case.id.in_(set(case_ids)))).scalars().all()

    def case_list(
        self,
        unit_id: uuid.UUID,
        year: int,
        jrwa_symbol: str | None,
        department_id: uuid.UUID | None = None,
    ) -> Sequence[Case]:
        """The spis spraw: a unit's cases of one year, per class, in number order."""
        q = select(Case).where(Case.unit_id == unit_id, Case.year == year)
        if jrwa_symbol:
            q = q.where(Case.jrwa_symbol == jrwa_symbol)
        if department_id:
            q = q.where(Case.department_id == department_id)
        return self.session.execute(q.order_by(Case.jrwa_symbol, Case.seq)).scalars().all()
