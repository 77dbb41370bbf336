"""The outbox worker: runs side effects after commit, with retries and exponential backoff.

Each event is handled in its own transaction, and marked done in that same transaction, so a
handler's database changes and the 'done' mark commit together. Handlers must be idempotent: an
event may run again if a worker dies after its side effect but before commit.

Periodic jobs (the stray-blob collector) are scheduled through the outbox too, with a dedupe key
per time slot, so any number of workers schedule each run exactly once.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from workflow.db import utcnow
from workflow.outbox.repository import OutboxRepository
from workflow.uow import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, dict[str, Any]], None]


@dataclass
class Periodic:
    topic: str
    every: timedelta


@dataclass
class Worker:
    session_factory: sessionmaker[Session]
    handlers: dict[str, Handler]
    periodic: list[Periodic] = field(default_factory=list)
    max_attempts: int = 12
    lease: timedelta = timedelta(minutes=5)
    batch: int = 20
    poll_seconds: float = 1.0
    # Called once per loop turn, each in its own transaction (due process timers).
    ticks: list[Callable[[], object]] = field(default_factory=list)
    _wake: threading.Event = field(default_factory=threading.Event)

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(2**attempts, 3600))

    def wake(self) -> None:
        self._wake.set()

    def schedule_periodic(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        with UnitOfWork(self.session_factory) as uow:
            repo = OutboxRepository(uow.session)
            for p in self.periodic:
                slot = int(now.timestamp() // p.every.total_seconds())
                start = datetime.fromtimestamp(slot * p.every.total_seconds(), UTC)
                repo.enqueue_once(p.topic, {"slot": slot}, f"{p.topic}:{slot}", start)
            uow.commit()

    def run_once(self, now: datetime | None = None) -> int:
        """Handle the events due now; returns how many were handled (done or failed)."""
        now = now or utcnow()
        with UnitOfWork(self.session_factory) as uow:
            claimed = [
                (e.id, e.topic, dict(e.payload), e.attempts)
                for e in OutboxRepository(uow.session).claim_due(now, now + self.lease, self.batch)
            ]
            uow.commit()
        for event_id, topic, payload, attempts in claimed:
            self._handle(event_id, topic, payload, attempts, now + self.lease)
        return len(claimed)

    def _handle(
        self, event_id: Any, topic: str, payload: dict[str, Any], attempts: int, lease: datetime
    ) -> None:
        handler = self.handlers.get(topic)
        try:
            if handler is None:
                raise LookupError(f"no handler for topic {topic!r}")
            with UnitOfWork(self.session_factory) as uow:
                handler(uow, payload)
                if not OutboxRepository(uow.session).mark_done(event_id, lease, utcnow()):
                    # The lease ran out and another worker took the event: its run counts.
                    log.warning("outbox event %s: lease lost, result discarded", event_id)
                    uow.rollback()
                    return
                uow.commit()
        except Exception as e:
            log.warning(
                "outbox event %s (%s) failed on attempt %d: %s", event_id, topic, attempts, e
            )
            retry_at = None if attempts >= self.max_attempts else utcnow() + self.backoff(attempts)
            with UnitOfWork(self.session_factory) as uow:
                OutboxRepository(uow.session).mark_failed(
                    event_id, lease, "".join(traceback.format_exception_only(e)).strip(), retry_at
                )
                uow.commit()

    def run_forever(self, stop: threading.Event) -> None:
        log.info("outbox worker started (topics: %s)", ", ".join(sorted(self.handlers)))
        while not stop.is_set():
            try:
                self.schedule_periodic()
                while self.run_once() and not stop.is_set():
                    pass
                for tick in self.ticks:
                    tick()
            except Exception:
                log.exception("outbox worker loop failed; retrying")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
        log.info("outbox worker stopped")
