"""Text extracted from each document version, kept so that a reindex rebuilds from the database
without extracting again, and so that a refused extraction (an encrypted PDF, a zip bomb
disguised as DOCX, a corrupt file) is recorded on the document instead of failing the worker."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from workflow.db import Base, utcnow


class DocumentText(Base):
    __tablename__ = "document_texts"

    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("document_versions.id"), primary_key=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))  # ok | empty | skipped | failed
    method: Mapped[str] = mapped_column(String(20))  # pdf, docx, odt, xml, letter, text, ocr, …
    reason: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text, default="")
    chars: Mapped[int] = mapped_column(default=0)
    extracted_at: Mapped[datetime] = mapped_column(default=utcnow)
