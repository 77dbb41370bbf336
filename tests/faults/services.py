"""Isolated servers for the fault tests: a PostgreSQL cluster, a SeaweedFS `weed mini` (S3) and
an Elasticsearch node of their own, on free loopback ports, in a temporary folder, plus the ezd
API and worker as real subprocesses.

Nothing here touches the shared servers of `scripts/services.sh` (ports 55432, 58333, 59200...):
every process is started here, remembered by PID, and only those PIDs are signalled. The
binaries are the same ones the shared services use (Debian's PostgreSQL, `.services/venv/bin/weed`,
the Elasticsearch distribution unpacked by `scripts/elasticsearch.sh`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
EZD = ROOT / ".venv" / "bin" / "ezd"
WEED = ROOT / ".services" / "venv" / "bin" / "weed"
ES_VERSION = os.environ.get("EZD_ES_VERSION", "8.19.21")
ES_HOME = ROOT / ".services" / "elasticsearch" / f"elasticsearch-{ES_VERSION}"
ES_USER = "ezd-es"
PG_USER = "postgres"

S3_ACCESS_KEY = "ezd-faults-access"
S3_SECRET_KEY = "ezd-faults-secret-31c8d2"
S3_BUCKET = "ezd-faults"

# the shared services' ports: never used here, whatever the kernel offers
SHARED_PORTS = {
    55432,
    58333,
    58433,
    59333,
    59433,
    59340,
    59440,
    58888,
    58988,
    43646,
    53646,
    59000,
    59001,
    59200,
    59300,
}


class ServiceError(RuntimeError):
    pass


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port(low: int = 20000, high: int = 32000) -> int:
    """A loopback port nobody listens on, below the kernel's ephemeral range (32768-60999 here:
    no outgoing connection takes it between a server's start and its restart), so that
    `port + 10000`, which weed derives for some gRPC listeners, is a valid port too, and not
    one of the shared services'."""
    import random

    for _ in range(500):
        p = random.randint(low, high)
        if p in SHARED_PORTS or p + 10000 in SHARED_PORTS or p in _TAKEN:
            continue
        if port_open(p) or port_open(p + 10000):
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        _TAKEN.add(p)
        return p
    raise ServiceError("no free port found")


_TAKEN: set[int] = set()


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, alive: Callable[[], bool]
) -> float:
    """Poll `check` until true; returns the seconds it took. Fails early when `alive` is false."""
    t0 = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:
            pass
        if not alive():
            raise ServiceError(f"{what}: process exited while waiting")
        if time.monotonic() - t0 > timeout:
            raise ServiceError(f"{what}: not ready within {timeout:.0f} s")
        time.sleep(0.2)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(Path(stat).parent.name))
    return kids


def wait_gone(pids: list[int], timeout: float, *, reaped: bool = False) -> bool:
    """Wait until the processes are dead (zombies count as dead) or, with `reaped`, until
    they have no /proc entry at all (a daemon's zombie still answers kill(pid, 0), which is
    what PostgreSQL checks before it starts on a data directory)."""

    def gone(p: int) -> bool:
        return not Path(f"/proc/{p}").exists() if reaped else not pid_alive(p)

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.1)
    return all(gone(p) for p in pids)


def _as_user(user: str) -> list[str]:
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _chown(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, pw.pw_uid, pw.pw_gid)


