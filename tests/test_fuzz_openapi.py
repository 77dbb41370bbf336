"""Property-based fuzzing of the whole HTTP API from its OpenAPI schema (schemathesis).

Every operation in `/openapi.json` gets `EXAMPLES_PER_OPERATION` generated requests (valid and
invalid data, schemathesis' positive and negative modes) against the in-process ASGI app on a
fresh seeded database. Each request goes out as one of three callers, drawn per example:

- a clerk of SP58 (`clerk.sp58`), who can register letters and work cases,
- the city administrator (`admin.wow`), who reaches the organisation, keys and definitions,
- nobody (no token), which must get the documented 401 (or the public answer).

Path parameters are either generated or, drawn per example, the ids of real objects made in the
setup (a registered letter, its case and document, a running process and its task, a signing key,
an e-service), so requests reach the services behind the 404s.

Checks, for every response: no 5xx (`not_a_server_error`), the status code is documented
(`status_code_conformance`), the content type is documented (`content_type_conformance`) and the
body matches the documented schema (`response_schema_conformance`). Failures are collected over
the whole run (not stopped at the first), reported per operation and check, and written with the
run's figures to `bench/results/fuzz.json`.

Runs on the embedded backend (SQLite + local folder); `EZD_FUZZ_BACKENDS=embedded,postgres_s3`
adds PostgreSQL + S3.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from tests.conftest import Backend, _backend, _Param
from tests.helpers import install_unit_seals, letter_meta, register, token
from tests.pki import TestPki, pki_fixture  # noqa: F401
from workflow.errors import DomainError
from workflow.org.service import authenticate, login

#: Generated requests per operation and backend. 25 keeps the embedded run of all ~77
#: operations near two minutes; raise it locally (EZD_FUZZ_EXAMPLES) for a deeper run.
EXAMPLES_PER_OPERATION = int(os.environ.get("EZD_FUZZ_EXAMPLES", "25"))
BACKENDS = os.environ.get("EZD_FUZZ_BACKENDS", "embedded").split(",")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CALLERS = ("clerk.sp58", "admin.wow", None)
RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "fuzz.json"

# The schema is read once from an app on a throwaway backend; the operations are the same on
# every backend (each test builds its own app and sends the cases to it).
_SCHEMA_APP: dict[str, Any] = {}


def _schema_app() -> FastAPI:
    if "app" not in _SCHEMA_APP:
        import atexit
        import shutil
        import tempfile

        from api.bootstrap import bootstrap
        from tests.conftest import embedded_settings

        d = Path(tempfile.mkdtemp(prefix="ezd-fuzz-schema-"))
        atexit.register(shutil.rmtree, d, ignore_errors=True)
        _SCHEMA_APP["app"] = create_app(bootstrap(embedded_settings(d)), start_worker=False)
    app: FastAPI = _SCHEMA_APP["app"]
    return app


SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", _schema_app())
OPERATIONS = sorted(
    (op.ok() for op in SCHEMA.get_all_operations() if isinstance(op, Ok)),
    key=lambda o: (o.path, o.method),
)


# --- figures for bench/results/fuzz.json ---------------------------------------------------


class _Tally:
    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)
        self.failures: dict[str, Counter[str]] = defaultdict(Counter)
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.seconds: dict[str, float] = defaultdict(float)
        self.operations: dict[str, set[str]] = defaultdict(set)


TALLY = _Tally()


@pytest.fixture(scope="module", autouse=True)
def _write_results() -> Iterator[None]:
    yield
    if not TALLY.cases:
        return
    per_backend = {}
    # Only a run over every operation is a figure worth quoting (a `-k` selection is not).
    for b in sorted(b for b in TALLY.cases if len(TALLY.operations[b]) == len(OPERATIONS)):
        failures = TALLY.failures[b]
        per_backend[b] = {
            "operations": len(TALLY.operations[b]),
            "total_cases": TALLY.cases[b],
            "seconds": round(TALLY.seconds[b], 1),
            "statuses": dict(sorted(Counter(TALLY.statuses[b]).items())),
            "failures_by_check": {c.__name__: failures[c.__name__] for c in CHECKS},
            "failure_examples": TALLY.examples[b][:50],
        }
    if not per_backend:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    old["openapi"] = {
        "tool": f"schemathesis {schemathesis.__version__}",
        "operations_in_schema": len(OPERATIONS),
        "examples_per_operation": EXAMPLES_PER_OPERATION,
        "generation_modes": ["positive", "negative"],
        "callers": [c or "anonymous" for c in CALLERS],
        "checks": [c.__name__ for c in CHECKS],
        "backends": {**old.get("openapi", {}).get("backends", {}), **per_backend},
    }
    RESULTS.write_text(json.dumps(old, indent=2, ensure_ascii=False) + "\n")


# --- real objects to aim at -----------------------------------------------------------------


def _real_objects(client: TestClient, pki: TestPki) -> dict[str, Any]:
    """Make a letter with its case and document, a running process with a task, the units'
    seals and an outgoing item, and return the ids by path parameter name (a few by path)."""
    install_unit_seals(client, pki)
    clerk = token(client, "clerk.sp58")
    admin = token(client, "admin.wow")
    r = register(client, clerk, letter_meta())
    assert r.status_code == 201, r.text
    item = r.json()
    reference = item["case_reference"]
    case = client.get(f"/api/v1/cases/{reference}", headers=clerk).json()
    document_id = case["documents"][0]["id"] if case.get("documents") else None
    started = client.post(
        "/api/v1/processes/incoming_letter/start",
        headers=clerk,
        json={"case_reference": reference},
    )
    instance_id = started.json().get("id") if started.status_code == 201 else None
    tasks = client.get("/api/v1/tasks", headers=token(client, "headteacher.sp58")).json()
    task_id = tasks[0]["id"] if tasks else None
    out = client.post(
        "/api/v1/outgoing",
        headers=clerk,
        json={
            "subject": "Odpowiedź",
            "recipients": [{"name": "Anna Kowalska", "address": "ul. Polna 5"}],
            "channel": "paper",
            "case_reference": reference,
        },
    )
    outgoing_id = out.json().get("id") if out.status_code == 201 else None
    keys = client.get("/api/v1/units/SP58/signing-keys", headers=admin).json()
    definitions = client.get("/api/v1/process-definitions", headers=admin).json()
    definition = next((d for d in definitions if d.get("key") == "incoming_letter"), None)
    return {
        "reference": reference,
        "item_id": item["id"],
        "outgoing_item_id": outgoing_id,
        "document_id": document_id,
        "version": 1,
        "task_id": task_id,
        "instance_id": instance_id,
        "key": "incoming_letter",
        "definition_version": definition.get("version") if definition else 1,
        "key_id": keys[0]["id"] if keys else None,
        "code": "SP58",
        "service_code": "duplikat_legitymacji",
        "unit": "SP58",
        "username": "handler.sp58",
        "kind": "incoming",
        "object_id": item["id"],
    }


def _real_path(path: str, names: list[str], real: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        key = name
        if name == "item_id" and path.startswith("/api/v1/outgoing"):
            key = "outgoing_item_id"
        elif name == "code" and path.startswith("/api/v1/public"):
            key = "service_code"
        elif name == "version" and "process-definitions" in path:
            key = "definition_version"
        elif name == "object_id":
            key = "object_id"
        value = real.get(key)
        if value is not None:
            values[name] = value
    return values


# --- the fuzzing ----------------------------------------------------------------------------


@dataclass
class FuzzTarget:
    backend: Backend
    app: FastAPI
    real: dict[str, Any]
    headers: dict[str, dict[str, str]]


@pytest.fixture(scope="module", params=BACKENDS)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: TestPki
) -> Iterator[FuzzTarget]:
    """One backend per module, with the real objects made once: the operations are fuzzed one
    after another against the same database (what one operation creates, the next may find)."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    overrides = {
        "eservice_rate_per_minute": 1_000_000,
        "eservice_pin_attempts_per_client": 1_000_000,
    }
    for backend in _backend(_Param(request, request.param), tmp, overrides):  # type: ignore[arg-type]
        app = create_app(backend.container, start_worker=False)
        with TestClient(app) as client:
            real = _real_objects(client, pki)
            headers = {c: token(client, c) for c in CALLERS if c}
            yield FuzzTarget(backend, app, real, headers)


