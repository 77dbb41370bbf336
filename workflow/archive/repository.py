"""SQL for the unit archive."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.archive.models import (
    ArchiveEntry,
    ArchiveLoan,
    Disposal,
    DisposalItem,
    DisposalStatus,
    EntryStatus,
)
from workflow.cases.models import Case, CaseStatus
from workflow.documents.models import Blob, Document, DocumentVersion


class ArchiveRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, obj: ArchiveEntry | ArchiveLoan | Disposal | DisposalItem) -> None:
        self.session.add(obj)

    def entry(self, entry_id: uuid.UUID, *, lock: bool = False) -> ArchiveEntry | None:
        q = select(ArchiveEntry).where(ArchiveEntry.id == entry_id)
        if lock:
            q = q.with_for_update()
        return self.session.execute(q).scalar_one_or_none()

    def entry_for_case(self, case_id: uuid.UUID) -> ArchiveEntry | None:
        return self.session.execute(
            select(ArchiveEntry).where(ArchiveEntry.case_id == case_id)
        ).scalar_one_or_none()

    def register(self, unit_id: uuid.UUID, year: int | None) -> Sequence[tuple[ArchiveEntry, Case]]:
        q = (
            select(ArchiveEntry, Case)
            .join(Case, Case.id == ArchiveEntry.case_id)
            .where(ArchiveEntry.unit_id == unit_id)
            .order_by(ArchiveEntry.year, ArchiveEntry.seq)
        )
        if year is not None:
            q = q.where(ArchiveEntry.year == year)
        return [(e, c) for e, c in self.session.execute(q).all()]

    def closed_cases_not_archived(self, unit_id: uuid.UUID) -> Sequence[Case]:
        archived = select(ArchiveEntry.case_id)
        return (
            self.session.execute(
                select(Case)
                .where(
                    Case.unit_id == unit_id,
                    Case.status == CaseStatus.closed,
                    Case.id.not_in(archived),
                )
                .order_by(Case.closed_at, Case.reference)
            )
            .scalars()
            .all()
        )

    def disposal_candidates(self, unit_id: uuid.UUID, today: date) -> Sequence[ArchiveEntry]:
        """Archived B entries (not BE: the state archive examines those) past retention and in
        no disposal that is still under way."""
        busy = (
            select(DisposalItem.entry_id)
            .join(Disposal, Disposal.id == DisposalItem.disposal_id)
            .where(Disposal.status.not_in([DisposalStatus.rejected]))
        )
        return (
            self.session.execute(
                select(ArchiveEntry)
                .where(
                    ArchiveEntry.unit_id == unit_id,
                    ArchiveEntry.status == EntryStatus.archived,
                    ArchiveEntry.retention_until.is_not(None),
                    ArchiveEntry.retention_until <= today,
                    ArchiveEntry.id.not_in(busy),
                )
                .order_by(ArchiveEntry.year, ArchiveEntry.seq)
            )
            .scalars()
            .all()
        )

    def blobs_of_case(self, case_id: uuid.UUID) -> Sequence[tuple[Document, DocumentVersion, Blob]]:
        return self.blobs_of_cases([case_id])[case_id]

    def blobs_of_cases(
        self, case_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[Document, DocumentVersion, Blob]]]:
        """`blobs_of_case` for many cases in one query (the package export's batches)."""
        out: dict[uuid.UUID, list[tuple[Document, DocumentVersion, Blob]]] = {
            c: [] for c in case_ids
        }
        for d, v, b in self.session.execute(
            select(Document, DocumentVersion, Blob)
            .join(DocumentVersion, DocumentVersion.document_id == Document.id)
            .join(Blob, Blob.id == DocumentVersion.blob_id)
            .where(Document.case_id.in_(case_ids))
            .order_by(Document.identifier, DocumentVersion.version_no)
        ).all():
            assert d.case_id is not None
            out[d.case_id].append((d, v, b))
        return out

    def open_loans(self, entry_id: uuid.UUID) -> Sequence[ArchiveLoan]:
        return (
            self.session.execute(
                select(ArchiveLoan).where(
                    ArchiveLoan.entry_id == entry_id, ArchiveLoan.returned_at.is_(None)
                )
            )
            .scalars()
            .all()
        )

    def loan(self, loan_id: uuid.UUID, *, lock: bool = False) -> ArchiveLoan | None:
        q = select(ArchiveLoan).where(ArchiveLoan.id == loan_id)
        if lock:
            q = q.with_for_update()
        return self.session.execute(q).scalar_one_or_none()

    def loans_of_unit(self, unit_id: uuid.UUID) -> Sequence[ArchiveLoan]:
        return (
            self.session.execute(
                select(ArchiveLoan)
                .where(ArchiveLoan.unit_id == unit_id)
                .order_by(ArchiveLoan.lent_at)
            )
            .scalars()
            .all()
        )

    def disposal(self, disposal_id: uuid.UUID, *, lock: bool = False) -> Disposal | None:
        q = select(Disposal).where(Disposal.id == disposal_id)
        if lock:
            q = q.with_for_update()
        return self.session.execute(q).scalar_one_or_none()

    def disposal_entries(self, disposal_id: uuid.UUID) -> Sequence[ArchiveEntry]:
        return (
            self.session.execute(
                select(ArchiveEntry)
                .join(DisposalItem, DisposalItem.entry_id == ArchiveEntry.id)
                .where(DisposalItem.disposal_id == disposal_id)
                .order_by(ArchiveEntry.year, ArchiveEntry.seq)
            )
            .scalars()
            .all()
        )
