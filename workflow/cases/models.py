"""A case and its reference `UNIT[-DEPT].JRWA.SEQ.YEAR` (znak sprawy)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from workflow.db import Base, new_id, utcnow


class CaseStatus(enum.StrEnum):
    open = "open"
    closed = "closed"


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(80), unique=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    department_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id"))
    jrwa_class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jrwa_classes.id"))
    jrwa_symbol: Mapped[str] = mapped_column(String(10))
    seq: Mapped[int]
    year: Mapped[int]
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default=CaseStatus.open)
    # None when ezd itself opened the case (a letter delivered from another unit).
    opened_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    handler_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None]
