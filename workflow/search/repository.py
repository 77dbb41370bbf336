"""SQL for search: the rows an index document is built from (in batches, for reindex), the
extracted texts of document versions, and the keys of everything that should be indexed."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from workflow.cases.models import Case
from workflow.documents.models import Blob, Document, DocumentVersion
from workflow.jrwa.models import JrwaClass
from workflow.org.models import Unit
from workflow.registry.models import IncomingItem, OutgoingItem
from workflow.search.models import DocumentText

_MODELS: dict[str, Any] = {
    "incoming": IncomingItem,
    "outgoing": OutgoingItem,
    "case": Case,
    "document": Document,
}


@dataclass(frozen=True)
class PendingVersion:
    """A document version whose text has not been extracted yet."""

    version_id: uuid.UUID
    document_id: uuid.UUID
    blob_key: str
    media_type: str
    size: int
    file_name: str


class SearchRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- what exists ---------------------------------------------------------------------

    def count(self, kind: str) -> int:
        from sqlalchemy import func

        model = _MODELS[kind]
        return int(self.session.execute(select(func.count()).select_from(model)).scalar_one())

    def id_batches(self, kind: str, batch: int) -> Iterator[list[uuid.UUID]]:
        """Every id of `kind`, in id order, `batch` at a time (keyset pagination)."""
        model = _MODELS[kind]
        last: uuid.UUID | None = None
        while True:
            q = select(model.id).order_by(model.id).limit(batch)
            if last is not None:
                q = q.where(model.id > last)
            ids = list(self.session.execute(q).scalars())
            if not ids:
                return
            yield ids
            last = ids[-1]

    # --- rows an index document is built from ----------------------------------------------

    def _rows(self, q: Any) -> list[Any]:
        return list(self.session.execute(q).all())

    def incoming(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        cls, case_cls = aliased(JrwaClass), aliased(JrwaClass)
        q = (
            select(IncomingItem, Unit.code, cls, Case, case_cls)
            .join(Unit, Unit.id == IncomingItem.unit_id)
            .outerjoin(cls, cls.id == IncomingItem.jrwa_class_id)
            .outerjoin(Case, Case.id == IncomingItem.case_id)
            .outerjoin(case_cls, case_cls.id == Case.jrwa_class_id)
            .where(IncomingItem.id.in_(ids))
        )
        return self._rows(q)

    def outgoing(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        q = (
            select(OutgoingItem, Unit.code, Case, JrwaClass)
            .join(Unit, Unit.id == OutgoingItem.unit_id)
            .outerjoin(Case, Case.id == OutgoingItem.case_id)
            .outerjoin(JrwaClass, JrwaClass.id == Case.jrwa_class_id)
            .where(OutgoingItem.id.in_(ids))
        )
        return self._rows(q)

    def cases(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        q = (
            select(Case, Unit.code, JrwaClass)
            .join(Unit, Unit.id == Case.unit_id)
            .join(JrwaClass, JrwaClass.id == Case.jrwa_class_id)
            .where(Case.id.in_(ids))
        )
        return self._rows(q)

    def documents(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        q = (
            select(Document, Unit.code, Case, JrwaClass, IncomingItem.rpw_number)
            .join(Unit, Unit.id == Document.unit_id)
            .outerjoin(Case, Case.id == Document.case_id)
            .outerjoin(JrwaClass, JrwaClass.id == Case.jrwa_class_id)
            .outerjoin(IncomingItem, IncomingItem.id == Document.incoming_item_id)
            .where(Document.id.in_(ids))
        )
        return self._rows(q)

    def version_texts(
        self, document_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[int, str, str | None]]]:
        """Per document, its versions newest first: (number, file name, extracted text or None
        when not extracted yet)."""
        q = (
            select(
                DocumentVersion.document_id,
                DocumentVersion.version_no,
                DocumentVersion.file_name,
                DocumentText.text,
                DocumentText.status,
            )
            .outerjoin(DocumentText, DocumentText.version_id == DocumentVersion.id)
            .where(DocumentVersion.document_id.in_(document_ids))
            .order_by(DocumentVersion.document_id, DocumentVersion.version_no.desc())
        )
        out: dict[uuid.UUID, list[tuple[int, str, str | None]]] = defaultdict(list)
        for doc_id, no, name, text, status in self.session.execute(q):
            out[doc_id].append((no, name, text if status is not None else None))
        return out

    # --- extraction ------------------------------------------------------------------------

    def pending_versions(self, document_id: uuid.UUID) -> list[PendingVersion]:
        q = (
            select(DocumentVersion, Blob)
            .join(Blob, Blob.id == DocumentVersion.blob_id)
            .outerjoin(DocumentText, DocumentText.version_id == DocumentVersion.id)
            .where(DocumentVersion.document_id == document_id, DocumentText.version_id.is_(None))
            .order_by(DocumentVersion.version_no)
        )
        return [
            PendingVersion(v.id, v.document_id, b.key, b.media_type, b.size, v.file_name)
            for v, b in self.session.execute(q)
        ]

    def has_text(self, version_id: uuid.UUID) -> bool:
        return self.session.get(DocumentText, version_id) is not None

    def add_text(self, row: DocumentText) -> None:
        self.session.add(row)

    def texts(self, document_id: uuid.UUID) -> Sequence[DocumentText]:
        q = select(DocumentText).where(DocumentText.document_id == document_id)
        return self.session.execute(q).scalars().all()
