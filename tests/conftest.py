"""Test fixtures: every test that takes `backend` runs twice, on the embedded backends (SQLite +
local folder) and on the real servers (PostgreSQL + S3 started by scripts/services.sh).

Each test gets a fresh database copied from a migrated, seeded template (a file copy on SQLite,
CREATE DATABASE … TEMPLATE on PostgreSQL) and its own blob namespace. In CI a missing real
server fails the run instead of skipping.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.app import create_app
from api.bootstrap import Container, bootstrap
from workflow.demo import seed_demo_organisation
from workflow.engine.runtime import reset_clock
from workflow.schema import load_shipped_plans, upgrade_database
from workflow.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_counter = itertools.count()


def real_services() -> dict[str, str] | None:
    keys = (
        "EZD_TEST_DATABASE_URL",
        "EZD_TEST_S3_ENDPOINT",
        "EZD_TEST_S3_ACCESS_KEY",
        "EZD_TEST_S3_SECRET_KEY",
        "EZD_TEST_S3_BUCKET",
    )
    env = {k: os.environ.get(k, "") for k in keys}
    return env if all(env.values()) else None


def need_real_services() -> dict[str, str]:
    env = real_services()
    if env is None:
        msg = (
            "PostgreSQL/S3 test servers are not configured (run `scripts/services.sh up` "
            "and source .services/env, or use `make test`)"
        )
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return env


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Embedded settings whatever EZD_* the developer has exported (init values win)."""
    return Settings(
        **{"data_dir": data_dir, "database_url": None, "s3_endpoint": None, **overrides}
    )


def _seed(settings: Settings) -> None:
    upgrade_database(settings.resolved_database_url)
    c = bootstrap(settings)
    with c.uow() as uow:
        load_shipped_plans(uow)
        seed_demo_organisation(uow)
        uow.commit()
    c.deploy_library()
    c.dispose()


@pytest.fixture(autouse=True)
def _engine_clock() -> Iterator[None]:
    """Tests that move the engine's clock forward leave it where they found it."""
    reset_clock()
    yield
    reset_clock()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sqlite-template")
    _seed(embedded_settings(d))
    return d / "ezd.sqlite3"


def _admin_engine(url: str) -> Any:
    return create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    env = need_real_services()
    base = make_url(env["EZD_TEST_DATABASE_URL"])
    name = f"ezd_tpl_{os.getpid()}"
    admin = _admin_engine(base)
    _drop_database(admin, name)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    _seed(
        Settings(
            database_url=base.set(database=name).render_as_string(hide_password=False),
            data_dir=Path("/tmp"),
        )
    )
    yield name
    _drop_database(admin, name)
    admin.dispose()


@dataclass
class Backend:
    name: str
    settings: Settings
    container: Container

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres_s3"

    def client(self, *, raise_server_exceptions: bool = False) -> TestClient:
        app = create_app(self.container, start_worker=False)
        return TestClient(app, raise_server_exceptions=raise_server_exceptions)


def make_sqlite_backend(template: Path, tmp: Path, **overrides: Any) -> Backend:
    data = tmp / "data"
    data.mkdir()
    shutil.copy(template, data / "ezd.sqlite3")
    settings = embedded_settings(data, **overrides)
    return Backend("embedded", settings, bootstrap(settings))


def make_pg_backend(template: str, tmp: Path, **overrides: Any) -> tuple[Backend, str]:
    env = need_real_services()
    base = make_url(env["EZD_TEST_DATABASE_URL"])
    name = f"ezd_t_{os.getpid()}_{next(_counter)}"
    admin = _admin_engine(base)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    values: dict[str, Any] = {
        "data_dir": tmp,
        "database_url": base.set(database=name).render_as_string(hide_password=False),
        "s3_endpoint": env["EZD_TEST_S3_ENDPOINT"],
        "s3_access_key": env["EZD_TEST_S3_ACCESS_KEY"],
        "s3_secret_key": env["EZD_TEST_S3_SECRET_KEY"],
        "s3_bucket": env["EZD_TEST_S3_BUCKET"],
        "s3_secure": os.environ.get("EZD_TEST_S3_SECURE", "false") == "true",
        "s3_prefix": f"t-{uuid.uuid4().hex}/",
        "key_encryption_key": base64.b64encode(os.urandom(32)).decode(),
    }
    settings = Settings(**{**values, **overrides})  # a test's `settings` marker wins
    return Backend("postgres_s3", settings, bootstrap(settings)), name


