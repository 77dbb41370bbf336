"""Helpers for benchmarks that run real `ezd serve` / `ezd worker` processes on the test
services (PostgreSQL, S3, Elasticsearch from `scripts/services.sh up` and `.services/env`):
the `EZD_*` environment of one run, starting a process and waiting for it, stopping it, and
the process tree of a server (for CPU accounting with `bench.tasks._proc_cpu`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
EZD = str(ROOT / ".venv" / "bin" / "ezd")
# The key that encrypts the demo units' signing keys (`ezd demo` seeds seals): on PostgreSQL it
# must be configured, and a benchmark's throwaway database needs no secret one.
BENCH_KEK = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
S3_VARS = (
    "EZD_TEST_S3_ENDPOINT",
    "EZD_TEST_S3_ACCESS_KEY",
    "EZD_TEST_S3_SECRET_KEY",
    "EZD_TEST_S3_BUCKET",
)


def require_env(*names: str) -> None:
    for k in names:
        if not os.environ.get(k):
            sys.exit(
                f"{k} is not set: run `scripts/services.sh up`, then "
                "`set -a; . .services/env; set +a`"
            )


def ezd_env(
    db_url: str,
    *,
    data_dir: Path,
    s3_prefix: str,
    search_index: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The `EZD_*` settings of one run on the test services: its database, a key prefix of its
    own in the shared bucket and, with `search_index`, an Elasticsearch alias of its own.
    No in-process worker: outbox events are left to `ezd worker`."""
    env = {
        "EZD_DATABASE_URL": db_url,
        "EZD_S3_ENDPOINT": os.environ["EZD_TEST_S3_ENDPOINT"],
        "EZD_S3_ACCESS_KEY": os.environ["EZD_TEST_S3_ACCESS_KEY"],
        "EZD_S3_SECRET_KEY": os.environ["EZD_TEST_S3_SECRET_KEY"],
        "EZD_S3_BUCKET": os.environ["EZD_TEST_S3_BUCKET"],
        "EZD_S3_SECURE": os.environ.get("EZD_TEST_S3_SECURE", "false"),
        "EZD_S3_PREFIX": s3_prefix,
        "EZD_DATA_DIR": str(data_dir),
        "EZD_LOG_LEVEL": "warning",
        "EZD_EMBEDDED_WORKER": "false",
        "EZD_KEY_ENCRYPTION_KEY": os.environ.get("EZD_KEY_ENCRYPTION_KEY", BENCH_KEK),
    }
    if search_index:
        env["EZD_SEARCH_URL"] = os.environ["EZD_TEST_ES_URL"]
        env["EZD_SEARCH_INDEX"] = search_index
    env.update(extra)
    return env


def start_ezd(
    args: list[str], env: dict[str, str], *, health_url: str | None = None, timeout: float = 90
) -> subprocess.Popen[bytes]:
    """Start `ezd <args>` with `env` over the current environment; with `health_url`, wait
    until it answers 200 (exits the benchmark when the process dies or the time runs out)."""
    proc = subprocess.Popen([EZD, *args], env={**os.environ, **env})
    if health_url is None:
        return proc
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(health_url, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            stop(proc)
            sys.exit(f"ezd {' '.join(args)} did not start (exit code {proc.poll()})")
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def process_tree(pid: int, processes: list[tuple[int, int, str]]) -> set[int]:
    """`pid` and its descendants, from `bench.tasks._processes()` rows (pid, ppid, name)."""
    tree = {pid}
    grew = True
    while grew:
        new = {p for p, pp, _ in processes if pp in tree} - tree
        grew = bool(new)
        tree |= new
    return tree


def git_commit() -> tuple[str, bool]:
    """Short HEAD commit and whether tracked files differ from it."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    return commit, dirty
