"""Task-completion benchmark: completing one user task through the service layer and through
HTTP on PostgreSQL, next to the raw in-memory SpiffWorkflow step in the same run.

- raw: SpiffWorkflow alone, no ezd: `task.data.update(form); task.run(); wf.do_engine_steps()`
  on workflows held in memory (one thread). This is "the raw engine step".
- service: `workflow.processes.service.complete_task` in one unit of work (one transaction,
  committed) per completion, from `--clients` threads, on PostgreSQL.
- http: `POST /api/v1/tasks/{id}/complete` with a bearer token against a real `ezd serve` on
  PostgreSQL + S3, from `--clients` concurrent clients (asyncio, prebuilt requests on raw
  sockets, a new connection per request so the kernel spreads them over the API processes).

Diagnostics in the same run (not part of the target): the ezd engine layer without a database
(restore the stored state, step, snapshot, JSON round trip) and the service path from a single
client, so the cost of one completion can be told apart from queueing behind 15 others.

The process is `--steps`+1 user tasks in a row in the "Sekretariat" lane, each with a small
JSON-Schema form, one instance per case; every measured completion leaves the next user task
ready. The measured tasks are completed stage by stage (first task of every instance, then the
second…), so `--tasks` completions need `--tasks / --steps` instances per path. Setup (database,
cases, instances) is not measured. Target: p50 no more than 10x the raw engine step.

Needs the test services (`scripts/services.sh up`, then `. .services/env`). Each run uses a fresh
database `ezd_bench_tasks`.

    set -a; . .services/env; set +a
    .venv/bin/python bench/tasks.py [--tasks 2000] [--clients 16] [--workers 2] [--steps 4]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EZD = str(ROOT / ".venv" / "bin" / "ezd")

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.common import ezd_env, git_commit  # noqa: E402
from bench.registration import fresh_database, percentile, send  # noqa: E402

KEY = "bench_tasks"
FORM_FILE = "forms/bench_step.schema.json"
FORMS: dict[str, Any] = {
    FORM_FILE: {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Krok",
        "properties": {
            "approved": {"type": "boolean", "title": "Zatwierdzono"},
            "note": {"type": "string", "title": "Uwagi", "maxLength": 500},
        },
        "required": ["approved"],
        "additionalProperties": False,
    }
}
FORM_DATA: dict[str, Any] = {"approved": True, "note": "Sprawdzono, bez uwag."}


def bench_bpmn(user_tasks: int) -> bytes:
    """start → step_1 → … → step_n → end, all in the Sekretariat lane (the clerks' pool)."""
    nodes = ["start", *(f"step_{i}" for i in range(1, user_tasks + 1)), "end"]
    flows = [(f"f{i}", a, b) for i, (a, b) in enumerate(itertools.pairwise(nodes))]
    incoming = {b: f for f, _, b in flows}
    outgoing = {a: f for f, a, _ in flows}
    tasks = "".join(
        f'<bpmn:userTask id="{n}" name="Krok {n[5:]}"><bpmn:extensionElements>'
        "<spiffworkflow:properties>"
        f'<spiffworkflow:property name="formJsonSchemaFilename" value="{FORM_FILE}"/>'
        "</spiffworkflow:properties></bpmn:extensionElements>"
        f"<bpmn:incoming>{incoming[n]}</bpmn:incoming>"
        f"<bpmn:outgoing>{outgoing[n]}</bpmn:outgoing></bpmn:userTask>"
        for n in nodes[1:-1]
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
        'id="defs_bench" targetNamespace="https://ezd.example/bench">'
        f'<bpmn:process id="{KEY}" name="Benchmark: kolejne zadania" isExecutable="true">'
        '<bpmn:laneSet id="lanes"><bpmn:lane id="lane_secretariat" name="Sekretariat">'
        + "".join(f"<bpmn:flowNodeRef>{n}</bpmn:flowNodeRef>" for n in nodes)
        + "</bpmn:lane></bpmn:laneSet>"
        f'<bpmn:startEvent id="start"><bpmn:outgoing>{outgoing["start"]}</bpmn:outgoing>'
        "</bpmn:startEvent>"
        + tasks
        + f'<bpmn:endEvent id="end"><bpmn:incoming>{incoming["end"]}</bpmn:incoming>'
        "</bpmn:endEvent>"
        + "".join(
            f'<bpmn:sequenceFlow id="{f}" sourceRef="{a}" targetRef="{b}"/>' for f, a, b in flows
        )
        + "</bpmn:process></bpmn:definitions>"
    )
    return xml.encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Figures


def figures(
    name: str, latencies: list[float], wall: float, errors: int = 0, **extra: Any
) -> dict[str, Any]:
    n = len(latencies)
    ms = [x * 1000 for x in latencies]
    return {
        "path": name,
        "completions": n,
        "errors": errors,
        "seconds": round(wall, 3),
        "per_second": round(n / wall, 1) if wall > 0 else None,
        "p50_ms": round(percentile(ms, 50), 3) if ms else None,
        "p95_ms": round(percentile(ms, 95), 3) if ms else None,
        "p99_ms": round(percentile(ms, 99), 3) if ms else None,
        "mean_ms": round(statistics.mean(ms), 3) if ms else None,
        **extra,
    }


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes() -> list[tuple[int, int, str]]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                head, _, rest = (d / "stat").read_text().rpartition(")")
                out.append((int(d.name), int(rest.split()[1]), head.partition("(")[2]))
            except (OSError, IndexError, ValueError):
                continue
    return out


class CpuMeter:
    """CPU seconds spent by groups of processes between start() and stop(): this process (the
    load generator or, for the service path, ezd itself), the API server's process tree and
    every PostgreSQL process on the machine (other databases' work included: run it quiet)."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid

    def _sample(self) -> dict[str, float]:
        procs = _processes()
        tree: set[int] = set()
        if self.server_pid is not None:
            tree = {self.server_pid}
            grew = True
            while grew:
                new = {p for p, pp, _ in procs if pp in tree} - tree
                grew = bool(new)
                tree |= new
        t = os.times()
        return {
            "bench process": t.user + t.system,
            "API processes": sum(_proc_cpu(p) for p in tree),
            "PostgreSQL": sum(_proc_cpu(p) for p, _, name in procs if name == "postgres"),
        }

    def start(self) -> None:
        try:
            self._begin: dict[str, float] | None = self._sample()
        except OSError:
            self._begin = None

    def stop(self, completions: int) -> dict[str, float]:
        if self._begin is None or not completions:
            return {}
        end = self._sample()
        return {
            k: round((end[k] - self._begin[k]) / completions * 1000, 2)
            for k in end
            if end[k] - self._begin[k] > 0
        }


# ---------------------------------------------------------------------------------------------
# Setup (not measured)


def setup(db_url: str, args: argparse.Namespace) -> dict[str, Any]:
    from api.bootstrap import bootstrap
    from workflow.demo import seed_demo_organisation
    from workflow.org.repository import OrgRepository
    from workflow.org.service import principal_for
    from workflow.principal import SYSTEM
    from workflow.processes.service import deploy_definition
    from workflow.schema import load_shipped_plans, upgrade_database
    from workflow.settings import Settings
    from workflow.uow import UnitOfWork

    upgrade_database(db_url)
    settings = Settings(
        database_url=db_url,
        database_pool_size=max(10, args.clients),
        data_dir=ROOT / ".data" / "bench-tasks",
        s3_endpoint=None,  # the service path never touches blobs
        embedded_worker=False,
    )
    c = bootstrap(settings)
    with c.uow() as uow:
        load_shipped_plans(uow)
        if not args.database:  # a scale database (bench/scale.py) has the demo already
            seed_demo_organisation(uow)
        uow.commit()
    c.deploy_library()
    bpmn = bench_bpmn(args.steps + 1)
    with UnitOfWork(c.session_factory, SYSTEM) as uow:
        definition, _ = deploy_definition(
            uow, c.engine_runtime, bpmn, FORMS, filename="bench_tasks.bpmn", source="library"
        )
        uow.commit()
    with c.uow() as uow:
        repo = OrgRepository(uow.session)
        user = repo.user_by_username(args.user)
        assert user is not None, args.user
        clerk = principal_for(repo, user)
    return {"container": c, "clerk": clerk, "bpmn": bpmn, "definition_id": definition.id}


def start_instances(env: dict[str, Any], count: int, label: str, unit_code: str) -> list[uuid.UUID]:
    """`count` cases, each with a running bench process waiting at its first user task."""
    from workflow.cases.service import open_case
    from workflow.org.repository import OrgRepository
    from workflow.processes.service import start_process
    from workflow.uow import UnitOfWork

    c = env["container"]
    ids: list[uuid.UUID] = []
    batch = 50
    for first in range(0, count, batch):
        with UnitOfWork(c.session_factory, env["clerk"]) as uow:
            unit = OrgRepository(uow.session).unit_by_code(unit_code)
            assert unit is not None
            for i in range(first, min(count, first + batch)):
                case = open_case(
                    uow, unit, jrwa_symbol="430", title=f"Benchmark zadań ({label}) nr {i + 1}"
                )
                instance = start_process(uow, c.engine_runtime, KEY, unit, case=case)
                ids.append(instance.id)
            uow.commit()
    return ids


def open_tasks(env: dict[str, Any], instance_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    from workflow.processes.models import ProcessTask, TaskStatus

    with env["container"].uow() as uow:
        rows = uow.session.execute(
            select(ProcessTask.id, ProcessTask.instance_id).where(
                ProcessTask.instance_id.in_(list(instance_ids)),
                ProcessTask.status == TaskStatus.open,
            )
        ).all()
    by_instance = {i: t for t, i in rows}
    missing = [i for i in instance_ids if i not in by_instance]
    if missing:
        sys.exit(f"{len(missing)} instances have no open task (a completion failed?)")
    return [by_instance[i] for i in instance_ids]


# ---------------------------------------------------------------------------------------------
# raw: SpiffWorkflow in memory


def measure_raw(bpmn: bytes, workflows: int, steps: int) -> dict[str, Any]:
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
    from SpiffWorkflow.util.task import TaskState

    parser = SpiffBpmnParser()
    parser.add_bpmn_str(bpmn, filename="bench_tasks.bpmn")
    spec = parser.get_spec(KEY)
    subprocess_specs = parser.get_subprocess_specs(KEY)
    start_data = {
        "unit_code": "SP58",
        "case_reference": "SP58.430.1.2026",
        "case_title": "Benchmark",
        "subject": "Benchmark",
        "registered_at": "2026-11-29T10:00:00+00:00",
    }
    wfs = []
    for _ in range(workflows):
        wf = BpmnWorkflow(spec, subprocess_specs)
        wf.task_tree.data.update(start_data)
        wf.do_engine_steps()
        wfs.append(wf)
    latencies: list[float] = []
    wall = 0.0
    for _stage in range(steps):
        begin = time.perf_counter()
        for wf in wfs:
            task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
            t0 = time.perf_counter()
            task.data.update(FORM_DATA)
            task.run()
            wf.do_engine_steps()
            latencies.append(time.perf_counter() - t0)
        wall += time.perf_counter() - begin
    return figures("raw", latencies, wall, clients=1)


def measure_engine_layer(env: dict[str, Any], workflows: int, steps: int) -> dict[str, Any]:
    """ezd's engine layer without a database: JSON-decode the stored state, restore it, complete
    the task and run (which snapshots and dumps the state), JSON-encode the state."""
    from workflow.engine.runtime import Engine
    from workflow.processes.service import compiled_process

    c = env["container"]
    engine = c.engine_runtime
    with c.uow() as uow:
        compiled = compiled_process(uow, engine, env["definition_id"], KEY)
    start_data = {
        "unit_code": "SP58",
        "case_reference": "SP58.430.1.2026",
        "case_title": "Benchmark",
        "subject": "Benchmark",
        "registered_at": "2026-11-29T10:00:00+00:00",
    }
    states: list[tuple[str, uuid.UUID]] = []
    for _ in range(workflows):
        snap = engine.run(compiled, engine.create(compiled, start_data))
        states.append((json.dumps(snap.state), snap.human_tasks[0].id))
    parts = {
        "json_decode": 0.0,
        "restore": 0.0,
        "run_and_snapshot": 0.0,
        "json_encode": 0.0,
        "dump_alone": 0.0,
    }
    latencies: list[float] = []
    sizes: list[int] = []
    wall = 0.0
    for _stage in range(steps):
        begin = time.perf_counter()
        for k, (state_json, task_id) in enumerate(states):
            t0 = time.perf_counter()
            state = json.loads(state_json)
            t1 = time.perf_counter()
            wf = engine.restore(compiled, state)
            t2 = time.perf_counter()
            snap = engine.run(compiled, wf, Engine.complete_task(task_id, FORM_DATA))
            t3 = time.perf_counter()
            new_json = json.dumps(snap.state)
            t4 = time.perf_counter()
            latencies.append(t4 - t0)
            parts["json_decode"] += t1 - t0
            parts["restore"] += t2 - t1
            parts["run_and_snapshot"] += t3 - t2
            parts["json_encode"] += t4 - t3
            d0 = time.perf_counter()
            engine.dump(compiled, wf)  # what the dump inside the snapshot costs (not timed above)
            parts["dump_alone"] += time.perf_counter() - d0
            sizes.append(len(new_json))
            states[k] = (new_json, snap.human_tasks[0].id)
        wall += time.perf_counter() - begin
    n = len(latencies)
    return figures(
        "engine layer (no DB)",
        latencies,
        wall,
        clients=1,
        parts_mean_ms={k: round(v / n * 1000, 3) for k, v in parts.items()},
        state_json_bytes_mean=round(statistics.mean(sizes)),
        state_tasks_in_tree=len(json.loads(states[0][0])["tasks"]),
    )


# ---------------------------------------------------------------------------------------------
# service: complete_task in one transaction, from threads


def run_stages(
    stages: int,
    ids_for_stage: Callable[[], list[uuid.UUID]],
    clients: int,
    one: Callable[[uuid.UUID], None],
) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = 0
    wall = 0.0
    lock = threading.Lock()
    for _stage in range(stages):
        cursor = iter(ids_for_stage())

        def client(cursor: Iterator[uuid.UUID] = cursor) -> None:
            nonlocal errors
            while True:
                with lock:
                    task_id = next(cursor, None)
                if task_id is None:
                    return
                t0 = time.perf_counter()
                try:
                    one(task_id)
                except Exception as e:  # counted and shown
                    with lock:
                        errors += 1
                        if errors <= 3:
                            print(f"error: {e!r}", file=sys.stderr)
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        begin = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall += time.perf_counter() - begin
    return latencies, wall, errors


def measure_service(
    env: dict[str, Any], instances: list[uuid.UUID], steps: int, clients: int, name: str
) -> dict[str, Any]:
    from workflow.processes.service import complete_task
    from workflow.uow import UnitOfWork

    c = env["container"]
    engine = c.engine_runtime

    def one(task_id: uuid.UUID) -> None:
        with UnitOfWork(c.session_factory, env["clerk"]) as uow:
            complete_task(uow, engine, task_id, FORM_DATA)
            uow.commit()

    meter = CpuMeter()
    meter.start()
    lat, wall, errors = run_stages(steps, lambda: open_tasks(env, instances), clients, one)
    return figures(
        name,
        lat,
        wall,
        errors,
        clients=clients,
        cpu_ms_per_completion=meter.stop(len(lat) + errors),
    )


# ---------------------------------------------------------------------------------------------
# http: a real `ezd serve`


def build_request(host: str, port: int, token: str, task_id: uuid.UUID) -> bytes:
    body = json.dumps({"data": FORM_DATA}).encode()
    head = (
        f"POST /api/v1/tasks/{task_id}/complete HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


async def http_stage(
    host: str, port: int, requests: list[bytes], clients: int
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue = iter(requests)

    async def client() -> None:
        nonlocal errors
        for request in queue:
            t0 = time.perf_counter()
            try:
                status, answer = await asyncio.wait_for(
                    send(host, port, request, body_chars=300), 120
                )
                problem = None if status == 200 else f"{status}: {answer!r}"
            except (OSError, TimeoutError) as e:
                problem = f"transport error: {e!r}"
            t1 = time.perf_counter()
            if problem is None:
                latencies.append(t1 - t0)
            else:
                errors += 1
                if errors <= 3:
                    print(f"error {problem}", file=sys.stderr)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors


def start_server(db_url: str, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        **ezd_env(
            db_url,
            data_dir=ROOT / ".data" / "bench-tasks",
            s3_prefix=f"bench-{uuid.uuid4().hex[:8]}/",
        ),
    }
    server = subprocess.Popen(
        [EZD, "serve", "--port", str(args.port), "--workers", str(args.workers)], env=env
    )
    base = f"http://127.0.0.1:{args.port}"
    deadline = time.time() + 180  # a loaded 2-core machine starts the processes slowly
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if time.time() > deadline or server.poll() is not None:
            server.terminate()
            sys.exit(f"server did not start (exit code {server.poll()})")
        time.sleep(0.3)


def measure_http(
    env: dict[str, Any], db_url: str, instances: list[uuid.UUID], args: argparse.Namespace
) -> dict[str, Any]:
    server, base = start_server(db_url, args)
    try:
        r = httpx.post(
            f"{base}/api/v1/auth/token",
            data={"username": args.user, "password": "demo"},
            timeout=30,
        )
        r.raise_for_status()
        token = r.json()["access_token"]
        if args.http_warmup:
            # A few completions first, so each API process has its spec cache, its connection
            # pool and its imports warm (these tasks are not counted).
            warm = open_tasks(env, instances[: args.http_warmup])
            asyncio.run(
                http_stage(
                    "127.0.0.1",
                    args.port,
                    [build_request("127.0.0.1", args.port, token, t) for t in warm],
                    args.clients,
                )
            )
        if args.pause_before_http:
            print(
                f"server pid {server.pid}: measuring HTTP in {args.pause_before_http} s", flush=True
            )
            time.sleep(args.pause_before_http)
        latencies: list[float] = []
        errors = 0
        wall = 0.0
        measured = instances[args.http_warmup :] if args.http_warmup else instances
        meter = CpuMeter(server.pid)
        meter.start()
        for _stage in range(args.steps):
            ids = open_tasks(env, measured)
            requests = [build_request("127.0.0.1", args.port, token, t) for t in ids]
            begin = time.perf_counter()
            lat, err = asyncio.run(http_stage("127.0.0.1", args.port, requests, args.clients))
            wall += time.perf_counter() - begin
            latencies += lat
            errors += err
        cpu = meter.stop(len(latencies) + errors)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: do not wait for the drain
            server.kill()
            server.wait()
    return figures(
        "http",
        latencies,
        wall,
        errors,
        clients=args.clients,
        api_processes=args.workers,
        cpu_ms_per_completion=cpu,
    )


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=2000, help="completions per path")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients (service, http)")
    ap.add_argument("--workers", type=int, default=2, help="API processes of `ezd serve`")
    ap.add_argument(
        "--steps",
        type=int,
        default=4,
        help="measured user tasks per instance (the process has one more)",
    )
    ap.add_argument(
        "--sequential",
        type=int,
        default=200,
        help="completions for the single-client service diagnostic (0 = skip)",
    )
    ap.add_argument(
        "--http-warmup",
        type=int,
        default=32,
        help="extra instances whose first task warms the API processes",
    )
    ap.add_argument("--user", default="clerk.sp58")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument(
        "--only",
        choices=["raw", "service", "http"],
        action="append",
        help="measure only these paths (repeatable; default all)",
    )
    ap.add_argument(
        "--database",
        help="scale benchmark: this existing database made by bench/scale.py (not a fresh one)",
    )
    ap.add_argument(
        "--pause-before-http",
        type=float,
        default=0,
        help="seconds to wait after the server is up (to attach a profiler)",
    )
    args = ap.parse_args()
    only = set(args.only or ["raw", "service", "http"])

    for k in (
        "EZD_TEST_DATABASE_URL",
        "EZD_TEST_S3_ENDPOINT",
        "EZD_TEST_S3_ACCESS_KEY",
        "EZD_TEST_S3_SECRET_KEY",
        "EZD_TEST_S3_BUCKET",
    ):
        if not os.environ.get(k):
            sys.exit(
                f"{k} is not set: run `scripts/services.sh up`, then "
                "`set -a; . .services/env; set +a`"
            )
    per_path = math.ceil(args.tasks / args.steps)
    seq_instances = math.ceil(args.sequential / args.steps) if args.sequential else 0

    load_at_start = round(os.getloadavg()[0], 2)
    if load_at_start > 1.0:
        print(
            f"warning: load average {load_at_start} before the run: the figures will be noisy",
            file=sys.stderr,
        )
    t_setup = time.perf_counter()
    if args.database:
        from bench.scale import database_url

        db_url = database_url(args.database)
    else:
        db_url = fresh_database(os.environ["EZD_TEST_DATABASE_URL"], "ezd_bench_tasks")
    env = setup(db_url, args)
    service_ids = start_instances(env, per_path, "service", "SP58") if "service" in only else []
    seq_ids = (
        start_instances(env, seq_instances, "service-1", "SP58")
        if "service" in only and seq_instances
        else []
    )
    http_ids = (
        start_instances(env, per_path + args.http_warmup, "http", "SP58") if "http" in only else []
    )
    print(
        f"setup: {time.perf_counter() - t_setup:.1f} s "
        f"({len(service_ids) + len(seq_ids) + len(http_ids)} instances, "
        f"{args.steps + 1} user tasks each, {args.steps} measured)",
        flush=True,
    )

    results: list[dict[str, Any]] = []
    raw: dict[str, Any] | None = None
    if "raw" in only:
        raw = measure_raw(env["bpmn"], per_path, args.steps)
        results.append(raw)
        print(f"raw:     p50 {raw['p50_ms']} ms", flush=True)
        layer = measure_engine_layer(env, per_path, args.steps)
        results.append(layer)
        print(
            f"engine layer (no DB): p50 {layer['p50_ms']} ms  parts {layer['parts_mean_ms']}",
            flush=True,
        )
    service: dict[str, Any] | None = None
    if "service" in only:
        if seq_ids:
            seq = measure_service(env, seq_ids, args.steps, 1, "service, 1 client")
            results.append(seq)
            print(f"service, 1 client: p50 {seq['p50_ms']} ms", flush=True)
        service = measure_service(env, service_ids, args.steps, args.clients, "service")
        results.append(service)
        print(f"service: p50 {service['p50_ms']} ms", flush=True)
    env["container"].dispose()
    http: dict[str, Any] | None = None
    if "http" in only:
        http = measure_http(env, db_url, http_ids, args)
        results.append(http)
        print(f"http:    p50 {http['p50_ms']} ms", flush=True)

    ratios: dict[str, float | None] = {}
    if raw and raw["p50_ms"]:
        for r in (service, http):
            if r and r["p50_ms"] is not None:
                ratios[f"{r['path']}_p50/raw_p50"] = round(r["p50_ms"] / raw["p50_ms"], 1)
    commit, dirty = git_commit()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = {
        "benchmark": "tasks",
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "working_tree_dirty": dirty,
        "tasks": args.tasks,
        "clients": args.clients,
        "api_processes": args.workers,
        "user_tasks_per_instance": args.steps + 1,
        "measured_per_instance": args.steps,
        "cpus": os.cpu_count(),
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": round(os.getloadavg()[0], 2),
        "database": args.database,
        "target": "p50 <= 10x raw p50",
        "results": results,
        "ratios": ratios,
    }
    target = ROOT / "bench" / "results"
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"tasks-{args.database + '-' if args.database else ''}{stamp}.json"
    path.write_text(json.dumps(out, indent=2))

    print()
    print(
        f"task completion ({args.tasks} per path, {args.clients} clients, {args.workers} API "
        f"processes, PostgreSQL; {args.steps + 1}-task process; commit {commit}"
        f"{' + local changes' if dirty else ''})"
    )
    print(
        f"  {'path':<22}{'n':>6}{'err':>5}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'per s':>10}"
    )
    for r in results:
        print(
            f"  {r['path']:<22}{r['completions']:>6}{r['errors']:>5}{r['p50_ms']:>10.2f}"
            f"{r['p95_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['per_second']:>10.1f}"
        )
    for r in results:
        if r.get("cpu_ms_per_completion"):
            cpu = ", ".join(f"{k} {v} ms" for k, v in r["cpu_ms_per_completion"].items())
            print(f"  CPU per completion, {r['path']}: {cpu}")
    for k, v in ratios.items():
        verdict = "meets" if v is not None and v <= 10 else "MISSES"
        print(f"  {k}: {v}x  ({verdict} the 10x target)")
    print(f"  written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
