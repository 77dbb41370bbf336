"""Incoming and outgoing items and the counters that number them (and cases) without gaps.

A counter row is incremented in the same transaction that inserts the numbered row, so a rollback
returns the number and concurrent transactions queue on the counter's row lock.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.db import Base, new_id, utcnow

if TYPE_CHECKING:
    from workflow.cases.models import Case


class Channel(enum.StrEnum):
    paper = "paper"
    email = "email"
    e_delivery = "e_delivery"
    epuap = "epuap"
    internal = "internal"
    in_person = "in_person"
    e_service = "e_service"


class NumberCounter(Base):
    __tablename__ = "number_counters"
    __table_args__ = (UniqueConstraint("unit_id", "series", "year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"))
    series: Mapped[str] = mapped_column(String(80))
    year: Mapped[int]
    last_value: Mapped[int] = mapped_column(default=0)


class IncomingItem(Base):
    __tablename__ = "incoming_items"
    __table_args__ = (
        UniqueConstraint("unit_id", "rpw_year", "rpw_seq"),
        UniqueConstraint("registered_by", "idempotency_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    rpw_seq: Mapped[int]
    rpw_year: Mapped[int]
    rpw_number: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(20))
    sender: Mapped[dict[str, Any]] = mapped_column(JSON)
    sender_name: Mapped[str] = mapped_column(String(300), index=True)
    sender_reference: Mapped[str] = mapped_column(String(100))
    letter_date: Mapped[date | None]
    subject: Mapped[str] = mapped_column(String(500))
    attachments_count: Mapped[int]
    notes: Mapped[str] = mapped_column(Text, default="")
    jrwa_class_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jrwa_classes.id"))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"), index=True)
    registered_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))

    _case: Mapped[Case | None] = relationship(lazy="raise")  # insert order only


class OutgoingStatus(enum.StrEnum):
    ready = "ready"
    dispatched = "dispatched"
    delivered = "delivered"  # the addressee's signed receipt came back (internal e-delivery)


class OutgoingItem(Base):
    __tablename__ = "outgoing_items"
    __table_args__ = (UniqueConstraint("unit_id", "year", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    seq: Mapped[int]
    year: Mapped[int]
    number: Mapped[str] = mapped_column(String(40))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"), index=True)
    subject: Mapped[str] = mapped_column(String(500))
    recipients: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=OutgoingStatus.ready)
    dispatched_at: Mapped[datetime | None]
    # Internal e-delivery: the id of the signed letter (wnio:Dokument) and when the addressee's
    # signed receipt says it was delivered.
    letter_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    delivered_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    _case: Mapped[Case | None] = relationship(lazy="raise")  # insert order only
