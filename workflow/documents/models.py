"""Blobs (stored content, verified by SHA-256), documents (minimum metadata of the MSWiA 2006
regulation) and their immutable versions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.db import Base, new_id, utcnow

if TYPE_CHECKING:
    from workflow.cases.models import Case
    from workflow.registry.models import IncomingItem, OutgoingItem


class Blob(Base):
    __tablename__ = "blobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # WORM: the store refuses to delete the object before this (set when archived).
    locked_until: Mapped[datetime | None]
    # Tombstone: the content was deleted by a disposal; this row (digest, size) stays.
    disposed_at: Mapped[datetime | None]


class Document(Base):
    """Mandatory metadata: identifier, creator, title, date, format, access, type.
    Conditional: relation, recipient, grouping, qualification, language, description, rights."""

    __tablename__ = "documents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"), index=True)
    incoming_item_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incoming_items.id"), index=True
    )
    outgoing_item_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("outgoing_items.id"))
    identifier: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    creator: Mapped[str] = mapped_column(String(300))
    document_date: Mapped[date]
    format: Mapped[str] = mapped_column(String(120))
    access: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    relation: Mapped[str | None] = mapped_column(String(300))
    recipient: Mapped[str | None] = mapped_column(String(300))
    grouping: Mapped[str | None] = mapped_column(String(120))
    qualification: Mapped[str | None] = mapped_column(String(10))
    language: Mapped[str] = mapped_column(String(10), default="pol")
    description: Mapped[str | None] = mapped_column(Text)
    rights: Mapped[str | None] = mapped_column(String(300))
    # The verification report of a signed document (ETSI indication, signer, signing time…).
    signature_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Declared so the unit of work inserts parents first in one flush; not used for loading.
    _case: Mapped[Case | None] = relationship(lazy="raise")
    _incoming_item: Mapped[IncomingItem | None] = relationship(lazy="raise")
    _outgoing_item: Mapped[OutgoingItem | None] = relationship(lazy="raise")


class DocumentVersion(Base):
    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "version_no"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id"), index=True)
    version_no: Mapped[int]
    blob_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("blobs.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    _document: Mapped[Document] = relationship(lazy="raise")
    _blob: Mapped[Blob] = relationship(lazy="raise")
