"""The unit archive (archiwum zakładowe): its register, loans for inspection, disposals.

An `ArchiveEntry` is a closed case taken over by the unit's archive, numbered in the archive
register (spis zdawczo-odbiorczy: `SZO/<n>/<year>` per unit and year), with the retention
category of its JRWA class and the date its retention ends (None: category A, kept for ever
and handed to the state archive). A `Disposal` (brakowanie) is the protocol that removes the
content of B-category entries past retention: proposed by the archivist, approved by the head,
consented by the state archive, executed by the worker.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from workflow.db import Base, new_id, utcnow


class EntryStatus(enum.StrEnum):
    archived = "archived"
    disposed = "disposed"  # content deleted by a disposal; metadata and audit kept


class ArchiveEntry(Base):
    __tablename__ = "archive_entries"
    __table_args__ = (UniqueConstraint("unit_id", "year", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), unique=True)
    seq: Mapped[int]
    year: Mapped[int]
    number: Mapped[str] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(10))
    retention_until: Mapped[date | None]
    locked_until: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default=EntryStatus.archived)
    location: Mapped[str] = mapped_column(String(200), default="")
    transferred_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    transferred_at: Mapped[datetime] = mapped_column(default=utcnow)
    disposal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("disposals.id"))
    disposed_at: Mapped[datetime | None]


class ArchiveLoan(Base):
    """A record lent for inspection (udostępnienie akt) and its return."""

    __tablename__ = "archive_loans"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("archive_entries.id"), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    borrower_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    purpose: Mapped[str] = mapped_column(Text)
    due_on: Mapped[date]
    lent_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    lent_at: Mapped[datetime] = mapped_column(default=utcnow)
    returned_at: Mapped[datetime | None]
    returned_to: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class DisposalStatus(enum.StrEnum):
    proposed = "proposed"
    approved = "approved"
    rejected = "rejected"
    consented = "consented"  # the state archive agreed; the worker deletes the content
    executed = "executed"


class Disposal(Base):
    __tablename__ = "disposals"
    __table_args__ = (UniqueConstraint("unit_id", "year", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    seq: Mapped[int]
    year: Mapped[int]
    number: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default=DisposalStatus.proposed)
    reason: Mapped[str] = mapped_column(Text, default="")
    proposed_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_comment: Mapped[str] = mapped_column(Text, default="")
    consent_reference: Mapped[str | None] = mapped_column(String(200))
    consent_date: Mapped[date | None]
    executed_at: Mapped[datetime | None]
    instance_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("process_instances.id"))


class DisposalItem(Base):
    __tablename__ = "disposal_items"

    disposal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("disposals.id"), primary_key=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("archive_entries.id"), primary_key=True, index=True
    )
