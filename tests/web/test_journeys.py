"""The main journeys in a real browser (Debian's Chromium through Playwright), on PostgreSQL +
S3 with the outbox worker running: a clerk registers a letter with a PDF and opens a case; the
headteacher assigns it; the handler drafts the reply; the headteacher approves and signs (the
unit's seal, sent by internal e-delivery); the city office answers; the case closes; an auditor
finds it by an inflected word. Every page of the journey passes axe-core with no serious or
critical violations, and each step leaves a screenshot in test-artifacts/web/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend
from tests.helpers import PDF, install_unit_seals
from tests.pki import TestPki, pki_fixture  # noqa: F401  (the `pki` fixture)
from tests.web.conftest import LiveServer, artifacts_dir, check_accessibility

SUBJECT = "Informacja o dowozie uczniów niepełnosprawnych w roku szkolnym 2026/2027"


class Journey:
    def __init__(self, browser: Any, server: LiveServer, artifacts: Path) -> None:
        self.browser = browser
        self.url = server.url
        self.artifacts = artifacts
        self.violations: list[dict[str, Any]] = []
        self.step = 0
        self.contexts: list[Any] = []

    def login(self, username: str) -> Any:
        context = self.browser.new_context(
            locale="pl-PL", viewport={"width": 1280, "height": 900}, bypass_csp=True
        )  # bypass_csp: axe-core is injected as an inline script
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{self.url}/web/")
        assert "/web/login" in page.url
        self.check(page, "login")
        page.get_by_label("Nazwa użytkownika").fill(username)
        page.get_by_label("Hasło").fill("demo")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{self.url}/web/")
        return page

    def check(self, page: Any, name: str) -> None:
        """A screenshot and the accessibility check of the page as it is now."""
        self.step += 1
        page.screenshot(path=str(self.artifacts / f"{self.step:02d}-{name}.png"), full_page=True)
        self.violations += check_accessibility(page, f"{self.step:02d}-{name}")

    def wait_for_inbox(self, page: Any, text: str, timeout: float = 40) -> None:
        """Reload the home page until the worker has done its part and the task is there."""
        deadline = time.monotonic() + timeout
        while True:
            page.goto(f"{self.url}/web/")
            if page.locator("#inbox-results").get_by_text(text).count():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no task {text!r} in the inbox")
            time.sleep(0.5)

    def close(self) -> None:
        for c in self.contexts:
            c.close()


@pytest.fixture
def journey(
    browser: Any, pg_backend: Backend, pki: TestPki, request: pytest.FixtureRequest
) -> Iterator[Journey]:
    with pg_backend.client() as client:
        install_unit_seals(client, pki)  # SP58 and WOW sign official letters with their seals
    with LiveServer(pg_backend) as server:
        j = Journey(browser, server, artifacts_dir(request))
        try:
            yield j
        finally:
            j.close()


def complete_task(page: Any, task_name: str) -> None:
    card = page.locator("article.task", has=page.get_by_role("heading", name=task_name))
    with page.expect_navigation():
        card.get_by_role("button", name=f"Zakończ: {task_name}").click()


def test_letter_to_closed_case_and_audit(journey: Journey) -> None:
    j = journey

    # -- the clerk registers two letters, keyboard first --------------------------------------
    clerk = j.login("clerk.sp58")
    j.check(clerk, "clerk-home")
    clerk.get_by_role("link", name="Zarejestruj pismo").first.click()
    j.check(clerk, "register-form")
    # Every control is reachable with Tab, in reading order, starting at the sender.
    assert clerk.evaluate("document.activeElement.id") == "sender_name"
    order = []
    for _ in range(14):
        clerk.keyboard.press("Tab")
        order.append(clerk.evaluate("document.activeElement.id || document.activeElement.name"))
    assert order[:3] == ["sender_kind", "sender_address", "subject"], order
    assert "jrwa" in order

    clerk.locator("#sender_name").fill("Wydział Oświaty i Wychowania")
    clerk.locator("#subject").fill("Zaproszenie na naradę dyrektorów")
    clerk.locator("#jrwa").fill("432")
    clerk.locator("#start_process").select_option("")
    clerk.locator("#subject").focus()
    with clerk.expect_navigation():
        clerk.keyboard.press("Control+Enter")  # register and next
    assert re.search(r"Zarejestrowano RPW/\d+/\d{4}", clerk.locator("#flash").inner_text())
    assert clerk.evaluate("document.activeElement.id") == "sender_name"
    assert clerk.locator("#subject").input_value() == ""
    j.check(clerk, "registered-and-next")

    # The second letter: the sender comes from the autocomplete of earlier senders.
    clerk.locator("#sender_name").press_sequentially("Wydz", delay=30)
    clerk.wait_for_function(
        "document.querySelectorAll('#sender-options option').length > 0", timeout=10_000
    )
    assert clerk.locator("#sender-options option").first.get_attribute("value") == (
        "Wydział Oświaty i Wychowania"
    )
    clerk.locator("#sender_name").fill("Wydział Oświaty i Wychowania")
    clerk.locator("#sender_kind").select_option("institution")
    clerk.locator("#subject").fill(SUBJECT)
    clerk.locator("#jrwa").fill("432 — Dowóz uczniów niepełnosprawnych i zwrot kosztów przejazdu")
    clerk.locator("#start_process").select_option("official_letter_school")
    # The scan is dropped onto the drop zone, listed and previewed.
    clerk.evaluate(
        """(bytes) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], 'pismo-wow.pdf',
                {type: 'application/pdf'}));
            const zone = document.getElementById('dropzone');
            zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true,
                cancelable: true}));
        }""",
        list(PDF),
    )
    assert "pismo-wow.pdf" in clerk.locator("#file-list").inner_text()
    assert clerk.locator("#preview iframe").count() == 1
    j.check(clerk, "register-with-scan")
    clerk.get_by_role("button", name="Zarejestruj i otwórz sprawę").focus()
    clerk.keyboard.press("Enter")
    clerk.wait_for_url(re.compile(r".*/web/cases/SP58\.432\.\d+\.\d{4}$"))
    reference = clerk.url.rsplit("/", 1)[1]
    assert "Założono sprawę" in clerk.locator("#flash").inner_text()
    assert "pismo-wow.pdf" in clerk.locator("#documents").inner_text()
    clerk.wait_for_selector(".diagram[data-rendered='true']")
    j.check(clerk, "case-opened")

    # -- the headteacher assigns the drafting to the handler (dekretacja) ---------------------
    head = j.login("headteacher.sp58")
    head.goto(f"{j.url}/web/cases/{reference}")
    card = head.locator("article.task", has=head.get_by_role("heading", name="Przygotowanie pisma"))
    card.get_by_text("Dekretacja na osobę").click()
    card.get_by_label("Nazwa użytkownika").fill("handler.sp58")
    card.get_by_label("Dyspozycja").fill("Proszę przygotować odpowiedź do Wydziału Oświaty.")
    j.check(head, "assign")
    with head.expect_navigation():
        card.get_by_role("button", name="Dekretuj").click()
    assert "Zadekretowano na handler.sp58" in head.locator("#flash").inner_text()

    # -- the handler drafts the reply ---------------------------------------------------------
    handler = j.login("handler.sp58")
    j.wait_for_inbox(handler, "Przygotowanie pisma")
    j.check(handler, "handler-inbox")
    handler.locator("#inbox-results").get_by_role("link", name="Przygotowanie pisma").click()
    handler.get_by_label("Tytuł pisma (w sprawie)").fill("Dowóz uczniów niepełnosprawnych")
    handler.get_by_label("Treść pisma").fill(
        "Uprzejmie informujemy, że dowozem objętych będzie 12 uczniów niepełnosprawnych."
    )
    j.check(handler, "draft")
    complete_task(handler, "Przygotowanie pisma")
    assert "Zakończono zadanie" in handler.locator("#flash").inner_text()

    # -- the headteacher approves and signs ----------------------------------------------------
    j.wait_for_inbox(head, "Akceptacja i podpis")
    head.locator("#inbox-results").get_by_role("link", name="Akceptacja i podpis").click()
    # A return without a comment is refused by the form's schema, the input stays.
    head.get_by_label("Zwracam do poprawy").check()
    complete_task(head, "Akceptacja i podpis")
    assert head.get_by_role("alert").count() >= 1
    j.check(head, "sign-refused")
    head.get_by_label("Akceptuję i podpisuję").check()
    j.check(head, "sign")
    complete_task(head, "Akceptacja i podpis")
    assert "Zakończono zadanie" in head.locator("#flash").inner_text()

    # -- the city office receives the signed letter and answers --------------------------------
    city_clerk = j.login("clerk.wow")
    j.wait_for_inbox(city_clerk, "Dekretacja pisma")
    city_clerk.locator("#inbox-results").get_by_role("link", name="Dekretacja pisma").click()
    j.check(city_clerk, "city-case")
    assert "Podpis ważny" in city_clerk.locator("#documents").inner_text()
    city_clerk.get_by_label("Prowadzący sprawę (login)").fill("city_officer.wow")
    complete_task(city_clerk, "Dekretacja pisma")

    officer = j.login("city_officer.wow")
    j.wait_for_inbox(officer, "Przygotowanie odpowiedzi")
    officer.locator("#inbox-results").get_by_role("link", name="Przygotowanie odpowiedzi").click()
    officer.get_by_label("Treść odpowiedzi").fill("Dziękujemy, dowóz zostanie zorganizowany.")
    complete_task(officer, "Przygotowanie odpowiedzi")

    # -- the handler reads the signed reply; the case closes ----------------------------------
    j.wait_for_inbox(handler, "Zapoznanie z odpowiedzią")
    handler.locator("#inbox-results").get_by_role("link", name="Zapoznanie z odpowiedzią").click()
    assert "Podpis ważny" in handler.locator("#documents").inner_text()
    handler.locator("#documents details summary").first.click()
    j.check(handler, "signed-reply")
    handler.locator("article.task input[type=checkbox]").check()
    complete_task(handler, "Zapoznanie z odpowiedzią")
    handler.goto(f"{j.url}/web/cases/{reference}")
    assert "zakończona" in handler.locator(".lead .badge-status").inner_text()
    handler.wait_for_selector(".diagram[data-rendered='true']")
    assert handler.locator(".djs-element.ezd-completed").count() > 3
    j.check(handler, "case-closed")

    # -- an auditor finds the case by an inflected word, read-only ----------------------------
    auditor = j.login("auditor.wow")
    j.check(auditor, "auditor-home")
    auditor.get_by_role("link", name="Szukaj", exact=True).first.click()
    deadline = time.monotonic() + 90  # indexing runs in the worker after commit
    while True:
        auditor.get_by_label("Szukane słowa").fill("dowozu ucznia niepełnosprawnego")
        with auditor.expect_response(lambda r: "/web/search?" in r.url):
            auditor.keyboard.press("Enter")  # htmx swaps the results in place
        auditor.wait_for_load_state()
        if auditor.locator(".hit").count():
            break
        if time.monotonic() > deadline:
            j.check(auditor, "auditor-search-failed")
            raise AssertionError("the case was never found")
        time.sleep(0.5)
    assert auditor.locator(".hit mark").count() >= 1
    j.check(auditor, "auditor-search")
    auditor.locator(".hit", has_text=reference).first.get_by_role("link").first.click()
    auditor.wait_for_url(re.compile(r".*/web/cases/.*"))
    assert auditor.locator("form.task-form").count() == 0  # read-only
    j.check(auditor, "auditor-case")
    auditor.get_by_role("link", name="Audyt").first.click()
    auditor.get_by_role("link", name=re.compile("^SP58")).click()
    assert reference in auditor.locator("table.data").inner_text()
    j.check(auditor, "auditor-case-list")

    assert j.violations == [], j.violations
