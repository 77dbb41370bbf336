"""Scale generator (issue 9): a fresh, migrated PostgreSQL database holding `--cases` cases with
`--docs-per-case` documents each, as registrations would have left them, and the app's
Elasticsearch index of it. The benchmarks then run against it through the real API
(`bench/registration.py --database`, `bench/tasks.py --database`, `bench/search.py --database`).

    set -a; . .services/env; set +a
    .venv/bin/python bench/scale.py --database ezd_scale --cases 1000000 --docs-per-case 3
    .venv/bin/python bench/scale.py --database ezd_scale_10k --cases 10000   # the baseline
    .venv/bin/python bench/scale.py --compare ezd_scale_10k ezd_scale   # benchmarks on both

`--compare SMALL LARGE` generates nothing: it runs bench/registration.py, bench/tasks.py and
bench/search.py with `--database` on SMALL, then on LARGE (same API process and client counts),
and writes the comparison to bench/results/scale-<time>.json.

What it does, in order (each phase timed; JSON in bench/results/scale-gen-<db>-<time>.json):

1. `DROP/CREATE DATABASE`, `ezd db upgrade`, `ezd demo --no-serve --force` (the demo units,
   users with password `demo`, a few letters made the ordinary way, library processes).
2. A pool of `--blob-pool` real PDFs stored through the app's blob store (S3, key prefix
   `<database>/`), with their `blobs` rows. Blob keys are random per upload (not content
   addressed) and unique, so the generated document versions point at these pooled rows: every
   document is downloadable, but the `blobs` table holds only the pool, not one row per version.
3. Every registration as `POST /api/v1/incoming` with `new_case` and N files writes it, bulk
   loaded with COPY (secondary indexes and foreign keys dropped first, rebuilt after):
   `cases`, `incoming_items` (RPW numbers gapless per unit and year, in time order), `documents`
   + `document_versions` (+ `document_texts`, what the indexer's extraction stores),
   `audit_entries` (case.opened, incoming.registered, document.created ×N; case.closed for cases
   of past years, which are closed) chained after the demo's head with the app's own
   `entry_hash`, and `outbox_events` (the `search.index` events, as done). Case references
   `UNIT.JRWA.SEQ.YEAR` are gapless per unit, class and year; `number_counters` are set to the
   last numbers, continuing the demo's counters, so new registrations follow on.
   Process instances and tasks are not generated: the task benchmark makes its own.
4. `VACUUM ANALYZE` of the loaded tables.
5. The Elasticsearch index `<--es-prefix>` built by the app's rebuild path (`build_docs` from
   the database, Polish analysis, bulk API, alias swap), in `--es-jobs` processes.

Data: units, years (`--years`, the current one last: its cases stay open), leaf JRWA classes of
each unit's plan and times are drawn at random (seeded); subjects, senders and texts use the
search benchmark's Polish vocabulary so its queries match. The demo's letters are numbered 1…k
in the current year; generated items of that year continue after them, though dated earlier.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import queue
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EZD = str(ROOT / ".venv" / "bin" / "ezd")

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import git_commit  # noqa: E402
from bench.registration import fresh_database, pdf_of_size  # noqa: E402
from bench.search import NAMES, PRZEDMIOT, SENTENCES, SUBJECTS, SZKOLA  # noqa: E402
from workflow.audit.chain import entry_hash  # noqa: E402

KEK = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # bench only
# Tables a registration writes, loaded by COPY; their indexes and foreign keys are rebuilt.
TABLES = [
    "cases",
    "incoming_items",
    "documents",
    "document_versions",
    "document_texts",
    "audit_entries",
    "outbox_events",
]
SLICE = 20_000  # registrations per COPY round


# ---------------------------------------------------------------------------------------------
# Environment shared with the benchmarks' --database mode


def database_url(name: str) -> str:
    base = os.environ.get("EZD_TEST_DATABASE_URL")
    if not base:
        sys.exit("EZD_TEST_DATABASE_URL is not set: set -a; . .services/env; set +a")
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def scale_env(name: str, es_prefix: str | None = None) -> dict[str, str]:
    """The app's settings for the scale database `name` (S3 prefix `<name>/`, where its pooled
    blobs are); with `es_prefix`, the Elasticsearch index alias of it."""
    env = {
        "EZD_DATABASE_URL": database_url(name),
        "EZD_S3_ENDPOINT": os.environ["EZD_TEST_S3_ENDPOINT"],
        "EZD_S3_ACCESS_KEY": os.environ["EZD_TEST_S3_ACCESS_KEY"],
        "EZD_S3_SECRET_KEY": os.environ["EZD_TEST_S3_SECRET_KEY"],
        "EZD_S3_BUCKET": os.environ["EZD_TEST_S3_BUCKET"],
        "EZD_S3_SECURE": os.environ.get("EZD_TEST_S3_SECURE", "false"),
        "EZD_S3_PREFIX": f"{name}/",
        "EZD_DATA_DIR": str(ROOT / ".data" / name),
        "EZD_LOG_LEVEL": "warning",
        "EZD_EMBEDDED_WORKER": "false",
        "EZD_KEY_ENCRYPTION_KEY": os.environ.get("EZD_KEY_ENCRYPTION_KEY", KEK),
    }
    if es_prefix:
        env["EZD_SEARCH_URL"] = os.environ["EZD_TEST_ES_URL"]
        env["EZD_SEARCH_INDEX"] = es_prefix
    return env


def pg_conninfo(name: str) -> str:
    u = make_url(database_url(name))
    return (
        f"host={u.host} port={u.port or 5432} dbname={name} user={u.username} "
        f"password={u.password or ''}"
    )


# ---------------------------------------------------------------------------------------------
# Dropping and rebuilding indexes and constraints around the COPY


def drop_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the foreign keys touching TABLES, their primary/unique constraints and secondary
    indexes; returns the statements that recreate them (constraints first, foreign keys last)."""
    cur = conn.cursor()
    cur.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype
        FROM pg_constraint c
        WHERE c.contype IN ('p', 'u', 'f')
          AND (c.conrelid::regclass::text = ANY(%s)
               OR (c.contype = 'f' AND c.confrelid::regclass::text = ANY(%s)))
        """,
        (TABLES, TABLES),
    )
    cons = cur.fetchall()
    cur.execute(
        """
        SELECT i.tablename, i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        """,
        (TABLES,),
    )
    idx = cur.fetchall()
    fks = [c for c in cons if c[3] == "f"]
    keys = [c for c in cons if c[3] != "f"]
    for table, name, _, _ in fks:
        cur.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    for table, name, _, _ in keys:
        cur.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    for _, name, _ in idx:
        cur.execute(f'DROP INDEX "{name}"')
    conn.commit()
    keys.sort(key=lambda c: c[3] != "p")  # primary keys first
    return (
        [f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" {d}' for t, n, d, _ in keys]
        + [d for _, _, d in idx]
        + [f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" {d}' for t, n, d, _ in fks]
    )


# ---------------------------------------------------------------------------------------------
# Generation


def ts(at: datetime) -> str:
    return at.isoformat()


class Context:
    """What the demo left in the database: units, their clerks, leaf classes, counters, the
    audit head and the pooled blobs."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        cur = conn.cursor()
        cur.execute("SELECT id, code, jrwa_plan FROM units ORDER BY code")
        self.units = cur.fetchall()
        cur.execute(
            "SELECT u.id, u.full_name, upper(split_part(u.username, '.', 2)) FROM users u "
            "WHERE u.username LIKE 'clerk.%'"
        )
        self.clerk = {code: (uid, name) for uid, name, code in cur.fetchall()}
        cur.execute(
            "SELECT p.code, p.version, c.id, c.symbol, c.category_lead FROM jrwa_classes c "
            "JOIN jrwa_plans p ON p.id = c.plan_id WHERE c.is_leaf ORDER BY c.symbol"
        )
        self.classes: dict[str, list[tuple[str, uuid.UUID, str, str | None]]] = defaultdict(list)
        for plan, version, cid, symbol, cat in cur.fetchall():
            self.classes[plan].append((version, cid, symbol, cat))
        cur.execute("SELECT unit_id, series, year, last_value FROM number_counters")
        self.counters: dict[tuple[uuid.UUID, str, int], int] = {
            (u, s, y): v for u, s, y, v in cur.fetchall()
        }
        cur.execute("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1")
        self.seq, self.hash = cur.fetchone()  # type: ignore[misc]
        cur.execute(
            "SELECT id, sha256, size, media_type FROM blobs WHERE key LIKE 'blobs/scale/%' "
            "ORDER BY key"
        )
        self.blobs = cur.fetchall()
        self.units = [u for u in self.units if u[1] in self.clerk]


