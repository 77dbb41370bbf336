"""Citizen e-services in a real browser (Debian's Chromium through Playwright), with the outbox
worker running and a real SMTP server on loopback: each of the four services is applied for
through its public form (validation as the citizen types, then the server's), the receipt is
downloaded and its seal checked with `ezd verify`; the staff's steps run through the API (fast);
one case asks for a supplement, which the citizen uploads on the tracking page; every case ends
with the decision signed with the school's seal, downloaded from the tracking page and verified;
the applicant's e-mails arrive. Every public page passes axe-core (no serious or critical
violations); screenshots go to test-artifacts/web/."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli import ezd_command
from tests.conftest import Backend
from tests.eservices_helpers import FORMS, Mailbox, smtp_server
from tests.helpers import PDF, install_unit_seals
from tests.pki import TestPki, pki_fixture  # noqa: F401  (the `pki` fixture)
from tests.test_process_library import do
from tests.web.conftest import LiveServer, artifacts_dir, check_accessibility

HEAD = "headteacher.sp58"
HANDLER = "handler.sp58"


class Citizen:
    def __init__(self, browser: Any, server: LiveServer, artifacts: Path, pki: TestPki) -> None:
        self.url = server.url
        self.artifacts = artifacts
        self.pki = pki
        self.context = browser.new_context(
            locale="pl-PL",
            viewport={"width": 1100, "height": 900},
            bypass_csp=True,  # axe-core is injected as an inline script
            accept_downloads=True,
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.violations: list[dict[str, Any]] = []
        self.step = 0
        self.checked: set[str] = set()

    def check(self, name: str, *, once: str | None = None) -> None:
        """A screenshot, and axe-core once per kind of page."""
        self.step += 1
        self.page.screenshot(
            path=str(self.artifacts / f"{self.step:02d}-{name}.png"), full_page=True
        )
        kind = once or name
        if kind not in self.checked:
            self.checked.add(kind)
            self.violations += check_accessibility(self.page, f"{self.step:02d}-{name}")

    def fill_form(self, service: str) -> None:
        p = self.page
        p.locator("#f-unit").select_option("SP58")
        for name, value in FORMS[service].items():
            field = p.locator(f"#f-{name}")
            if isinstance(value, bool):
                field.check()
            elif p.locator(f"fieldset#f-{name}").count():
                field.locator(f"input[value='{value}']").check()
            else:
                field.fill(str(value))
        p.locator("#f-attachments").set_input_files(
            [{"name": "skan.pdf", "mimeType": "application/pdf", "buffer": PDF}]
        )

    def download(self, button: str, target: Path) -> Path:
        with self.page.expect_download() as d:
            self.page.get_by_role("button", name=button).first.click()
        d.value.save_as(str(target))
        return target

    def verify_all(self, paths: list[Path]) -> list[dict[str, Any]]:
        """`ezd verify` on each file, a few at once (each run takes seconds to start)."""
        reports = []
        for n in range(0, len(paths), 4):
            runs = [
                subprocess.Popen(
                    [*ezd_command(), "verify", str(path), "--trust", str(self.pki.root_pem_path)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for path in paths[n : n + 4]
            ]
            for run in runs:
                out, _ = run.communicate(timeout=120)
                report = json.loads(out)
                assert run.returncode == 0 and report["indication"] == "TOTAL_PASSED", report
                reports.append(dict(report))
        return reports

    def open_case(self, code: str, pin: str) -> None:
        p = self.page
        p.goto(f"{self.url}/e-uslugi/sledzenie?kod={code}")
        assert p.locator("#f-code").input_value() == code
        p.locator("#f-pin").fill(pin)
        with p.expect_navigation():
            p.get_by_role("button", name="Pokaż moją sprawę").click()

    def wait_for_status(self, code: str, pin: str, label: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.open_case(code, pin)
            if self.page.locator("#case-status").inner_text() == label:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{code}: {self.page.locator('#case-status').inner_text()}")
            time.sleep(0.5)


@pytest.fixture
def stack(
    browser: Any, pg_backend: Backend, pki: TestPki, request: pytest.FixtureRequest
) -> Iterator[tuple[Citizen, httpx.Client, Mailbox]]:
    backend = pg_backend
    with backend.client() as client:
        install_unit_seals(client, pki)
    with smtp_server() as box:
        s = backend.settings
        s.smtp_host, s.smtp_port, s.smtp_from = box.host, box.port, "e-uslugi@miasto.example"
        s.eservice_rate_per_minute = 10_000  # the browser, the staff and the test share a client
        with LiveServer(backend) as server, httpx.Client(base_url=server.url, timeout=30) as api:
            citizen = Citizen(browser, server, artifacts_dir(request), pki)
            try:
                yield citizen, api, box
            finally:
                citizen.context.close()


def test_citizen_applies_tracks_and_downloads_the_decision(
    stack: tuple[Citizen, httpx.Client, Mailbox], tmp_path: Path
) -> None:
    citizen, api, mailbox = stack
    p = citizen.page
    p.goto(f"{citizen.url}/e-uslugi")
    assert p.locator("html").get_attribute("lang") == "pl"
    citizen.check("catalogue")
    assert p.get_by_role("link", name="Duplikat legitymacji szkolnej").count() == 1

    cases: dict[str, tuple[str, str, str]] = {}
    signed: list[Path] = []
    for n, service in enumerate(FORMS):
        p.goto(f"{citizen.url}/e-uslugi")
        title = p.locator("ul.service-list h2 a").nth(n)
        with p.expect_navigation():
            title.click()
        assert p.url.endswith(f"/e-uslugi/{service}")
        if n == 0:
            # validation as the citizen types, from the form's JSON Schema
            email = p.locator("#f-applicant_email")
            email.fill("anna@")
            email.blur()
            assert p.locator("#applicant_email-error").inner_text() == (
                "Wpisz adres e-mail, np. imie@example.org."
            )
            assert email.get_attribute("aria-invalid") == "true"
            email.fill("anna@example.org")
            assert p.locator("#applicant_email-error").inner_text() == ""
            assert email.get_attribute("aria-invalid") is None
            p.get_by_role("button", name="Wyślij wniosek").click()  # nothing filled in
            assert p.locator("#error-summary").inner_text().startswith("Popraw oznaczone pola.")
            assert p.evaluate("document.activeElement.id") == "error-summary"
            assert p.url.endswith(f"/e-uslugi/{service}")  # not sent
            citizen.check("form-errors")
        citizen.fill_form(service)
        citizen.check(f"form-{service}", once="form")
        with p.expect_navigation():
            p.get_by_role("button", name="Wyślij wniosek").click()
        assert p.get_by_role("heading", name="Wniosek wysłany").count() == 1
        code = p.locator("#tracking-code").inner_text()
        pin = p.locator("#tracking-pin").inner_text()
        citizen.check(f"receipt-{service}", once="receipt")
        receipt = citizen.download(
            "Pobierz podpisane potwierdzenie (XML)", tmp_path / f"{service}.xml"
        )
        assert code.replace("-", "").encode() in receipt.read_bytes()
        signed.append(receipt)
        pdf = citizen.download("Pobierz potwierdzenie (PDF)", tmp_path / f"{service}.pdf")
        assert pdf.read_bytes().startswith(b"%PDF")
        ref = p.locator("dt:has-text('Znak sprawy') + dd").inner_text()
        cases[service] = (code, pin, ref)

    # the staff's steps through the API; the first case needs a supplement from the citizen
    first = next(iter(FORMS))
    for service, (_code, _pin, ref) in cases.items():
        do(api, HEAD, "assign", {"handler": HANDLER}, case=ref)  # type: ignore[arg-type]
        data = {"complete": service != first}
        if service == first:
            data["missing_items"] = "Prosimy o skan zgłoszenia utraty legitymacji."
        do(api, HANDLER, "verify", data, case=ref)  # type: ignore[arg-type]
    code, pin, ref = cases[first]
    citizen.open_case(code, pin)
    assert p.locator("#case-status").inner_text() == "Potrzebne uzupełnienie wniosku"
    assert "zgłoszenia utraty" in p.locator("#expected-action").inner_text()
    citizen.check("status-supplement")
    p.locator("#f-supplement").set_input_files(
        [{"name": "zgloszenie.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    with p.expect_navigation():
        p.get_by_role("button", name="Wyślij dokumenty").click()
    assert "zarejestrowano pod numerem RPW/" in p.locator(".flash-success").inner_text()
    assert p.locator("#case-status").inner_text() == "Uzupełnienie przyjęte"
    deadline = time.monotonic() + 30
    while True:  # the worker hands the supplement to the waiting process
        tasks = api.get("/api/v1/tasks", params={"case": ref}, headers=_token(api, HANDLER)).json()
        if any(t["element_id"] == "verify" for t in tasks) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    do(api, HANDLER, "verify", {"complete": True}, case=ref)  # type: ignore[arg-type]

    for _code, _pin, ref in cases.values():
        do(
            api,
            HANDLER,
            "examine",
            {"findings": "Zasadny.", "proposed_decision": "grant"},
            case=ref,
        )  # type: ignore[arg-type]
        do(api, HEAD, "decide", {"decision": "grant", "justification": "Spełnia wymogi."}, case=ref)  # type: ignore[arg-type]
    for service, (code, pin, _ref) in cases.items():
        citizen.wait_for_status(code, pin, "Sprawa zakończona")
        labels = [t.split(" — ", 1)[1] for t in p.locator("#timeline li").all_inner_texts()]
        assert labels[0].startswith("Wniosek zarejestrowany")
        assert any(lbl.startswith("Wydano rozstrzygnięcie") for lbl in labels)
        citizen.check(f"status-{service}", once="status")
        decision = citizen.download(
            "Pobierz rozstrzygnięcie (podpisany XML)", tmp_path / f"decision-{service}.xml"
        )
        assert b"uwzglednienie" in decision.read_bytes()
        signed.append(decision)
    # every receipt and decision carries a valid seal of the school
    assert all("58" in r["signed_by"] for r in citizen.verify_all(signed))

    # e-mails: registered, assigned, in progress, awaiting approval, decided, closed (+2 for
    # the supplement), each to the address the citizen gave, with the code and no PIN
    mailbox.wait_for(6 * len(cases) + 2, timeout=30)
    for code, pin, _ref in cases.values():
        mine = [b for b in mailbox.bodies() if code in b]
        assert len(mine) >= 6 and all(pin not in b for b in mine)
    assert {m["X-Envelope-To"] for m in mailbox.messages} == {APPLICANT_EMAIL}

    # the wrong PIN gets the same refusal as an unknown code, as a page
    citizen.open_case(next(iter(cases.values()))[0], "00000000")
    assert p.locator("#track-error").inner_text() == "Nieprawidłowy kod sprawy lub PIN."
    citizen.check("track-refused")
    assert not citizen.violations, json.dumps(citizen.violations, indent=1, ensure_ascii=False)


APPLICANT_EMAIL = FORMS["skarga_wniosek"]["applicant_email"]


def _token(api: httpx.Client, who: str) -> dict[str, str]:
    from tests.test_processes import token

    return token(api, who)  # type: ignore[arg-type]
