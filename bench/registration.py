"""Registration benchmark: HTTP POST /api/v1/incoming with a 100 KB PDF attachment, against a
real `ezd serve` on PostgreSQL + S3, from 16 concurrent clients. Prints registrations/s and
latency percentiles.

Needs the test services (`scripts/services.sh up`, then `. .services/env`), or run `make bench`.
Each run uses a fresh database `ezd_bench` and a fresh key prefix in the S3 bucket.

    .venv/bin/python bench/registration.py [--clients 16] [--seconds 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
EZD = str(ROOT / ".venv" / "bin" / "ezd")


def pdf_of_size(n: int) -> bytes:
    head = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n"
    tail = b"\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    return (
        head
        + b"%"
        + os.urandom((n - len(head) - len(tail)) // 2)
        .hex()
        .encode()[: n - len(head) - len(tail) - 1]
        + tail
    )


def fresh_database(base_url: str, name: str) -> str:
    url = make_url(base_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def build_request(host: str, port: int, token: str, meta: str, body: bytes) -> bytes:
    """One complete HTTP/1.1 request, built once: the load generator then costs the server's
    cores almost nothing (a Python HTTP client spends ~5 ms of CPU per upload, which on this
    2-core machine is taken from the system under test)."""
    boundary = "ezdbenchboundary0123456789"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="meta"\r\n\r\n'
            f'{meta}\r\n--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="skan.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /api/v1/incoming HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + form


async def send(host: str, port: int, request: bytes, body_chars: int = 200) -> tuple[int, bytes]:
    """Send on a new connection (so the kernel spreads connections over the API processes)
    and read the whole answer; returns (status, body start)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await reader.read()  # the server closes after the answer (Connection: close)
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer.partition(b"\r\n\r\n")[2][:body_chars]


async def run_load(
    host: str,
    port: int,
    tokens: list[str],
    clients: int,
    seconds: float,
    warmup: float,
    body: bytes,
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    meta = json.dumps(
        {
            "subject": "Wniosek o przyjęcie ucznia spoza obwodu",
            "sender": {"name": "Jan Nowak", "kind": "person"},
            "channel": "paper",
            "jrwa": "430",
            "new_case": True,
        }
    )
    requests = [build_request(host, port, t, meta, body) for t in tokens]
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds

    async def client_loop(i: int) -> None:
        nonlocal errors
        request = requests[i % len(requests)]
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                status, answer = await asyncio.wait_for(send(host, port, request), 120)
                problem = None if status == 201 else f"{status}: {answer!r}"
            except (OSError, TimeoutError) as e:
                problem = f"transport error: {e!r}"
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                if problem is None:
                    latencies.append(t1 - t0)
                else:
                    errors += 1
                    if errors <= 3:
                        print(f"error {problem}", file=sys.stderr)

    await asyncio.gather(*(client_loop(i) for i in range(clients)))
    return latencies, errors, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--workers", type=int, default=3, help="API processes")
    ap.add_argument("--size", type=int, default=100 * 1024, help="attachment bytes")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument(
        "--units",
        type=int,
        default=1,
        help="spread clients over this many units' registers (1 = one register)",
    )
    ap.add_argument(
        "--database",
        help="scale benchmark: this existing database made by bench/scale.py, used as it is",
    )
    args = ap.parse_args()

    for k in ("EZD_TEST_DATABASE_URL", "EZD_TEST_S3_ENDPOINT"):
        if not os.environ.get(k):
            sys.exit(f"{k} is not set: run `scripts/services.sh up` and `. .services/env`")
    load_at_start = round(os.getloadavg()[0], 2)
    if args.database:
        run_server(args, scale_database_env(args.database), load_at_start)
        return
    db_url = fresh_database(os.environ["EZD_TEST_DATABASE_URL"], "ezd_bench")
    sys.path.insert(0, str(ROOT))
    from bench.common import ezd_env

    env = {
        **os.environ,
        **ezd_env(
            db_url, data_dir=ROOT / ".data" / "bench", s3_prefix=f"bench-{uuid.uuid4().hex[:8]}/"
        ),
    }
    for cmd in (["db", "upgrade"], ["demo", "--no-serve", "--force"]):
        done = subprocess.run([EZD, *cmd], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"ezd {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    run_server(args, env, load_at_start)


def scale_database_env(name: str) -> dict[str, str]:
    """The server's settings on a database made by bench/scale.py (issue 9)."""
    sys.path.insert(0, str(ROOT))
    from bench.scale import scale_env

    return {**os.environ, **scale_env(name)}


def run_server(args: argparse.Namespace, env: dict[str, str], load_at_start: float) -> None:
    server = subprocess.Popen(
        [EZD, "serve", "--port", str(args.port), "--workers", str(args.workers)], env=env
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.time() + 180  # a loaded 2-core machine starts 3 processes slowly
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                sys.exit(f"server did not start (exit code {server.poll()})")
            time.sleep(0.3)
        units = ["sp58", "sp12", "lo3", "p7", "wow", "cuw"][: max(1, args.units)]
        tokens = [
            httpx.post(
                f"{base}/api/v1/auth/token", data={"username": f"clerk.{u}", "password": "demo"}
            ).json()["access_token"]
            for u in units
        ]
        body = pdf_of_size(args.size)
        lat, errors, secs = asyncio.run(
            run_load("127.0.0.1", args.port, tokens, args.clients, args.seconds, args.warmup, body)
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: do not wait for the drain
            server.kill()
            server.wait()
    n = len(lat)
    result = {
        "benchmark": "registration",
        "clients": args.clients,
        "api_processes": args.workers,
        "registers": len(units),
        "attachment_bytes": args.size,
        "seconds": secs,
        "registrations": n,
        "errors": errors,
        "per_second": round(n / secs, 1),
        "p50_ms": round(percentile(lat, 50) * 1000, 1) if lat else None,
        "p95_ms": round(percentile(lat, 95) * 1000, 1) if lat else None,
        "p99_ms": round(percentile(lat, 99) * 1000, 1) if lat else None,
        "mean_ms": round(statistics.mean(lat) * 1000, 1) if lat else None,
        "cpus": os.cpu_count(),
        "database": args.database,
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": round(os.getloadavg()[0], 2),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = f"registration-{args.database}.json" if args.database else "registration.json"
    (out / name).write_text(json.dumps(result, indent=2))
    print(
        f"registration benchmark (PostgreSQL + S3, {args.clients} clients, {len(units)} "
        f"register(s), "
        f"{args.size // 1024} KB attachment, {args.workers} API processes)"
    )
    print(f"  registrations/s: {result['per_second']}   errors: {errors}")
    print(f"  load average {load_at_start} at start, {result['loadavg_at_end']} at end")
    print(
        f"  latency p50: {result['p50_ms']} ms   p95: {result['p95_ms']} ms   "
        f"p99: {result['p99_ms']} ms"
    )


if __name__ == "__main__":
    main()
