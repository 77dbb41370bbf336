"""SQL for the audit trail: appending under the chain-head lock, reading in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from workflow.audit.models import AuditChainHead, AuditEntry

HEAD_ID = 1
HEAD = cast(Table, AuditChainHead.__table__)
ENTRIES = cast(Table, AuditEntry.__table__)


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> tuple[int, str]:
        """Lock the chain head until commit: appends are serialised, so the chain has one order.
        Called last in a transaction to keep the lock short. The head row is created by the
        first migration."""
        row = self.session.execute(
            select(HEAD.c.last_seq, HEAD.c.last_hash).where(HEAD.c.id == HEAD_ID).with_for_update()
        ).one()
        return int(row[0]), str(row[1])

    def append(self, entries: list[dict[str, Any]], last_seq: int, last_hash: str) -> None:
        """Insert the chained entries (one executemany) and move the head."""
        # Core statements on the tables: this runs under the chain-head lock, keep it lean.
        self.session.execute(insert(ENTRIES), entries)
        self.session.execute(
            update(HEAD).where(HEAD.c.id == HEAD_ID).values(last_seq=last_seq, last_hash=last_hash)
        )

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

    def for_cases(self, case_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[AuditEntry]]:
        out: dict[uuid.UUID, list[AuditEntry]] = {c: [] for c in case_ids}
        for e in self.session.execute(
            select(AuditEntry).where(AuditEntry.case_id.in_(case_ids)).order_by(AuditEntry.seq)
        ).scalars():
            assert e.case_id is not None
            out[e.case_id].append(e)
        return out

    def for_actor(self, user_id: uuid.UUID, limit: int) -> Sequence[AuditEntry]:
        return (
            self.session.execute(
                select(AuditEntry)
                .where(AuditEntry.actor_id == user_id)
                .order_by(AuditEntry.seq)
                .limit(limit)
            )
            .scalars()
            .all()
        )

    def for_case(self, case_id: uuid.UUID) -> Sequence[AuditEntry]:
        return self.for_cases([case_id])[case_id]
