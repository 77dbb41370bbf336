"""Load scenario (issue 9): simulated staff of several schools working in a realistic mix
against one `ezd serve --workers N` and one `ezd worker` on PostgreSQL + S3 + Elasticsearch,
all real processes over HTTP.

- clerks register incoming letters with a PDF (and start `incoming_letter`), dispatch replies
  from their pool, search, open case views and the incoming register;
- headteachers work their inbox: assignment (dekretacja to a handler of their school) and
  approval, besides case views and searches;
- handlers work their own inbox (handling: reply needed or not), open case views, search.

Every user-level step (a page) may send several requests (a case view: the case with its
documents, the case record, sometimes a document and its scan); between pages each person
waits an exponentially distributed think time (`--think`, mean seconds). Pool tasks are not
taken by two simulated people at once (colleagues see each other's work), so a 409 means ezd
answered wrongly, not that the simulation raced with itself.

The base is seeded first, in this process through the services (the path `bench/tasks.py`
uses): the staff, `--cases` letters registered with a PDF in S3 and `incoming_letter`
advanced to every stage (closed, at assignment, handling, approval, dispatch); then
`--bulk-cases` older cases by SQL (`bench/web.py`'s bulk load); then the search index is
rebuilt by the reindex path and the seed's own indexing events are dropped (the rebuild
covered them); everyone gets a bearer token from the login service. Then the servers start,
the outbox is drained, and the load runs `--warmup` + `--seconds` and stops by itself. The
database (`--database`), its S3 key prefix and its index stay for `--reuse`, which runs again on
them without seeding (the day goes on: the tasks done and letters added by earlier runs stay).

    set -a; . .services/env; set +a
    .venv/bin/python bench/load.py [--staff 200] [--units 10] [--think 8] [--seconds 240]

Prints a table (throughput, p50/p95/p99 per operation, errors by status and code, outbox lag,
CPU per process group, load average) and writes bench/results/load-<time>.json.
Target: no errors, p95 under 300 ms for every operation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from sqlalchemy import create_engine, select, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import (  # noqa: E402
    S3_VARS,
    ezd_env,
    git_commit,
    process_tree,
    require_env,
    start_ezd,
    stop,
)
from bench.registration import fresh_database, percentile  # noqa: E402
from bench.search import NAMES, PRZEDMIOT, QUERIES, SZKOLA  # noqa: E402
from bench.tasks import _proc_cpu, _processes  # noqa: E402
from bench.web import bulk_load  # noqa: E402

SUBJECTS = [
    "Wniosek o wydanie duplikatu legitymacji szkolnej",
    "Skarga rodzica na ocenę z {przedmiot}",
    "Wniosek o przyjęcie dziecka do {szkola}",
    "Prośba o zwolnienie ucznia z zajęć {przedmiot}",
    "Opinia poradni psychologiczno-pedagogicznej w sprawie ucznia",
    "Zawiadomienie o kontroli sanepidu w {szkola}",
    "Informacja o wypadku ucznia podczas {przedmiot}",
    "Zapytanie o organizację zajęć świetlicowych",
]
JRWA = ["431", "4430", "050"]  # leaf classes of the schools' plan (the demo letters' classes)
# Seeded stages of `incoming_letter`: share of the base cases left at each.
STAGES = (("done", 0.55), ("assign", 0.15), ("handle", 0.15), ("approve", 0.08), ("dispatch", 0.07))
EXTRA_SCHOOLS = [
    ("SP1", "Szkoła Podstawowa nr 1"),
    ("SP3", "Szkoła Podstawowa nr 3"),
    ("SP21", "Szkoła Podstawowa nr 21"),
    ("SP40", "Szkoła Podstawowa nr 40"),
    ("LO5", "V Liceum Ogólnokształcące"),
    ("P12", "Przedszkole nr 12"),
    ("SP77", "Szkoła Podstawowa nr 77"),
    ("ZS2", "Zespół Szkół nr 2"),
    ("P3", "Przedszkole nr 3"),
    ("SP9", "Szkoła Podstawowa nr 9"),
    ("LO1", "I Liceum Ogólnokształcące"),
    ("SP30", "Szkoła Podstawowa nr 30"),
]
DEMO_SCHOOLS = ["SP58", "SP12", "LO3", "P7"]


def subject(rnd: random.Random) -> str:
    return rnd.choice(SUBJECTS).format(przedmiot=rnd.choice(PRZEDMIOT), szkola=rnd.choice(SZKOLA))


def letter_pdf(title: str, size: int) -> bytes:
    """A one-page PDF with a text layer (so the indexer reads it without OCR) and an unused
    binary stream of random bytes up to `size` (a scan's weight, different for every letter)."""
    ascii_title = title.encode("ascii", "replace").decode().replace("(", "[").replace(")", "]")
    content = f"BT /F1 12 Tf 72 760 Td ({ascii_title}) Tj 0 -20 Td (Prosze o rozpatrzenie) Tj ET"
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<</Font<</F1 4 0 R>>>>"
        b"/Contents 5 0 R>>",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
        b"<</Length %d>>stream\n%s\nendstream" % (len(content), content.encode()),
    ]
    pad = max(0, size - 1000)
    objects.append(b"<</Length %d>>stream\n%s\nendstream" % (pad, os.urandom(pad)))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Seeding (in this process, through the services)


