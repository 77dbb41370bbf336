"""Server time of the staff web pages on PostgreSQL: the inbox (home page) and the case view,
with 10,000 open tasks and 100,000 cases bulk-loaded with SQL (executemany inserts in batches,
not through the API).

    set -a; . .services/env; set +a
    .venv/bin/python bench/web.py [--cases 100000] [--tasks 10000] [--requests 300]

Prints p50/p95 of the time spent inside the application (measured by a middleware around the
ASGI app) and of the loopback round trip, for the inbox of a headteacher whose pool holds the
10k tasks and for the case view of cases with a real process, documents and case record.
Target: p95 under 150 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import insert, select

from api.app import create_app
from api.bootstrap import bootstrap
from api.web import mount_web
from bench.registration import fresh_database, percentile
from workflow.cases.models import Case
from workflow.demo import seed_demo_organisation
from workflow.jrwa.repository import JrwaRepository
from workflow.org.repository import OrgRepository
from workflow.processes.models import ProcessInstance, ProcessTask
from workflow.schema import load_shipped_plans, upgrade_database
from workflow.settings import Settings

BATCH = 5000
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def seed(settings: Settings) -> Any:
    upgrade_database(settings.resolved_database_url)
    c = bootstrap(settings)
    with c.uow() as uow:
        load_shipped_plans(uow)
        seed_demo_organisation(uow)
        uow.commit()
    c.deploy_library()
    return c


def real_cases(client: httpx.Client, n: int) -> list[str]:
    """Cases made the ordinary way (registration with a scan, a process started on each)."""
    import json

    h = token(client, "clerk.sp58")
    refs = []
    for i in range(n):
        meta = {
            "subject": f"Wniosek o duplikat legitymacji nr {i}",
            "sender": {"name": f"Rodzic {i}"},
            "channel": "paper",
            "jrwa": "431",
            "new_case": True,
        }
        r = client.post(
            "/api/v1/incoming",
            headers=h,
            data={"meta": json.dumps(meta)},
            files=[("files", ("skan.pdf", PDF, "application/pdf"))],
        )
        r.raise_for_status()
        ref = r.json()["case_reference"]
        client.post(
            "/api/v1/processes/incoming_letter/start", headers=h, json={"case_reference": ref}
        ).raise_for_status()
        refs.append(ref)
    return refs


def token(client: httpx.Client, user: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", data={"username": user, "password": "demo"})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def bulk_load(c: Any, n_cases: int, n_tasks: int) -> None:
    with c.uow() as uow:
        org = OrgRepository(uow.session)
        unit = org.unit_by_code("SP58")
        assert unit is not None
        template = uow.session.execute(select(ProcessInstance).limit(1)).scalar_one()
        jrwa_class = JrwaRepository(uow.session).class_by_id(
            uow.session.execute(select(Case.jrwa_class_id).limit(1)).scalar_one()
        )
        assert jrwa_class is not None
        year = 2020
        now = datetime.now(UTC)
        case_ids = [uuid.uuid4() for _ in range(n_cases)]
        rows = [
            {
                "id": cid,
                "reference": f"SP58.{jrwa_class.symbol}.{i + 1}.{year}",
                "unit_id": unit.id,
                "jrwa_class_id": jrwa_class.id,
                "jrwa_symbol": jrwa_class.symbol,
                "seq": i + 1,
                "year": year,
                "title": f"Sprawa wygenerowana {i}",
                "opened_at": now - timedelta(days=400),
            }
            for i, cid in enumerate(case_ids)
        ]
        for k in range(0, len(rows), BATCH):
            uow.session.execute(insert(Case.__table__), rows[k : k + BATCH])
        instances = [
            {
                "id": uuid.uuid4(),
                "definition_id": template.definition_id,
                "process_id": template.process_id,
                "unit_id": unit.id,
                "case_id": case_ids[i],
                "state": template.state,
                "serializer_version": template.serializer_version,
                "started_at": now - timedelta(days=10),
            }
            for i in range(n_tasks)
        ]
        for k in range(0, len(instances), BATCH):
            uow.session.execute(insert(ProcessInstance.__table__), instances[k : k + BATCH])
        rnd = random.Random(7)
        tasks = [
            {
                "id": uuid.uuid4(),
                "instance_id": inst["id"],
                "unit_id": unit.id,
                "case_id": inst["case_id"],
                "element_id": "assign",
                "name": "Dekretacja",
                "role": "headteacher",
                "lane": "Dyrektor",
                "status": "open",
                "due_at": now + timedelta(days=rnd.randint(-20, 40)),
                "created_at": now - timedelta(days=rnd.randint(0, 30)),
            }
            for inst in instances
        ]
        for k in range(0, len(tasks), BATCH):
            uow.session.execute(insert(ProcessTask.__table__), tasks[k : k + BATCH])
        uow.session.commit()


class Timed:
    """ASGI middleware recording the time spent inside the application per request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        t0 = time.perf_counter()
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.times.append((time.perf_counter() - t0) * 1000)


