"""Fault tests: kill or stop the API, the worker, PostgreSQL, S3 and Elasticsearch during a
registration load and check the invariants afterwards (tests/faults/README.md).

They run only with EZD_FAULTS=1 (`make faults`): the default `make test` run does not collect
them, because they take minutes and start servers of their own. The whole package shares one
isolated PostgreSQL, SeaweedFS and Elasticsearch (tests/faults/services.py) started for the
session; each test gets a fresh database (a copy of a migrated, demo-seeded template), an ezd
API and worker of its own, and a search alias of its own.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.faults.checks import check_all, ezd_cli
from tests.faults.load import Outcome
from tests.faults.services import (
    ROOT,
    S3_ACCESS_KEY,
    S3_BUCKET,
    S3_SECRET_KEY,
    Elastic,
    EzdProcess,
    Postgres,
    Seaweed,
    free_port,
    http_ok,
    wait_for,
)

ENABLED = os.environ.get("EZD_FAULTS", "") == "1"
if not ENABLED:
    # `make test` collects tests/: skip this package's tests without importing them
    collect_ignore_glob = ["test_*.py"]

S3_PREFIX = "faults/"
TEMPLATE_DB = "ezd_template"
_numbers = itertools.count(1)


@dataclass
class Servers:
    base: Path
    pg: Postgres
    s3: Seaweed
    es: Elastic
    startup_s: dict[str, float]
    demo_items: int = 0  # incoming items the demo seeds into the template

    def env(self, database: str, alias: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("EZD_")}
        return {
            **keep,
            "EZD_DATABASE_URL": self.pg.url(database),
            "EZD_DATABASE_POOL_SIZE": "5",
            "EZD_S3_ENDPOINT": self.s3.endpoint,
            "EZD_S3_ACCESS_KEY": S3_ACCESS_KEY,
            "EZD_S3_SECRET_KEY": S3_SECRET_KEY,
            "EZD_S3_BUCKET": S3_BUCKET,
            "EZD_S3_SECURE": "false",
            "EZD_S3_PREFIX": S3_PREFIX,
            "EZD_SEARCH_URL": self.es.url,
            "EZD_SEARCH_INDEX": alias,
            "EZD_SEARCH_TIMEOUT_SECONDS": "5",
            "EZD_DATA_DIR": str(self.base / "data"),
            "EZD_EMBEDDED_WORKER": "false",
            "EZD_WORKER_POLL_SECONDS": "0.5",
            "EZD_LOG_LEVEL": "warning",
            "EZD_OCR_ENABLED": "false",
            "EZD_KEY_ENCRYPTION_KEY": base64.b64encode(
                b"ezd fault tests: not a secret!!!"
            ).decode(),
        }

    def ensure_up(self) -> None:
        """After a test: whatever it stopped runs again (its own servers only)."""
        if self.pg.postmaster_pid() is None:
            self.pg.start()
        if not self.s3.alive():
            self.s3.start()
        pid = self.es.pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        else:
            self.es.start()


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    base = Path(tempfile.mkdtemp(prefix="ezd-faults-"))
    base.chmod(0o755)  # the postgres and ezd-es users work below it
    pg, s3, es = Postgres(base), Seaweed(base), Elastic(base)
    startup: dict[str, float] = {}
    try:
        # Elasticsearch takes the longest (~40 s on 2 cores): it starts while the rest is made
        es.configure()
        es_started: dict[str, Any] = {}
        es_thread = threading.Thread(target=lambda: es_started.update(s=es.start()), daemon=True)
        es_thread.start()
        t0 = time.monotonic()
        pg.init()
        startup["postgresql"] = round(time.monotonic() - t0, 1)
        startup["s3"] = round(s3.start(), 1)
        s = Servers(base, pg, s3, es, startup)
        t0 = time.monotonic()
        _make_template(s)
        startup["template_database"] = round(time.monotonic() - t0, 1)
        es_thread.join(240)
        assert "s" in es_started, "Elasticsearch did not start (see its logs)"
        startup["elasticsearch"] = round(es_started["s"], 1)
        yield s
    finally:
        es.stop()
        s3.stop()
        pg.stop()
        if os.environ.get("EZD_FAULTS_KEEP") != "1":
            shutil.rmtree(base, ignore_errors=True)


def _make_template(s: Servers) -> None:
    """A migrated database with the demo organisation (its search events still pending, so
    every test's worker indexes them into that test's alias)."""
    admin = create_engine(s.pg.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {TEMPLATE_DB}"))
    admin.dispose()
    env = s.env(TEMPLATE_DB, "ezd-faults-template")
    for cmd in (["db", "upgrade"], ["demo", "--no-serve", "--force"]):
        done = ezd_cli(env, *cmd, timeout=300)
        assert done.returncode == 0, f"ezd {' '.join(cmd)}: {done.stderr[-3000:]}"
    engine = create_engine(s.pg.url(TEMPLATE_DB))
    with engine.connect() as c:
        s.demo_items = int(c.execute(text("SELECT count(*) FROM incoming_items")).scalar_one())
    engine.dispose()


# ---------------------------------------------------------------- results
RESULTS: dict[str, Any] = {}
RESULTS_PATH = (
    ROOT / "bench" / "results" / f"faults-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
)


@pytest.fixture
def record(request: pytest.FixtureRequest, servers: Servers) -> Iterator[dict[str, Any]]:
    """The test's figures, written (with every earlier test's) to bench/results/faults-*.json."""
    figures: dict[str, Any] = {}
    t0 = time.monotonic()
    yield figures
    figures["test_seconds"] = round(time.monotonic() - t0, 1)
    rep = getattr(request.node, "rep_call", None)
    figures["outcome"] = rep.outcome if rep is not None else "error"
    RESULTS.setdefault("tests", {})[request.node.name] = figures
    RESULTS["server_startup_seconds"] = servers.startup_s
    RESULTS["cpus"] = os.cpu_count()
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(RESULTS, indent=2, default=str))
    print(f"\n{request.node.name}: {json.dumps(figures, default=str)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]


# ---------------------------------------------------------------- system
@dataclass
class System:
    """One test's ezd: its database, API (2 processes) and worker, on the shared isolated
    servers."""

    servers: Servers
    database: str
    env: dict[str, str]
    db: Engine
    port: int
    api: EzdProcess
    worker: EzdProcess
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_api(self, timeout: float = 90) -> float:
        """Start `ezd serve --workers 2`; returns the seconds until /healthz answers."""
        t0 = time.monotonic()
        self.api.start()
        wait_for("ezd serve", lambda: http_ok(f"{self.base_url}/healthz"), timeout, self.api.alive)
        return time.monotonic() - t0

    def login(self, *units: str) -> dict[str, str]:
        for u in units:
            r = httpx.post(
                f"{self.base_url}/api/v1/auth/token",
                data={"username": f"clerk.{u}", "password": "demo"},
                timeout=30,
            )
            r.raise_for_status()
            self.tokens[u] = r.json()["access_token"]
        return self.tokens

    def s3_client(self) -> Any:
        return self.servers.s3.client()

    def check(self, outcomes: list[Outcome]) -> dict[str, Any]:
        """All invariants (tests/faults/checks.py); the worker must be running."""
        return check_all(self.db, self.env, self.s3_client(), S3_BUCKET, S3_PREFIX, outcomes)


@pytest.fixture
def system(servers: Servers) -> Iterator[System]:
    servers.ensure_up()
    n = next(_numbers)
    database = f"ezd_fault_{n}"
    admin = create_engine(servers.pg.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {database} TEMPLATE {TEMPLATE_DB}"))
    admin.dispose()
    env = servers.env(database, f"ezd-faults-{n}-{os.getpid()}")
    log_dir = servers.base / f"logs-{n}"
    log_dir.mkdir()
    port = free_port()
    api = EzdProcess("api", ["serve", "--port", str(port), "--workers", "2"], env, log_dir)
    worker = EzdProcess("worker", ["worker"], env, log_dir)
    db = create_engine(servers.pg.url(database), pool_pre_ping=True, pool_size=2)
    s = System(servers, database, env, db, port, api, worker)
    try:
        worker.start()
        s.start_api()
        yield s
    finally:
        api.stop()
        worker.stop()
        db.dispose()
        with contextlib.suppress(Exception):
            servers.ensure_up()
        print(f"logs of {database}: {log_dir}")