def _label(op: Any) -> str:
    return f"{op.method.upper()} {op.path}"


def _fresh_tokens(target: FuzzTarget) -> None:
    """Tokens revoked by a fuzzed logout are replaced, minted by the service directly: the
    login endpoint is fuzzed too and its throttle may have locked this client out."""
    with target.backend.container.uow() as uow:
        for username, header in list(target.headers.items()):
            try:
                authenticate(uow, header["Authorization"].split()[1], kind="bearer")
            except DomainError:
                issued = login(uow, username, "demo", kind="bearer", ttl=timedelta(hours=2))
                target.headers[username] = {"Authorization": f"Bearer {issued.token}"}
        uow.commit()


@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
def test_operation_conforms(operation: Any, target: FuzzTarget) -> None:
    _fresh_tokens(target)
    app, headers = target.app, target.headers
    names = [p.name for p in operation.path_parameters]
    real_path = _real_path(operation.path, names, target.real)
    b = target.backend.name
    failures: list[str] = []
    started = time.monotonic()

    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, caller=st.sampled_from(CALLERS), aim=st.booleans())
    def run(case: Any, caller: str | None, aim: bool) -> None:
        if aim and real_path:
            case.path_parameters = {**(case.path_parameters or {}), **real_path}
        call_headers = dict(headers[caller]) if caller else {}
        TALLY.cases[b] += 1
        TALLY.operations[b].add(_label(operation))
        try:
            response = case.call(app=app, headers=call_headers)
        except Exception as e:  # the in-process client re-raises what the app did not handle
            TALLY.failures[b]["not_a_server_error"] += 1
            text = (
                f"{_label(operation)} [{caller or 'anonymous'}] not_a_server_error: "
                f"unhandled {type(e).__name__}: {e}"
            )
            failures.append(text)
            TALLY.examples[b].append(text)
            return
        TALLY.statuses[b][response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=call_headers)
        except FailureGroup as group:
            for f in group.exceptions:
                name = _check_name(f)
                TALLY.failures[b][name] += 1
                text = (
                    f"{_label(operation)} [{caller or 'anonymous'}] {name}: {f.title} "
                    f"-> {response.status_code}"
                )
                failures.append(text)
                TALLY.examples[b].append(text)

    run()
    TALLY.seconds[b] += time.monotonic() - started
    assert not failures, "\n".join(sorted(set(failures)))


def _check_name(failure: Any) -> str:
    """The check that reported `failure` (a failure class names the checks that raise it)."""
    names = {c.__name__ for c in CHECKS}
    for name in getattr(type(failure), "checks", ()):
        if name in names:
            return str(name)
    return type(failure).__name__
