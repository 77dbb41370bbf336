"""The transactional outbox (invariant 4): events become visible with the commit that wrote them
and vanish with a rollback; the worker retries with backoff, gives up after max_attempts, commits
a handler's changes together with the 'done' mark, takes back events whose lease expired, and
schedules periodic jobs once per slot. On PostgreSQL, concurrent workers never share an event.

Each test builds its own Worker on the backend's session factory with handlers of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from tests.conftest import Backend
from workflow.audit.models import AuditEntry
from workflow.audit.repository import AuditRepository
from workflow.audit.service import verify_chain
from workflow.db import utcnow
from workflow.outbox.models import OutboxEvent
from workflow.outbox.worker import Handler, Periodic, Worker
from workflow.uow import UnitOfWork

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


# --- helpers -------------------------------------------------------------------------------


def make_worker(backend: Backend, handlers: dict[str, Handler], **kw: Any) -> Worker:
    return Worker(session_factory=backend.container.session_factory, handlers=handlers, **kw)


def enqueue(backend: Backend, topic: str, payload: dict[str, Any], **kw: Any) -> None:
    with backend.container.uow() as uow:
        uow.enqueue(topic, payload, **kw)
        uow.commit()


def events(backend: Backend, topic: str | None = None) -> list[OutboxEvent]:
    with backend.container.session_factory() as s:
        q = select(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.dedupe_key)
        if topic is not None:
            q = q.where(OutboxEvent.topic == topic)
        return list(s.execute(q).scalars())


def only_event(backend: Backend, topic: str) -> OutboxEvent:
    found = events(backend, topic)
    assert len(found) == 1, found
    return found[0]


def audit_actions(backend: Backend, action: str) -> list[str]:
    with backend.container.session_factory() as s:
        return list(
            s.execute(
                select(AuditEntry.object_id)
                .where(AuditEntry.action == action)
                .order_by(AuditEntry.seq)
            ).scalars()
        )


@pytest.fixture
def reader(backend: Backend) -> Iterator[Engine]:
    """A second, plain connection to the same database: sees only committed rows and never
    waits for the writer (SQLite WAL readers do not block)."""
    engine = create_engine(backend.settings.resolved_database_url)
    yield engine
    engine.dispose()


def committed_topics(reader: Engine) -> list[str]:
    with reader.connect() as conn:
        return list(conn.execute(select(OutboxEvent.topic)).scalars())


# --- commit and rollback ------------------------------------------------------------------


def test_event_is_visible_only_after_commit(backend: Backend, reader: Engine) -> None:
    assert events(backend) == [], "the seeded database starts with an empty outbox"
    seen: list[int] = []
    worker = make_worker(backend, {"test.ping": lambda _uow, p: seen.append(p["n"])})
    uow = backend.container.uow()
    try:
        uow.enqueue("test.ping", {"n": 1})
        uow.flush()  # the row is in the open transaction ...
        assert committed_topics(reader) == []  # ... and nobody else sees it
        if backend.is_postgres:  # (on SQLite a second writer would wait for the lock)
            assert worker.run_once() == 0
        assert seen == []
        uow.commit()
    finally:
        uow.close()
    assert committed_topics(reader) == ["test.ping"]
    assert worker.run_once() == 1
    assert seen == [1]
    assert only_event(backend, "test.ping").status == "done"


def test_event_is_dropped_on_rollback(backend: Backend, reader: Engine) -> None:
    seen: list[int] = []
    worker = make_worker(backend, {"test.ping": lambda _uow, p: seen.append(p["n"])})
    with backend.container.uow() as uow:
        uow.enqueue("test.ping", {"n": 1})
        uow.flush()
        uow.rollback()
    with pytest.raises(RuntimeError), backend.container.uow() as uow:  # an error in the request
        uow.enqueue("test.ping", {"n": 2})
        uow.flush()
        raise RuntimeError("request failed")
    assert committed_topics(reader) == []
    assert worker.run_once(now=FAR_FUTURE) == 0
    assert seen == []


# --- retries, backoff, dead letters ---------------------------------------------------------


def test_failing_handler_is_retried_with_backoff_then_dead(backend: Backend) -> None:
    calls: list[int] = []

    def boom(_uow: UnitOfWork, payload: dict[str, Any]) -> None:
        calls.append(payload["n"])
        raise RuntimeError("printer on fire")

    worker = make_worker(backend, {"test.fail": boom}, max_attempts=3)
    enqueue(backend, "test.fail", {"n": 1})

    previous = utcnow()
    for attempt in (1, 2):
        before = utcnow()
        assert worker.run_once(now=max(before, previous)) == 1
        after = utcnow()
        e = only_event(backend, "test.fail")
        assert (e.status, e.attempts) == ("pending", attempt)
        assert e.last_error is not None and "RuntimeError: printer on fire" in e.last_error
        assert e.processed_at is None
        # Backoff 2**attempts seconds from the failure: the event is due then, not earlier.
        wait = timedelta(seconds=2**attempt)
        assert before + wait <= e.available_at <= after + wait
        assert e.available_at > previous
        assert worker.run_once(now=e.available_at - timedelta(milliseconds=1)) == 0
        previous = e.available_at

    assert worker.run_once(now=previous) == 1  # the third and last attempt
    e = only_event(backend, "test.fail")
    assert (e.status, e.attempts) == ("dead", 3)
    assert e.last_error is not None and "printer on fire" in e.last_error
    assert worker.run_once(now=FAR_FUTURE) == 0  # dead events are never picked up again
    assert calls == [1, 1, 1]
    assert worker.backoff(30) == timedelta(hours=1)  # capped


def test_event_without_handler_fails_like_a_failing_handler(backend: Backend) -> None:
    worker = make_worker(backend, {}, max_attempts=1)
    enqueue(backend, "test.nobody", {})
    assert worker.run_once() == 1
    e = only_event(backend, "test.nobody")
    assert (e.status, e.attempts) == ("dead", 1)
    assert e.last_error is not None and "no handler" in e.last_error


def test_later_success_marks_done(backend: Backend) -> None:
    calls: list[int] = []

    def flaky(_uow: UnitOfWork, payload: dict[str, Any]) -> None:
        calls.append(payload["n"])
        if len(calls) < 3:
            raise ConnectionError("peer unreachable")

    worker = make_worker(backend, {"test.flaky": flaky}, max_attempts=5)
    enqueue(backend, "test.flaky", {"n": 7})
    now = utcnow()
    for _ in range(2):
        assert worker.run_once(now=now) == 1
        e = only_event(backend, "test.flaky")
        assert e.status == "pending" and e.last_error and "peer unreachable" in e.last_error
        now = e.available_at
    before = utcnow()
    assert worker.run_once(now=now) == 1
    e = only_event(backend, "test.flaky")
    assert (e.status, e.attempts, e.last_error) == ("done", 3, None)
    assert e.processed_at is not None and before <= e.processed_at <= utcnow()
    assert worker.run_once(now=FAR_FUTURE) == 0
    assert calls == [7, 7, 7]


# --- a handler's changes commit with the 'done' mark ------------------------------------------


def test_handler_changes_and_done_mark_commit_together(backend: Backend) -> None:
    enqueue(backend, "test.parked", {}, dedupe_key="taken", available_at=FAR_FUTURE)
    clash = {"on": True}
    seen_at_commit: list[tuple[str, list[str]]] = []

    def snapshot() -> None:  # what the database holds the moment the handler's work commits
        seen_at_commit.append(
            (only_event(backend, "test.effect").status, audit_actions(backend, "test.effect"))
        )

    def effect(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        uow.audit("test.effect", "outbox_test", payload["n"])
        # A follow-up event; the first time its dedupe key clashes, so the commit fails.
        uow.enqueue(
            "test.follow_up",
            payload,
            available_at=FAR_FUTURE,
            dedupe_key="taken" if clash["on"] else f"follow-up:{payload['n']}",
        )
        uow.after_commit(snapshot)

    worker = make_worker(backend, {"test.effect": effect})
    enqueue(backend, "test.effect", {"n": 5})

    assert worker.run_once() == 1
    e = only_event(backend, "test.effect")
    assert (e.status, e.attempts) == ("pending", 1)
    assert e.last_error is not None and "IntegrityError" in e.last_error
    assert audit_actions(backend, "test.effect") == []  # nothing of the handler survived
    assert events(backend, "test.follow_up") == []

    clash["on"] = False
    assert worker.run_once(now=e.available_at) == 1
    assert worker.run_once(now=e.available_at) == 0  # done: the effect is not repeated
    assert worker.run_once(now=e.available_at + timedelta(days=1)) == 0
    assert only_event(backend, "test.effect").status == "done"
    assert audit_actions(backend, "test.effect") == ["5"]
    assert [f.payload for f in events(backend, "test.follow_up")] == [{"n": 5}]
    # One commit made the effect and the 'done' mark visible together: no moment at which a
    # dying worker would leave the effect done but the event due again.
    assert seen_at_commit == [("done", ["5"])]
    with backend.container.uow() as uow:
        assert verify_chain(AuditRepository(uow.session)).ok


# --- leases ---------------------------------------------------------------------------------


class WorkerKilled(BaseException):
    """The process dies in the middle of a handler (not an error the worker could record)."""


def test_event_with_expired_lease_is_picked_up_again(backend: Backend) -> None:
    calls: list[str] = []

    def dies_first_time(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        calls.append(payload["id"])
        if len(calls) == 1:
            raise WorkerKilled
        uow.audit("test.delivered", "outbox_test", payload["id"])

    worker = make_worker(backend, {"test.deliver": dies_first_time}, lease=timedelta(minutes=5))
    enqueue(backend, "test.deliver", {"id": "a"})
    t0 = utcnow()
    with pytest.raises(WorkerKilled):
        worker.run_once(now=t0)
    e = only_event(backend, "test.deliver")
    assert (e.status, e.attempts) == ("running", 1)
    assert e.available_at == t0 + worker.lease
    assert audit_actions(backend, "test.delivered") == []

    other = make_worker(backend, {"test.deliver": dies_first_time})
    assert other.run_once(now=t0 + worker.lease - timedelta(seconds=1)) == 0  # lease still held
    assert other.run_once(now=t0 + worker.lease + timedelta(seconds=1)) == 1
    e = only_event(backend, "test.deliver")
    assert (e.status, e.attempts) == ("done", 2)
    assert calls == ["a", "a"]
    assert audit_actions(backend, "test.delivered") == ["a"]


# --- periodic jobs --------------------------------------------------------------------------


def test_schedule_periodic_creates_one_event_per_slot(backend: Backend) -> None:
    slots: list[int] = []
    every = timedelta(minutes=15)

    def tick(_uow: UnitOfWork, payload: dict[str, Any]) -> None:
        slots.append(payload["slot"])

    def worker() -> Worker:
        return make_worker(backend, {"test.tick": tick}, periodic=[Periodic("test.tick", every)])

    now = datetime(2026, 3, 2, 10, 7, 30, tzinfo=UTC)
    slot = int(now.timestamp() // every.total_seconds())
    a, b = worker(), worker()
    a.schedule_periodic(now)
    a.schedule_periodic(now)
    b.schedule_periodic(now + timedelta(minutes=7))  # another worker, same slot
    e = only_event(backend, "test.tick")
    assert e.dedupe_key == f"test.tick:{slot}"
    assert e.payload == {"slot": slot}
    assert e.available_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    b.schedule_periodic(now + every)  # the next slot
    assert len(events(backend, "test.tick")) == 2
    assert a.run_once(now=now + every) == 2
    a.schedule_periodic(now)  # a handled slot is not scheduled again
    assert [e.status for e in events(backend, "test.tick")] == ["done", "done"]
    assert a.run_once(now=FAR_FUTURE) == 0
    assert sorted(slots) == [slot, slot + 1]


# --- concurrent workers (PostgreSQL: FOR UPDATE SKIP LOCKED) ----------------------------------


def test_concurrent_workers_never_claim_the_same_event(pg_backend: Backend) -> None:
    n_events = 40
    lock = threading.Lock()
    handled: dict[str, list[int]] = {"a": [], "b": []}

    def recorder(name: str) -> Handler:
        def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
            with lock:
                handled[name].append(payload["n"])
            uow.audit("test.handled", "outbox_test", payload["n"])

        return handle

    with pg_backend.container.uow() as uow:
        for n in range(n_events):
            uow.enqueue("test.job", {"n": n})
        uow.commit()

    workers = [make_worker(pg_backend, {"test.job": recorder(name)}, batch=3) for name in handled]
    barrier = threading.Barrier(len(workers))

    def claim_together(w: Worker) -> int:
        barrier.wait(timeout=30)  # both claim at the same moment
        return w.run_once()

    with ThreadPoolExecutor(len(workers)) as pool:
        for _round in range(n_events):
            counts = list(pool.map(claim_together, workers))
            if sum(counts) == 0:
                break
        else:
            pytest.fail("the workers never ran out of events")

    everything = handled["a"] + handled["b"]
    assert sorted(everything) == list(range(n_events)), handled  # each exactly once
    evs = events(pg_backend, "test.job")
    assert {(e.status, e.attempts) for e in evs} == {("done", 1)}  # nobody claimed one twice
    assert sorted(int(x) for x in audit_actions(pg_backend, "test.handled")) == list(
        range(n_events)
    )
    with pg_backend.container.uow() as uow:
        assert verify_chain(AuditRepository(uow.session)).ok
    with pg_backend.container.session_factory() as s:
        assert (
            s.execute(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.status != "done")
            ).scalar_one()
            == 0
        )


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_result(backend: Backend) -> None:
    """A handler that outlives its lease: another worker took the event and finished it; the
    first one's late 'done' or 'failed' must not count."""
    from datetime import timedelta

    from workflow.db import utcnow
    from workflow.outbox.models import OutboxEvent
    from workflow.outbox.repository import OutboxRepository

    with backend.container.uow() as uow:
        uow.enqueue("test.slow", {"n": 1})
        uow.commit()
    now = utcnow()
    first_lease = now + timedelta(minutes=5)
    with backend.container.uow() as uow:
        (event,) = OutboxRepository(uow.session).claim_due(now, first_lease, 10)
        event_id = event.id
        uow.commit()
    later = first_lease + timedelta(seconds=1)
    second_lease = later + timedelta(minutes=5)
    with backend.container.uow() as uow:
        (again,) = OutboxRepository(uow.session).claim_due(later, second_lease, 10)
        assert again.id == event_id
        uow.commit()
    with backend.container.uow() as uow:
        repo = OutboxRepository(uow.session)
        assert repo.mark_done(event_id, first_lease, later) is False
        repo.mark_failed(event_id, first_lease, "late failure", None)
        assert repo.mark_done(event_id, second_lease, later) is True
        uow.commit()
    with backend.container.uow() as uow:
        row = uow.session.get(OutboxEvent, event_id)
        assert row is not None
        assert (row.status, row.last_error) == ("done", None)


