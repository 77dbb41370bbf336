"""SQL for the audit trail: appending under the chain-head lock, reading in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.audit.chain import GENESIS_HASH
from workflow.audit.models import AuditChainHead, AuditEntry

HEAD_ID = 1


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> AuditChainHead:
        """Lock the chain head until commit: appends are serialised, so the chain has one order.
        Called last in a transaction to keep the lock short."""
        head = self.session.execute(
            select(AuditChainHead).where(AuditChainHead.id == HEAD_ID).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            head = AuditChainHead(id=HEAD_ID, last_seq=0, last_hash=GENESIS_HASH)
            self.session.add(head)
            self.session.flush()
        return head

    def add_all(self, entries: Sequence[AuditEntry]) -> None:
        self.session.add_all(entries)

    def head(self) -> AuditChainHead | None:
        return self.session.get(AuditChainHead, HEAD_ID)

    def iter_entries(self, batch: int = 2000) -> Iterator[AuditEntry]:
        last = 0
        while True:
            rows = (
                self.session.execute(
                    select(AuditEntry)
                    .where(AuditEntry.seq > last)
                    .order_by(AuditEntry.seq)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            self.session.expunge_all()

    def for_case(self, case_id: uuid.UUID) -> Sequence[AuditEntry]:
        return (
            self.session.execute(
                select(AuditEntry).where(AuditEntry.case_id == case_id).order_by(AuditEntry.seq)
            )
            .scalars()
            .all()
        )
