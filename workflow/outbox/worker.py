"""The outbox worker: runs side effects after commit, with retries and exponential backoff.

Each event is handled in its own transaction, and marked done in that same transaction, so a
handler's database changes and the 'done' mark commit together. Handlers must be idempotent: an
event may run again if a worker dies after its side effect but before commit.

Leases are short (a minute) and kept alive while an event is handled, so the events of a worker
that dies (kill -9, lost host) are taken up by another worker, or by the restarted one, within a
minute, while a slow handler (a large extraction, a time-stamp server) keeps its event as long
as it works on it.

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
    lease: timedelta = timedelta(seconds=60)
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
        lease = now + self.lease
        with UnitOfWork(self.session_factory) as uow:
            claimed = [
                (e.id, e.topic, dict(e.payload), e.attempts)
                for e in OutboxRepository(uow.session).claim_due(now, lease, self.batch)
            ]
            uow.commit()
        for event_id, topic, payload, attempts in claimed:
            self._handle(event_id, topic, payload, attempts, lease)
        return len(claimed)

    def _handle(
        self, event_id: Any, topic: str, payload: dict[str, Any], attempts: int, lease: datetime
    ) -> None:
        handler = self.handlers.get(topic)
        keeper = _LeaseKeeper(self, event_id, lease)
        if not keeper.start():
            # Claimed with the batch, but its lease ran out while the events before it were
            # handled, and another worker took it.
            log.info("outbox event %s: lease lost before it was handled", event_id)
            return
        try:
            if handler is None:
                raise LookupError(f"no handler for topic {topic!r}")
            with UnitOfWork(self.session_factory) as uow:
                handler(uow, payload)
                held = keeper.stop()
                if held is None or not OutboxRepository(uow.session).mark_done(
                    event_id, held, utcnow()
                ):
                    # The lease ran out and another worker took the event: its run counts.
                    log.warning("outbox event %s: lease lost, result discarded", event_id)
                    uow.rollback()
                    return
                uow.commit()
        except Exception as e:
            held = keeper.stop()
            log.warning(
                "outbox event %s (%s) failed on attempt %d: %s", event_id, topic, attempts, e
            )
            if held is None:
                return
            retry_at = None if attempts >= self.max_attempts else utcnow() + self.backoff(attempts)
            with UnitOfWork(self.session_factory) as uow:
                OutboxRepository(uow.session).mark_failed(
                    event_id, held, "".join(traceback.format_exception_only(e)).strip(), retry_at
                )
                uow.commit()
        finally:
            keeper.stop()

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


class _LeaseKeeper:
    """Holds one event's lease while it is handled: renews it when handling starts and then
    every third of the lease from a thread of its own, in transactions of its own (the
    handler's transaction may take longer than a lease)."""

    def __init__(self, worker: Worker, event_id: Any, lease: datetime) -> None:
        self.worker = worker
        self.event_id = event_id
        self.held: datetime | None = lease
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _renew(self) -> bool:
        """Move the lease forward; False when it was lost to another worker."""
        with self._lock:
            if self.held is None:
                return False
            new = utcnow() + self.worker.lease
            with UnitOfWork(self.worker.session_factory) as uow:
                if not OutboxRepository(uow.session).renew_lease(self.event_id, self.held, new):
                    self.held = None
                    return False
                uow.commit()
            self.held = new
            return True

    def start(self) -> bool:
        # Later events of a batch may have waited for the earlier ones: renew a lease that has
        # used up a third, so no handler starts on a lease about to run out.
        held = self.held
        if held is not None and held - utcnow() < self.worker.lease * 2 / 3 and not self._renew():
            return False
        self._thread = threading.Thread(target=self._keep, name="outbox-lease", daemon=True)
        self._thread.start()
        return True

    def _keep(self) -> None:
        every = self.worker.lease.total_seconds() / 3
        while not self._stop.wait(every):
            try:
                if not self._renew():
                    return
            except Exception:  # the database may be away for a moment; try again next turn
                log.warning("outbox event %s: lease not renewed", self.event_id, exc_info=True)

    def stop(self) -> datetime | None:
        """Stop renewing; the lease held now (None if it was lost)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            return self.held
