"""SQL for the outbox: claiming due events (SKIP LOCKED on PostgreSQL) with a lease."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workflow.db import dialect_insert
from workflow.outbox.models import OutboxEvent


class OutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> Sequence[OutboxEvent]:
        """Lease up to `limit` due events. A worker that dies leaves its events 'running' with
        an expired lease, and they become due again."""
        q = (
            select(OutboxEvent)
            .where(OutboxEvent.status.in_(("pending", "running")), OutboxEvent.available_at <= now)
            .order_by(OutboxEvent.available_at)
            .limit(limit)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        events = self.session.execute(q).scalars().all()
        for e in events:
            e.status = "running"
            e.attempts += 1
            e.available_at = lease_until
        return events

    def enqueue_once(
        self, topic: str, payload: dict[str, object], dedupe_key: str, available_at: datetime
    ) -> None:
        self.session.execute(
            dialect_insert(self.session)(OutboxEvent)
            .values(
                id=uuid.uuid4(),
                topic=topic,
                payload=payload,
                dedupe_key=dedupe_key,
                status="pending",
                attempts=0,
                created_at=available_at,
                available_at=available_at,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )

    def mark_done(self, event_id: uuid.UUID, lease: datetime, now: datetime) -> bool:
        """Mark the event done if this worker still holds its lease; False otherwise."""
        result = self.session.execute(
            update(OutboxEvent)
            .where(*self._leased(event_id, lease))
            .values(status="done", processed_at=now, last_error=None)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def renew_lease(self, event_id: uuid.UUID, lease: datetime, until: datetime) -> bool:
        """Extend the lease this worker holds; False when another worker holds the event now."""
        result = self.session.execute(
            update(OutboxEvent).where(*self._leased(event_id, lease)).values(available_at=until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _leased(event_id: uuid.UUID, lease: datetime) -> tuple[Any, ...]:
        return (
            OutboxEvent.id == event_id,
            OutboxEvent.status == "running",
            OutboxEvent.available_at == lease,
        )

    def mark_failed(
        self, event_id: uuid.UUID, lease: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt, unless the lease was lost to another worker meanwhile."""
        self.session.execute(
            update(OutboxEvent)
            .where(*self._leased(event_id, lease))
            .values(
                status="dead" if retry_at is None else "pending",
                last_error=error[:4000],
                available_at=retry_at if retry_at is not None else OutboxEvent.available_at,
            )
        )