def plan_registrations(
    n: int, years: list[int], units: list[Any], rnd: random.Random, now: datetime
) -> dict[int, list[tuple[datetime, int]]]:
    """Per year, (time, unit index) of its registrations in time order."""
    per_year: dict[int, list[tuple[datetime, int]]] = {}
    base, extra = divmod(n, len(years))
    for k, year in enumerate(years):
        count = base + (1 if k < extra else 0)
        start = datetime(year, 1, 2, 7, tzinfo=UTC)
        end = min(datetime(year, 12, 31, 15, tzinfo=UTC), now - timedelta(hours=1))
        span = (end - start).total_seconds()
        rows = sorted(
            (start + timedelta(seconds=rnd.random() * span), rnd.randrange(len(units)))
            for _ in range(count)
        )
        per_year[year] = rows
    return per_year


class Buffers:
    """COPY text per table: one line per row, fields already formatted."""

    def __init__(self) -> None:
        self.data: dict[str, list[str]] = {t: [] for t in TABLES}

    def text(self, table: str) -> str:
        return "".join(self.data[table])

    def rows(self, table: str) -> int:
        return len(self.data[table])


def _uuid() -> str:
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _js(v: str) -> str:
    """A JSON string of the vocabulary (no quotes, backslashes or control characters)."""
    return f'"{v}"'


