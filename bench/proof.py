"""Proof under load, faults and attack (issue 9): runs every part with one command and writes
the report `bench/REPORT.md` — the machine, each part's command, how long it took, whether it
passed, and its figures (read from the JSON each part leaves in bench/results/).

    make proof                                # all parts (the scale part alone takes long)
    .venv/bin/python bench/proof.py --only faults access
    .venv/bin/python bench/proof.py --skip scale
    .venv/bin/python bench/proof.py --report-only   # rewrite the report from the last results

Needs the test services (`make proof` starts them). A part that fails does not stop the
others; the exit status is non-zero when any part failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "bench" / "REPORT.md"
PY = str(ROOT / ".venv" / "bin" / "python")
PYTEST = [str(ROOT / ".venv" / "bin" / "pytest"), "-p", "no:cacheprovider", "-q"]

Renderer = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class Part:
    name: str
    title: str
    command: list[str]
    results: str  # glob in bench/results/ of what the part writes; the newest is reported
    render: Renderer
    env: tuple[tuple[str, str], ...] = ()


# --- rendering -------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return [*out, ""]


def flat(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalars of a nested JSON document as (dotted key, value), lists of scalars joined."""
    if isinstance(d, dict):
        out: list[tuple[str, Any]] = []
        for k, v in d.items():
            out += flat(v, f"{prefix}{k}.")
        return out
    if isinstance(d, list):
        if all(not isinstance(x, dict | list) for x in d):
            return [(prefix[:-1], ", ".join(_fmt(x) for x in d))]
        out = []
        for i, x in enumerate(d):
            out += flat(x, f"{prefix}{i}.")
        return out
    return [(prefix[:-1], d)]


def render_generic(doc: dict[str, Any]) -> list[str]:
    return table(["figure", "value"], [[k, v] for k, v in flat(doc)][:80])


def _answers(by: dict[str, int]) -> str:
    return ", ".join(f"{n} × {a}" for a, n in by.items())


def render_faults(doc: dict[str, Any]) -> list[str]:
    rows = []
    recovery = []
    for name, t in doc.get("tests", {}).items():
        rows.append(
            [
                name.removeprefix("test_"),
                t.get("outcome", "?"),
                t.get("requests", "–"),
                t.get("acknowledged", "–"),
                _answers(t.get("by_answer", {})),
                t.get("acknowledged_present", "–"),
                t.get("rpw_numbers", "–"),
                t.get("blobs_verified", "–"),
                t.get("audit", "–"),
                t.get("outbox_drain_s", "–"),
            ]
        )
        for k, v in flat({k: v for k, v in t.items() if k in ("rounds", "phases")}):
            if k.endswith("_s") or "in_flight" in k or "committed" in k:
                recovery.append([name.removeprefix("test_"), k, v])
        for k in ("es_down_s", "s3_down_s", "s3_up_to_first_ack_s", "es_up_to_outbox_drained_s"):
            if k in t:
                recovery.append([name.removeprefix("test_"), k, t[k]])
        if "search_verify" in t:
            sv = t["search_verify"]
            recovery.append(
                [
                    name.removeprefix("test_"),
                    "ezd search verify",
                    f"checked {sv.get('checked')}, missing {sv.get('missing')}, "
                    f"stale {sv.get('stale')}, extra {sv.get('extra')}",
                ]
            )
    out = table(
        [
            "fault",
            "outcome",
            "requests",
            "201",
            "answers",
            "acknowledged present",
            "register numbers (gapless)",
            "blobs verified",
            "audit chain",
            "outbox drained (s)",
        ],
        rows,
    )
    return [*out, "Recovery:", "", *table(["fault", "figure", "value"], recovery)]


def render_access(doc: dict[str, Any]) -> list[str]:
    keys = [
        "routes",
        "personas",
        "calls",
        "allowed",
        "public",
        "refused",
        "refused_as_not_found",
        "leaks",
        "over_refusals",
        "mismatches",
        "errors_5xx",
        "seconds",
    ]
    rows = [[b, *(v.get(k, "–") for k in keys)] for b, v in doc.get("backends", {}).items()]
    out = table(["backend", *keys], rows)
    return [*out, f"Personas: {', '.join(doc.get('personas', []))}.", ""]


