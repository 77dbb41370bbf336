"""S3 (SeaweedFS) down during a registration load: killed (connections refused) and hung
(SIGSTOP: connections accepted, never answered). Registration must answer 503
`storage_failed` soon, write nothing half (no row without its blob, no number taken: the
numbers are taken after the files are stored, DESIGN.md invariants 1 and 2), and work again as
soon as S3 is back."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from storage.s3 import S3BlobStore
from tests.faults.conftest import S3_PREFIX, Servers, System
from tests.faults.load import Load, Outcome, summarize
from tests.faults.services import S3_ACCESS_KEY, S3_BUCKET, S3_SECRET_KEY
from workflow.ports import BlobStoreUnavailable, SpooledUpload

# The longest a registration may take to refuse while S3 hangs: the PUT's read timeout plus
# the rollback's attempt to delete what the PUT may have left, with a margin for a loaded
# 2-core machine.
HUNG_ANSWER_BOUND_S = 45.0


def _answered_between(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    return [o for o in outcomes if o.started >= start and o.ended <= end]


def test_s3_killed_during_registration_load(system: System, record: dict[str, Any]) -> None:
    s3 = system.servers.s3
    system.login("sp58", "sp12")
    load = Load(system.base_url, system.tokens, clients=6).start()
    load.wait_for_acks(15, load.t0, 60)
    load.wait_in_flight(3)
    t_down = time.monotonic()
    s3.kill(signal.SIGKILL)
    time.sleep(8)
    t_restart = time.monotonic()
    restart_s = s3.start()
    t_up = time.monotonic()
    first_ack = load.wait_for_acks(15, t_up, 90)
    outcomes = load.stop()

    during = _answered_between(outcomes, t_down + 0.5, t_restart)
    figures = summarize(outcomes)
    figures["while_down"] = summarize(during)
    figures["s3_down_s"] = round(t_restart - t_down, 1)
    figures["s3_restart_s"] = round(restart_s, 1)
    figures["s3_up_to_first_ack_s"] = round(first_ack - t_up, 1)
    figures.update(system.check(outcomes))
    record.update(figures)

    assert during, "no registration was answered while S3 was down"
    assert {o.label for o in during} == {"503 storage_failed"}, figures["while_down"]
    assert not [o for o in outcomes if o.status is None or (o.status >= 500 and o.status != 503)]
    # nothing was taken by a refused registration: the items in the database are exactly the
    # acknowledged ones (plus the demo's), and check() found their numbers gapless
    assert figures["items_in_db"] - figures["acknowledged"] == system.servers.demo_items


def test_s3_hung_during_registration_load(system: System, record: dict[str, Any]) -> None:
    s3 = system.servers.s3
    assert s3.proc is not None
    system.login("sp58", "sp12")
    load = Load(system.base_url, system.tokens, clients=6).start()
    load.wait_for_acks(15, load.t0, 60)
    load.wait_in_flight(3)
    t_stop = time.monotonic()
    os.killpg(s3.proc.pid, signal.SIGSTOP)
    try:
        # long enough for requests sent after the stop to be refused while it lasts
        time.sleep(HUNG_ANSWER_BOUND_S + 5)
    finally:
        t_cont = time.monotonic()
        os.killpg(s3.proc.pid, signal.SIGCONT)
    first_ack = load.wait_for_acks(15, t_cont, 90)
    outcomes = load.stop()

    during = _answered_between(outcomes, t_stop + 0.5, t_cont)
    figures = summarize(outcomes)
    figures["while_hung"] = summarize(during)
    figures["s3_hung_s"] = round(t_cont - t_stop, 1)
    figures["s3_resumed_to_first_ack_s"] = round(first_ack - t_cont, 1)
    figures.update(system.check(outcomes))
    record.update(figures)

    assert during, (
        f"no registration sent while S3 hung was answered within {t_cont - t_stop:.0f} s: "
        f"{summarize(load.since(t_stop))}"
    )
    assert {o.label for o in during} == {"503 storage_failed"}, figures["while_hung"]
    slowest = max(o.ended - o.started for o in outcomes if o.status is not None)
    assert slowest < HUNG_ANSWER_BOUND_S, f"a registration took {slowest:.0f} s"
    assert figures["items_in_db"] - figures["acknowledged"] == system.servers.demo_items


def test_s3_put_to_hung_server_fails_fast(servers: Servers, tmp_path: Path) -> None:
    """The adapter alone: a PUT to an S3 that accepts connections but never answers raised
    BlobStoreUnavailable only after four 60-second read timeouts (241 s measured)."""
    s3 = servers.s3
    assert s3.proc is not None
    store = S3BlobStore(
        s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET, secure=False, prefix=S3_PREFIX
    )
    store.check()
    data = os.urandom(10_000)
    path = tmp_path / "scan.pdf"
    path.write_bytes(data)
    up = SpooledUpload(
        path=path,
        file_name="scan.pdf",
        declared_type=None,
        detected_type="application/pdf",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
    )
    store.put(f"hung-test/{os.getpid()}-a", up)
    os.killpg(s3.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        try:
            store.put(f"hung-test/{os.getpid()}-b", up)
            raised = False
        except BlobStoreUnavailable:
            raised = True
        took = time.monotonic() - t0
    finally:
        os.killpg(s3.proc.pid, signal.SIGCONT)
    assert raised
    assert took < 25, f"PUT to a hung S3 took {took:.0f} s to fail"
    store.put(f"hung-test/{os.getpid()}-c", up)  # and works again at once