def _canonical(
    seq: int, at: str, actor: str, actor_name: str, unit: str, case: str, document: str | None,
    action: str, object_type: str, object_id: str, details: str, prev: str,
) -> str:  # fmt: skip
    """`workflow.audit.chain.entry_hash`'s canonical JSON, built by hand (checked against it)."""
    doc = "null" if document is None else f'"{document}"'
    return (
        f'{{"action":"{action}","actor":"{actor}","actor_name":"{actor_name}","at":"{at}",'
        f'"case":"{case}","details":{details},"document":{doc},"object_id":"{object_id}",'
        f'"object_type":"{object_type}","prev":"{prev}","seq":{seq},"unit":"{unit}"}}'
    )


COLUMNS = {
    "cases": "id, reference, unit_id, department_id, jrwa_class_id, jrwa_symbol, seq, year, "
    "title, status, opened_by, opened_at, handler_id, closed_at",
    "incoming_items": "id, unit_id, rpw_seq, rpw_year, rpw_number, received_at, channel, sender, "
    "sender_name, sender_reference, letter_date, subject, attachments_count, notes, "
    "jrwa_class_id, case_id, registered_by, registered_at, idempotency_key",
    "documents": "id, unit_id, case_id, incoming_item_id, outgoing_item_id, identifier, title, "
    "creator, document_date, format, access, type, relation, recipient, grouping, "
    "qualification, language, description, rights, signature_report, created_by, created_at",
    "document_versions": "id, document_id, version_no, blob_id, file_name, note, created_by, "
    "created_at",
    "document_texts": "version_id, document_id, status, method, reason, text, chars, extracted_at",
    "audit_entries": "seq, occurred_at, actor_id, actor_name, unit_id, case_id, document_id, "
    "action, object_type, object_id, details, prev_hash, entry_hash",
    "outbox_events": "id, topic, payload, dedupe_key, status, attempts, last_error, created_at, "
    "available_at, processed_at",
}
CHANNELS = ["paper"] * 6 + ["email"] * 2 + ["epuap", "e_delivery"]