@dataclass
class Staff:
    username: str
    role: str  # clerk | headteacher | handler
    unit: str
    token: str = ""


def staff_plan(units: list[str], n: int) -> list[Staff]:
    """`n` people spread evenly over `units`: per school ~15 % clerks (secretariat), ~10 %
    headteachers and deputies, the rest handlers (teachers, specialists)."""
    out: list[Staff] = []
    for k, unit in enumerate(units):
        size = n // len(units) + (1 if k < n % len(units) else 0)
        clerks = max(1, round(size * 0.15))
        heads = max(1, round(size * 0.10))
        for i in range(size):
            role = "clerk" if i < clerks else "headteacher" if i < clerks + heads else "handler"
            out.append(Staff(f"{role}{i + 1:02d}.{unit.lower()}", role, unit))
    return out


def seed(c: Any, args: argparse.Namespace, units: list[str], staff: list[Staff]) -> dict[str, Any]:
    from workflow.demo import DEMO_PASSWORD, seed_demo_organisation
    from workflow.documents.service import spooled
    from workflow.org.models import RoleAssignment, Unit, UnitKind, User
    from workflow.org.repository import OrgRepository
    from workflow.org.service import principal_for
    from workflow.processes.models import ProcessTask, TaskStatus
    from workflow.processes.service import complete_task, start_process
    from workflow.registry.schemas import Party, RegisterIncoming
    from workflow.registry.service import register_incoming_item
    from workflow.schema import load_shipped_plans

    t0 = time.perf_counter()
    with c.uow() as uow:
        load_shipped_plans(uow)
        seed_demo_organisation(uow)
        uow.commit()
    c.deploy_library()
    names = dict(EXTRA_SCHOOLS)
    with c.uow() as uow:
        repo = OrgRepository(uow.session)
        for code in units:
            if repo.unit_by_code(code) is None:
                kind = UnitKind.kindergarten if code.startswith("P") else UnitKind.school
                unit = Unit(
                    code=code, name=names[code], kind=kind, jrwa_plan="szkola", address="Miasto"
                )
                repo.add(unit)
                uow.flush()
                uow.audit("unit.created", "unit", unit.id, unit_id=unit.id, details={"code": code})
        # The bench staff's hash is argon2 with light parameters: their 200 logins (below)
        # would otherwise take minutes of CPU on two cores. Login is not part of the mix.
        password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(
            DEMO_PASSWORD
        )
        for s in staff:
            unit = repo.unit_by_code(s.unit)
            assert unit is not None
            user = User(username=s.username, full_name=s.username, password_hash=password_hash)
            repo.add(user)
            uow.flush()
            repo.add(RoleAssignment(user_id=user.id, unit_id=unit.id, role=s.role))
            uow.audit("user.created", "user", user.id, unit_id=unit.id, details={"bench": True})
        uow.commit()
    t_org = time.perf_counter()

    by_unit: dict[str, dict[str, list[Staff]]] = defaultdict(lambda: defaultdict(list))
    for s in staff:
        by_unit[s.unit][s.role].append(s)
    with c.uow() as uow:
        repo = OrgRepository(uow.session)
        principals = {}
        for s in staff:
            user = repo.user_by_username(s.username)
            assert user is not None
            principals[s.username] = principal_for(repo, user)
        unit_rows = {code: repo.unit_by_code(code) for code in units}

    rnd = random.Random(1)
    engine = c.engine_runtime
    refs: dict[str, list[str]] = defaultdict(list)
    stage_names = [s for s, _ in STAGES]
    stage_weights = [w for _, w in STAGES]
    today = date.today().isoformat()
    per_unit = args.cases // len(units)
    plans = []
    for i in range(per_unit * len(units)):
        code = units[i % len(units)]
        people = by_unit[code]
        stage = rnd.choices(stage_names, stage_weights)[0]
        plans.append(
            (
                code,
                rnd.choice(people["clerk"]),
                rnd.choice(people["headteacher"]),
                rnd.choice(people["handler"] or people["headteacher"]),
                stage,
                stage == "dispatch" or (stage == "done" and rnd.random() < 0.3),
                subject(rnd),
                rnd.choice(NAMES),
                rnd.choice(JRWA),
            )
        )
    lock = threading.Lock()
    progress = {"done": 0, "at": time.perf_counter()}

    def one(plan: tuple[Any, ...]) -> None:
        code, clerk, head, handler, stage, reply, title, sender, jrwa = plan
        with c.uow() as uow:
            uow.actor = principals[clerk.username]
            with spooled(letter_pdf(title, args.pdf_kb * 1024), "skan.pdf", "application/pdf") as f:
                registered = register_incoming_item(
                    uow,
                    c.blob_store,
                    RegisterIncoming(
                        unit=code,
                        subject=title,
                        sender=Party(name=sender, kind="person"),
                        channel="paper",
                        jrwa=jrwa,
                        new_case=True,
                    ),
                    [f],
                )
            assert registered.case is not None
            unit = uow.session.merge(unit_rows[code])
            instance = start_process(uow, engine, "incoming_letter", unit, case=registered.case)
            steps: list[tuple[Staff, dict[str, Any]]] = []
            if stage != "assign":
                steps.append((head, {"handler": handler.username, "instruction": "Proszę."}))
            if stage in ("approve", "dispatch", "done"):
                steps.append(
                    (
                        handler,
                        {"reply_needed": True, "reply_addressee": "Rodzic", "reply_summary": "Tak."}
                        if reply
                        else {"reply_needed": False, "handling_note": "Załatwiono telefonicznie."},
                    )
                )
            if stage in ("dispatch", "done"):
                steps.append((head, {"decision": "approve"}))
            if stage == "done" and reply:
                steps.append((clerk, {"dispatched_on": today}))
            for person, data in steps:
                uow.actor = principals[person.username]
                task_id = uow.session.execute(
                    select(ProcessTask.id).where(
                        ProcessTask.instance_id == instance.id,
                        ProcessTask.status == TaskStatus.open,
                    )
                ).scalar_one()
                complete_task(uow, engine, task_id, data)
            uow.commit()
        with lock:
            refs[code].append(registered.case.reference)
            progress["done"] += 1
            if time.perf_counter() - progress["at"] > 15:
                progress["at"] = time.perf_counter()
                rate = progress["done"] / (progress["at"] - t_org)
                print(f"  seeded {progress['done']} cases ({rate:.0f}/s)", flush=True)

    # Threads overlap the database and S3 round trips (each case is its own transaction).
    with ThreadPoolExecutor(args.seed_threads) as pool:
        list(pool.map(one, plans))
    done = progress["done"]
    t_cases = time.perf_counter()
    if args.bulk_cases:
        bulk_load(c, args.bulk_cases, 0)
    t_bulk = time.perf_counter()
    from workflow.outbox.models import OutboxEvent
    from workflow.search.events import TOPIC
    from workflow.search.service import reindex

    indexed = reindex(c.uow, c.search_index)
    with c.uow() as uow:
        dropped = uow.session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.topic == TOPIC, OutboxEvent.status == "pending")
            .values(status="done")
        ).rowcount
        uow.session.commit()
    t_index = time.perf_counter()
    timings = {
        "org_s": round(t_org - t0, 1),
        "cases_s": round(t_cases - t_org, 1),
        "cases_per_s": round(done / (t_cases - t_org), 1),
        "bulk_s": round(t_bulk - t_cases, 1),
        "reindex_s": round(t_index - t_bulk, 1),
        "indexed_docs": indexed,
        "seed_index_events_dropped": dropped,
    }
    print(f"seeded: {timings}", flush=True)
    return {"refs": dict(refs), "timings": timings}


