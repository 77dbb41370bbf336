"""The registration load: a pool of client threads registering incoming letters, each with a
small PDF of its own (so every blob has a distinct digest), over HTTP against `ezd serve`.

Every request's outcome is kept: the status (or the transport error), the error code of a
refusal, and for a 201 the id and RPW number the server acknowledged, with the SHA-256 of the
file that was sent. The checks compare the database and S3 with exactly these.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

REQUEST_TIMEOUT = 60.0


def make_pdf(tag: str, size: int = 12 * 1024) -> bytes:
    head = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n% " + tag.encode() + b"\n"
    tail = b"\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    filler = os.urandom(max(0, size - len(head) - len(tail)) // 2).hex().encode()
    return head + b"%" + filler + tail


@dataclass
class Outcome:
    started: float  # time.monotonic()
    ended: float
    status: int | None  # None: no HTTP answer (connection refused, reset, timeout)
    code: str  # the error code of a refusal, "created" for a 201, the exception for None
    sha256: str
    unit: str
    tag: str
    item_id: str | None = None
    rpw_number: str | None = None
    case_reference: str | None = None
    documents: int = 0

    @property
    def acknowledged(self) -> bool:
        return self.status == 201

    @property
    def label(self) -> str:
        return f"{self.status} {self.code}" if self.status is not None else f"no answer {self.code}"


@dataclass
class Load:
    """`clients` threads, each registering letters in a loop until `stop()`."""

    base_url: str
    tokens: dict[str, str]  # unit code -> a clerk's bearer token
    clients: int = 6
    # registrations started per second, all clients together: enough to have requests in
    # flight at any moment, few enough for the worker to keep up on a shared 2-core machine
    rate: float = 6.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    t0: float = 0.0
    in_flight: int = 0  # requests sent and not answered yet

    def start(self) -> Load:
        self.t0 = time.monotonic()
        units = sorted(self.tokens)
        for i in range(self.clients):
            t = threading.Thread(
                target=self._client, args=(units[i % len(units)],), daemon=True, name=f"load-{i}"
            )
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(REQUEST_TIMEOUT + 10)
        assert not any(t.is_alive() for t in self._threads), "a load client hangs"
        return self.outcomes

    def _client(self, unit: str) -> None:
        interval = self.clients / self.rate
        with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT) as http:
            while not self._stop.is_set():
                with self._lock:
                    self.in_flight += 1
                try:
                    outcome = register_one(http, self.tokens[unit], unit)
                finally:
                    with self._lock:
                        self.in_flight -= 1
                with self._lock:
                    self.outcomes.append(outcome)
                # keep to the rate; after no answer at all wait a little, as a client would
                wait = interval - (outcome.ended - outcome.started)
                self._stop.wait(max(wait, 0.2 if outcome.status is None else 0.0))

    def wait_in_flight(self, n: int, timeout: float = 10) -> int:
        """Wait (a little) for a moment with at least `n` requests under way: a fault then
        lands in the middle of registrations. Returns how many are under way."""
        end = time.monotonic() + timeout
        while self.in_flight < n and time.monotonic() < end:
            time.sleep(0.005)
        return self.in_flight

    # ------------------------------------------------------------ figures
    def since(self, t: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.started >= t]

    def wait_for_acks(self, n: int, after: float, timeout: float) -> float:
        """Wait until `n` registrations started after `after` were acknowledged; returns the
        moment (monotonic) the first of them was answered."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            acks = [o for o in self.since(after) if o.acknowledged]
            if len(acks) >= n:
                return min(o.ended for o in acks)
            time.sleep(0.1)
        raise AssertionError(
            f"fewer than {n} acknowledged registrations within {timeout:.0f} s after the fault; "
            f"answers since then: {summarize(self.since(after))['by_answer']}"
        )


def register_one(http: httpx.Client, token: str, unit: str) -> Outcome:
    tag = uuid.uuid4().hex
    pdf = make_pdf(tag)
    digest = hashlib.sha256(pdf).hexdigest()
    meta = {
        "unit": unit.upper(),
        "subject": f"Test awarii {tag}",
        "sender": {"name": "Jan Nowak", "kind": "person"},
        "channel": "paper",
        "jrwa": "430",
        "new_case": True,
    }
    t0 = time.monotonic()
    try:
        r = http.post(
            "/api/v1/incoming",
            headers={"Authorization": f"Bearer {token}"},
            data={"meta": json.dumps(meta)},
            files={"files": (f"skan-{tag[:8]}.pdf", pdf, "application/pdf")},
        )
    except httpx.HTTPError as e:
        return Outcome(t0, time.monotonic(), None, type(e).__name__, digest, unit, tag)
    t1 = time.monotonic()
    try:
        body: Any = r.json()
    except ValueError:
        body = {}
    if r.status_code == 201:
        return Outcome(
            t0,
            t1,
            201,
            "created",
            digest,
            unit,
            tag,
            item_id=body["id"],
            rpw_number=body["rpw_number"],
            case_reference=body["case_reference"],
            documents=len(body["documents"]),
        )
    code = (body.get("error") or {}).get("code", "?") if isinstance(body, dict) else "?"
    return Outcome(t0, t1, r.status_code, code, digest, unit, tag)


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    lat = sorted(o.ended - o.started for o in outcomes if o.status is not None)
    return {
        "requests": len(outcomes),
        "acknowledged": sum(o.acknowledged for o in outcomes),
        "by_answer": dict(Counter(o.label for o in outcomes).most_common()),
        "slowest_answer_s": round(lat[-1], 2) if lat else None,
    }