class Generator:
    def __init__(self, ctx: Context, docs_per_case: int, rnd: random.Random, year_now: int):
        self.ctx = ctx
        self.n_docs = docs_per_case
        self.rnd = rnd
        self.year_now = year_now
        self.seq = ctx.seq
        self.prev = ctx.hash
        self.counters = {(str(u), s, y): v for (u, s, y), v in ctx.counters.items()}
        self.hash_s = 0.0
        self.checked = 0
        # Vocabulary without tabs, newlines, backslashes or quotes: COPY text and the JSON
        # built by hand need no escaping.
        assert not any(
            c in s for s in SUBJECTS + NAMES + SENTENCES + PRZEDMIOT + SZKOLA for c in '\t\n\\"'
        )
        self.units = [(str(u), code, plan) for u, code, plan in ctx.units]
        self.clerk = {code: (str(uid), name) for code, (uid, name) in ctx.clerk.items()}
        self.classes = {
            plan: [(v, str(cid), sym, cat or "") for v, cid, sym, cat in rows]
            for plan, rows in ctx.classes.items()
        }
        self.blobs = [(str(b), sha, media) for b, sha, _size, media in ctx.blobs]

    def _next(self, unit_id: str, series: str, year: int) -> int:
        k = (unit_id, series, year)
        v = self.counters.get(k, 0) + 1
        self.counters[k] = v
        return v

    def _audit(
        self, buf: Buffers, at: datetime, actor: tuple[str, str], unit_id: str, case_id: str,
        document_id: str | None, action: str, object_type: str, object_id: str, details: str,
    ) -> None:  # fmt: skip
        self.seq += 1
        t0 = time.perf_counter()
        at_s = at.isoformat(timespec="microseconds")
        body = _canonical(
            self.seq, at_s, actor[0], actor[1], unit_id, case_id, document_id, action,
            object_type, object_id, details, self.prev,
        )  # fmt: skip
        h = hashlib.sha256(body.encode()).hexdigest()
        if self.checked < 200:  # the hand-built JSON is the chain's: check the first entries
            self.checked += 1
            assert h == entry_hash(
                seq=self.seq, occurred_at=at, actor_id=uuid.UUID(actor[0]),
                actor_name=actor[1], unit_id=uuid.UUID(unit_id), case_id=uuid.UUID(case_id),
                document_id=uuid.UUID(document_id) if document_id else None, action=action,
                object_type=object_type, object_id=object_id, details=json.loads(details),
                prev_hash=self.prev,
            ), body  # fmt: skip
        self.hash_s += time.perf_counter() - t0
        doc = document_id or "\\N"
        buf.data["audit_entries"].append(
            f"{self.seq}\t{at_s}\t{actor[0]}\t{actor[1]}\t{unit_id}\t{case_id}\t{doc}\t"
            f"{action}\t{object_type}\t{object_id}\t{details}\t{self.prev}\t{h}\n"
        )
        self.prev = h

    @staticmethod
    def _outbox(buf: Buffers, at: str, done: str, kind: str, oid: str) -> None:
        buf.data["outbox_events"].append(
            f'{_uuid()}\tsearch.index\t{{"kind": "{kind}", "id": "{oid}"}}\t\\N\tdone\t1\t'
            f"\\N\t{at}\t{at}\t{done}\n"
        )

    def registration(self, buf: Buffers, at: datetime, unit_index: int) -> None:
        rnd = self.rnd
        unit_id, code, plan = self.units[unit_index]
        clerk = self.clerk[code]
        version, class_id, symbol, category = rnd.choice(self.classes[plan])
        year = at.year  # the office year (Warsaw) equals the UTC year for these times
        subject = rnd.choice(SUBJECTS).format(
            przedmiot=rnd.choice(PRZEDMIOT), szkola=rnd.choice(SZKOLA)
        )
        sender = rnd.choice(NAMES)
        channel = rnd.choice(CHANNELS)
        rpw_seq = self._next(unit_id, "rpw", year)
        rpw = f"RPW/{rpw_seq}/{year}"
        case_seq = self._next(unit_id, f"case::{symbol}", year)
        reference = f"{code}.{symbol}.{case_seq}.{year}"
        case_id, item_id = _uuid(), _uuid()
        at_s = at.isoformat()
        done_s = (at + timedelta(seconds=2)).isoformat()
        opened = at + timedelta(milliseconds=20)
        opened_s = opened.isoformat()
        closed = year < self.year_now
        closed_at = opened + timedelta(days=rnd.randrange(1, 60)) if closed else None
        letter_date = (at - timedelta(days=rnd.randrange(1, 10))).date().isoformat()
        data = buf.data
        data["cases"].append(
            f"{case_id}\t{reference}\t{unit_id}\t\\N\t{class_id}\t{symbol}\t{case_seq}\t"
            f"{year}\t{subject}\t{'closed' if closed else 'open'}\t{clerk[0]}\t{opened_s}\t"
            f"\\N\t{closed_at.isoformat() if closed_at else chr(92) + 'N'}\n"
        )
        sender_json = f'{{"name": "{sender}", "kind": "person", "address": null, "email": null}}'
        data["incoming_items"].append(
            f"{item_id}\t{unit_id}\t{rpw_seq}\t{year}\t{rpw}\t{at_s}\t{channel}\t"
            f"{sender_json}\t{sender}\t\t{letter_date}\t{subject}\t{self.n_docs}\t\t"
            f"{class_id}\t{case_id}\t{clerk[0]}\t{at_s}\t\\N\n"
        )
        # Audit order of register_incoming_item: case.opened, incoming.registered, documents.
        self._audit(
            buf, opened, clerk, unit_id, case_id, None, "case.opened", "case", case_id,
            f'{{"jrwa":"{symbol}","jrwa_plan_version":"{version}",'
            f'"reference":"{reference}","title":"{subject}"}}',
        )  # fmt: skip
        self._audit(
            buf, at, clerk, unit_id, case_id, None, "incoming.registered", "incoming_item",
            item_id,
            f'{{"case_reference":"{reference}","channel":"{channel}","files":{self.n_docs},'
            f'"rpw_number":"{rpw}","sender":"{sender}","subject":"{subject}"}}',
        )  # fmt: skip
        self._outbox(buf, at_s, done_s, "case", case_id)
        self._outbox(buf, at_s, done_s, "incoming", item_id)
        cat = category or "\\N"
        for n in range(1, self.n_docs + 1):
            doc_id, version_id = _uuid(), _uuid()
            blob_id, sha, media = self.blobs[rnd.randrange(len(self.blobs))]
            file_name = f"skan-{n}.pdf"
            identifier = f"{code}/{rpw}/{n}"
            created = at + timedelta(milliseconds=30 + n)
            created_s = created.isoformat()
            data["documents"].append(
                f"{doc_id}\t{unit_id}\t{case_id}\t{item_id}\t\\N\t{identifier}\t{file_name}\t"
                f"{sender}\t{letter_date}\t{media}\tograniczony\tText\t{rpw}\t\\N\t"
                f"{reference}\t{cat}\tpol\t{subject}\t\\N\tnull\t{clerk[0]}\t{created_s}\n"
            )
            data["document_versions"].append(
                f"{version_id}\t{doc_id}\t1\t{blob_id}\t{file_name}\t\t{clerk[0]}\t{created_s}\n"
            )
            text = " ".join(
                rnd.choice(SENTENCES).format(d=letter_date, k=rnd.randrange(1, 9))
                for _ in range(rnd.randrange(2, 5))
            )
            data["document_texts"].append(
                f"{version_id}\t{doc_id}\tok\tpdf\t\\N\t{text}\t{len(text)}\t{done_s}\n"
            )
            self._audit(
                buf, created, clerk, unit_id, case_id, doc_id, "document.created", "document",
                doc_id,
                f'{{"file_name":"{file_name}","identifier":"{identifier}","sha256":"{sha}",'
                f'"title":"{file_name}"}}',
            )  # fmt: skip
            self._outbox(buf, created_s, done_s, "document", doc_id)
        if closed_at is not None:
            self._audit(
                buf, closed_at, clerk, unit_id, case_id, None, "case.closed", "case", case_id,
                f'{{"reason":"Sprawa załatwiona.","reference":"{reference}"}}',
            )  # fmt: skip
            self._outbox(buf, closed_at.isoformat(), closed_at.isoformat(), "case", case_id)