def _drop_database(admin: Any, name: str) -> None:
    """DROP … WITH (FORCE) cannot end an autovacuum worker that happens to be busy in the new
    database (it belongs to no role the test user may signal): wait for it and try again."""
    from sqlalchemy.exc import ProgrammingError

    for attempt in range(40):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError as e:
            if "pg_signal_backend" not in str(e) or attempt == 39:
                raise
            time.sleep(0.25)


def drop_pg_database(name: str) -> None:
    env = real_services()
    assert env is not None
    admin = _admin_engine(make_url(env["EZD_TEST_DATABASE_URL"]))
    _drop_database(admin, name)
    admin.dispose()


def _backend(
    request: pytest.FixtureRequest, tmp_path: Path, overrides: dict[str, Any]
) -> Iterator[Backend]:
    if request.param == "embedded":
        b = make_sqlite_backend(request.getfixturevalue("sqlite_template"), tmp_path, **overrides)
        yield b
        b.container.dispose()
        return
    b, name = make_pg_backend(request.getfixturevalue("pg_template"), tmp_path, **overrides)
    b.container.blob_store.check()
    yield b
    b.container.dispose()
    remove_all = getattr(b.container.blob_store, "remove_all", None)
    if remove_all:
        remove_all()
    drop_pg_database(name)


@pytest.fixture(params=["embedded", "postgres_s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    overrides: dict[str, Any] = {}
    marker = request.node.get_closest_marker("settings")
    if marker:
        overrides = dict(marker.kwargs)
    yield from _backend(request, tmp_path, overrides)


@pytest.fixture(params=["postgres_s3"])
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    marker = request.node.get_closest_marker("settings")
    yield from _backend(request, tmp_path, dict(marker.kwargs) if marker else {})


@pytest.fixture(params=["embedded"])
def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    marker = request.node.get_closest_marker("settings")
    yield from _backend(request, tmp_path, dict(marker.kwargs) if marker else {})


@pytest.fixture
def client(backend: Backend) -> Iterator[TestClient]:
    with backend.client() as c:
        yield c


# --- search: the embedded index and a real Elasticsearch -----------------------------------


def need_elasticsearch() -> str:
    """The test Elasticsearch's URL (scripts/elasticsearch.sh up, or `make test`); in CI an
    unreachable one fails the run instead of skipping."""
    url = os.environ.get("EZD_TEST_ES_URL", "")
    problem = None
    if not url:
        problem = "EZD_TEST_ES_URL is not set (run `scripts/elasticsearch.sh up` or `make test`)"
    else:
        from elasticsearch import Elasticsearch

        es = Elasticsearch(url, request_timeout=10)
        try:
            es.cluster.health(timeout="10s")
        except Exception as e:
            problem = f"Elasticsearch at {url} is not reachable: {e}"
        finally:
            es.close()
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return url


def drop_es_indices(url: str, alias: str) -> None:
    from elasticsearch import Elasticsearch

    es = Elasticsearch(url, request_timeout=30)
    try:
        es.indices.delete(index=f"{alias}*", ignore_unavailable=True, allow_no_indices=True)
    finally:
        es.close()


@pytest.fixture(params=["embedded", "elasticsearch"])
def search_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The embedded system (SQLite + local folder + embedded index) and the production one
    (PostgreSQL + S3 + Elasticsearch), each with an index of its own."""
    marker = request.node.get_closest_marker("settings")
    overrides = dict(marker.kwargs) if marker else {}
    if request.param == "embedded":
        yield from _backend(_Param(request, "embedded"), tmp_path, overrides)
        return
    url = need_elasticsearch()
    alias = f"ezd-t-{uuid.uuid4().hex[:12]}"
    overrides = {"search_url": url, "search_index": alias, **overrides}
    try:
        yield from _backend(_Param(request, "postgres_s3"), tmp_path, overrides)
    finally:
        drop_es_indices(url, alias)


class _Param:
    """A fixture request whose `param` names the database backend for `_backend`."""

    def __init__(self, request: pytest.FixtureRequest, param: str) -> None:
        self._request = request
        self.param = param

    def getfixturevalue(self, name: str) -> Any:
        return self._request.getfixturevalue(name)
