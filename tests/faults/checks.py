"""The invariants a fault must not break, checked against the real stores (DESIGN.md):

1. nothing acknowledged is lost: every 201 is a committed item with its document, whose blob
   is in S3 with the digest of the bytes the client sent; no row references a missing blob;
2. numbers are gapless: per counter (unit, series, year) the numbers in use are exactly
   1..last_value, so a failed or killed request consumed none;
3. the audit chain verifies (`ezd audit verify`);
4. the outbox drains (no pending, failed or dead events; nothing left running after its lease).
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from tests.faults.load import Outcome
from tests.faults.services import EZD, ROOT


def check_acknowledged(db: Engine, outcomes: list[Outcome]) -> int:
    """Every acknowledged registration is there, as acknowledged; returns how many."""
    acked = [o for o in outcomes if o.acknowledged]
    with db.connect() as c:
        rows = {
            str(r.id): r
            for r in c.execute(
                text(
                    "SELECT i.id, i.rpw_number, c.reference, "
                    "  array_agg(b.sha256) FILTER (WHERE b.sha256 IS NOT NULL) AS digests "
                    "FROM incoming_items i LEFT JOIN cases c ON c.id = i.case_id "
                    "LEFT JOIN documents d ON d.incoming_item_id = i.id "
                    "LEFT JOIN document_versions v ON v.document_id = d.id "
                    "LEFT JOIN blobs b ON b.id = v.blob_id GROUP BY i.id, c.reference"
                )
            )
        }
    lost = [o.rpw_number for o in acked if o.item_id not in rows]
    assert not lost, f"{len(lost)} acknowledged registrations are missing: {lost[:10]}"
    for o in acked:
        row = rows[str(o.item_id)]
        assert row.rpw_number == o.rpw_number, (o, row)
        assert row.reference == o.case_reference, (o, row)
        assert list(row.digests or []) == [o.sha256], f"{o.rpw_number}: stored {row.digests}"
    return len(acked)


def check_gapless(db: Engine) -> dict[str, int]:
    """RPW numbers and case numbers: per counter, exactly 1..last_value are in use."""
    with db.connect() as c:
        counters = {
            (str(r.unit_id), r.series, r.year): r.last_value
            for r in c.execute(
                text("SELECT unit_id, series, year, last_value FROM number_counters")
            )
        }
        used: dict[tuple[str, str, int], list[int]] = defaultdict(list)
        for r in c.execute(text("SELECT unit_id, rpw_year, rpw_seq FROM incoming_items")):
            used[(str(r.unit_id), "rpw", r.rpw_year)].append(r.rpw_seq)
        for r in c.execute(
            text(
                "SELECT c.unit_id, coalesce(d.code, '') AS dept, c.jrwa_symbol, c.year, c.seq "
                "FROM cases c LEFT JOIN departments d ON d.id = c.department_id"
            )
        ):
            used[(str(r.unit_id), f"case:{r.dept}:{r.jrwa_symbol}", r.year)].append(r.seq)
    checked = {"rpw_numbers": 0, "case_numbers": 0}
    for key, seqs in used.items():
        last = counters.get(key)
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), f"{key}: gaps or duplicates"
        assert last == len(seqs), f"{key}: counter at {last} but {len(seqs)} numbers in use"
        checked["rpw_numbers" if key[1] == "rpw" else "case_numbers"] += len(seqs)
    for key, last in counters.items():
        if key[1] == "rpw" or key[1].startswith("case:"):
            assert key in used or last == 0, f"{key}: counter at {last}, no number in use"
    return checked


def check_blobs(db: Engine, s3: Any, bucket: str, prefix: str) -> int:
    """Every blob row's object is in S3 with the row's size and SHA-256 (read back in full)."""
    with db.connect() as c:
        blobs = c.execute(
            text("SELECT key, sha256, size FROM blobs WHERE disposed_at IS NULL")
        ).all()
    bad = []
    for b in blobs:
        try:
            resp = s3.get_object(bucket, prefix + b.key)
            try:
                data = resp.read()
            finally:
                resp.close()
                resp.release_conn()
        except Exception as e:  # missing object: NoSuchKey
            bad.append(f"{b.key}: {getattr(e, 'code', e)}")
            continue
        if len(data) != b.size or hashlib.sha256(data).hexdigest() != b.sha256:
            bad.append(f"{b.key}: digest or size differs")
    assert not bad, f"{len(bad)} of {len(blobs)} blobs missing or damaged: {bad[:10]}"
    return len(blobs)


def ezd_cli(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EZD), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def check_audit(env: dict[str, str]) -> str:
    done = ezd_cli(env, "audit", "verify")
    assert done.returncode == 0, f"ezd audit verify: {done.stdout} {done.stderr[-2000:]}"
    return done.stdout.strip()


@dataclass
class OutboxState:
    pending: int
    running_expired: int
    running_leased: int
    dead: int
    failed_attempts: int  # events that needed more than one attempt (done or not)
    done: int

    @property
    def drained(self) -> bool:
        return not (self.pending or self.running_expired or self.running_leased or self.dead)


def outbox_state(db: Engine) -> OutboxState:
    with db.connect() as c:
        r = c.execute(
            text(
                "SELECT "
                " count(*) FILTER (WHERE status = 'pending'),"
                " count(*) FILTER (WHERE status = 'running' AND available_at <= now()),"
                " count(*) FILTER (WHERE status = 'running' AND available_at > now()),"
                " count(*) FILTER (WHERE status = 'dead'),"
                " count(*) FILTER (WHERE attempts > 1),"
                " count(*) FILTER (WHERE status = 'done') "
                # a job scheduled for later (timer, periodic) and never tried is not a backlog
                "FROM outbox_events "
                "WHERE NOT (status = 'pending' AND attempts = 0 AND available_at > now())"
            )
        ).one()
    return OutboxState(*r)


def wait_outbox_drained(db: Engine, timeout: float) -> tuple[float, OutboxState]:
    """Poll until no event is due, retrying, running or dead; returns the seconds it took and
    the final state. The events a killed worker had claimed (or one that could not record a
    failure while the database was gone) come back when their lease ends: a minute at most
    (`Worker.lease`, renewed while a live worker handles an event)."""
    t0 = time.monotonic()
    while True:
        state = outbox_state(db)
        if state.drained:
            return time.monotonic() - t0, state
        if time.monotonic() - t0 > timeout:
            with db.connect() as c:
                sample = c.execute(
                    text(
                        "SELECT topic, status, attempts, available_at, left(last_error, 300) "
                        "FROM outbox_events WHERE status <> 'done' LIMIT 5"
                    )
                ).all()
            raise AssertionError(f"outbox not drained after {timeout:.0f} s: {state} {sample}")
        time.sleep(0.5)


def check_all(
    db: Engine, env: dict[str, str], s3: Any, bucket: str, prefix: str, outcomes: list[Outcome]
) -> dict[str, Any]:
    """Every invariant after a fault, once the worker has run; returns the figures."""
    drain_s, state = wait_outbox_drained(db, 420)
    figures: dict[str, Any] = {
        "outbox_drain_s": round(drain_s, 1),
        "outbox_events_done": state.done,
        "outbox_events_retried": state.failed_attempts,
        "acknowledged_present": check_acknowledged(db, outcomes),
    }
    figures.update(check_gapless(db))
    figures["blobs_verified"] = check_blobs(db, s3, bucket, prefix)
    figures["audit"] = check_audit(env)
    with db.connect() as c:
        figures["items_in_db"] = c.execute(text("SELECT count(*) FROM incoming_items")).scalar()
    return figures
