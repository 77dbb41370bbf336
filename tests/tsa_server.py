"""A real RFC 3161 time-stamping authority on loopback, for tests.

`TsaServer` is a small `http.server` on 127.0.0.1 (a free port) in a daemon thread. Each POSTed
time-stamp query is answered by `openssl ts -reply` run as a subprocess on temporary files, with a
generated openssl.cnf (`[tsa]` section, serial file, policy, accuracy, ESS cert id SHA-256), so the
tokens come from an independent implementation, not from the code under test.

Use the `tsa` fixture (module scope; import `tsa_fixture` into the test module):

    from tests.tsa_server import RunningTsa, tsa_fixture  # noqa: F401  (the `tsa` fixture)

    def test_x(tsa: RunningTsa) -> None:
        token = request_timestamp(tsa.url, digest)
        verify_token(token, digest, [tsa.root])

The fixture makes its own throwaway PKI (root → intermediate → TSA certificate with critical
extendedKeyUsage timeStamping); `TsaServer(tsa_issued, directory)` serves any other `Issued` TSA
certificate from tests.pki.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.pki import Issued, make_pki

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
TSA_POLICY = "1.2.3.4.1"

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.cert.pem
certs = $dir/tsa.chain.pem
signer_key = $dir/tsa.key.pem
signer_digest = sha256
default_policy = {policy}
other_policies = 1.2.3.4.2
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:0, microsecs:0
clock_precision_digits = 0
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass
class RunningTsa:
    url: str
    root: x509.Certificate  # the trust anchor of the TSA certificate
    root_pem_path: Path
    chain_pem_path: Path  # the TSA's intermediate(s), for `openssl ts -verify -untrusted`
    tsa: Issued
    server: TsaServer


class TsaServer:
    """Serve `openssl ts -reply` for `tsa` (key + cert + chain) on 127.0.0.1."""

    def __init__(self, tsa: Issued, directory: Path) -> None:
        self.tsa = tsa
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tsa.key.pem").write_bytes(tsa.key_pem)
        (directory / "tsa.cert.pem").write_bytes(tsa.cert_pem)
        # openssl wants a non-empty file for `certs`; the chain without the root is what a TSA sends
        (directory / "tsa.chain.pem").write_bytes(tsa.chain_pem or tsa.cert_pem)
        (directory / "tsaserial").write_text("01\n")
        self.config = directory / "openssl.cnf"
        self.config.write_text(_CONFIG.format(dir=directory, policy=TSA_POLICY))
        self.requests = 0
        self.fail_next: str | None = None  # "http" or "garbage": misbehave once, for error tests
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    def reply(self, query: bytes) -> bytes:
        """`openssl ts -reply` on `query`; serialised because openssl rewrites the serial file."""
        with self._lock, tempfile.TemporaryDirectory(dir=self.directory) as tmp:
            qpath, rpath = Path(tmp) / "query.tsq", Path(tmp) / "reply.tsr"
            qpath.write_bytes(query)
            proc = subprocess.run(
                [
                    OPENSSL, "ts", "-reply",
                    "-config", str(self.config), "-section", "tsa_config",
                    "-queryfile", str(qpath),
                    "-inkey", str(self.directory / "tsa.key.pem"),
                    "-signer", str(self.directory / "tsa.cert.pem"),
                    "-chain", str(self.directory / "tsa.chain.pem"),
                    "-out", str(rpath),
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )  # fmt: skip
            if proc.returncode != 0 or not rpath.exists():
                raise RuntimeError(
                    f"openssl ts -reply failed: {proc.stderr.decode(errors='replace')}"
                )
            self.requests += 1
            return rpath.read_bytes()

    def start(self) -> TsaServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                query = self.rfile.read(length)
                failure, server.fail_next = server.fail_next, None
                if failure == "http":
                    self.send_error(503, "TSA down for maintenance")
                    return
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self.send_error(415, "expected application/timestamp-query")
                    return
                try:
                    body = (
                        b"not a time-stamp reply" if failure == "garbage" else server.reply(query)
                    )
                except RuntimeError as e:
                    self.send_error(500, str(e).splitlines()[0][:200])
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="loopback-tsa", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if sys.is_finalizing():  # the serving thread is frozen at interpreter exit
            return
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TsaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_tsa(directory: Path) -> Iterator[RunningTsa]:
    """Generator behind the fixture: a fresh PKI and a TSA served from `directory`."""
    if not Path(OPENSSL).exists():
        pytest.fail("openssl is needed for the loopback TSA (scripts/services.sh up installs it)")
    pki = make_pki(directory / "pki")
    with TsaServer(pki.tsa, directory / "tsa") as server:
        yield RunningTsa(
            url=server.url,
            root=pki.root.cert,
            root_pem_path=pki.root.cert_path,
            chain_pem_path=pki.intermediate.cert_path,
            tsa=pki.tsa,
            server=server,
        )


@pytest.fixture(scope="module", name="tsa")
def tsa_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTsa]:
    yield from running_tsa(tmp_path_factory.mktemp("tsa"))
