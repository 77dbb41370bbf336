"""A file plan version (e.g. the schools' plan valid from 2026-01-01) and its classes.

A unit names the plan it uses (`Unit.jrwa_plan`); the version in force on a date is the one whose
validity covers it. A case keeps the class row (and so the version) under which it was opened.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from workflow.db import Base, new_id, utcnow


class JrwaPlan(Base):
    __tablename__ = "jrwa_plans"
    __table_args__ = (UniqueConstraint("code", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    legal_basis: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    source_sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class JrwaClass(Base):
    __tablename__ = "jrwa_classes"
    __table_args__ = (UniqueConstraint("plan_id", "symbol"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jrwa_plans.id"), index=True)
    symbol: Mapped[str] = mapped_column(String(10))
    parent_symbol: Mapped[str | None] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(500))
    is_leaf: Mapped[bool]
    category_lead: Mapped[str | None] = mapped_column(String(10))
    category_other: Mapped[str | None] = mapped_column(String(10))
    notes: Mapped[str] = mapped_column(Text, default="")
