"""Elasticsearch paused (SIGSTOP) and then killed during a registration load: registration does
not notice (indexing is an outbox side effect), and once Elasticsearch is back the worker's
retries make the index complete again: `ezd search verify` finds nothing missing or stale."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from tests.faults.checks import ezd_cli
from tests.faults.conftest import System
from tests.faults.load import Load, summarize


def test_elasticsearch_down_during_registration_load(
    system: System, record: dict[str, Any]
) -> None:
    es = system.servers.es
    system.login("sp58", "sp12")
    load = Load(system.base_url, system.tokens, clients=6, rate=3.0).start()
    load.wait_for_acks(15, load.t0, 60)
    t_stop = time.monotonic()
    es.signal(signal.SIGSTOP)  # hung: connections accepted, nothing answered
    time.sleep(8)
    es.signal(signal.SIGKILL)  # then gone
    time.sleep(5)
    restart_s = es.start()
    t_up = time.monotonic()
    load.wait_for_acks(10, t_up, 60)
    outcomes = load.stop()

    figures = summarize(outcomes)
    figures["answers_while_es_down"] = summarize(
        [o for o in outcomes if o.started >= t_stop and o.ended <= t_up]
    )
    figures["es_down_s"] = round(t_up - t_stop, 1)
    figures["es_restart_s"] = round(restart_s, 1)
    t_check = time.monotonic()
    figures.update(system.check(outcomes))  # waits for the outbox: the retries reindex
    figures["es_up_to_outbox_drained_s"] = round(time.monotonic() - t_up, 1)
    done = ezd_cli(system.env, "search", "verify")
    verdict = json.loads(done.stdout.splitlines()[0])
    figures["search_verify"] = verdict
    figures["search_verify_after_drain_s"] = round(time.monotonic() - t_check, 1)
    record.update(figures)

    assert figures["by_answer"] == {"201 created": figures["requests"]}, figures["by_answer"]
    assert done.returncode == 0, done.stdout
    assert verdict["missing"] == 0 and verdict["stale"] == 0 and verdict["extra"] == 0
    assert verdict["checked"] >= figures["acknowledged"]