def issue_tokens(c: Any, staff: list[Staff], threads: int) -> None:
    """Everyone logged in this morning: one bearer token each (an 8-hour working day), issued
    by the login service here, not by the API during the run (login is not in the mix)."""
    from workflow.demo import DEMO_PASSWORD
    from workflow.org.service import login

    def token(s: Staff) -> None:
        with c.uow() as uow:
            issued = login(uow, s.username, DEMO_PASSWORD, kind="bearer", ttl=timedelta(hours=8))
            s.token = issued.token
            uow.commit()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(token, staff))


def known_refs(c: Any, units: list[str]) -> dict[str, list[str]]:
    """The cases of this year per unit, oldest first (a reused database: the seeded ones and
    those registered by earlier runs; the bulk-loaded cases are of 2020)."""
    from workflow.cases.models import Case
    from workflow.org.models import Unit

    with c.uow() as uow:
        rows = uow.session.execute(
            select(Unit.code, Case.reference)
            .join(Unit, Unit.id == Case.unit_id)
            .where(Unit.code.in_(units), Case.year == date.today().year)
            .order_by(Case.opened_at)
        ).all()
    refs: dict[str, list[str]] = defaultdict(list)
    for code, ref in rows:
        refs[code].append(ref)
    return dict(refs)


# ---------------------------------------------------------------------------------------------
# The load


@dataclass
class Sample:
    op: str
    t0: float  # seconds since the run began
    ms: float
    status: int
    code: str | None


@dataclass
class Run:
    client: httpx.AsyncClient
    refs: dict[str, list[str]]
    handlers: dict[str, list[str]]
    think: float
    pdf_bytes: int
    measure_from: float
    stop_at: float
    begin: float
    samples: list[Sample] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    actions: Counter[str] = field(default_factory=Counter)


