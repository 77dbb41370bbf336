"""Citizen e-services through the public API on both backends: the catalogue, submission with
a signed receipt (checked with `ezd verify`), tracking through the staff's steps to the signed
decision, supplements, e-mail over a real SMTP server on loopback, and every abuse case."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Backend
from tests.eservices_helpers import FORMS, Mailbox, creds, smtp_server, submit, track
from tests.helpers import install_unit_seals
from tests.pki import TestPki, pki_fixture  # noqa: F401  (the `pki` fixture)
from tests.test_process_library import do, drain

HEAD = "headteacher.sp58"
HANDLER = "handler.sp58"


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


def test_catalogue(client: TestClient) -> None:
    r = client.get("/api/v1/public/services")
    assert r.status_code == 200
    assert {s["code"] for s in r.json()} == set(FORMS)
    d = client.get("/api/v1/public/services/duplikat_legitymacji").json()
    assert d["form_schema"]["properties"]["pupil_name"]["title"]
    assert "SP58" in {u["code"] for u in d["units"]}
    assert "WOW" not in {u["code"] for u in d["units"]}


def test_submit_track_decide(
    backend: Backend, sealed: TestClient, mailbox: Mailbox
) -> None:
    client = sealed
    r = submit(client)
    c = creds(r)
    t = track(client, c)
    assert t.status_code == 200, t.text
    assert t.json()["status"] == "registered"
    drain(backend)
    do(client, HEAD, "assign", {"handler": HANDLER})
    do(client, HANDLER, "verify", {"complete": True})
    do(client, HANDLER, "examine", {"findings": "ok", "proposed_decision": "grant"})
    do(client, HEAD, "decide", {"decision": "grant", "justification": "Spełnia wymogi."})
    drain(backend)
    t = track(client, c).json()
    assert t["status"] == "closed", t
    assert t["decision_available"]
    d = client.post("/api/v1/public/tracking/decision", json=c)
    assert d.status_code == 200
    assert b"Rozstrzygniecie" in d.content
    mailbox.wait_for(6)
