"""Citizen e-services through the public API on both backends: the catalogue, submission with
a signed receipt (checked with `ezd verify`), tracking through the staff's steps to the signed
decision, supplements, e-mail over a real SMTP server on loopback, and every abuse case:
PIN brute force, code enumeration, uploads that lie about their type or are too big, scripts in
form fields, replayed and oversized submissions, rate limits."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.cli import ezd_command
from tests.conftest import Backend
from tests.eservices_helpers import FORMS, Mailbox, creds, smtp_server, submit, track
from tests.helpers import PDF, PNG, error_code, install_unit_seals, token
from tests.pki import TestPki, pki_fixture  # noqa: F401  (the `pki` fixture)
from tests.test_process_library import do, drain
from tests.tsa_server import RunningTsa, tsa_fixture  # noqa: F401  (the `tsa` fixture)

HEAD = "headteacher.sp58"
HANDLER = "handler.sp58"
CLERK = "clerk.sp58"


@pytest.fixture
def mailbox(backend: Backend) -> Iterator[Mailbox]:
    with smtp_server() as box:
        backend.settings.smtp_host = box.host
        backend.settings.smtp_port = box.port
        backend.settings.smtp_from = "e-uslugi@miasto.example"
        yield box


@pytest.fixture
def sealed(client: TestClient, pki: TestPki) -> TestClient:
    install_unit_seals(client, pki)
    return client


def verified(data: bytes, pki: TestPki, *trust: Path) -> dict[str, Any]:
    """The verification report of a signed file, in process (as `ezd verify` makes it)."""
    from workflow.signing.trust import TrustStore
    from workflow.signing.verify import verify_xades

    pems = [pki.root_pem_path.read_bytes(), *(t.read_bytes() for t in trust)]
    report = verify_xades(data, trust=TrustStore.from_pem(*pems), at="signing_time").to_json()
    assert report["indication"] == "TOTAL_PASSED", report
    return dict(report)


def verify(path: Path, pki: TestPki, *trust: Path) -> dict[str, Any]:
    """`ezd verify` itself (a subprocess: a few seconds each, so used sparingly)."""
    args = [*ezd_command(), "verify", str(path), "--trust", str(pki.root_pem_path)]
    for t in trust:
        args += ["--trust", str(t)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(p.stdout)
    assert p.returncode == 0, report
    return dict(report)


def stored_counts(backend: Backend) -> tuple[int, ...]:
    """Rows of everything a submission writes: items, cases, documents, blobs, submissions,
    process instances, outbox events."""
    from sqlalchemy import text

    tables = (
        "incoming_items",
        "cases",
        "documents",
        "blobs",
        "eservice_submissions",
        "process_instances",
        "outbox_events",
    )
    with backend.container.engine.connect() as conn:
        return tuple(
            int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables
        )


def test_catalogue_and_forms(client: TestClient) -> None:
    r = client.get("/api/v1/public/services")
    assert r.status_code == 200
    assert {s["code"] for s in r.json()} == set(FORMS)
    d = client.get("/api/v1/public/services/duplikat_legitymacji").json()
    assert d["form_schema"]["properties"]["pupil_name"]["title"] == "Imię i nazwisko ucznia"
    units = {u["code"] for u in d["units"]}
    assert {"SP58", "SP12", "P7"} <= units and "WOW" not in units and "CUW" not in units
    schema = client.get("/api/v1/public/services/skarga_wniosek/schema").json()
    assert "content" in schema["required"]
    assert error_code(client.get("/api/v1/public/services/nie_ma")) == "service_not_found"
    documented = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/public/services/{code}/submissions" in documented
    assert "/api/v1/public/tracking/supplements" in documented


def test_every_service_end_to_end(
    backend: Backend, sealed: TestClient, mailbox: Mailbox, pki: TestPki, tmp_path: Path
) -> None:
    client = sealed
    for service in FORMS:
        r = submit(client, service)
        c = creds(r)
        body = r.json()
        assert body["rpw_number"].startswith("RPW/") and body["case_reference"].startswith("SP58")
        assert body["deadline"], body
        t = track(client, c)
        assert t.status_code == 200, t.text
        assert t.json()["status"] == "registered" and t.json()["service"] == service

        # the signed receipt: XML verified by `ezd verify`, readable HTML and PDF with the PIN
        x = client.post("/api/v1/public/tracking/receipt", json=c)
        assert x.status_code == 200 and x.headers["content-type"].startswith("application/xml")
        assert c["pin"].encode() not in x.content  # the PIN is never in the kept file
        assert "58" in verified(x.content, pki)["signed_by"]
        h = client.post("/api/v1/public/tracking/receipt?format=html", json=c)
        assert h.status_code == 200 and c["pin"] in h.text and c["code"] in h.text
        p = client.post("/api/v1/public/tracking/receipt?format=pdf", json=c)
        assert p.status_code == 200 and p.content.startswith(b"%PDF")

    # the last one through the staff's steps to the signed decision
    drain(backend)
    do(client, HEAD, "assign", {"handler": HANDLER}, case=body["case_reference"])
    assert track(client, c).json()["status"] == "assigned"
    do(client, HANDLER, "verify", {"complete": True})
    assert track(client, c).json()["status"] == "in_progress"
    do(client, HANDLER, "examine", {"findings": "Zasadna.", "proposed_decision": "grant"})
    assert track(client, c).json()["status"] == "awaiting_approval"
    nothing = client.post("/api/v1/public/tracking/decision", json=c)
    assert nothing.status_code == 404 and error_code(nothing) == "decision_not_issued"
    do(client, HEAD, "decide", {"decision": "grant", "justification": "Skarga zasadna."})
    drain(backend)
    t = track(client, c).json()
    assert [s["status"] for s in t["timeline"]] == [
        "registered",
        "assigned",
        "in_progress",
        "awaiting_approval",
        "decided",
        "closed",
    ]
    assert t["decision_available"] and t["decision"] == "grant"
    assert t["timeline"][0]["label"] == "Wniosek zarejestrowany"
    d = client.post("/api/v1/public/tracking/decision", json=c)
    assert d.status_code == 200 and b"uwzglednienie" in d.content
    verified(d.content, pki)
    case = client.get(
        f"/api/v1/cases/{body['case_reference']}", headers=token(client, CLERK)
    ).json()
    assert case["status"] == "closed"

    # e-mails: one per status change per submission, no PIN, no personal data beyond the code
    mailbox.wait_for(len(FORMS) + 5)
    assert all(
        m["X-Envelope-To"] == FORMS["skarga_wniosek"]["applicant_email"] for m in mailbox.messages
    )
    subjects = mailbox.subjects()
    assert sum(c["code"] in s for s in subjects) == 6
    assert any("Wydano rozstrzygnięcie" in s for s in subjects)
    for text in mailbox.bodies():
        assert "Anna" not in text and "Kowalsk" not in text
        assert "/e-uslugi/sledzenie?kod=" in text
    assert all(c["pin"] not in b for b in mailbox.bodies())


def test_receipt_is_xades_t_with_a_tsa(
    backend: Backend, client: TestClient, pki: TestPki, tsa: RunningTsa, tmp_path: Path
) -> None:
    backend.container.settings.tsa_url = tsa.url
    install_unit_seals(client, pki, tsa.root_pem_path.read_bytes())
    c = creds(submit(client))
    x = client.post("/api/v1/public/tracking/receipt", json=c)
    (tmp_path / "r.xml").write_bytes(x.content)
    report = verify(tmp_path / "r.xml", pki, tsa.root_pem_path)  # the `ezd verify` command
    assert report["level"] == "XAdES-T", report
    assert "XAdES-T" in client.post("/api/v1/public/tracking/receipt?format=html", json=c).text


def test_supplement_reaches_the_process(backend: Backend, sealed: TestClient) -> None:
    client = sealed
    r = submit(client, "przyjecie_spoza_obwodu")
    c = creds(r)
    ref = r.json()["case_reference"]
    early = client.post(
        "/api/v1/public/tracking/supplements",
        data={**c},
        files=[("attachments", ("a.pdf", PDF, "application/pdf"))],
    )
    assert early.status_code == 409 and error_code(early) == "supplement_not_expected"
    do(client, HEAD, "assign", {"handler": HANDLER}, case=ref)
    do(
        client,
        HANDLER,
        "verify",
        {"complete": False, "missing_items": "Brak zaświadczenia o zameldowaniu."},
    )
    t = track(client, c).json()
    assert t["status"] == "supplement_requested" and t["supplement_allowed"]
    assert t["expected_action"] == "Brak zaświadczenia o zameldowaniu."
    empty = client.post(
        "/api/v1/public/tracking/supplements",
        data={**c, "note": "x"},
        files=[("attachments", ("", b"", "application/octet-stream"))],
    )
    assert empty.status_code == 422, empty.text
    up = client.post(
        "/api/v1/public/tracking/supplements",
        data={**c, "note": "Dosyłam zaświadczenie."},
        files=[("attachments", ("zaswiadczenie.pdf", PDF, "application/pdf"))],
        headers={"Idempotency-Key": "sup-1"},
    )
    assert up.status_code == 201, up.text
    assert track(client, c).json()["status"] == "supplement_received"
    again = client.post(
        "/api/v1/public/tracking/supplements",
        data={**c},
        files=[("attachments", ("zaswiadczenie.pdf", PDF, "application/pdf"))],
        headers={"Idempotency-Key": "sup-1"},
    )
    assert again.status_code == 409
    drain(backend)
    # the process is back at the formal check, with the supplement filed in the case
    do(client, HANDLER, "verify", {"complete": True}, case=ref)
    assert track(client, c).json()["status"] == "in_progress"
    items = client.get(f"/api/v1/cases/{ref}", headers=token(client, CLERK)).json()
    assert len(items["incoming"]) == 2, items["incoming"]


# ---------------------------------------------------------------------------------------------
# Abuse


def test_pin_brute_force_locks_the_code(sealed: TestClient) -> None:
    client = sealed
    c = creds(submit(client))
    wrong = {"code": c["code"], "pin": "00000000" if c["pin"] != "00000000" else "11111111"}
    for _ in range(4):
        r = track(client, wrong)
        assert r.status_code == 403 and error_code(r) == "tracking_denied"
    r = track(client, wrong)  # the fifth failure locks the code
    assert r.status_code == 429 and error_code(r) == "tracking_locked"
    right = track(client, c)  # even the right PIN gets the lock-out now
    assert right.status_code == 429 and error_code(right) == "tracking_locked"
    assert "Zbyt wiele nieudanych prób" in right.json()["error"]["message"]
    assert right.json()["error"]["details"]["locked_until"]
    # and says when to try again: the lock-out is 15 minutes
    assert 14 * 60 < int(right.headers["Retry-After"]) <= 15 * 60, right.headers
    # other cases are not affected
    other = creds(submit(client, "skarga_wniosek"))
    assert track(client, other).status_code == 200


@pytest.mark.settings(eservice_pin_attempts_per_client=6, eservice_rate_per_minute=200)
def test_guessing_many_codes_locks_the_client(sealed: TestClient) -> None:
    client = sealed
    c = creds(submit(client))
    for n in range(5):
        r = track(client, {"code": f"AAAA-BBBB-CCC{'DEFGH'[n]}", "pin": "12345678"})
        assert r.status_code == 403
    r = track(client, {"code": "AAAA-BBBB-CCCJ", "pin": "12345678"})
    assert r.status_code == 429 and error_code(r) == "tracking_locked"
    assert track(client, c).status_code == 429  # the client, whatever code it asks about


def test_unknown_code_and_wrong_pin_answer_alike(sealed: TestClient) -> None:
    client = sealed
    c = creds(submit(client))
    wrong_pin = track(client, {"code": c["code"], "pin": "99999999"})
    no_code = track(client, {"code": "ZZZZ-ZZZZ-ZZZZ", "pin": "99999999"})
    garbage = track(client, {"code": "x", "pin": "1"})
    assert wrong_pin.status_code == no_code.status_code == garbage.status_code == 403
    assert wrong_pin.json() == no_code.json() == garbage.json()
    for path in ("/api/v1/public/tracking/receipt", "/api/v1/public/tracking/decision"):
        a = client.post(path, json={"code": c["code"], "pin": "99999998"})
        b = client.post(path, json={"code": "ZZZZ-ZZZZ-ZZZY", "pin": "99999998"})
        assert a.status_code == b.status_code == 403 and a.json() == b.json()
    # codes are normalised (case, dashes, spaces) so they can be typed as read
    loose = {"code": " " + c["code"].lower().replace("-", " ") + " ", "pin": c["pin"]}
    assert track(client, loose).status_code == 200


def _nothing_stored(backend: Backend, before: tuple[int, ...]) -> None:
    assert stored_counts(backend) == before


@pytest.mark.settings(eservice_max_upload_bytes=2048, eservice_max_files=2)
def test_bad_uploads_are_refused_and_nothing_stored(backend: Backend, sealed: TestClient) -> None:
    client = sealed
    before = stored_counts(backend)
    r = submit(client, files=[("skan.pdf", PNG, "application/pdf")])
    assert r.status_code == 422 and error_code(r) == "content_type_mismatch"
    r = submit(client, files=[("notatka.txt", b"zwykly tekst\n", "text/plain")])
    assert r.status_code == 415 and error_code(r) == "file_type_not_allowed"
    r = submit(client, files=[("a.html", b"<html><script>alert(1)</script></html>", "text/html")])
    assert r.status_code in (415, 422), r.text
    r = submit(client, files=[("duzy.pdf", PDF + b"0" * 4096, "application/pdf")])
    assert r.status_code == 413 and error_code(r) == "file_too_large"
    r = submit(client, files=[(f"{n}.pdf", PDF, "application/pdf") for n in range(3)])
    assert r.status_code == 422 and error_code(r) == "too_many_files"
    r = submit(client, files=[("../../etc/passwd", PDF, "application/pdf")])
    assert r.status_code == 422 and error_code(r) == "invalid_file_name"
    _nothing_stored(backend, before)


def test_bad_forms_are_refused_and_nothing_stored(backend: Backend, sealed: TestClient) -> None:
    client = sealed
    before = stored_counts(backend)
    huge = {**FORMS["skarga_wniosek"], "content": "x" * 70_000}
    r = submit(client, "skarga_wniosek", form=huge)
    assert r.status_code == 413 and error_code(r) == "form_too_large"
    r = submit(client, "skarga_wniosek", form={**FORMS["skarga_wniosek"], "content": "x" * 10_001})
    assert r.status_code == 422 and error_code(r) == "form_invalid"
    assert "content" in r.json()["error"]["details"]["fields"]
    missing = {k: v for k, v in FORMS["duplikat_legitymacji"].items() if k != "pupil_name"}
    r = submit(client, form=missing)
    assert r.status_code == 422 and "pupil_name" in r.json()["error"]["details"]["fields"]
    r = submit(client, form={**FORMS["duplikat_legitymacji"], "is_admin": True})
    assert r.status_code == 422 and error_code(r) == "form_invalid"
    for bad in ("nie-email", "a@x.org,ofiara@y.org", "a@x.org\nBcc: b@y.org", "<a@x.org>"):
        r = submit(client, form={**FORMS["duplikat_legitymacji"], "applicant_email": bad})
        assert r.status_code == 422 and "applicant_email" in r.json()["error"]["details"]["fields"]
    r = submit(client, form={**FORMS["duplikat_legitymacji"], "pupil_name": "Jan\x00Kowalski"})
    assert r.status_code == 422 and error_code(r) == "form_invalid"
    r = submit(client, form="{not json")
    assert r.status_code == 422 and error_code(r) == "form_invalid"
    r = submit(client, unit="WOW")
    assert r.status_code == 422 and error_code(r) == "unit_not_addressable"
    r = submit(client, unit="SP12")  # no seal: no receipt can be signed, so nothing is taken
    assert r.status_code == 503 and error_code(r) == "receipt_unavailable"
    r = client.post(
        "/api/v1/public/services/skarga_wniosek/submissions",
        content=b"x" * 300_000,
        headers={"Content-Type": "multipart/form-data; boundary=zz"},
    )
    assert 400 <= r.status_code < 500, r.text
    _nothing_stored(backend, before)


def test_replayed_submission_is_refused(backend: Backend, sealed: TestClient) -> None:
    client = sealed
    first = submit(client, key="wniosek-7f3a")
    assert first.status_code == 201
    before = stored_counts(backend)
    again = submit(client, key="wniosek-7f3a")
    assert again.status_code == 409 and error_code(again) == "duplicate_submission"
    assert "details" not in again.json()["error"] or not again.json()["error"]["details"]
    _nothing_stored(backend, before)


def test_scripts_in_form_fields_are_escaped_everywhere(
    backend: Backend, sealed: TestClient
) -> None:
    client = sealed
    evil = "<script>alert('x')</script>"
    form = {**FORMS["skarga_wniosek"], "applicant_name": f"Jan {evil}", "subject": evil}
    r = submit(client, "skarga_wniosek", form=form)
    c = creds(r)
    ref = r.json()["case_reference"]
    html = client.post("/api/v1/public/tracking/receipt?format=html", json=c).text
    assert evil not in html and "&lt;script&gt;" in html
    xml = client.post("/api/v1/public/tracking/receipt", json=c).content
    assert b"<script>" not in xml and b"&lt;script&gt;" in xml
    # the staff's case page
    login = client.post("/api/v1/auth/login", data={"username": CLERK, "password": "demo"})
    assert login.status_code == 200
    page = client.get(f"/web/cases/{ref}")
    assert page.status_code == 200
    assert evil not in page.text and "&lt;script&gt;" in page.text
    item = client.get("/api/v1/incoming", params={"unit": "SP58"}, headers=token(client, CLERK))
    assert any(evil in i["sender"]["name"] for i in item.json()["items"])  # stored as given


@pytest.mark.settings(eservice_rate_per_minute=3)
def test_rate_limit(client: TestClient) -> None:
    for _ in range(3):
        assert client.get("/api/v1/public/services").status_code == 200
    r = client.get("/api/v1/public/services")
    assert r.status_code == 429 and error_code(r) == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 61, r.headers  # the one-minute window


def test_pin_is_never_stored_or_logged(
    backend: Backend, sealed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = sealed
    with caplog.at_level(logging.DEBUG):
        r = submit(client)
        c = creds(r)
        track(client, c)
        drain(backend)
    assert c["pin"] not in caplog.text
    from sqlalchemy import text

    with backend.container.engine.connect() as conn:
        dumps = [
            json.dumps([list(row) for row in conn.execute(text(f"SELECT * FROM {t}"))], default=str)
            for t in (
                "eservice_submissions",
                "eservice_events",
                "audit_entries",
                "outbox_events",
                "incoming_items",
                "process_instances",
            )
        ]
    alone = re.compile(rf"(?<![0-9]){c['pin']}(?![0-9])")
    assert not any(alone.search(d) for d in dumps)


def test_supplement_not_sent_in_time_closes_the_case(backend: Backend, sealed: TestClient) -> None:
    from datetime import timedelta

    from workflow.engine.runtime import advance_clock

    client = sealed
    r = submit(client)
    c = creds(r)
    ref = r.json()["case_reference"]
    do(client, HEAD, "assign", {"handler": HANDLER}, case=ref)
    do(client, HANDLER, "verify", {"complete": False, "missing_items": "Brak zdjęcia."}, case=ref)
    advance_clock(timedelta(days=8))
    assert backend.container.fire_due_timers() == 1
    t = track(client, c).json()
    assert t["status"] == "closed" and not t["supplement_allowed"]
    assert "bez rozpoznania" in t["timeline"][-1]["note"]
    late = client.post(
        "/api/v1/public/tracking/supplements",
        data={**c},
        files=[("attachments", ("a.pdf", PDF, "application/pdf"))],
    )
    assert late.status_code == 409 and error_code(late) == "supplement_not_expected"
    case = client.get(f"/api/v1/cases/{ref}", headers=token(client, CLERK)).json()
    assert case["status"] == "closed"


def test_throttle_rows_are_forgotten_after_the_window(backend: Backend, sealed: TestClient) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select

    from workflow.eservices.access import purge_expired
    from workflow.eservices.models import AccessThrottle

    client = sealed
    c = creds(submit(client))
    track(client, {"code": c["code"], "pin": "00000001"})
    with backend.container.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(AccessThrottle)) == 2
        assert purge_expired(uow) == 0  # still within the window
        for row in uow.session.scalars(select(AccessThrottle)):
            row.window_started_at -= timedelta(hours=1)
        uow.flush()
        assert purge_expired(uow) == 2
        uow.commit()


def test_smtp_adapter_sends_to_one_plain_address_only() -> None:
    from api.mail import SmtpMailer
    from workflow.eservices.notifications import Mail
    from workflow.settings import Settings

    with smtp_server() as box:
        mailer = SmtpMailer(Settings(smtp_host=box.host, smtp_port=box.port))
        for bad in ("a@x.org,b@y.org", "a@x.org\r\nBcc: b@y.org", "Anna <a@x.org>", "a@@x.org"):
            with pytest.raises(ValueError):
                mailer.send(Mail(to=bad, subject="s", text="t"))
        mailer.send(Mail(to="anna@example.org", subject="Sprawa ABCD: zażółć", text="treść"))
        box.wait_for(1)
    assert box.messages[0]["X-Envelope-To"] == "anna@example.org"
    assert box.subjects() == ["Sprawa ABCD: zażółć"]
    assert [b.strip() for b in box.bodies()] == ["treść"]