def test_a_slow_handler_keeps_its_event_past_the_lease(backend: Backend) -> None:
    """The lease is renewed while the handler works: another worker polling meanwhile does not
    take the event, and it runs once."""
    lease = timedelta(seconds=0.6)
    other = make_worker(backend, {"test.slow": lambda uow, p: None}, lease=lease)
    taken_by_other: list[int] = []
    calls: list[str] = []

    def slow(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        calls.append(payload["id"])
        for _ in range(4):  # 2 s: more than three leases
            time.sleep(0.5)
            taken_by_other.append(other.run_once())
        uow.audit("test.delivered", "outbox_test", payload["id"])

    worker = make_worker(backend, {"test.slow": slow}, lease=lease)
    enqueue(backend, "test.slow", {"id": "a"})
    assert worker.run_once() == 1
    assert taken_by_other == [0, 0, 0, 0]
    assert calls == ["a"]
    e = only_event(backend, "test.slow")
    assert (e.status, e.attempts) == ("done", 1)


def test_a_dead_workers_batch_is_taken_up_within_a_minute(backend: Backend) -> None:
    """A worker killed in the middle of a batch leaves every event it claimed; the restarted
    worker takes them all a minute later (the lease), not minutes later."""
    handled: list[str] = []

    def dies(_uow: UnitOfWork, payload: dict[str, Any]) -> None:
        raise WorkerKilled

    def works(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        handled.append(payload["id"])

    for i in range(5):
        enqueue(backend, "test.deliver", {"id": str(i)})
    t0 = utcnow()
    with pytest.raises(WorkerKilled):
        make_worker(backend, {"test.deliver": dies}).run_once(now=t0)
    restarted = make_worker(backend, {"test.deliver": works})
    assert restarted.run_once(now=t0 + timedelta(seconds=30)) == 0  # still leased
    assert restarted.run_once(now=t0 + timedelta(seconds=61)) == 5
    assert sorted(handled) == ["0", "1", "2", "3", "4"]
