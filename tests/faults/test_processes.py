"""kill -9 of the API (every `ezd serve` process: the uvicorn supervisor and its workers) and,
separately, of the outbox worker (`ezd worker`), in the middle of a registration load."""

from __future__ import annotations

import signal
import time
from typing import Any

from sqlalchemy import text

from tests.faults.conftest import System
from tests.faults.load import Load, Outcome, summarize

ROUNDS = 2


def test_api_killed_during_registration_load(system: System, record: dict[str, Any]) -> None:
    system.login("sp58", "sp12")
    load = Load(system.base_url, system.tokens, clients=6).start()
    load.wait_for_acks(15, load.t0, 60)
    rounds: list[dict[str, Any]] = []
    cuts: list[list[Outcome]] = []
    for _ in range(ROUNDS):
        load.wait_in_flight(3)
        t_kill = time.monotonic()
        killed = system.api.kill(signal.SIGKILL)
        time.sleep(1.0)
        restart_s = system.start_api()
        t_up = time.monotonic()
        first_ack = load.wait_for_acks(15, t_up, 60)
        cut = [o for o in load.since(0) if o.started < t_kill < o.ended]
        rounds.append(
            {
                "api_pids_killed": len(killed),
                "requests_in_flight_at_kill": len(cut),
                "of_which_committed_anyway": None,  # filled in below
                "api_restart_to_healthy_s": round(restart_s, 1),
                "kill_to_first_ack_s": round(first_ack - t_kill, 1),
            }
        )
        cuts.append(cut)
        load.wait_for_acks(30, t_up, 60)
    outcomes = load.stop()
    figures = summarize(outcomes)
    figures.update(system.check(outcomes))
    # A request cut off by the kill was not acknowledged; it may still have committed (the
    # COMMIT reached PostgreSQL before the process died): then it is whole, never half.
    with system.db.connect() as c:
        subjects = {
            r[0]
            for r in c.execute(
                text("SELECT subject FROM incoming_items WHERE subject LIKE 'Test awarii %'")
            )
        }
    for r, cut in zip(rounds, cuts, strict=True):
        r["of_which_committed_anyway"] = sum(1 for o in cut if f"Test awarii {o.tag}" in subjects)
    figures["rounds"] = rounds
    record.update(figures)
    assert figures["acknowledged"] > 60
    # only the kill itself may cost answers: refused connections and cut-off requests
    assert set(figures["by_answer"]) <= {"201 created", "no answer ConnectError",
                                         "no answer RemoteProtocolError",
                                         "no answer ReadError"}, figures["by_answer"]  # fmt: skip


def test_worker_killed_during_registration_load(system: System, record: dict[str, Any]) -> None:
    system.login("sp58", "sp12")
    load = Load(system.base_url, system.tokens, clients=6).start()
    load.wait_for_acks(15, load.t0, 60)
    rounds = []
    for _ in range(ROUNDS):
        with system.db.connect() as c:
            running = c.execute(
                text("SELECT count(*) FROM outbox_events WHERE status = 'running'")
            ).scalar()
        t_kill = time.monotonic()
        killed = system.worker.kill(signal.SIGKILL)
        time.sleep(2.0)
        system.worker.start()
        rounds.append({"worker_pids_killed": len(killed), "events_running_before_kill": running})
        load.wait_for_acks(20, t_kill, 60)
    outcomes = load.stop()
    figures = summarize(outcomes)
    figures.update(system.check(outcomes))
    figures["rounds"] = rounds
    record.update(figures)
    assert figures["by_answer"] == {"201 created": figures["requests"]}, figures["by_answer"]