class Person:
    def __init__(self, run: Run, staff: Staff, rnd: random.Random) -> None:
        self.run = run
        self.s = staff
        self.rnd = rnd
        self.h = {"Authorization": f"Bearer {staff.token}"}

    async def call(self, op: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        t0 = time.perf_counter()
        code: str | None = None
        try:
            headers = {**self.h, **kw.pop("headers", {})}
            r: httpx.Response | None = await self.run.client.request(
                method, url, headers=headers, **kw
            )
            assert r is not None
            status = r.status_code
            if status >= 400:
                try:
                    code = r.json()["error"]["code"]
                except Exception:
                    code = r.text[:80]
        except httpx.HTTPError as e:
            r, status, code = None, 0, type(e).__name__
        t1 = time.perf_counter()
        self.run.samples.append(Sample(op, t0 - self.run.begin, (t1 - t0) * 1000, status, code))
        return r if r is not None and r.is_success else None

    async def think(self) -> None:
        await asyncio.sleep(self.rnd.expovariate(1 / self.run.think) if self.run.think else 0)

    # -- pages --------------------------------------------------------------------------------

    async def case_view(self, ref: str | None = None) -> None:
        refs = self.run.refs.get(self.s.unit) or []
        ref = ref or (self.rnd.choice(refs[-300:]) if refs else None)
        if ref is None:
            return
        r = await self.call("case", "GET", f"/api/v1/cases/{ref}")
        await self.call("case_record", "GET", f"/api/v1/cases/{ref}/record")
        docs = r.json()["documents"] if r is not None else []
        if docs and self.rnd.random() < 0.5:
            await self.think()
            doc = docs[0]["id"]
            await self.call("document", "GET", f"/api/v1/documents/{doc}")
            if self.rnd.random() < 0.5:
                await self.call(
                    "document_content", "GET", f"/api/v1/documents/{doc}/versions/1/content"
                )

    async def search(self) -> None:
        q = self.rnd.choice(QUERIES)
        r = await self.call("search", "GET", "/api/v1/search", params={"q": q, "size": 20})
        if r is not None and self.rnd.random() < 0.5:
            refs = [h["case_reference"] for h in r.json()["hits"] if h.get("case_reference")]
            if refs:
                await self.think()
                await self.case_view(refs[0])

    async def work_inbox(self, elements: tuple[str, ...], mine: bool) -> None:
        params: dict[str, Any] = {"limit": 25}
        if mine:
            params["mine"] = "true"
        r = await self.call("inbox", "GET", "/api/v1/tasks", params=params)
        if r is None:
            return
        tasks = [
            t for t in r.json() if t["element_id"] in elements and t["id"] not in self.run.taken
        ]
        if not tasks:
            return
        task = self.rnd.choice(tasks[:10])
        self.run.taken.add(task["id"])
        await self.think()
        await self.call("task", "GET", f"/api/v1/tasks/{task['id']}")
        if task["case_reference"]:
            await self.call("case", "GET", f"/api/v1/cases/{task['case_reference']}")
        await self.think()
        element = task["element_id"]
        await self.call(
            f"complete_{element}",
            "POST",
            f"/api/v1/tasks/{task['id']}/complete",
            json={"data": self.form(element)},
        )

    def form(self, element: str) -> dict[str, Any]:
        if element == "assign":
            handlers = self.run.handlers[self.s.unit]
            return {"handler": self.rnd.choice(handlers), "instruction": "Proszę o odpowiedź."}
        if element == "handle":
            if self.rnd.random() < 0.3:
                return {
                    "reply_needed": True,
                    "reply_addressee": self.rnd.choice(NAMES),
                    "reply_summary": "Uprzejmie informuję, że wniosek rozpatrzono pozytywnie.",
                }
            return {"reply_needed": False, "handling_note": "Sprawę załatwiono telefonicznie."}
        if element == "approve":
            if self.rnd.random() < 0.1:
                return {"decision": "return", "approval_comment": "Proszę uzupełnić uzasadnienie."}
            return {"decision": "approve"}
        if element == "dispatch_reply":
            return {"dispatched_on": date.today().isoformat(), "dispatch_note": "list polecony"}
        return {}

    async def register(self) -> None:
        title = subject(self.rnd)
        meta = {
            "unit": self.s.unit,
            "subject": title,
            "sender": {"name": self.rnd.choice(NAMES), "kind": "person"},
            "channel": "paper",
            "jrwa": self.rnd.choice(JRWA),
            "new_case": True,
        }
        r = await self.call(
            "register",
            "POST",
            "/api/v1/incoming",
            data={"meta": json.dumps(meta)},
            files=[
                ("files", ("skan.pdf", letter_pdf(title, self.run.pdf_bytes), "application/pdf"))
            ],
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        if r is None:
            return
        ref = r.json()["case_reference"]
        await self.call(
            "start_process",
            "POST",
            "/api/v1/processes/incoming_letter/start",
            json={"case_reference": ref},
        )
        self.run.refs.setdefault(self.s.unit, []).append(ref)

    # -- people ---------------------------------------------------------------------------------

    async def act(self) -> None:
        x = self.rnd.random()
        role = self.s.role
        if role == "clerk":
            if x < 0.35:
                name, coro = "register letter", self.register()
            elif x < 0.50:
                name, coro = "dispatch", self.work_inbox(("dispatch_reply",), mine=False)
            elif x < 0.70:
                name, coro = "search", self.search()
            elif x < 0.90:
                name, coro = "case view", self.case_view()
            else:
                name = "incoming register"
                coro = self.call("incoming_list", "GET", "/api/v1/incoming", params={"limit": 50})
        elif role == "headteacher":
            if x < 0.60:
                name, coro = "assign/approve", self.work_inbox(("assign", "approve"), mine=False)
            elif x < 0.85:
                name, coro = "case view", self.case_view()
            else:
                name, coro = "search", self.search()
        else:
            if x < 0.45:
                name, coro = "handle", self.work_inbox(("handle",), mine=True)
            elif x < 0.75:
                name, coro = "case view", self.case_view()
            else:
                name, coro = "search", self.search()
        await coro
        self.run.actions[name] += 1

    async def live(self) -> None:
        # People start at random moments within one think time, not all in the same second.
        await asyncio.sleep(self.rnd.uniform(0, self.run.think or 0.1))
        while time.perf_counter() < self.run.stop_at:
            await self.act()
            await self.think()


async def loop_lag(run: Run, out: list[float]) -> None:
    """How late the event loop wakes up for a 50 ms sleep: a busy client would show here."""
    while time.perf_counter() < run.stop_at:
        t0 = time.perf_counter()
        await asyncio.sleep(0.05)
        if t0 >= run.measure_from:
            out.append((time.perf_counter() - t0 - 0.05) * 1000)


async def run_load(
    base: str, staff: list[Staff], refs: dict[str, list[str]], args: argparse.Namespace
) -> tuple[Run, list[float]]:
    # Idle connections are dropped after 4 s, before uvicorn closes them (its keep-alive
    # timeout is 5 s, and so is httpx's default): otherwise a request sent on a connection the
    # server is closing fails with ReadError, which is the client's race, not ezd's error.
    limits = httpx.Limits(
        max_connections=args.connections,
        max_keepalive_connections=args.connections,
        keepalive_expiry=4.0,
    )
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        begin = time.perf_counter()
        run = Run(
            client=client,
            refs={u: list(r) for u, r in refs.items()},
            handlers={
                u: [s.username for s in staff if s.unit == u and s.role == "handler"]
                or [s.username for s in staff if s.unit == u and s.role == "headteacher"]
                for u in {s.unit for s in staff}
            },
            think=args.think,
            pdf_bytes=args.pdf_kb * 1024,
            measure_from=begin + args.warmup,
            stop_at=begin + args.warmup + args.seconds,
            begin=begin,
        )
        people = [Person(run, s, random.Random(i)) for i, s in enumerate(staff)]
        lag: list[float] = []
        tasks = [asyncio.create_task(p.live()) for p in people]
        tasks.append(asyncio.create_task(loop_lag(run, lag)))
        # Everyone finishes the page in hand after the end; a stuck request does not hold the
        # run for more than a minute.
        _, pending = await asyncio.wait(tasks, timeout=args.warmup + args.seconds + 60)
        for t in pending:
            t.cancel()
        return run, lag


# ---------------------------------------------------------------------------------------------
# Measurements around the load


class OutboxProbe:
    """Samples the outbox every few seconds: events due and not yet done, and the age of the
    oldest one (how far the worker is behind)."""

    SQL = text(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at)) "
        "FROM outbox_events WHERE status = 'pending' AND available_at <= now()"
    )

    def __init__(self, db_url: str, every: float = 5.0) -> None:
        self.engine = create_engine(db_url, pool_size=1)
        self.every = every
        self.samples: list[tuple[float, int, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> tuple[int, float]:
        with self.engine.connect() as c:
            n, age = c.execute(self.SQL).one()
        return int(n), float(age or 0.0)

    def start(self, t0: float, tick: Callable[[], None] = lambda: None) -> None:
        def loop() -> None:
            while not self._stop.wait(self.every):
                tick()
                n, age = self.now()
                self.samples.append((round(time.perf_counter() - t0, 1), n, round(age, 2)))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def drain(self, timeout: float) -> float | None:
        """Seconds until no event is due, None when it does not happen within `timeout`."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.now()[0] == 0:
                return round(time.perf_counter() - t0, 1)
            time.sleep(0.5)
        return None

    def delays(self, since_utc: str) -> dict[str, Any]:
        """Commit-to-done delay of the events made during the run, per topic."""
        d = "EXTRACT(EPOCH FROM processed_at - created_at)"
        sql = text(
            "SELECT topic, count(*), "
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {d}), "
            f"percentile_cont(0.95) WITHIN GROUP (ORDER BY {d}), "
            f"max({d}) "
            "FROM outbox_events WHERE created_at >= :since AND status = 'done' "
            "AND processed_at IS NOT NULL GROUP BY topic ORDER BY count(*) DESC"
        )
        with self.engine.connect() as c:
            rows = c.execute(sql, {"since": since_utc}).all()
            statuses = dict(
                c.execute(
                    text(
                        "SELECT status, count(*) FROM outbox_events WHERE created_at >= :since "
                        "GROUP BY status"
                    ),
                    {"since": since_utc},
                ).all()
            )
        return {
            "events_by_status": statuses,
            "delay_s_by_topic": {
                t: {
                    "n": n,
                    "p50": round(float(p50), 2),
                    "p95": round(float(p95), 2),
                    "max": round(float(mx), 2),
                }
                for t, n, p50, p95, mx in rows
            },
        }


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def listening_pid(port: int) -> int | None:
    """The process listening on a TCP port of this machine (from /proc), None if not found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{f[9]}]")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for fd in (d / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(d.name)
        except OSError:
            continue
    return None


class CpuGroups:
    """CPU seconds of process groups between two samples: this process (the load generator),
    the API processes, the worker, the PostgreSQL backends serving this run's database (and
    PostgreSQL as a whole, other sessions' databases included), the Elasticsearch node on the
    test port, SeaweedFS, and the whole machine (/proc/stat: everyone's work)."""

    def __init__(self, api_pid: int, worker_pid: int, database: str) -> None:
        self.api_pid, self.worker_pid = api_pid, worker_pid
        self.database = database
        es_port = int(os.environ["EZD_TEST_ES_URL"].rsplit(":", 1)[1].strip("/"))
        self.es_pid = listening_pid(es_port)

    def sample(self) -> dict[str, float]:
        procs = _processes()
        api = process_tree(self.api_pid, procs)
        worker = process_tree(self.worker_pid, procs)
        postgres = [p for p, _, n in procs if n == "postgres"]
        ours = [p for p in postgres if f" {self.database} " in _cmdline(p)]
        es = (
            process_tree(self.es_pid, procs)
            if self.es_pid
            else {p for p, _, n in procs if n == "java"}
        )
        t = os.times()
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(x) for x in fields]
        hz = os.sysconf("SC_CLK_TCK")
        return {
            "load generator": t.user + t.system,
            "API processes": sum(_proc_cpu(p) for p in api),
            "worker": sum(_proc_cpu(p) for p in worker),
            "PostgreSQL (this database)": sum(_proc_cpu(p) for p in ours),
            "PostgreSQL (all)": sum(_proc_cpu(p) for p in postgres),
            "Elasticsearch": sum(_proc_cpu(p) for p in es),
            "SeaweedFS": sum(_proc_cpu(p) for p, _, n in procs if n == "weed"),
            "machine busy": (sum(ticks) - ticks[3] - ticks[4]) / hz,
        }

    @staticmethod
    def cores(a: dict[str, float], b: dict[str, float], seconds: float) -> dict[str, float]:
        """Average cores used by each group between samples a and b."""
        return {k: round((b[k] - a[k]) / seconds, 2) for k in a}