# ------------------------------------------------------------------ PostgreSQL
class Postgres:
    """A throw-away cluster: initdb in `base/pg`, trust authentication on 127.0.0.1 only."""

    def __init__(self, base: Path) -> None:
        bins = sorted(
            (d for d in glob.glob("/usr/lib/postgresql/*/bin") if Path(d, "postgres").exists()),
            key=lambda d: int(Path(d).parent.name),
        )
        if not bins:
            raise ServiceError("no PostgreSQL server under /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1])
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [*_as_user(PG_USER), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            start_new_session=True,
        )
        if done.returncode != 0:
            raise ServiceError(f"{args[0]} failed: {done.stdout[-1500:]} {done.stderr[-1500:]}")

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        _chown(self.dir, PG_USER)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                f"\n# tests/faults\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\nmax_connections = 100\n"
                "shared_buffers = 128MB\nfsync = on\nlogging_collector = off\n"
            )
        self.start()

    def start(self) -> float:
        t0 = time.monotonic()
        # pg_ctl daemonises the postmaster (in its own session): our shell never waits on it
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )
        return time.monotonic() - t0

    def postmaster_pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def kill9(self) -> int:
        """SIGKILL the postmaster, as a crash would; its backends notice and exit on their own
        (they are waited for, so the next start does not find the old shared memory in use)."""
        pid = self.postmaster_pid()
        if pid is None:
            raise ServiceError("PostgreSQL is not running")
        kids = children_of(pid)
        os.kill(pid, signal.SIGKILL)
        if not wait_gone(kids, 15):
            for k in kids:  # our cluster's orphaned backends, by PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(k, signal.SIGKILL)
            wait_gone(kids, 5)
        if not wait_gone([pid, *kids], 30, reaped=True):
            raise ServiceError(f"PostgreSQL postmaster {pid} not reaped after SIGKILL")
        return pid

    def restart(self) -> float:
        t0 = time.monotonic()
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "restart",
            "-l",
            str(self.log),
        )
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.postmaster_pid() is not None:
            with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
                self._run(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                )
        pid = self.postmaster_pid()
        if pid is not None:
            self.kill9()


# ------------------------------------------------------------------- SeaweedFS
class Seaweed:
    """`weed mini` (master, volume, filer and S3 in one process) with its own data and ports."""

    def __init__(self, base: Path) -> None:
        if not WEED.exists():
            raise ServiceError(f"{WEED} missing: run scripts/services.sh up once")
        self.dir = base / "seaweed"
        self.data = self.dir / "data"
        self.log_path = self.dir / "weed.log"
        self.ports = {
            name: free_port()
            for name in (
                "s3",
                "s3_grpc",
                "master",
                "master_grpc",
                "volume",
                "volume_grpc",
                "filer",
                "filer_grpc",
                "admin",
            )
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['s3']}"

    def start(self) -> float:
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "ezd-faults",
                            "credentials": [
                                {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        p = self.ports
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (kept open while weed runs)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                str(WEED),
                "-logtostderr",
                "mini",
                f"-dir={self.data}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}",
                f"-master.port.grpc={p['master_grpc']}",
                "-master.telemetry=false",
                f"-volume.port={p['volume']}",
                f"-volume.port.grpc={p['volume_grpc']}",
                f"-filer.port={p['filer']}",
                f"-filer.port.grpc={p['filer_grpc']}",
                f"-s3.port={p['s3']}",
                f"-s3.port.grpc={p['s3_grpc']}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-s3.config={config}",
                "-admin.ui=false",
                f"-admin.port={p['admin']}",
                "-webdav=false",
            ],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for("SeaweedFS S3", self._usable, 90, self.alive)
        return time.monotonic() - t0

    def client(self) -> object:
        from minio import Minio

        return Minio(
            self.endpoint, access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY, secure=False
        )

    def _usable(self) -> bool:
        if not port_open(self.ports["s3"]):
            return False
        self.client().list_buckets()  # type: ignore[attr-defined]
        return True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal weed's process group (weed and nothing else: it was started in a new
        session of its own) and, unless the signal only pauses it, wait until it is gone."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(30)
            if self._log:
                self._log.close()

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._log:
            self._log.close()


