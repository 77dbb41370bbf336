"""E-service submissions, their status timeline, the e-mails sent about them, and the
throttle rows that slow down guessing of tracking PINs.

A submission is reached only by its tracking code and PIN: the code is random (60 bits, no
ambiguous letters), the PIN is kept as a salted scrypt hash and never stored or logged in clear.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from workflow.db import Base, new_id, utcnow


class SubmissionStatus(enum.StrEnum):
    registered = "registered"
    assigned = "assigned"
    supplement_requested = "supplement_requested"
    supplement_received = "supplement_received"
    in_progress = "in_progress"
    awaiting_approval = "awaiting_approval"
    decided = "decided"
    closed = "closed"


class Submission(Base):
    __tablename__ = "eservice_submissions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tracking_code: Mapped[str] = mapped_column(String(20), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(200))
    service_code: Mapped[str] = mapped_column(String(80))
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    incoming_item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incoming_items.id"))
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), unique=True)
    applicant_email: Mapped[str | None] = mapped_column(String(254))
    form_sha256: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(30), default=SubmissionStatus.registered)
    status_note: Mapped[str | None] = mapped_column(Text)
    deadline: Mapped[datetime | None]
    receipt_document_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("documents.id"))
    decision_document_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("documents.id"))
    decision: Mapped[str | None] = mapped_column(String(20))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubmissionEvent(Base):
    """One step of the timeline the citizen sees (what the process reported, in order)."""

    __tablename__ = "eservice_events"
    __table_args__ = (Index("ix_eservice_events_submission", "submission_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    submission_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("eservice_submissions.id"))
    status: Mapped[str] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    emailed_at: Mapped[datetime | None]


class AccessThrottle(Base):
    """Failed tracking logins per key (a tracking code's or a client's digest): after too many
    in the window the key is locked until `locked_until`."""

    __tablename__ = "eservice_access_throttle"
    __table_args__ = (UniqueConstraint("key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(80))
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