def database_url(name: str) -> str:
    return (
        make_url(os.environ["EZD_TEST_DATABASE_URL"])
        .set(database=name)
        .render_as_string(hide_password=False)
    )


def seeded_already(db_url: str, staff: list[Staff]) -> bool:
    """Whether the database exists and holds this run's staff (the last one planned)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT count(*) FROM users WHERE username = :u"),
                    {"u": staff[-1].username},
                ).scalar()
            )
    except Exception:
        return False
    finally:
        engine.dispose()


def drop_index(url: str, alias: str) -> None:
    """The run's Elasticsearch indices (the alias and its generations) go with the run."""
    from search.elastic import ElasticsearchIndex

    index = ElasticsearchIndex(url, alias)
    index.es.indices.delete(index=f"{alias}*", ignore_unavailable=True, allow_no_indices=True)
    index.close()


def machine() -> dict[str, Any]:
    mem = {
        line.split(":")[0]: int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.split(":")[0] in ("MemTotal", "MemAvailable")
    }
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(mem["MemTotal"] / 1024 / 1024, 1),
        "ram_available_gb_at_start": round(mem["MemAvailable"] / 1024 / 1024, 1),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------------------------------
# Figures


def summarise(run: Run, seconds: float) -> dict[str, Any]:
    measured = [
        s for s in run.samples if run.measure_from - run.begin <= s.t0 < run.stop_at - run.begin
    ]
    warmup_errors = Counter(
        f"{s.status} {s.code}"
        for s in run.samples
        if s.t0 < run.measure_from - run.begin and not 200 <= s.status < 300
    )
    ops: dict[str, dict[str, Any]] = {}
    for op in sorted({s.op for s in measured}):
        these = [s for s in measured if s.op == op]
        ok = [s.ms for s in these if 200 <= s.status < 300]
        ops[op] = {
            "requests": len(these),
            "per_s": round(len(these) / seconds, 2),
            "errors": len(these) - len(ok),
            "p50_ms": round(percentile(ok, 50), 1) if ok else None,
            "p95_ms": round(percentile(ok, 95), 1) if ok else None,
            "p99_ms": round(percentile(ok, 99), 1) if ok else None,
            "max_ms": round(max(ok), 1) if ok else None,
        }
    ok_all = [s.ms for s in measured if 200 <= s.status < 300]
    errors = Counter(f"{s.op}: {s.status} {s.code}" for s in measured if not 200 <= s.status < 300)
    return {
        "requests": len(measured),
        "requests_per_s": round(len(measured) / seconds, 1),
        "errors": sum(errors.values()),
        "errors_by_status_and_code": dict(errors),
        "warmup_errors": dict(warmup_errors),
        "p50_ms": round(percentile(ok_all, 50), 1) if ok_all else None,
        "p95_ms": round(percentile(ok_all, 95), 1) if ok_all else None,
        "p99_ms": round(percentile(ok_all, 99), 1) if ok_all else None,
        "operations": ops,
    }