def render_fuzz(doc: dict[str, Any]) -> list[str]:
    api = doc.get("openapi", {})
    out = [
        f"OpenAPI ({api.get('tool', 'schemathesis')}): {api.get('operations_in_schema')} "
        f"operations, **{api.get('examples_per_operation')} examples per operation** "
        f"({', '.join(api.get('generation_modes', []))}), callers "
        f"{', '.join(api.get('callers', []))}; checks {', '.join(api.get('checks', []))}.",
        "",
    ]
    rows = []
    for b, v in api.get("backends", {}).items():
        fails = v.get("failures_by_check", {})
        rows.append(
            [
                b,
                v.get("operations"),
                v.get("total_cases"),
                sum(fails.values()),
                ", ".join(f"{k} {n}" for k, n in fails.items()),
                ", ".join(f"{k}: {n}" for k, n in v.get("statuses", {}).items()),
                v.get("seconds"),
            ]
        )
    out += table(["backend", "operations", "cases", "failures", "by check", "answers", "s"], rows)
    xml = doc.get("xml_attacks", {})
    rows = []
    for b, v in xml.items():
        worst = v.get("slowest_request", {})
        rows.append(
            [
                b,
                v.get("corpus_files"),
                v.get("endpoints"),
                v.get("requests"),
                v.get("listener_connections"),
                f"{worst.get('seconds')} s ({worst.get('what')})",
            ]
        )
    out += ["XML attack corpus:", ""]
    out += table(
        ["backend", "files", "endpoints", "requests", "outgoing connections", "slowest"], rows
    )
    first: dict[str, Any] = next(iter(xml.values()), {})
    rows = [[e, _answers(o)] for e, o in first.get("outcomes_by_endpoint", {}).items()]
    if rows:
        out += table(["endpoint", "answers (first backend)"], rows)
    return out


def render_load(doc: dict[str, Any]) -> list[str]:
    sm = doc.get("summary", {})
    out = [
        f"{doc.get('staff')} staff ({_answers(doc.get('staff_by_role', {}))}) of "
        f"{doc.get('units')} units, think time {doc.get('think_distribution')} mean "
        f"{doc.get('think_s')} s, {doc.get('warmup_s')} s warm-up + {doc.get('seconds')} s "
        f"measured; {doc.get('api_processes')} API processes + {doc.get('workers')} worker on "
        f"{doc.get('stores')}; commit {doc.get('commit')}, `{doc.get('command')}`, "
        f"load average {doc.get('loadavg')}.",
        "",
    ]
    rows = [
        [
            "**all**",
            sm.get("requests"),
            sm.get("requests_per_s"),
            sm.get("p50_ms"),
            sm.get("p95_ms"),
            sm.get("p99_ms"),
            sm.get("errors"),
        ]
    ]
    for name, o in sorted(sm.get("operations", {}).items()):
        rows.append(
            [
                name,
                o.get("requests"),
                o.get("per_s"),
                o.get("p50_ms"),
                o.get("p95_ms"),
                o.get("p99_ms"),
                o.get("errors"),
            ]
        )
    out += table(["operation", "requests", "per s", "p50 ms", "p95 ms", "p99 ms", "errors"], rows)
    ob = doc.get("outbox", {})
    out += [
        f"Outbox: {ob.get('due_at_end')} events due at the end, at most "
        f"{ob.get('max_due_during_run')} due during the run (oldest "
        f"{ob.get('max_oldest_due_s_during_run')} s).",
        "",
    ]
    return out


def render_scale(doc: dict[str, Any]) -> list[str]:
    small, large = doc.get("small_size", {}), doc.get("large_size", {})
    docs = [doc.get(k, {}).get("search", {}).get("docs") for k in ("small", "large")]
    out = [
        f"Small: {small.get('cases')} cases, {small.get('documents')} documents, "
        f"{small.get('db_bytes', 0) / 1e6:,.0f} MB; large: {large.get('cases')} cases, "
        f"{large.get('documents')} documents, {large.get('db_bytes', 0) / 1e9:,.2f} GB. "
        f"{doc.get('conditions', '')}. Search index: {docs[0]} vs {docs[1]} documents.",
        "",
    ]
    rows = [
        [c["figure"], c["small"], c["large"], f"{c['slower_pct']:+.1f} %"]
        for c in doc.get("comparison", [])
    ]
    return out + table(["figure", "small", "large", "slower by"], rows)


# --- the parts --------------------------------------------------------------------------------

MAKE = ["make", "--no-print-directory"]
FUZZ_EXAMPLES = "50"

PARTS: list[Part] = [
    Part(
        "faults",
        "Faults: kill -9 of API and worker, Elasticsearch, S3 and PostgreSQL outages",
        [*MAKE, "faults"],
        "faults-*.json",
        render_faults,
    ),
    Part(
        "access",
        "Access control: every endpoint as every role, owning and foreign unit",
        [*PYTEST, "tests/test_access_matrix.py"],
        "access-matrix.json",
        render_access,
    ),
    Part(
        "fuzz",
        "Fuzzing: schemathesis over the OpenAPI schema, the XML attack corpus",
        [*PYTEST, "tests/test_fuzz_openapi.py", "tests/test_xml_attacks.py"],
        "fuzz.json",
        render_fuzz,
        (("EZD_FUZZ_BACKENDS", "embedded,postgres_s3"), ("EZD_FUZZ_EXAMPLES", FUZZ_EXAMPLES)),
    ),
    Part(
        "web",
        "Web security: CSRF, headers and CSP, session expiry, login throttling, secrets in logs",
        [*PYTEST, "tests/test_web_security.py"],
        "",
        render_generic,
    ),
    Part(
        "audit",
        "Dependency audit (pip-audit)",
        [str(ROOT / "scripts" / "audit.sh")],
        "",
        render_generic,
    ),
    Part(
        "load",
        "Load: 200 simulated staff on PostgreSQL + S3 + Elasticsearch",
        [*MAKE, "bench-load"],
        "load-*.json",
        render_load,
    ),
    Part(
        "scale",
        "Scale: 1 million cases, 3 million documents, benchmarks against 10k",
        [*MAKE, "bench-scale"],
        "scale-2*.json",
        render_scale,
    ),
]


