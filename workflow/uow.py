"""The unit of work: one database transaction per request or job.

Services add rows, record audit entries and enqueue outbox events through it, and flush; only the
owner (the API dependency, the worker, the CLI) commits. On commit the pending audit entries are
chained under the chain-head lock as the transaction's last step, so the lock is held briefly.
On rollback, registered compensations run (e.g. deleting blobs that were stored for the request).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from workflow.audit.repository import AuditRepository
from workflow.audit.service import PendingAuditEntry, append_entries
from workflow.outbox.models import OutboxEvent
from workflow.principal import SYSTEM, Principal
from workflow.search.events import TOPIC as SEARCH_TOPIC
from workflow.search.events import index_events

log = logging.getLogger(__name__)


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session], actor: Principal = SYSTEM) -> None:
        self.session: Session = session_factory()
        self.actor = actor
        self._audit: list[PendingAuditEntry] = []
        self._on_rollback: list[Callable[[], None]] = []
        self._after_commit: list[Callable[[], None]] = []
        self._done = False

    def audit(
        self,
        action: str,
        object_type: str,
        object_id: str | uuid.UUID,
        *,
        unit_id: uuid.UUID | None = None,
        case_id: uuid.UUID | None = None,
        document_id: uuid.UUID | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self._audit.append(
            PendingAuditEntry(
                action=action,
                object_type=object_type,
                object_id=str(object_id),
                actor_id=None if self.actor is SYSTEM else self.actor.user_id,
                actor_name=self.actor.full_name,
                unit_id=unit_id,
                case_id=case_id,
                document_id=document_id,
                details=details or {},
            )
        )

    def audit_mark(self) -> int:
        return len(self._audit)

    def audit_rewind(self, mark: int) -> None:
        """Drop entries recorded after `mark` (their work was rolled back to a savepoint)."""
        del self._audit[mark:]

    def enqueue(
        self,
        topic: str,
        payload: dict[str, Any],
        *,
        dedupe_key: str | None = None,
        available_at: datetime | None = None,
    ) -> None:
        event = OutboxEvent(topic=topic, payload=payload, dedupe_key=dedupe_key)
        if available_at is not None:
            event.available_at = available_at
        self.session.add(event)

    def on_rollback(self, fn: Callable[[], None]) -> None:
        self._on_rollback.append(fn)

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after_commit.append(fn)

    def flush(self) -> None:
        self.session.flush()

    def commit(self) -> None:
        try:
            # What the change touched is reindexed after commit (the audit entries name it).
            for payload in index_events(self._audit):
                self.enqueue(SEARCH_TOPIC, payload)
            self.session.flush()
            append_entries(AuditRepository(self.session), self._audit)
        except BaseException:
            self.rollback()
            raise
        try:
            self.session.commit()
        except BaseException:
            # The COMMIT may have reached the database before the connection failed: the rows
            # could exist, so their blobs must stay. Unreferenced ones are collected later.
            self._rollback(compensate=False)
            raise
        self._audit.clear()
        self._on_rollback.clear()
        self._done = True
        for fn in self._after_commit:
            try:
                fn()
            except Exception:  # a hook must never turn a committed change into an error
                log.exception("after-commit hook failed")
        self._after_commit.clear()

    def rollback(self) -> None:
        self._rollback(compensate=True)

    def _rollback(self, *, compensate: bool) -> None:
        try:
            self.session.rollback()
        finally:
            self._audit.clear()
            for fn in self._on_rollback if compensate else ():
                try:
                    fn()
                except Exception:
                    log.exception("rollback compensation failed")
            self._on_rollback.clear()
            self._done = True

    def close(self) -> None:
        if not self._done:
            self.rollback()
        self.session.close()

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None and not self._done:
            self.rollback()
        self.close()
