"""SQL for file plans and their classes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from workflow.jrwa.models import JrwaClass, JrwaPlan


class JrwaRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def plan(self, code: str, version: str) -> JrwaPlan | None:
        return self.session.execute(
            select(JrwaPlan).where(JrwaPlan.code == code, JrwaPlan.version == version)
        ).scalar_one_or_none()

    def plan_by_id(self, plan_id: uuid.UUID) -> JrwaPlan | None:
        return self.session.get(JrwaPlan, plan_id)

    def plan_in_force(self, code: str, on: date) -> JrwaPlan | None:
        return self.session.execute(
            select(JrwaPlan)
            .where(
                JrwaPlan.code == code,
                JrwaPlan.valid_from <= on,
                or_(JrwaPlan.valid_to.is_(None), JrwaPlan.valid_to > on),
            )
            .order_by(JrwaPlan.valid_from.desc())
            .limit(1)
        ).scalar_one_or_none()

    def plans(self) -> Sequence[JrwaPlan]:
        return (
            self.session.execute(select(JrwaPlan).order_by(JrwaPlan.code, JrwaPlan.valid_from))
            .scalars()
            .all()
        )

    def classes(self, plan_id: uuid.UUID) -> Sequence[JrwaClass]:
        return (
            self.session.execute(
                select(JrwaClass).where(JrwaClass.plan_id == plan_id).order_by(JrwaClass.symbol)
            )
            .scalars()
            .all()
        )

    def class_by_symbol(self, plan_id: uuid.UUID, symbol: str) -> JrwaClass | None:
        return self.session.execute(
            select(JrwaClass).where(JrwaClass.plan_id == plan_id, JrwaClass.symbol == symbol)
        ).scalar_one_or_none()

    def class_by_id(self, class_id: uuid.UUID) -> JrwaClass | None:
        return self.session.get(JrwaClass, class_id)

    def add(self, obj: JrwaPlan | JrwaClass) -> None:
        self.session.add(obj)
