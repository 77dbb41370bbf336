"""Browser tests of the staff web application: Playwright for Python driving Debian's Chromium
(/usr/bin/chromium, headless; never a browser downloaded by a test tool), one browser per
session, the app served by uvicorn on 127.0.0.1 with the outbox worker running, axe-core
injected into every page checked. Screenshots go to test-artifacts/web/<test>/ (git-ignored).

`scripts/web.sh` installs what these tests need (npm packages, Chromium, the catalogues)."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, Backend

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("EZD_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (scripts/web.sh installs Debian's chromium)"
    if not AXE.exists():
        return "node_modules/axe-core is missing (run scripts/web.sh)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    # Playwright gives each launch a fresh, empty profile directory of its own.
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


class LiveServer:
    """The app (with the web pages and the embedded outbox worker) on a free loopback port."""

    def __init__(self, backend: Backend) -> None:
        import uvicorn

        from api.app import create_app
        from api.web import mount_web

        app = create_app(backend.container, start_worker=True)
        mount_web(app)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="ezd-web-test", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    d = ARTIFACTS / name
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.png"):
        old.unlink()
    return d


IMPACTS_REFUSED = {"serious", "critical"}


def check_accessibility(page: Any, label: str) -> list[dict[str, Any]]:
    """axe-core over the page (WCAG 2.0/2.1 A and AA rules); returns serious or critical
    violations (the caller asserts none)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
        }"""
    )
    return [dict(v, page=label) for v in result if v["impact"] in IMPACTS_REFUSED]
