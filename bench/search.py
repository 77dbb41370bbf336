"""Search benchmark: indexing rate, query latency at N documents on both indices, and the cost
of the HTTP API over the same raw Elasticsearch query.

    .venv/bin/python bench/search.py [--docs 100000] [--queries 300] [--only embedded]

Needs EZD_TEST_ES_URL (scripts/elasticsearch.sh up) unless `--only embedded`. Generates
Polish letters, cases and documents (inflected subjects, senders, a paragraph of content)
spread over the demo units; indexes them in batches of 500 into each adapter (the rebuild
path: Polish analysis included); then runs a mix of queries (inflected words, two-word
queries, phrases, prefixes, typos; a school clerk's unit filter, and the city auditor's view
across units). Finally it serves the API (`ezd serve`, embedded database, the Elasticsearch
index just built) and times `GET /api/v1/search` against the same query body sent raw with
the client, one after the other (not with `--only`).
Prints JSON and writes bench/results/search-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import urllib3  # noqa: E402

from bench.registration import percentile  # noqa: E402
from search.elastic import ElasticsearchIndex  # noqa: E402
from search.embedded import EmbeddedIndex  # noqa: E402
from workflow.search.port import IndexDoc, SearchFilters, SearchIndex, SearchRequest  # noqa: E402
from workflow.search.query import parse_query  # noqa: E402
from workflow.search.service import _finish  # noqa: E402

SUBJECTS = [
    "Skarga rodzica na ocenę z {przedmiot}",
    "Wniosek o przyjęcie dziecka do {szkola}",
    "Zwolnienie lekarskie nauczyciela {przedmiot}",
    "Dostawa monitorów interaktywnych do {szkola}",
    "Prośba o zwolnienie ucznia z zajęć {przedmiot}",
    "Odwołanie od decyzji dyrektora {szkola}",
    "Arkusz organizacyjny {szkola} na rok szkolny",
    "Wniosek o duplikat legitymacji szkolnej",
    "Zawiadomienie o kontroli sanepidu w {szkola}",
    "Faktura za remont sali gimnastycznej",
    "Informacja o wypadku ucznia podczas {przedmiot}",
    "Zapytanie ofertowe na dowóz uczniów niepełnosprawnych",
]
PRZEDMIOT = ["matematyki", "fizyki", "języka polskiego", "historii", "wychowania fizycznego",
             "chemii", "biologii", "informatyki", "geografii", "muzyki"]  # fmt: skip
SZKOLA = ["szkoły podstawowej", "przedszkola", "liceum", "szkoły", "internatu", "świetlicy"]
NAMES = ["Anna Kowalska", "Jan Nowak", "Ewa Wiśniewska", "Piotr Wójcik", "Katarzyna Kamińska",
         "Tomasz Lewandowski", "Małgorzata Zielińska", "Firma Ekran sp. z o.o.",
         "Przychodnia Zdrowie", "Rada Rodziców"]  # fmt: skip
SENTENCES = [
    "W nawiązaniu do pisma z dnia {d} uprzejmie informuję, że sprawa zostanie rozpatrzona.",
    "Rodzice uczniów klasy {k} zwracają się z prośbą o wyjaśnienie zasad oceniania.",
    "Dyrektor szkoły przekazuje dokumentację dotyczącą organizacji zajęć.",
    "Do wniosku dołączono zaświadczenie lekarskie oraz opinię poradni.",
    "Termin realizacji dostawy upływa z końcem miesiąca.",
    "Prosimy o przesłanie odpowiedzi w terminie czternastu dni.",
    "Kontrola wykazała uchybienia w prowadzeniu dziennika zajęć.",
    "Uczeń przebywał na zwolnieniu lekarskim od poniedziałku.",
]
QUERIES = [
    "skargi rodziców", "skarga", "zwolnienia lekarskiego", "zwolnienie lekarskie",
    "monitory interaktywne", "monitor*", "legitymacji", "arkusza organizacyjnego",
    '"wniosek o duplikat"', "kontrola sanepidu", "wypadku ucznia", "dowozu uczniow",
    "remont sali", "odwolanie dyrektora", "intreaktywne", "przedszkole", "szkole",
    "faktura -remont", "matematyka", "fizyki ocena", "kowalska", "zaświadczenie lekarskie",
]  # fmt: skip


def generate(n: int, units: list[tuple[str, str]], seed: int = 7) -> list[IndexDoc]:
    rnd = random.Random(seed)
    kinds = ["incoming", "outgoing", "case", "document"]
    jrwas = [("431", "B5"), ("4430", "B10"), ("0430", "A"), ("2300", "B5"), ("3026", "B10")]
    docs = []
    start = date(2016, 1, 1)
    for i in range(n):
        unit_id, unit = units[rnd.randrange(len(units))]
        subject = rnd.choice(SUBJECTS).format(
            przedmiot=rnd.choice(PRZEDMIOT), szkola=rnd.choice(SZKOLA)
        )
        kind = kinds[i % 4]
        jrwa, cat = rnd.choice(jrwas)
        d = start + timedelta(days=rnd.randrange(3650))
        content = " ".join(
            rnd.choice(SENTENCES).format(d=d.isoformat(), k=rnd.randrange(1, 9))
            for _ in range(rnd.randrange(3, 9))
        )
        oid = uuid.UUID(int=rnd.getrandbits(128))
        docs.append(
            _finish(
                IndexDoc(
                    key=f"{kind}:{oid}",
                    kind=kind,
                    object_id=str(oid),
                    unit_id=unit_id,
                    unit=unit,
                    title=subject,
                    date=d,
                    number=f"RPW/{i}/{d.year}",
                    case_reference=f"{unit}.{jrwa}.{i % 500}.{d.year}",
                    sender=rnd.choice(NAMES),
                    jrwa=jrwa,
                    status=rnd.choice(["open", "closed", "registered"]),
                    retention=cat,
                    content=content if kind == "document" else "",
                )
            )
        )
    return docs


def index_rate(index: SearchIndex, docs: list[IndexDoc]) -> float:
    from search import polish

    polish.fold.cache_clear()  # each adapter pays for the Polish analysis from cold
    polish._analyse.cache_clear()
    index.ensure()
    gen = index.begin_rebuild()
    t0 = time.perf_counter()
    for i in range(0, len(docs), 500):
        index.add_to_rebuild(gen, docs[i : i + 500])
    index.finish_rebuild(gen)
    return len(docs) / (time.perf_counter() - t0)


def requests_mix(n: int, clerk_units: tuple[str, ...]) -> list[SearchRequest]:
    rnd = random.Random(11)
    out = []
    for i in range(n):
        q = QUERIES[i % len(QUERIES)]
        units = None if i % 5 == 0 else clerk_units  # every fifth: the auditor's view
        sort = "relevance" if i % 3 else "date_desc"
        flt = SearchFilters(jrwa=("431",)) if rnd.random() < 0.2 else SearchFilters()
        out.append(SearchRequest(parse_query(q), flt, units, sort=sort, size=20))  # type: ignore[arg-type]
    return out


def latencies(index: SearchIndex, reqs: list[SearchRequest]) -> dict[str, float]:
    for r in reqs[:20]:
        index.search(r)  # warm-up
    times = []
    for r in reqs:
        t0 = time.perf_counter()
        index.search(r)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


def demo_install(data: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [str(ROOT / ".venv/bin/ezd"), "demo", "--no-serve"], env=env, check=True,
        capture_output=True,
    )  # fmt: skip


def api_vs_raw(
    es_index: ElasticsearchIndex, env: dict[str, str], clerk_unit: str, n: int
) -> dict[str, float]:
    """`GET /api/v1/search` against the same query sent raw to Elasticsearch, alternating, in
    one run. Both sides are timed with the same HTTP library, urllib3 (what the Elasticsearch
    client sends with), so that the ratio is the API's own cost; the API is also timed with
    httpx, as the earlier rows of bench/README were (httpx adds ~1.5 ms per request)."""
    port = 18765
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/ezd"), "serve", "--port", str(port)],
        env={**env, "EZD_EMBEDDED_WORKER": "false", "EZD_LOG_LEVEL": "warning"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1)
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(300):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            tok = http.post(
                "/api/v1/auth/token", data={"username": "clerk.sp58", "password": "demo"}
            ).json()["access_token"]
            h = {"Authorization": f"Bearer {tok}"}
            api, api_httpx, raw = [], [], []
            for i in range(n + 20):
                q = QUERIES[i % len(QUERIES)]
                req = SearchRequest(parse_query(q), SearchFilters(), (clerk_unit,), size=20)
                searches, _ = es_index.query_bodies(req)
                t0 = time.perf_counter()
                es_index.es.msearch(index=es_index.alias, searches=searches)
                t1 = time.perf_counter()
                r = pool.request("GET", "/api/v1/search", fields={"q": q, "size": "20"}, headers=h)
                t2 = time.perf_counter()
                assert r.status == 200, r.data[:300]
                rx = http.get("/api/v1/search", params={"q": q, "size": 20}, headers=h)
                t3 = time.perf_counter()
                assert rx.status_code == 200, rx.text
                if i >= 20:
                    raw.append((t1 - t0) * 1000)
                    api.append((t2 - t1) * 1000)
                    api_httpx.append((t3 - t2) * 1000)
        pool.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: do not wait for the drain
            proc.kill()
            proc.wait()
    return {
        "raw_p50_ms": percentile(raw, 50),
        "raw_p95_ms": percentile(raw, 95),
        "api_p50_ms": percentile(api, 50),
        "api_p95_ms": percentile(api, 95),
        "ratio_p50": percentile(api, 50) / percentile(raw, 50),
        "ratio_p95": percentile(api, 95) / percentile(raw, 95),
        "api_httpx_p50_ms": percentile(api_httpx, 50),
        "api_httpx_p95_ms": percentile(api_httpx, 95),
        "ratio_httpx_p50": percentile(api_httpx, 50) / percentile(raw, 50),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument(
        "--only",
        choices=["elasticsearch", "embedded"],
        help="one adapter (embedded: no Elasticsearch needed, no API comparison)",
    )
    ap.add_argument(
        "--database",
        help="scale benchmark: query the Elasticsearch index of this database made by "
        "bench/scale.py (no generation, no indexing; the API serves that database)",
    )
    ap.add_argument("--index", help="with --database: the index alias (default: its name)")
    args = ap.parse_args()
    if args.database:
        scale_database(args)
        return
    url = os.environ.get("EZD_TEST_ES_URL", "")
    if not url and args.only != "embedded":
        sys.exit("EZD_TEST_ES_URL is not set: scripts/elasticsearch.sh up (or --only embedded)")
    tmp = Path(tempfile.mkdtemp(prefix="ezd-bench-search-"))
    alias = f"ezd-bench-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EZD_")}
    env.update({"EZD_DATA_DIR": str(tmp / "data"), "EZD_LOG_LEVEL": "warning"})
    if args.only != "embedded":
        env.update({"EZD_SEARCH_URL": url, "EZD_SEARCH_INDEX": alias})
    demo_install(tmp / "data", env)
    db = sqlite3.connect(tmp / "data" / "ezd.sqlite3")
    units = [(str(uuid.UUID(bytes=i) if isinstance(i, bytes) else uuid.UUID(i)), c)
             for i, c in db.execute("SELECT id, code FROM units")]  # fmt: skip
    db.close()
    sp58 = next(u for u, c in units if c == "SP58")
    t0 = time.perf_counter()
    docs = generate(args.docs, units)
    result: dict[str, Any] = {"docs": args.docs, "generate_s": round(time.perf_counter() - t0, 1)}
    es = ElasticsearchIndex(url, alias) if args.only != "embedded" else None
    emb = EmbeddedIndex(tmp / "embedded") if args.only != "elasticsearch" else None
    reqs = requests_mix(args.queries, (sp58,))
    try:
        for name, index in (("elasticsearch", es), ("embedded", emb)):
            if index is None:
                continue
            rate = index_rate(index, docs)
            index.refresh()
            result[name] = {"index_docs_per_s": round(rate), **latencies(index, reqs)}
            print(name, result[name], flush=True)
        if es is not None:
            result["api_vs_raw_es"] = api_vs_raw(es, env, sp58, min(args.queries, 200))
    finally:
        if es is not None:
            es.es.indices.delete(index=f"{alias}*", ignore_unavailable=True, allow_no_indices=True)
            es.close()
        if emb is not None:
            emb.close()
        shutil.rmtree(tmp, ignore_errors=True)
    result = json.loads(json.dumps(result), parse_float=lambda s: round(float(s), 2))
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"search-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))


def scale_database(args: argparse.Namespace) -> None:
    """The same query mix and API comparison on the index of a scale database (issue 9)."""
    from sqlalchemy import create_engine, text

    from bench.scale import database_url, scale_env

    alias = args.index or args.database.replace("_", "-")
    url = os.environ["EZD_TEST_ES_URL"]
    engine = create_engine(database_url(args.database))
    with engine.connect() as c:
        units = [(str(i), code) for i, code in c.execute(text("SELECT id, code FROM units"))]
    engine.dispose()
    sp58 = next(u for u, c in units if c == "SP58")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EZD_")}
    env.update(scale_env(args.database, alias))
    es = ElasticsearchIndex(url, alias)
    load_at_start = round(os.getloadavg()[0], 2)
    try:
        docs = es.es.count(index=alias)["count"]
        result: dict[str, Any] = {
            "database": args.database,
            "index": alias,
            "docs": docs,
            "loadavg_at_start": load_at_start,
            "elasticsearch": latencies(es, requests_mix(args.queries, (sp58,))),
        }
        print("elasticsearch", result["elasticsearch"], flush=True)
        result["api_vs_raw_es"] = api_vs_raw(es, env, sp58, min(args.queries, 200))
    finally:
        es.close()  # the index stays: it belongs to the scale database
    result["loadavg_at_end"] = round(os.getloadavg()[0], 2)
    result = json.loads(json.dumps(result), parse_float=lambda s: round(float(s), 2))
    print(json.dumps(result, indent=2))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = ROOT / "bench" / "results" / f"search-{args.database}-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