# --------------------------------------------------------------- Elasticsearch
class Elastic:
    """A second single-node Elasticsearch, from the distribution scripts/elasticsearch.sh
    unpacked, with its own config, data, logs and ports; heap 512m; run as `ezd-es` (it
    refuses root)."""

    def __init__(self, base: Path) -> None:
        if not (ES_HOME / "bin" / "elasticsearch").exists():
            raise ServiceError(f"{ES_HOME} missing: run scripts/elasticsearch.sh up once")
        self.dir = base / "es"
        self.conf = self.dir / "config"
        self.pidfile = self.dir / "run" / "es.pid"
        self.http_port = free_port()
        self.transport_port = free_port()
        self.java_home = _java_home()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def configure(self) -> None:
        for d in ("config", "data", "logs", "tmp", "run"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        shutil.copytree(ES_HOME / "config", self.conf, dirs_exist_ok=True)
        (self.conf / "jvm.options.d").mkdir(exist_ok=True)
        (self.conf / "elasticsearch.yml").write_text(
            f"cluster.name: ezd-faults\nnode.name: ezd-faults-1\n"
            f"path.data: {self.dir / 'data'}\npath.logs: {self.dir / 'logs'}\n"
            f"network.host: 127.0.0.1\nhttp.port: {self.http_port}\n"
            f"transport.port: {self.transport_port}\ndiscovery.type: single-node\n"
            "xpack.security.enabled: false\n"
            "cluster.routing.allocation.disk.threshold_enabled: false\n"
            "action.destructive_requires_name: false\n"
        )
        (self.conf / "jvm.options.d" / "ezd.options").write_text("-Xms512m\n-Xmx512m\n")
        _chown(self.dir, ES_USER)
        self.dir.chmod(0o755)
        os.chmod(self.dir.parent, 0o755)

    def start(self) -> float:
        t0 = time.monotonic()
        self.pidfile.unlink(missing_ok=True)
        env = [
            "env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
            f"HOME={self.dir / 'tmp'}",
            f"ES_PATH_CONF={self.conf}",
            f"ES_JAVA_HOME={self.java_home}",
            f"ES_TMPDIR={self.dir / 'tmp'}",
        ]
        with open(self.dir / "startup.log", "ab") as log:
            done = subprocess.run(
                [
                    *_as_user(ES_USER),
                    *env,
                    str(ES_HOME / "bin" / "elasticsearch"),
                    "-d",
                    "-p",
                    str(self.pidfile),
                ],
                cwd=ES_HOME,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                timeout=180,
            )
        if done.returncode != 0:
            raise ServiceError(f"Elasticsearch failed to start (see {self.dir / 'startup.log'})")
        wait_for("Elasticsearch", self.healthy, 180, lambda: self.pid() is not None)
        return time.monotonic() - t0

    def pid(self) -> int | None:
        """The server JVM's PID, if its PID file names a live process of this node."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            return None
        return pid if str(self.conf) in cmd or str(self.dir) in cmd else None

    def healthy(self) -> bool:
        url = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=2s"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)["status"] in ("green", "yellow")
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return False

    def signal(self, sig: int) -> int:
        pid = self.pid()
        if pid is None:
            raise ServiceError("Elasticsearch is not running")
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            wait_gone([pid], 30)
        return pid

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
        if not wait_gone([pid], 30):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone([pid], 10)


def _java_home() -> str:
    if os.environ.get("EZD_ES_JAVA_HOME"):
        return os.environ["EZD_ES_JAVA_HOME"]
    for cand in sorted(glob.glob("/usr/lib/jvm/*17*")) + sorted(glob.glob("/usr/lib/jvm/*")):
        if Path(cand, "bin", "java").exists() and not Path(cand).is_symlink():
            return cand
    raise ServiceError("no Java for Elasticsearch under /usr/lib/jvm")


# ------------------------------------------------------------------------- ezd
class EzdProcess:
    """`ezd serve` or `ezd worker`, in a session of its own: a kill reaches the uvicorn
    supervisor and its worker processes (its process group), and nothing else."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(EZD), *self.args],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *children_of(self.proc.pid)]

    def kill(self, sig: int = signal.SIGKILL) -> list[int]:
        """Signal the whole process group; after SIGKILL wait until every member is gone."""
        assert self.proc is not None
        pids = self.pids()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        if sig == signal.SIGKILL:
            self.proc.wait(30)
            wait_gone(pids, 30)
        return pids

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False
