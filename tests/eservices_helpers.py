"""Shared by the e-service tests (API and browser): valid forms for each service, submitting
over the API, driving the staff's steps, and a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from tests.helpers import PDF

APPLICANT = {
    "applicant_name": "Anna Kowalska",
    "applicant_email": "anna.kowalska@example.org",
    "applicant_address": "ul. Polna 5, 00-100 Miasto",
    "truthfulness": True,
}
FORMS: dict[str, dict[str, Any]] = {
    "duplikat_legitymacji": {
        **APPLICANT,
        "pupil_name": "Jan Kowalski",
        "pupil_class": "4b",
        "pupil_birth_date": "2015-03-02",
        "reason": "lost",
    },
    "przyjecie_spoza_obwodu": {
        **APPLICANT,
        "pupil_name": "Ola Kowalska",
        "pupil_pesel": "15230212345",
        "pupil_birth_date": "2015-03-02",
        "pupil_address": "ul. Polna 5, 00-100 Miasto",
        "grade": 1,
        "school_year": "2027/2028",
        "reasons": "Szkoła jest blisko pracy rodziców.",
    },
    "zwrot_kosztow_dowozu": {
        **APPLICANT,
        "pupil_name": "Jan Kowalski",
        "certificate_number": "PPP/12/2026",
        "route": "ul. Polna 5 – SP 58",
        "distance_km": 7.5,
        "period_from": "2026-09-01",
        "period_to": "2026-12-31",
        "bank_account": "12345678901234567890123456",
    },
    "skarga_wniosek": {
        **APPLICANT,
        "kind": "complaint",
        "subject": "Brak informacji o zebraniu",
        "content": "Proszę o informowanie rodziców o zebraniach z wyprzedzeniem.",
    },
}


def submit(
    client: TestClient,
    service: str = "duplikat_legitymacji",
    *,
    unit: str = "SP58",
    form: dict[str, Any] | str | None = None,
    files: list[tuple[str, bytes, str]] | None = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    body = form if isinstance(form, str) else json.dumps(form or FORMS[service])
    parts = [
        ("attachments", (n, c, t))
        for n, c, t in (files if files is not None else [("skan.pdf", PDF, "application/pdf")])
    ]
    return client.post(
        f"/api/v1/public/services/{service}/submissions",
        data={"unit": unit, "form": body},
        files=parts or None,
        headers={**({"Idempotency-Key": key} if key else {}), **(headers or {})},
    )


def creds(response: Any) -> dict[str, str]:
    assert response.status_code == 201, response.text
    data = response.json()
    return {"code": data["tracking_code"], "pin": data["pin"]}


def track(client: TestClient, c: dict[str, str]) -> Any:
    return client.post("/api/v1/public/tracking", json=c)


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content)
        msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 OK"

    def subjects(self) -> list[str]:
        from email.header import decode_header, make_header

        return [str(make_header(decode_header(m["Subject"]))) for m in self.messages]

    def bodies(self) -> list[str]:
        out = []
        for m in self.messages:
            part = m.get_payload(decode=True)
            assert isinstance(part, bytes)
            out.append(part.decode(m.get_content_charset() or "utf-8"))
        return out

    def wait_for(self, n: int, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < end:
            time.sleep(0.05)
        assert len(self.messages) >= n, self.subjects()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    box = Mailbox("127.0.0.1", free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