def print_table(result: dict[str, Any]) -> None:
    s = result["summary"]
    print()
    print(
        f"load: {result['staff']} staff in {result['units']} units, think time exp. mean "
        f"{result['think_s']} s, {result['api_processes']} API processes + 1 worker, "
        f"{result['seconds']} s measured after {result['warmup_s']} s warm-up "
        f"(commit {result['commit']}{' + local changes' if result['dirty'] else ''})"
    )
    print(
        f"  {'operation':<22}{'n':>7}{'per s':>8}{'err':>5}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}"
    )

    def fmt(v: float | None) -> str:
        return f"{v:9.1f}" if v is not None else f"{'-':>9}"

    for op, o in s["operations"].items():
        print(
            f"  {op:<22}{o['requests']:>7}{o['per_s']:>8.2f}{o['errors']:>5}{fmt(o['p50_ms'])}"
            f"{fmt(o['p95_ms'])}{fmt(o['p99_ms'])}{fmt(o['max_ms'])}"
        )
    print(
        f"  {'all':<22}{s['requests']:>7}{s['requests_per_s']:>8.2f}{s['errors']:>5}"
        f"{fmt(s['p50_ms'])}{fmt(s['p95_ms'])}{fmt(s['p99_ms'])}"
    )
    print(f"  user actions (measured window): {result['actions']}")
    print(f"  API process restarts (uvicorn): {result['api_process_restarts']}")
    print(f"  errors: {s['errors_by_status_and_code'] or 'none'}")
    if s["warmup_errors"]:
        print(f"  errors during warm-up: {s['warmup_errors']}")
    slow = [op for op, o in s["operations"].items() if (o["p95_ms"] or 0) >= 300]
    print(
        f"  target (no errors, p95 < 300 ms per operation): "
        f"{'met' if not slow and not s['errors'] else 'MISSED'}"
        + (f" (p95 >= 300 ms: {', '.join(slow)})" if slow else "")
    )
    o = result["outbox"]
    print(
        f"  outbox at the end: {o['due_at_end']} events due, oldest {o['oldest_due_s_at_end']} s; "
        f"drained {o['drained_in_s']} s after the load; max due during the run "
        f"{o['max_due_during_run']}"
    )
    for topic, d in o["delays"]["delay_s_by_topic"].items():
        print(f"    {topic:<18} n={d['n']:<6} commit→done p50 {d['p50']} s  p95 {d['p95']} s")
    print(f"  CPU (cores, measured window): {result['cpu_cores']}")
    print(
        f"  load generator: {result['client']['cpu_ms_per_request']} ms CPU per request, "
        f"event-loop lag p99 {result['client']['loop_lag_p99_ms']} ms"
    )
    print(
        f"  machine: {result['machine']['cpus']} cores, {result['machine']['ram_gb']} GB; load "
        f"average start {result['loadavg']['start']}, load start {result['loadavg']['load_start']}"
        f", end {result['loadavg']['end']}"
    )


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--staff", type=int, default=200, help="simulated people")
    ap.add_argument("--units", type=int, default=10, help="schools they work in")
    ap.add_argument("--think", type=float, default=8.0, help="mean think time between pages (s)")
    ap.add_argument("--seconds", type=float, default=240, help="measured duration")
    ap.add_argument("--warmup", type=float, default=60, help="unmeasured start (s)")
    ap.add_argument("--workers", type=int, default=2, help="API processes of `ezd serve`")
    ap.add_argument("--cases", type=int, default=2000, help="base cases seeded with a process")
    ap.add_argument("--bulk-cases", type=int, default=20000, help="older cases by SQL")
    ap.add_argument("--pdf-kb", type=int, default=100, help="size of a letter's PDF")
    ap.add_argument("--connections", type=int, default=100, help="client connection pool")
    ap.add_argument("--seed-threads", type=int, default=4, help="threads seeding the base")
    ap.add_argument("--port", type=int, default=8767)
    ap.add_argument("--database", default="ezd_bench_load")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="run on the database an earlier run left (same --database, --staff, --units)",
    )
    args = ap.parse_args()
    require_env("EZD_TEST_DATABASE_URL", "EZD_TEST_ES_URL", *S3_VARS)
    units = (DEMO_SCHOOLS + [c for c, _ in EXTRA_SCHOOLS])[: args.units]
    if len(units) < args.units:
        sys.exit(f"at most {len(units)} units")
    load_start = loadavg()
    started = time.time()
    print(f"load average at start: {load_start}", flush=True)

    # The database, the key prefix and the index are named after --database, so --reuse can
    # run again on what an earlier run left (its day continues: tasks done, letters added).
    env = ezd_env(
        database_url(args.database),
        data_dir=ROOT / ".data" / "bench-load",
        s3_prefix=f"bench-load-{args.database}/",
        search_index=f"ezd-bench-load-{args.database.replace('_', '-')}",
    )
    db_url = env["EZD_DATABASE_URL"]
    os.environ.update(env)  # the seeding container reads the same settings

    from api.bootstrap import bootstrap
    from workflow.schema import upgrade_database

    staff = staff_plan(units, args.staff)
    reuse = args.reuse and seeded_already(db_url, staff)
    if reuse:
        c = bootstrap()
        refs = known_refs(c, units)
        seeded: dict[str, Any] = {"timings": {"reused": True}}
        print(f"reusing {args.database}: {sum(map(len, refs.values()))} cases of this year")
    else:
        drop_index(env["EZD_SEARCH_URL"], env["EZD_SEARCH_INDEX"])
        fresh_database(os.environ["EZD_TEST_DATABASE_URL"], args.database)
        upgrade_database(db_url)
        c = bootstrap()
        seeded = seed(c, args, units, staff)
        refs = seeded["refs"]
    t = time.perf_counter()
    issue_tokens(c, staff, args.seed_threads)
    seeded["timings"]["login_s"] = round(time.perf_counter() - t, 1)
    c.search_index.close()
    c.dispose()

    base = f"http://127.0.0.1:{args.port}"
    api = start_ezd(
        ["serve", "--port", str(args.port), "--workers", str(args.workers)],
        env,
        health_url=f"{base}/healthz",
    )
    worker = start_ezd(["worker"], env)
    probe = OutboxProbe(db_url)
    try:
        drained_before = probe.drain(300)
        print(f"outbox drained before the load in {drained_before} s", flush=True)
        cpu = CpuGroups(api.pid, worker.pid, args.database)
        marks: dict[str, Any] = {}

        def mark_at(delay: float, name: str) -> None:
            def fire() -> None:
                marks[name] = cpu.sample()
                marks[f"{name}_load"] = loadavg()
                marks[f"{name}_utc"] = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())

            timer = threading.Timer(delay, fire)
            timer.daemon = True
            timer.start()

        print(f"running: {args.warmup:.0f} s warm-up + {args.seconds:.0f} s measured", flush=True)
        # uvicorn restarts an API process that died or missed its health check for 30 s: a new
        # pid among the server's children is a restart (its requests in flight were lost).
        api_pids: set[int] = set()

        def watch_api() -> None:
            api_pids.update(
                p
                for p, pp, _ in _processes()
                if pp == api.pid and "resource_tracker" not in _cmdline(p)
            )

        watch_api()
        probe.start(time.perf_counter(), watch_api)
        mark_at(args.warmup, "from")
        mark_at(args.warmup + args.seconds, "to")
        run, lag = asyncio.run(run_load(base, staff, refs, args))
        probe.stop()
        due_end, oldest_end = probe.now()
        drained_after = probe.drain(300)
        delays = probe.delays(marks["from_utc"])
    finally:
        stop(api)
        stop(worker)
        probe.engine.dispose()
    end_load = loadavg()
    summary = summarise(run, args.seconds)
    cores = CpuGroups.cores(marks["from"], marks["to"], args.seconds)
    n_req = max(1, summary["requests"])
    commit, dirty = git_commit()
    window = [s for s in probe.samples if args.warmup <= s[0] <= args.warmup + args.seconds]
    result = {
        "benchmark": "load",
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "dirty": dirty,
        "command": "bench/load.py " + " ".join(sys.argv[1:]),
        "staff": args.staff,
        "staff_by_role": dict(Counter(s.role for s in staff)),
        "units": args.units,
        "unit_codes": units,
        "think_s": args.think,
        "think_distribution": "exponential",
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "api_processes": args.workers,
        "api_process_restarts": len(api_pids) - args.workers,
        "workers": 1,
        "stores": "PostgreSQL + S3 (SeaweedFS) + Elasticsearch",
        "base": {
            "cases_with_process": args.cases,
            "bulk_cases": args.bulk_cases,
            "pdf_kb": args.pdf_kb,
            **seeded["timings"],
        },
        "summary": summary,
        "actions": dict(run.actions),
        "outbox": {
            "drained_before_load_s": drained_before,
            "due_at_end": due_end,
            "oldest_due_s_at_end": round(oldest_end, 2),
            "drained_in_s": drained_after,
            "max_due_during_run": max((s[1] for s in window), default=0),
            "max_oldest_due_s_during_run": max((s[2] for s in window), default=0),
            "samples": probe.samples,
            "delays": delays,
        },
        "cpu_cores": cores,
        "client": {
            "cpu_ms_per_request": round(cores["load generator"] * args.seconds / n_req * 1000, 2),
            "cpu_cores": cores["load generator"],
            "loop_lag_p50_ms": round(percentile(lag, 50), 1) if lag else None,
            "loop_lag_p99_ms": round(percentile(lag, 99), 1) if lag else None,
            "loop_lag_max_ms": round(max(lag), 1) if lag else None,
        },
        "machine": machine(),
        "loadavg": {
            "start": load_start,
            "load_start": marks.get("from_load"),
            "load_end": marks.get("to_load"),
            "end": end_load,
        },
        "wall_s": round(time.time() - started, 1),
    }
    out = ROOT / "bench" / "results" / f"load-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print_table(result)
    print(f"  wall time {result['wall_s']} s; written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