# --- running ----------------------------------------------------------------------------------


def newest(glob: str) -> Path | None:
    if not glob:
        return None
    found = sorted(RESULTS.glob(glob), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def run_part(part: Part, log_dir: Path) -> dict[str, Any]:
    env = {**os.environ, **dict(part.env)}
    log = log_dir / f"{part.name}.log"
    print(f"== {part.name}: {shlex.join(part.command)}", flush=True)
    t0 = time.monotonic()
    with log.open("w") as out:
        rc = subprocess.run(
            part.command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    seconds = time.monotonic() - t0
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    print(f"   {'passed' if rc == 0 else f'FAILED ({rc})'} in {seconds:.0f} s", flush=True)
    return {
        "rc": rc,
        "seconds": round(seconds, 1),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "tail": tail,
    }


def machine() -> list[str]:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    es = os.environ.get("EZD_TEST_ES_VERSION", "?")
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return table(
        ["", ""],
        [
            ["CPU", f"{os.cpu_count()} cores, {cpu}"],
            ["RAM", f"{mem_gib:.0f} GiB"],
            ["OS", f"{platform.system()} {platform.release()}"],
            ["Python", platform.python_version()],
            ["PostgreSQL", pg or "?"],
            ["Elasticsearch", es],
            ["S3", "SeaweedFS (weed mini), scripts/services.sh"],
            ["commit", _git("rev-parse", "--short", "HEAD")],
        ],
    )


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def write_report(runs: dict[str, dict[str, Any]]) -> None:
    lines = [
        "# Proof under load, faults and attack (issue 9)",
        "",
        f"Generated by `bench/proof.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        "Rerun everything with `make proof`; one part with "
        "`.venv/bin/python bench/proof.py --only NAME`.",
        "",
        "## Machine",
        "",
        *machine(),
        "## Summary",
        "",
    ]
    rows = []
    for p in PARTS:
        r = runs.get(p.name)
        res = newest(p.results)
        if r is not None:
            status = "passed" if r["rc"] == 0 else f"FAILED ({r['rc']})"
            when = r["finished"]
        elif res is not None:
            status = "not run by proof.py (figures from its own command)"
            when = datetime.fromtimestamp(res.stat().st_mtime, UTC).isoformat(timespec="seconds")
        else:
            status, when = "not run", "—"
        rows.append([p.name, status, f"{r['seconds']:.0f} s" if r else "—", when])
    lines += table(["part", "result", "time", "finished (UTC)"], rows)
    for p in PARTS:
        r = runs.get(p.name)
        lines += [f"## {p.title}", "", f"Command: `{shlex.join(_short(p.command))}`"]
        if p.env:
            lines[-1] += " with " + ", ".join(f"`{k}={v}`" for k, v in p.env)
        lines.append("")
        res = newest(p.results)
        if res is not None:
            doc = json.loads(res.read_text())
            lines += [f"Figures from `bench/results/{res.name}`:", ""]
            lines += p.render(doc)
        elif r is not None:
            lines += ["Output (last lines):", "", "```", *r["tail"], "```", ""]
        else:
            lines += ["Not run yet.", ""]
    REPORT.write_text("\n".join(lines).rstrip() + "\n")
    print(f"report: {REPORT.relative_to(ROOT)}")


def _short(cmd: list[str]) -> list[str]:
    return [c.replace(str(ROOT) + "/", "") for c in cmd]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [p.name for p in PARTS]
    ap.add_argument("--only", nargs="+", choices=names, default=None)
    ap.add_argument("--skip", nargs="+", choices=names, default=[])
    ap.add_argument("--report-only", action="store_true", help="no runs, report the last results")
    args = ap.parse_args()
    state_file = RESULTS / "proof-runs.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = (
        json.loads(state_file.read_text()) if state_file.exists() else {}
    )
    failed = False
    if not args.report_only:
        log_dir = RESULTS / "proof-logs"
        log_dir.mkdir(exist_ok=True)
        for p in PARTS:
            if (args.only and p.name not in args.only) or p.name in args.skip:
                continue
            runs[p.name] = run_part(p, log_dir)
            failed |= runs[p.name]["rc"] != 0
            state_file.write_text(json.dumps(runs, indent=1))
    write_report(runs)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