# ---------------------------------------------------------------------------------------------
# Phases


def run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")


def store_blob_pool(name: str, count: int) -> None:
    """`count` distinct PDFs through the app's blob store (verified PUT), and their rows."""
    from api.bootstrap import bootstrap
    from workflow.documents.models import Blob
    from workflow.documents.service import spooled
    from workflow.settings import Settings

    os.environ.update(scale_env(name))
    c = bootstrap(Settings())
    with c.uow() as uow:
        for i in range(count):
            data = pdf_of_size(20_000 + 997 * i)
            key = f"blobs/scale/{i:04d}"
            with spooled(data, f"skan-{i}.pdf", "application/pdf") as up:
                c.blob_store.put(key, up)
            uow.session.add(
                Blob(key=key, sha256=up.sha256, size=up.size, media_type="application/pdf")
            )
        uow.session.commit()
    c.dispose()


def load(name: str, args: argparse.Namespace, result: dict[str, Any]) -> None:
    rnd = random.Random(args.seed)
    now = datetime.now(UTC)
    years = list(range(now.year - args.years + 1, now.year + 1))
    with psycopg.connect(pg_conninfo(name)) as conn:
        ctx = Context(conn)
        t0 = time.perf_counter()
        rebuild = drop_indexes(conn)
        result["phases"]["drop_indexes_s"] = round(time.perf_counter() - t0, 1)
        gen = Generator(ctx, args.docs_per_case, rnd, now.year)
        plan = plan_registrations(args.cases, years, ctx.units, rnd, now)
        gen_s = 0.0
        copy_s = dict.fromkeys(TABLES, 0.0)
        rows = dict.fromkeys(TABLES, 0)
        done = 0
        t_load = time.perf_counter()
        for year in years:
            regs = plan[year]
            for first in range(0, len(regs), SLICE):
                t1 = time.perf_counter()
                buf = Buffers()
                for at, unit_index in regs[first : first + SLICE]:
                    gen.registration(buf, at, unit_index)
                gen_s += time.perf_counter() - t1
                for table in TABLES:
                    t2 = time.perf_counter()
                    with conn.cursor().copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                        copy.write(buf.text(table))
                    copy_s[table] += time.perf_counter() - t2
                    rows[table] += buf.rows(table)
                conn.commit()
                done += len(regs[first : first + SLICE])
                el = time.perf_counter() - t_load
                print(
                    f"  {done:>9,} registrations  {el:7.1f} s  {done / el:7.0f}/s  "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
        load_s = time.perf_counter() - t_load
        cur = conn.cursor()
        for (unit_id, series, year), value in gen.counters.items():
            cur.execute(
                "INSERT INTO number_counters (unit_id, series, year, last_value) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (unit_id, series, year) "
                "DO UPDATE SET last_value = EXCLUDED.last_value",
                (unit_id, series, year, value),
            )
        cur.execute(
            "UPDATE audit_chain_head SET last_seq = %s, last_hash = %s WHERE id = 1",
            (gen.seq, gen.prev),
        )
        conn.commit()
        result["phases"]["generate_and_copy_s"] = round(load_s, 1)
        result["phases"]["generate_python_s"] = round(gen_s, 1)
        result["phases"]["audit_hash_s"] = round(gen.hash_s, 1)
        result["tables"] = {
            t: {
                "rows": rows[t],
                "copy_s": round(copy_s[t], 1),
                "copy_rows_per_s": round(rows[t] / copy_s[t]) if copy_s[t] else None,
            }
            for t in TABLES
        }
        result["counters"] = len(gen.counters)
        print(f"loaded in {load_s:.1f} s (Python generation {gen_s:.1f} s); rebuilding indexes")
        t0 = time.perf_counter()
        per_table: dict[str, float] = defaultdict(float)
        for stmt in rebuild:
            t1 = time.perf_counter()
            cur.execute(stmt)  # type: ignore[arg-type]
            conn.commit()
            table = stmt.split('"')[1] if stmt.startswith("ALTER") else stmt.split(" ON ")[1]
            per_table[table.replace("public.", "").split()[0]] += time.perf_counter() - t1
        result["phases"]["rebuild_indexes_s"] = round(time.perf_counter() - t0, 1)
        result["index_rebuild_s_per_table"] = {k: round(v, 1) for k, v in per_table.items()}
    with psycopg.connect(pg_conninfo(name), autocommit=True) as conn:
        t0 = time.perf_counter()
        for table in TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")  # type: ignore[arg-type]
        result["phases"]["vacuum_analyze_s"] = round(time.perf_counter() - t0, 1)


def _reindex_worker(name: str, es_prefix: str, generation: str, batches: Any, out: Any) -> None:
    from api.bootstrap import bootstrap
    from workflow.search.repository import SearchRepository
    from workflow.search.service import build_docs
    from workflow.settings import Settings

    os.environ.update(scale_env(name, es_prefix))
    os.environ["EZD_SEARCH_TIMEOUT_SECONDS"] = "300"  # bulk requests on a loaded machine
    c = bootstrap(Settings())
    index = c.search_index
    n = 0
    try:
        while True:
            job = batches.get()
            if job is None:
                break
            kind, ids = job
            with c.uow() as uow:
                docs = build_docs(SearchRepository(uow.session), kind, ids)
            index.add_to_rebuild(generation, docs)
            n += len(docs)
    except BaseException as e:
        out.put(f"error: {e!r}")
        raise
    out.put(n)
    c.dispose()


def _put(q: Any, job: Any, procs: list[Any]) -> None:
    """Queue a job; give up when an indexing process has died (its error is on stderr)."""
    while True:
        try:
            q.put(job, timeout=5)
            return
        except queue.Full:
            if not all(p.is_alive() for p in procs):
                for p in procs:
                    p.terminate()
                sys.exit("an indexing process failed")


def build_index(name: str, es_prefix: str, jobs: int, fraction: float = 1.0) -> dict[str, Any]:
    """The app's rebuild (`ezd search reindex`), its batches spread over `jobs` processes.
    With `fraction` < 1, only that share of each kind (the first ids in id order: random
    uuids, so a random sample), when the whole index would take too long."""
    from api.bootstrap import bootstrap
    from workflow.search.port import KINDS
    from workflow.search.repository import SearchRepository
    from workflow.settings import Settings

    os.environ.update(scale_env(name, es_prefix))
    os.environ["EZD_SEARCH_TIMEOUT_SECONDS"] = "300"
    c = bootstrap(Settings())
    index = c.search_index
    # Only this alias's generations (`<alias>-<time>-<hex>`): `<alias>*` would also match
    # another scale database's index (ezd-scale* covers ezd-scale-10k).
    index.es.indices.delete(
        index=f"{es_prefix}-20*", ignore_unavailable=True, allow_no_indices=True
    )
    index.ensure()
    generation = index.begin_rebuild()
    ctx = mp.get_context("spawn")
    batches: Any = ctx.Queue(maxsize=jobs * 4)
    out: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_reindex_worker, args=(name, es_prefix, generation, batches, out))
        for _ in range(jobs)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    total = 0
    for kind in KINDS:
        with c.uow() as uow:
            repo = SearchRepository(uow.session)
            limit = round(repo.count(kind) * fraction)
            queued = 0
            for ids in repo.id_batches(kind, 500):
                if queued >= limit:
                    break
                ids = ids[: limit - queued]
                _put(batches, (kind, ids), procs)
                queued += len(ids)
                total += len(ids)
                if total % 100_000 < 500:
                    el = time.perf_counter() - t0
                    print(
                        f"  index: {total:>9,} queued  {el:7.1f} s  {total / el:6.0f}/s  "
                        f"load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
    for _ in procs:
        _put(batches, None, procs)
    counts = [out.get() for _ in procs]
    if any(isinstance(n, str) for n in counts):
        sys.exit(f"indexing failed: {counts}")
    indexed = sum(counts)
    for p in procs:
        p.join()
    index.finish_rebuild(generation)
    secs = time.perf_counter() - t0
    index.refresh()
    stats = index.es.indices.stats(index=es_prefix, metric=["docs", "store"]).body["_all"]
    c.dispose()
    return {
        "docs": indexed,
        "seconds": round(secs, 1),
        "docs_per_s": round(indexed / secs),
        "jobs": jobs,
        "fraction": fraction,
        "index_docs": stats["primaries"]["docs"]["count"],
        "index_bytes": stats["primaries"]["store"]["size_in_bytes"],
    }


# ---------------------------------------------------------------------------------------------
# The benchmarks against two scale databases, back to back


def _newest(pattern: str) -> dict[str, Any]:
    files = sorted((ROOT / "bench" / "results").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not files:
        sys.exit(f"no result {pattern}")
    data: dict[str, Any] = json.loads(files[-1].read_text())
    return data


def _bench(cmd: list[str]) -> None:
    print("$", " ".join(cmd), f"(load {os.getloadavg()[0]:.2f})", flush=True)
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), *cmd], cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({done.returncode})")