def serve(app: Any) -> tuple[str, Any]:
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def web_login(client: httpx.Client, user: str) -> None:
    import re

    page = client.get("/web/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    r = client.post(
        "/web/login", data={"username": user, "password": "demo", "csrf_token": csrf.group(1)}
    )
    assert r.status_code == 303, r.text


def measure(client: httpx.Client, timed: Timed, paths: list[str], n: int) -> dict[str, float]:
    for p in paths[:5]:  # warm-up
        client.get(p).raise_for_status()
    timed.times.clear()
    rtt = []
    for i in range(n):
        t0 = time.perf_counter()
        r = client.get(paths[i % len(paths)])
        rtt.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    server = list(timed.times)
    return {
        "server_p50": percentile(server, 50),
        "server_p95": percentile(server, 95),
        "rtt_p50": percentile(rtt, 50),
        "rtt_p95": percentile(rtt, 95),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--real-cases", type=int, default=20)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    base = os.environ.get("EZD_TEST_DATABASE_URL")
    if not base:
        sys.exit("EZD_TEST_DATABASE_URL is not set (set -a; . .services/env; set +a)")
    settings = Settings(
        database_url=fresh_database(base, "ezd_bench_web"),
        data_dir=Path("/tmp/ezd-bench-web"),
        key_encryption_key="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    t0 = time.perf_counter()
    c = seed(settings)
    app = create_app(c, start_worker=True)
    mount_web(app)
    timed = Timed(app)
    url, server = serve(timed)
    with httpx.Client(base_url=url, timeout=60) as api:
        refs = real_cases(api, args.real_cases)
    t1 = time.perf_counter()
    bulk_load(c, args.cases, args.tasks)
    print(
        f"loaded: {args.real_cases} real cases in {t1 - t0:.1f} s; "
        f"{args.cases} cases + {args.tasks} open tasks by SQL in {time.perf_counter() - t1:.1f} s"
    )
    with httpx.Client(base_url=url, timeout=60) as web:
        web_login(web, "headteacher.sp58")
        inbox = measure(web, timed, ["/web/"], args.requests)
        case = measure(web, timed, [f"/web/cases/{r}" for r in refs], args.requests)
    for name, m in (("inbox (home page)", inbox), ("case view", case)):
        print(
            f"{name:18s} server p50 {m['server_p50']:6.1f} ms  p95 {m['server_p95']:6.1f} ms"
            f"   (round trip p50 {m['rtt_p50']:6.1f} ms  p95 {m['rtt_p95']:6.1f} ms)"
            f"   target p95 < 150 ms: {'ok' if m['server_p95'] < 150 else 'MISSED'}"
        )
    server.should_exit = True
    c.dispose()


if __name__ == "__main__":
    main()
