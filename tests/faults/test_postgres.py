"""PostgreSQL crashed (kill -9 of the postmaster, then started) and restarted (`pg_ctl restart
-m fast`) during a registration load: the API and the worker reconnect by themselves (the pool
pings a connection before handing it out), refuse meanwhile with 503 `database_unavailable`,
and the next requests succeed."""

from __future__ import annotations

import time
from typing import Any

from tests.faults.conftest import System
from tests.faults.load import Load, Outcome, summarize

# answers an API may give while its database is gone: the clear refusal, nothing else
DOWN_ANSWERS = {"503 database_unavailable"}


def test_postgres_restarted_during_registration_load(
    system: System, record: dict[str, Any]
) -> None:
    pg = system.servers.pg
    system.login("sp58", "sp12")
    load = Load(system.base_url, system.tokens, clients=6).start()
    load.wait_for_acks(15, load.t0, 60)
    phases: dict[str, dict[str, Any]] = {}
    settled: list[Outcome] = []
    for phase in ("kill -9 postmaster", "pg_ctl restart -m fast"):
        t_fault = time.monotonic()
        load.wait_in_flight(3)
        if phase.startswith("kill"):
            pg.kill9()
            time.sleep(3)
            took = pg.start()
        else:
            took = pg.restart()
        t_up = time.monotonic()
        first_ack = load.wait_for_acks(15, t_up, 60)
        time.sleep(3)
        after = load.since(first_ack + 1.0)
        settled += after
        phases[phase] = {
            "postgres_down_s": round(t_up - t_fault, 1),
            "postgres_start_s": round(took, 1),
            "up_to_first_ack_s": round(first_ack - t_up, 1),
            "answers_while_down": summarize([o for o in load.since(t_fault) if o.ended <= t_up]),
            "answers_from_1s_after_first_ack": summarize(after),
        }
    outcomes = load.stop()
    figures = summarize(outcomes)
    figures["phases"] = phases
    figures.update(system.check(outcomes))  # the worker reconnected too: the outbox drains
    record.update(figures)

    for phase, f in phases.items():
        assert set(f["answers_while_down"]["by_answer"]) <= DOWN_ANSWERS | {"201 created"}, phase
        assert f["up_to_first_ack_s"] < 30, phase
    assert settled and all(o.acknowledged for o in settled), summarize(settled)
    assert not [o for o in outcomes if o.status is None or o.status == 500]