def measure(db: str, args: argparse.Namespace) -> dict[str, Any]:
    """Registration, task completion and search figures on the scale database `db`."""
    figures: dict[str, Any] = {}
    t0 = time.perf_counter()
    _bench(
        ["bench/registration.py", "--database", db, "--seconds", str(args.reg_seconds),
         "--workers", "3", "--clients", "16", "--port", "18811"]
    )  # fmt: skip
    r = json.loads((ROOT / "bench" / "results" / f"registration-{db}.json").read_text())
    figures["registration"] = {
        "per_second": r["per_second"], "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"],
        "errors": r["errors"], "loadavg": [r["loadavg_at_start"], r["loadavg_at_end"]],
    }  # fmt: skip
    _bench(
        ["bench/tasks.py", "--database", db, "--tasks", str(args.task_count), "--sequential",
         str(args.task_count // 8), "--workers", "2", "--clients", "16", "--port", "18812"]
    )  # fmt: skip
    t = _newest(f"tasks-{db}-*.json")
    paths = {x["path"]: x for x in t["results"]}
    figures["tasks"] = {
        name: {k: paths[name][k] for k in ("p50_ms", "p95_ms", "per_second", "errors")}
        for name in ("service, 1 client", "service", "http")
        if name in paths
    }
    figures["tasks"]["loadavg"] = [t["loadavg_at_start"], t.get("loadavg_at_end")]
    _bench(["bench/search.py", "--database", db, "--queries", str(args.queries)])
    q = _newest(f"search-{db}-*.json")
    figures["search"] = {
        "docs": q["docs"],
        "es_p50_ms": q["elasticsearch"]["p50_ms"],
        "es_p95_ms": q["elasticsearch"]["p95_ms"],
        "api_p50_ms": q["api_vs_raw_es"]["api_p50_ms"],
        "api_p95_ms": q["api_vs_raw_es"]["api_p95_ms"],
        "raw_p50_ms": q["api_vs_raw_es"]["raw_p50_ms"],
        "loadavg": [q["loadavg_at_start"], q["loadavg_at_end"]],
    }
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    return figures


def _rows(small: dict[str, Any], large: dict[str, Any]) -> list[dict[str, Any]]:
    """(figure, small, large, slower by %): latencies compare as large/small, rates as
    small/large, so a positive change is always a slowdown."""
    out = []
    pairs = [("registration", k, k) for k in ("per_second", "p50_ms", "p95_ms")]
    for path in ("service, 1 client", "service", "http"):
        pairs += [("tasks", path, k) for k in ("per_second", "p50_ms", "p95_ms")]
    pairs += [("search", k, k) for k in ("es_p50_ms", "es_p95_ms", "api_p50_ms", "api_p95_ms")]
    for group, key, field in pairs:
        a, b = small[group], large[group]
        if group == "tasks":
            if key not in a or key not in b:
                continue
            a, b = a[key], b[key]
        va, vb = a[field], b[field]
        if not va or not vb:
            continue
        slower = (va / vb - 1) if field == "per_second" else (vb / va - 1)
        name = f"{group} {key}" if group == "tasks" else group
        out.append(
            {"figure": f"{name} {field}", "small": va, "large": vb,
             "slower_pct": round(slower * 100, 1)}
        )  # fmt: skip
    return out


def compare(args: argparse.Namespace) -> None:
    small, large = args.compare
    result: dict[str, Any] = {
        "benchmark": "scale",
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit()[0],
        "databases": {"small": small, "large": large},
        "conditions": "3 API processes and 16 clients for registration; 2 API processes and "
        "16 clients for tasks; 1 API process for search; the two sizes back to back",
        "cpus": os.cpu_count(),
    }
    with psycopg.connect(pg_conninfo(small)) as a, psycopg.connect(pg_conninfo(large)) as b:
        for key, conn in (("small", a), ("large", b)):
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM cases")
            cases = cur.fetchone()[0]  # type: ignore[index]
            cur.execute("SELECT count(*) FROM documents")
            docs = cur.fetchone()[0]  # type: ignore[index]
            cur.execute("SELECT pg_database_size(current_database())")
            result[f"{key}_size"] = {"cases": cases, "documents": docs,
                                     "db_bytes": cur.fetchone()[0]}  # type: ignore[index]  # fmt: skip
    result["small"] = measure(small, args)
    result["large"] = measure(large, args)
    result["comparison"] = _rows(result["small"], result["large"])
    out = ROOT / "bench" / "results" / f"scale-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\n{'figure':<42}{small:>16}{large:>16}{'slower %':>10}")
    for r in result["comparison"]:
        print(f"{r['figure']:<42}{r['small']:>16}{r['large']:>16}{r['slower_pct']:>10}")
    print(f"written to {out.relative_to(ROOT)}")


def reusable(name: str, es_prefix: str, args: argparse.Namespace) -> dict[str, int] | None:
    """The sizes of database `name` and its index when an earlier run made them for these
    arguments, else None. The generator is deterministic, so the same arguments give the same
    data; each benchmark run adds a few thousand rows, hence the tolerance."""
    try:
        conn = psycopg.connect(pg_conninfo(name))
    except psycopg.OperationalError:
        return None  # no such database
    with conn:
        cur = conn.cursor()
        counts: dict[str, int] = {}
        for table in ("cases", "documents", "incoming_items", "outgoing_items"):
            try:
                cur.execute(f"SELECT count(*) FROM {table}")  # fixed table names
            except psycopg.errors.UndefinedTable:
                return None
            counts[table] = cur.fetchone()[0]  # type: ignore[index]
    if not args.cases <= counts["cases"] <= args.cases * 1.02 + 10_000:
        return None
    if (
        not args.cases * args.docs_per_case
        <= counts["documents"]
        <= counts["cases"] * (args.docs_per_case + 0.1)
    ):
        return None
    if not args.no_es:
        from elasticsearch import Elasticsearch

        es = Elasticsearch(os.environ["EZD_TEST_ES_URL"], request_timeout=60)
        try:
            indexed = int(es.count(index=es_prefix)["count"])
        except Exception:  # no alias, or no server: build it again
            return None
        finally:
            es.close()
        expected = sum(counts.values()) * args.es_fraction
        if indexed < expected * 0.98:
            return None
        counts["index"] = indexed
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database", default="ezd_scale")
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--docs-per-case", type=int, default=3)
    ap.add_argument("--years", type=int, default=10, help="years of registrations, up to now")
    ap.add_argument("--blob-pool", type=int, default=32, help="real PDFs the versions share")
    ap.add_argument("--es-prefix", help="Elasticsearch alias (default: <database>)")
    ap.add_argument("--es-jobs", type=int, default=2, help="indexing processes")
    ap.add_argument("--no-es", action="store_true", help="skip the Elasticsearch index")
    ap.add_argument(
        "--es-fraction", type=float, default=1.0, help="index this random share of the data"
    )
    ap.add_argument("--es-only", action="store_true", help="only (re)build the index")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep the database and index of an earlier run when they hold this size",
    )
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument(
        "--compare",
        nargs=2,
        metavar=("SMALL", "LARGE"),
        help="generate nothing: run the benchmarks on two scale databases back to back",
    )
    ap.add_argument("--reg-seconds", type=int, default=30, help="with --compare")
    ap.add_argument("--task-count", type=int, default=2000, help="with --compare")
    ap.add_argument("--queries", type=int, default=300, help="with --compare")
    args = ap.parse_args()
    if args.compare:
        compare(args)
        return
    name = args.database
    es_prefix = args.es_prefix or name.replace("_", "-")
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    result: dict[str, Any] = {
        "benchmark": "scale-generate",
        "database": name,
        "es_alias": None if args.no_es else es_prefix,
        "cases": args.cases,
        "docs_per_case": args.docs_per_case,
        "started": started,
        "loadavg_at_start": os.getloadavg(),
        "phases": {},
    }
    t_all = time.perf_counter()
    if args.reuse and not args.es_only:
        found = reusable(name, es_prefix, args)
        if found is not None:
            print(f"reusing {name} and its index: {found}", flush=True)
            return
    if not args.es_only:
        t0 = time.perf_counter()
        fresh_database(os.environ["EZD_TEST_DATABASE_URL"], name)
        env = scale_env(name)
        run([EZD, "db", "upgrade"], env)
        run([EZD, "demo", "--no-serve", "--force"], env)
        store_blob_pool(name, args.blob_pool)
        result["phases"]["migrate_demo_blobs_s"] = round(time.perf_counter() - t0, 1)
        print(f"database {name} migrated, demo seeded ({time.perf_counter() - t0:.1f} s)")
        load(name, args, result)
        with psycopg.connect(pg_conninfo(name)) as conn:
            cur = conn.cursor()
            cur.execute("SELECT pg_database_size(current_database())")
            result["db_bytes"] = cur.fetchone()[0]  # type: ignore[index]
            cur.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)",
                (TABLES,),
            )
            result["table_bytes"] = dict(cur.fetchall())
        print(f"database size {result['db_bytes'] / 2**30:.2f} GiB", flush=True)
    if not args.no_es:
        result["elasticsearch"] = build_index(name, es_prefix, args.es_jobs, args.es_fraction)
        print(f"index {result['elasticsearch']}", flush=True)
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    result["loadavg_at_end"] = os.getloadavg()
    out = ROOT / "bench" / "results" / f"scale-gen-{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
