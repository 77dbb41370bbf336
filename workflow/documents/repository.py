"""SQL for blobs, documents and versions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from workflow.documents.models import Blob, Document, DocumentVersion


class DocumentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def set_signature_report(self, document_id: uuid.UUID, report: dict[str, Any]) -> None:
        self.session.execute(
            update(Document).where(Document.id == document_id).values(signature_report=report)
        )

    def add(self, obj: Blob | Document | DocumentVersion) -> None:
        self.session.add(obj)

    def document(self, document_id: uuid.UUID) -> Document | None:
        return self.session.get(Document, document_id)

    def lock(self, document_id: uuid.UUID) -> None:
        self.session.execute(
            select(Document.id).where(Document.id == document_id).with_for_update()
        )

    def versions(self, document_id: uuid.UUID) -> Sequence[DocumentVersion]:
        return (
            self.session.execute(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document_id)
                .order_by(DocumentVersion.version_no)
            )
            .scalars()
            .all()
        )

    def version(self, document_id: uuid.UUID, version_no: int) -> DocumentVersion | None:
        return self.session.execute(
            select(DocumentVersion).where(
                DocumentVersion.document_id == document_id, DocumentVersion.version_no == version_no
            )
        ).scalar_one_or_none()

    def last_version_no(self, document_id: uuid.UUID) -> int:
        return int(
            self.session.execute(
                select(func.coalesce(func.max(DocumentVersion.version_no), 0)).where(
                    DocumentVersion.document_id == document_id
                )
            ).scalar_one()
        )

    def blob(self, blob_id: uuid.UUID) -> Blob | None:
        return self.session.get(Blob, blob_id)

    def for_case(self, case_id: uuid.UUID) -> Sequence[Document]:
        return (
            self.session.execute(
                select(Document).where(Document.case_id == case_id).order_by(Document.created_at)
            )
            .scalars()
            .all()
        )

    def for_incoming(self, item_id: uuid.UUID) -> Sequence[Document]:
        return (
            self.session.execute(
                select(Document)
                .where(Document.incoming_item_id == item_id)
                .order_by(Document.identifier)
            )
            .scalars()
            .all()
        )

    def count_for_case(self, case_id: uuid.UUID) -> int:
        return int(
            self.session.execute(
                select(func.count()).select_from(Document).where(Document.case_id == case_id)
            ).scalar_one()
        )

    def known_keys(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()
        return set(self.session.execute(select(Blob.key).where(Blob.key.in_(keys))).scalars())
