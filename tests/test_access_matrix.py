"""Access control proven (issue 9): every route of the app, called as every persona — each role
of the owning unit (SP58), of a foreign school (SP12) and of the city office (WOW), and
anonymous — compared with the intended matrix in `tests/access_matrix.py`.

The route list comes from the app's route table (API, staff web, e-usługi); a route without an
entry in the matrix fails `test_matrix_names_every_route`. Path parameters name real objects of
SP58 (a registered letter with its case and document, processes and their tasks, an outgoing
item, an archived case lent and proposed for disposal, a signing key, an incident, …) made
through the API in a module-scoped fixture, so every call reaches the authorisation check
instead of failing on an unknown id. Unsafe calls carry plausible bodies (valid for an allowed
caller), so a 422 cannot hide a missing check: every JSON or multipart route validates its body
before the endpoint's own check runs (FastAPI), which the walk records per route by calling each
unsafe API route once more without a body (`empty_body_*` in the JSON). Routes that name a unit
and an SP58 object in the body are called with the caller's own unit; the substitution row makes
each persona the substitute, in their own unit, of a teacher who works in SP58 and SP12, and
runs first, so every inbox read afterwards shows what a substitute sees.

A leak is an allowed answer (2xx, or a web redirect that is not a refusal) where the matrix says
refuse; an answer other than 404 where the persona must not learn that the object exists, unless
it is exactly the answer for an object that does not exist (the walk then makes the same call
with every id replaced); or any answer but a refusal that names an object of SP58 to a persona who
may not read SP58 (search, inboxes, lists). The walk must find none; it also checks that every
allowed persona gets through (a refusal there means the matrix or the code is wrong), that
anonymous callers get 401 (the web: the login redirect) and that nothing answers 5xx.

The figures go to `bench/results/access-matrix.json` and to the end of the pytest output.
Sessions are opened without the argon2 check, the case record's PDF is stubbed and an unknown
tracking code's PIN hash is cheap (see `world`): costs that are not authorisation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import fastapi.routing
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.deps import SESSION_COOKIE
from api.routers import archive as archive_router
from api.web.render import FLASH_COOKIE
from api.web.security import PRE_SESSION_COOKIE, csrf_token_for
from tests.access_matrix import (
    ANONYMOUS,
    MATRIX,
    OWN,
    PERSONAS,
    READERS,
    UNIT_OF,
    Rule,
)
from tests.conftest import Backend, _backend, _Param
from tests.helpers import PDF, letter_meta
from tests.pki import issue, make_root
from workflow.cases.models import Case
from workflow.db import utcnow
from workflow.eservices import access
from workflow.letters.letter import Letter, Party, build_letter_xml
from workflow.org.models import AuthSession
from workflow.org.repository import OrgRepository
from workflow.processes.models import Incident, ProcessTask

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "access-matrix.json"
OVERRIDES = {
    # The walk calls the citizen API ~20 times per route from one client address.
    "eservice_rate_per_minute": 100_000,
    "eservice_pin_attempts_per_code": 100_000,
    "eservice_pin_attempts_per_client": 100_000,
}
# A refusal on a route the matrix allows, known and explained (an over-refusal is not a leak;
# each one here is reported, and a new one fails the test).
KNOWN_OVER_REFUSALS: dict[tuple[str, str], str] = {}

SHARED_TEACHER = "teacher.shared"  # a handler in SP58 and in SP12 (one teacher, two schools)
LOGIN_USER = "clerk.lo3"  # a unit outside the walk; the login routes log in as them
PROBE_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    id="defs_matrix" targetNamespace="https://ezd.example/bpmn">
  <bpmn:process id="matrix_probe" name="Próba macierzy dostępu" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


# --- the route table ------------------------------------------------------------------------


def route_table(client: TestClient) -> list[tuple[str, APIRoute]]:
    """("METHOD path", route) of every route of the app (FastAPI >= 0.16x keeps included
    routers nested; `iter_route_contexts` flattens them)."""
    app = client.app
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    found = []
    for entry in iterate(app.routes) if iterate else app.routes:  # type: ignore[attr-defined]
        route = getattr(entry, "original_route", entry)
        if not isinstance(route, APIRoute):
            continue
        for method in sorted(entry.methods):
            found.append((f"{method} {entry.path}", route))
    return found


def non_api_routes(client: TestClient) -> list[str]:
    """Paths that are not routes with a handler of ours (docs, static mounts)."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    return sorted(
        str(entry.path)
        for entry in (iterate(client.app.routes) if iterate else client.app.routes)  # type: ignore[attr-defined]
        if not isinstance(getattr(entry, "original_route", entry), APIRoute)
    )


# --- the world: SP58's objects, made through the API ----------------------------------------


@dataclass
class World:
    backend: Backend
    client: TestClient
    bearer: dict[str, dict[str, str]] = field(default_factory=dict)
    session: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    key_p12: bytes = b""
    root_pem: str = ""
    letter_xml: bytes = b""
    task_form: dict[str, Any] = field(default_factory=dict)

    def missing(self) -> World:
        """The same world with every object id replaced by one that does not exist."""
        fake = {
            k: (f"SP58.431.{900 + n}.2026" if k.endswith("reference") else str(uuid.uuid4()))
            for n, k in enumerate(self.ids)
        }
        return replace(self, ids=fake)


def _username(persona: str) -> str:
    role, where = persona.split("@")
    return f"{role}.{UNIT_OF[where].lower()}"


def _open_sessions(backend: Backend, username: str) -> tuple[str, str]:
    """A bearer token and a web session of a demo user, opened as `login` opens them but without
    the password check (an argon2 verification costs ~0.5 s; 42 of them would dominate the
    walk). The login routes themselves are in the walk, with a user of a cheap hash."""
    out = []
    with backend.container.uow() as uow:
        repo = OrgRepository(uow.session)
        user = repo.user_by_username(username)
        assert user is not None, username
        for kind in ("bearer", "cookie"):
            secret = secrets.token_urlsafe(32)
            now = utcnow()
            repo.add(
                AuthSession(
                    token_hash=hashlib.sha256(secret.encode()).hexdigest(),
                    user_id=user.id,
                    kind=kind,
                    created_at=now,
                    expires_at=now + timedelta(hours=4),
                )
            )
            out.append(secret)
        uow.commit()
    return out[0], out[1]


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r


def _p12(issued: Any, password: bytes) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"seal",
        issued.key,
        issued.cert,
        issued.chain,
        serialization.BestAvailableEncryption(password),
    )


def build_world(backend: Backend, client: TestClient) -> World:
    w = World(backend, client)
    for persona in PERSONAS:
        if persona == ANONYMOUS:
            continue
        bearer, cookie = _open_sessions(backend, _username(persona))
        w.bearer[persona] = {"Authorization": f"Bearer {bearer}"}
        w.session[persona] = cookie
    # The login routes' user: the same password under a cheap argon2 hash.
    with backend.container.uow() as uow:
        user = OrgRepository(uow.session).user_by_username(LOGIN_USER)
        assert user is not None
        user.password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(
            "demo"
        )
        uow.commit()
    clerk, archivist = w.bearer["clerk@own"], w.bearer["archivist@own"]
    admin = w.bearer["admin@own"]

    def post_letter(**meta: Any) -> dict[str, Any]:
        r = client.post(
            "/api/v1/incoming",
            headers=clerk,
            data={"meta": json.dumps(letter_meta(**meta))},
            files=[("files", ("wniosek.pdf", PDF, "application/pdf"))],
        )
        return dict(_ok(r, 201))

    # A letter with its case and document, and a process on the case with an open task.
    letter = post_letter(subject="Wniosek o wydanie duplikatu legitymacji szkolnej")
    w.ids |= {
        "item_id": letter["id"],
        "reference": letter["case_reference"],
        "document_id": letter["documents"][0]["id"],
    }
    # Two processes on the case: the API's task calls and the web's work on one each.
    for suffix in ("", "web_"):
        instance = _ok(
            client.post(
                "/api/v1/processes/incoming_letter/start",
                headers=clerk,
                json={"case_reference": w.ids["reference"]},
            ),
            201,
        )
        w.ids[f"{suffix}instance_id"] = instance["id"]
        with backend.container.uow() as uow:
            [task_id] = uow.session.execute(
                select(ProcessTask.id).where(ProcessTask.instance_id == uuid.UUID(instance["id"]))
            ).scalars()
        w.ids[f"{suffix}task_id"] = str(task_id)
    detail = _ok(client.get(f"/api/v1/tasks/{w.ids['task_id']}", headers=clerk))
    # The matrix's TASK_POOL: Dekretacja, in the headteacher's pool, names the handler.
    assert (detail["element_id"], detail["role"]) == ("assign", "headteacher"), detail
    assert set(detail["form"]["properties"]) == {"handler", "instruction"}, detail["form"]
    w.task_form = {"handler": "handler.sp58", "instruction": "Proszę przygotować odpowiedź"}
    # A teacher who works in SP58 and SP12, and a third process whose Dekretacja gives them
    # SP58's case: a substitute of theirs in SP12 must not see that task.
    city_admin = w.bearer["admin@city"]
    _ok(
        client.post(
            "/api/v1/users",
            headers=city_admin,
            json={
                "username": SHARED_TEACHER,
                "full_name": "Nauczyciel Dwóch Szkół",
                "password": "x" * 12,
            },
        ),
        201,
    )
    for unit in ("SP58", "SP12"):
        r = client.post(
            f"/api/v1/users/{SHARED_TEACHER}/roles",
            headers=city_admin,
            json={"unit": unit, "role": "handler"},
        )
        assert r.status_code == 204, r.text
    third = _ok(
        client.post(
            "/api/v1/processes/incoming_letter/start",
            headers=clerk,
            json={"case_reference": w.ids["reference"]},
        ),
        201,
    )
    with backend.container.uow() as uow:
        [assign_id] = uow.session.execute(
            select(ProcessTask.id).where(ProcessTask.instance_id == uuid.UUID(third["id"]))
        ).scalars()
    _ok(
        client.post(
            f"/api/v1/tasks/{assign_id}/complete",
            headers=w.bearer["headteacher@own"],
            json={"data": {"handler": SHARED_TEACHER, "instruction": "Proszę o odpowiedź"}},
        )
    )
    with backend.container.uow() as uow:
        shared_task = uow.session.execute(
            select(ProcessTask).where(
                ProcessTask.instance_id == uuid.UUID(third["id"]),
                ProcessTask.status == "open",
            )
        ).scalar_one()
        assert shared_task.assignee_id is not None
        w.ids["shared_task_id"] = str(shared_task.id)
    w.ids["shared_instance_id"] = third["id"]
    with backend.container.uow() as uow:
        case = uow.session.execute(
            select(Case).where(Case.reference == w.ids["reference"])
        ).scalar_one()
        w.ids["case_id"] = str(case.id)
        sp58_id = case.unit_id

    # An outgoing item waiting for dispatch.
    out = _ok(
        client.post(
            "/api/v1/outgoing",
            headers=clerk,
            json={
                "unit": "SP58",
                "subject": "Odpowiedź na wniosek",
                "channel": "paper",
                "recipients": [{"name": "Anna Kowalska"}],
                "case_reference": w.ids["reference"],
            },
        ),
        201,
    )
    w.ids["outgoing_id"] = out["id"]

    # A B5 case closed in 2019, taken into the archive, lent, and proposed for disposal.
    old = post_letter(subject="Wniosek o duplikat legitymacji z 2019 roku")
    w.ids["archived_reference"] = old["case_reference"]
    _ok(
        client.post(
            f"/api/v1/cases/{old['case_reference']}/close",
            headers=clerk,
            json={"reason": "załatwiona"},
        )
    )
    with backend.container.uow() as uow:
        c = uow.session.execute(
            select(Case).where(Case.reference == old["case_reference"])
        ).scalar_one()
        c.closed_at = datetime(2019, 6, 1, 10, tzinfo=UTC)
        uow.commit()
    [entry] = _ok(
        client.post(
            "/api/v1/archive/transfers",
            headers=archivist,
            json={"unit": "SP58", "case_references": [old["case_reference"]], "location": "r. 1"},
        ),
        201,
    )
    w.ids["entry_id"] = entry["id"]
    loan = _ok(
        client.post(
            f"/api/v1/archive/SP58/entries/{entry['id']}/loans",
            headers=archivist,
            json={"borrower": "handler.sp58", "purpose": "Kontrola", "due_on": "2030-01-01"},
        ),
        201,
    )
    w.ids["loan_id"] = loan["id"]
    disposal = _ok(
        client.post(
            "/api/v1/archive/disposals",
            headers=archivist,
            json={"unit": "SP58", "entries": [entry["id"]], "reason": "upływ okresu"},
        ),
        201,
    )
    w.ids["disposal_id"] = disposal["id"]

    # SP58's signing key (its admin imports it), another key for the import calls, a CA.
    root = make_root("Macierz Root CA")
    w.root_pem = root.cert_pem.decode()
    key = _ok(
        client.post(
            "/api/v1/units/SP58/signing-keys",
            headers=admin,
            json={
                "label": "Pieczęć SP58",
                "key_base64": base64.b64encode(_p12(issue(root, "seal", "SP58"), b"k")).decode(),
                "password": "k",
            },
        ),
        201,
    )
    w.ids["key_id"] = key["id"]
    w.key_p12 = _p12(issue(root, "seal2", "SP58 druga"), b"k")

    # An incident of SP58's process (a failed step an admin retries).
    with backend.container.uow() as uow:
        incident = Incident(
            instance_id=uuid.UUID(w.ids["instance_id"]),
            unit_id=sp58_id,
            element_id="matrix",
            message="Próba macierzy dostępu",
        )
        uow.session.add(incident)
        uow.session.flush()
        w.ids["incident_id"] = str(incident.id)
        uow.commit()

    # A user the role-granting calls name (so no persona's own roles change).
    _ok(
        client.post(
            "/api/v1/users",
            headers=city_admin,
            json={"username": "matrix.target", "full_name": "Cel Macierzy", "password": "x" * 12},
        ),
        201,
    )
    w.letter_xml = build_letter_xml(
        Letter(
            sender=Party(name="Wydział Oświaty i Wychowania", unit_code="WOW"),
            addressee=Party(name="Szkoła Podstawowa nr 58", unit_code="SP58"),
            letter_date=date(2026, 11, 29),
            place="Miasto",
            our_reference="WOW.4430.7.2026",
            subject="Arkusz organizacji",
            body=("Proszę o przesłanie arkusza.",),
        )
    )
    # Index SP58's objects, so search has something to leak.
    for _ in range(50):
        if backend.container.worker.run_once() == 0:
            break
    w.secrets = [
        w.ids[k]
        for k in (
            "item_id",
            "reference",
            "document_id",
            "instance_id",
            "task_id",
            "web_instance_id",
            "web_task_id",
            "shared_instance_id",
            "shared_task_id",
            "case_id",
            "outgoing_id",
            "archived_reference",
            "entry_id",
            "loan_id",
            "disposal_id",
            "key_id",
            "incident_id",
        )
    ]
    return w


# --- how each route is called ---------------------------------------------------------------


@dataclass
class Call:
    method: str
    url: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    files: list[Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


PATH_VALUES: dict[str, Callable[[World], str]] = {
    "reference": lambda w: w.ids["reference"],
    "document_id": lambda w: w.ids["document_id"],
    "version": lambda w: "1",
    "task_id": lambda w: w.ids["task_id"],
    "instance_id": lambda w: w.ids["instance_id"],
    "incident_id": lambda w: w.ids["incident_id"],
    "key_id": lambda w: w.ids["key_id"],
    "entry_id": lambda w: w.ids["entry_id"],
    "loan_id": lambda w: w.ids["loan_id"],
    "disposal_id": lambda w: w.ids["disposal_id"],
    "code": lambda w: "SP58",
    "unit": lambda w: "SP58",
    "key": lambda w: "incoming_letter",
    "username": lambda w: "matrix.target",
    "kind": lambda w: "case",
    "object_id": lambda w: w.ids["case_id"],
    "lang": lambda w: "en",
}
WEB_TASK = {"task_id": lambda w: w.ids["web_task_id"]}
PATH_OVERRIDES: dict[str, dict[str, Callable[[World], str]]] = {
    "GET /web/tasks/{task_id}": WEB_TASK,
    "POST /web/tasks/{task_id}/assign": WEB_TASK,
    "POST /web/tasks/{task_id}/claim": WEB_TASK,
    "POST /web/tasks/{task_id}/release": WEB_TASK,
    "POST /web/tasks/{task_id}/complete": WEB_TASK,
    "GET /api/v1/incoming/{item_id}": {"item_id": lambda w: w.ids["item_id"]},
    "POST /api/v1/outgoing/{item_id}/dispatch": {"item_id": lambda w: w.ids["outgoing_id"]},
    "GET /api/v1/audit/users/{username}": {"username": lambda w: "clerk.sp58"},
    "GET /api/v1/process-definitions/{key}/{version}/xml": {"key": lambda w: "incoming_letter"},
    "GET /api/v1/public/services/{code}": {"code": lambda w: "duplikat_legitymacji"},
    "GET /api/v1/public/services/{code}/schema": {"code": lambda w: "duplikat_legitymacji"},
    "POST /api/v1/public/services/{code}/submissions": {"code": lambda w: "duplikat_legitymacji"},
    "GET /e-uslugi/{code}": {"code": lambda w: "duplikat_legitymacji"},
    "POST /e-uslugi/{code}": {"code": lambda w: "duplikat_legitymacji"},
}
UNKNOWN_CREDENTIALS = {"code": "ABCD-EFGH-JKLM", "pin": "12345678"}


def _pdf(name: str = "notatka.pdf") -> tuple[str, bytes, str]:
    return (name, PDF, "application/pdf")


def _letter_meta_json() -> str:
    return json.dumps(letter_meta(unit="SP58", subject="Wniosek z macierzy dostępu"))


# Bodies and query strings, per route (plausible: valid for an allowed caller).
REQUESTS: dict[str, Callable[[World], dict[str, Any]]] = {
    "POST /api/v1/auth/token": lambda w: {"data": {"username": LOGIN_USER, "password": "demo"}},
    "POST /api/v1/auth/login": lambda w: {"data": {"username": LOGIN_USER, "password": "demo"}},
    "GET /api/v1/jrwa": lambda w: {"params": {"unit": "SP58"}},
    "GET /api/v1/incoming": lambda w: {"params": {"unit": "SP58"}},
    "GET /api/v1/outgoing": lambda w: {"params": {"unit": "SP58"}},
    "GET /api/v1/cases": lambda w: {"params": {"unit": "SP58"}},
    "GET /api/v1/search": lambda w: {"params": {"q": "duplikatu legitymacji"}},
    "POST /api/v1/public/services/{code}/submissions": lambda w: {
        "data": {"unit": "SP58", "form": "{}"},
        "files": [("attachments", _pdf())],
    },
    "POST /api/v1/public/tracking": lambda w: {"json": UNKNOWN_CREDENTIALS},
    "POST /api/v1/public/tracking/receipt": lambda w: {"json": UNKNOWN_CREDENTIALS},
    "POST /api/v1/public/tracking/decision": lambda w: {"json": UNKNOWN_CREDENTIALS},
    "POST /api/v1/public/tracking/supplements": lambda w: {
        "data": UNKNOWN_CREDENTIALS,
        "files": [("attachments", _pdf())],
    },
    "POST /api/v1/units": lambda w: {
        "json": {
            "code": "SP99",
            "name": "Szkoła Podstawowa nr 99",
            "kind": "school",
            "jrwa_plan": "szkola",
            "address": "ul. Nowa 99, 00-099 Miasto",
        }
    },
    "POST /api/v1/units/{code}/departments": lambda w: {
        "json": {"code": "MTX", "name": "Dział macierzy"}
    },
    "POST /api/v1/users": lambda w: {
        "json": {"username": "matrix.created", "full_name": "Jan Macierz", "password": "x" * 12}
    },
    "POST /api/v1/users/{username}/roles": lambda w: {"json": {"unit": "SP58", "role": "handler"}},
    "POST /api/v1/incoming": lambda w: {
        "data": {"meta": _letter_meta_json()},
        "files": [("files", _pdf("wniosek.pdf"))],
    },
    "POST /api/v1/outgoing": lambda w: {
        "json": {
            "unit": "SP58",
            "subject": "Odpowiedź z macierzy",
            "channel": "paper",
            "recipients": [{"name": "Anna Kowalska"}],
            "case_reference": w.ids["reference"],
        }
    },
    "POST /api/v1/cases": lambda w: {
        "json": {"unit": "SP58", "jrwa": "431", "title": "Sprawa z macierzy dostępu"}
    },
    "POST /api/v1/cases/{reference}/documents": lambda w: {
        "data": {"meta": json.dumps({"title": "Notatka"})},
        "files": [("file", _pdf())],
    },
    "POST /api/v1/documents/{document_id}/versions": lambda w: {
        "data": {"note": "poprawka"},
        "files": [("file", ("v2.pdf", PDF.replace(b"%%EOF", b"% v2\n%%EOF"), "application/pdf"))],
    },
    "POST /api/v1/processes/{key}/start": lambda w: {
        "json": {"case_reference": w.ids["reference"]}
    },
    "POST /api/v1/tasks/{task_id}/assign": lambda w: {
        "json": {"username": "headteacher.sp58", "instruction": "Proszę o dekretację"}
    },
    "POST /api/v1/tasks/{task_id}/complete": lambda w: {"json": {"data": w.task_form}},
    "POST /api/v1/process-definitions/preview": lambda w: {"json": {"bpmn": PROBE_BPMN}},
    "POST /api/v1/process-definitions": lambda w: {"json": {"bpmn": PROBE_BPMN}},
    "POST /api/v1/units/{code}/signing-keys": lambda w: {
        "json": {
            "label": "Druga pieczęć",
            "key_base64": base64.b64encode(w.key_p12).decode(),
            "password": "k",
        }
    },
    "POST /api/v1/trust-anchors": lambda w: {"json": {"label": "CA macierzy", "pem": w.root_pem}},
    "POST /api/v1/signatures/verify": lambda w: {
        "content": w.letter_xml,
        "headers": {"Content-Type": "application/xml"},
    },
    "POST /api/v1/units/{code}/official-letters": lambda w: {
        "content": w.letter_xml,
        "headers": {"Content-Type": "application/xml"},
    },
    "POST /api/v1/archive/transfers": lambda w: {
        "json": {"unit": "SP58", "case_references": [w.ids["archived_reference"]]}
    },
    "POST /api/v1/archive/{unit}/entries/{entry_id}/loans": lambda w: {
        "json": {"borrower": "handler.sp58", "purpose": "Kontrola", "due_on": "2030-01-01"}
    },
    "POST /api/v1/archive/disposals": lambda w: {
        "json": {"unit": "SP58", "entries": [w.ids["entry_id"]], "reason": "upływ okresu"}
    },
    "POST /api/v1/cases/{reference}/close": lambda w: {"json": {"reason": "załatwiona"}},
    "POST /api/v1/cases/{reference}/reopen": lambda w: {"json": {"reason": "wznowienie"}},
    # -- web
    "GET /web/language/{lang}": lambda w: {"params": {"next": "/web/"}},
    "GET /web/senders": lambda w: {"params": {"sender_name": "Anna"}},
    "GET /web/search": lambda w: {"params": {"q": "duplikatu legitymacji"}},
    "GET /web/admin/units": lambda w: {"params": {"unit": "SP58"}},
    "GET /web/admin/jrwa": lambda w: {"params": {"unit": "SP58"}},
    "GET /web/admin/signing": lambda w: {"params": {"unit": "SP58"}},
    "POST /web/login": lambda w: {"data": {"username": LOGIN_USER, "password": "demo"}},
    "POST /web/register": lambda w: {
        "data": {
            "subject": "Wniosek z macierzy dostępu",
            "sender_name": "Anna Kowalska",
            "channel": "paper",
            "jrwa": "431",
            "case_mode": "new",
        },
        "files": [("files", _pdf("wniosek.pdf"))],
    },
    "POST /web/cases/{reference}/processes": lambda w: {"data": {"key": "incoming_letter"}},
    "POST /web/tasks/{task_id}/assign": lambda w: {
        "data": {"username": "headteacher.sp58", "instruction": "Proszę"}
    },
    "POST /web/tasks/{task_id}/complete": lambda w: {
        "data": {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in w.task_form.items()
        }
    },
    "POST /web/admin/units": lambda w: {
        "data": {"code": "SP98", "name": "Szkoła nr 98", "kind": "school", "jrwa_plan": "szkola"}
    },
    "POST /web/admin/units/{code}/departments": lambda w: {
        "data": {"code": "MTW", "name": "Dział macierzy (web)"}
    },
    "POST /web/admin/users": lambda w: {
        "data": {"username": "matrix.web", "full_name": "Jan Sieć", "password": "x" * 12}
    },
    "POST /web/admin/users/{username}/roles": lambda w: {"data": {"unit": "SP58", "role": "clerk"}},
    "POST /web/admin/processes": lambda w: {
        "data": {"action": "preview"},
        "files": [("bpmn", ("probe.bpmn", PROBE_BPMN.encode(), "application/xml"))],
    },
    "POST /web/admin/signing/{code}/keys": lambda w: {
        "data": {"label": "Trzecia pieczęć", "password": "k"},
        "files": [("key", ("seal.p12", w.key_p12, "application/x-pkcs12"))],
    },
    "POST /web/admin/signing/anchors": lambda w: {"data": {"label": "CA", "pem": w.root_pem}},
    "POST /web/admin/signing/keys/{key_id}/deactivate": lambda w: {"params": {"unit": "SP58"}},
    "POST /e-uslugi/sledzenie": lambda w: {"data": {"kod": "ABCD", "pin": "1234"}},
    "POST /e-uslugi/sledzenie/potwierdzenie": lambda w: {"data": {"kod": "ABCD", "pin": "1234"}},
    "POST /e-uslugi/sledzenie/rozstrzygniecie": lambda w: {"data": {"kod": "ABCD", "pin": "1234"}},
    "POST /e-uslugi/sledzenie/uzupelnienie": lambda w: {
        "data": {"kod": "ABCD", "pin": "1234"},
        "files": [("attachments", _pdf())],
    },
    "POST /e-uslugi/{code}": lambda w: {"data": {"unit": "SP58"}},
}


def _substitution(w: World, persona: str) -> dict[str, Any]:
    """From today: the persona, in their own unit, stands in for the shared teacher."""
    where = persona.split("@")[1] if persona != ANONYMOUS else OWN
    today = date.today()
    return {
        "json": {
            "unit": UNIT_OF[where],
            "user": SHARED_TEACHER,
            "substitute": _username(persona) if persona != ANONYMOUS else "clerk.sp58",
            "starts_on": (today - timedelta(days=1)).isoformat(),
            "ends_on": (today + timedelta(days=30)).isoformat(),
        }
    }


# Bodies that depend on who calls.
PERSONA_REQUESTS: dict[str, Callable[[World, str], dict[str, Any]]] = {
    "POST /api/v1/substitutions": _substitution,
}


# Routes that name a unit and an object of SP58: each persona names their own unit (a foreign
# clerk files a reply into SP58's case from SP12's register, a foreign archivist lends SP58's
# archive entry from SP12's archive), so the check that the object belongs to the acting unit
# is what answers.
OWN_UNIT_WITH_SP58_OBJECT = frozenset(
    {
        "POST /api/v1/outgoing",
        "POST /api/v1/archive/transfers",
        "POST /api/v1/archive/disposals",
        "POST /api/v1/archive/{unit}/entries/{entry_id}/loans",
        "POST /api/v1/archive/{unit}/loans/{loan_id}/return",
    }
)


def build_call(w: World, key: str, route: APIRoute, persona: str) -> Call:
    method, path = key.split(" ", 1)
    values = {name: fn(w) for name, fn in PATH_VALUES.items()}
    values |= {name: fn(w) for name, fn in PATH_OVERRIDES.get(key, {}).items()}
    mixed = key in OWN_UNIT_WITH_SP58_OBJECT and persona != ANONYMOUS
    if mixed:
        values["unit"] = UNIT_OF[persona.split("@")[1]]
    names = [p.name for p in route.dependant.path_params]
    url = path.format(**{n: values[n] for n in names})
    if key in PERSONA_REQUESTS:
        spec = PERSONA_REQUESTS[key](w, persona)
    else:
        spec = REQUESTS[key](w) if key in REQUESTS else {}
    if mixed and isinstance(spec.get("json"), dict) and "unit" in spec["json"]:
        spec["json"] = {**spec["json"], "unit": values["unit"]}
    call = Call(method, url, **{k: v for k, v in spec.items() if k != "headers"})
    call.headers = dict(spec.get("headers", {}))
    web = not path.startswith("/api/")
    if persona != ANONYMOUS:
        if web:
            session = w.session[persona]
            call.headers["Cookie"] = f"{SESSION_COOKIE}={session}"
            if method not in ("GET", "HEAD"):
                call.headers["X-CSRF-Token"] = csrf_token_for(session)
        else:
            call.headers |= w.bearer[persona]
    elif web and method not in ("GET", "HEAD"):
        # An anonymous form with a valid pre-login token: refused for want of a login only.
        call.headers["Cookie"] = f"{PRE_SESSION_COOKIE}=matrix-pre-session"
        call.headers["X-CSRF-Token"] = "matrix-pre-session"
    return call


# --- judging an answer ----------------------------------------------------------------------

ALLOWED, REFUSED, OTHER, ERROR = "allowed", "refused", "other", "error"
# A web form action answers with a redirect and a flash message; these are the refusals of the
# authorisation checks (Forbidden and NotFound, in Polish, the default language) as opposed
# to a business answer (already exists, already resolved).
REFUSAL_FLASH = (
    "Nie znaleziono",
    "Brak uprawnień",
    "dostępna tylko dla administratora",
    "nie pozwalają",
    "Dostępne dla",
    "importuje jej administrator",
    "ustala administrator",
    "wdraża administrator",
)


@dataclass
class Answer:
    status: int
    kind: str  # allowed, refused (401/403/404 or a web refusal), other (409, 422, …), error
    detail: str = ""


def _flash(r: Any) -> dict[str, str] | None:
    raw = r.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(unquote(raw))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def judge(r: Any, web: bool) -> Answer:
    s = r.status_code
    if s >= 500:
        return Answer(s, ERROR, r.text[:200])
    if web and s in (301, 302, 303, 307):
        location = r.headers.get("location", "")
        if location.startswith("/web/login?next="):
            return Answer(401, REFUSED, location)
        flash = _flash(r)
        if flash and flash.get("kind") == "error":
            message = flash.get("message", "")
            kind = REFUSED if any(w in message for w in REFUSAL_FLASH) else OTHER
            return Answer(s, kind, f"flash: {message}")
        return Answer(s, ALLOWED, location)
    if 200 <= s < 400:
        return Answer(s, ALLOWED)
    if s in (401, 403, 404):
        return Answer(s, REFUSED, _code(r))
    return Answer(s, OTHER, _code(r))


def _code(r: Any) -> str:
    try:
        return str(r.json()["error"]["code"])
    except Exception:
        return str(r.text[:120])


@dataclass
class Cell:
    key: str
    persona: str
    expected: str  # allow / refuse / refuse-404 / public
    answer: Answer
    verdict: str  # ok, leak, over-refusal, error, mismatch
    why: str = ""


def evaluate(
    key: str, rule: Rule, persona: str, answer: Answer, missing: Callable[[], Answer]
) -> Cell:
    """The verdict on one answer; `missing` makes the same call with every object id replaced
    by one that does not exist (asked only when a hidden object was refused otherwise than
    with 404)."""
    if rule.public:
        verdict = "error" if answer.kind == ERROR else "ok"
        return Cell(key, persona, "public", answer, verdict)
    if persona in rule.allow:
        if answer.kind == ERROR:
            return Cell(key, persona, "allow", answer, "error")
        if answer.kind == REFUSED:
            if (key, persona) in KNOWN_OVER_REFUSALS:
                return Cell(key, persona, "allow", answer, "known-over-refusal")
            return Cell(key, persona, "allow", answer, "over-refusal")
        return Cell(key, persona, "allow", answer, "ok")
    # Refuse.
    hidden = rule.scope == "object" and persona not in rule.readers and persona != ANONYMOUS
    expected = "refuse-404" if hidden else "refuse"
    if answer.kind == ERROR:
        return Cell(key, persona, expected, answer, "error")
    if answer.kind == ALLOWED:
        return Cell(key, persona, expected, answer, "leak", "allowed where the matrix refuses")
    if persona == ANONYMOUS:
        ok = answer.status == 401
        return Cell(key, persona, expected, answer, "ok" if ok else "mismatch", "want 401")
    if hidden:
        if answer.status == 404:
            return Cell(key, persona, expected, answer, "ok")
        # Not 404 (a web action's flash, a 403 before any lookup): it must be exactly the
        # answer for an object that does not exist, or it tells that this one exists.
        other = missing()
        if (other.status, other.kind, other.detail) == (answer.status, answer.kind, answer.detail):
            return Cell(key, persona, expected, answer, "ok", "same as for a missing object")
        why = f"reveals that the object exists: a missing one gets {other.status} {other.detail!r}"
        return Cell(key, persona, expected, answer, "leak", why)
    if answer.kind == REFUSED or answer.status in rule.also_refused:
        return Cell(key, persona, expected, answer, "ok")
    # 409 to someone who may read the unit: the state check came before the role check, which
    # tells them nothing they cannot read anyway.
    if persona in READERS and answer.status == 409:
        return Cell(key, persona, expected, answer, "ok", "conflict before role check (reader)")
    return Cell(key, persona, expected, answer, "mismatch", "not refused by authorisation")


def leaked_secrets(body: bytes, w: World) -> list[str]:
    text = body.decode("utf-8", "replace")
    return [s for s in w.secrets if s in text]


# --- the walk -------------------------------------------------------------------------------


@dataclass
class Report:
    backend: str
    routes: int = 0
    calls: int = 0
    cells: list[Cell] = field(default_factory=list)
    seconds: float = 0.0
    route_seconds: dict[str, float] = field(default_factory=dict)
    # Unsafe API routes called by a refused foreign persona without a body: which check
    # answers first (authorisation: 401/403/404, or validation: 422).
    empty_body: dict[str, tuple[int, str]] = field(default_factory=dict)

    def count(self, pred: Callable[[Cell], bool]) -> int:
        return sum(1 for c in self.cells if pred(c))


EMPTY_BODY_PERSONA = "clerk@foreign"


def _send(client: TestClient, call: Call) -> Any:
    client.cookies.clear()
    return client.request(
        call.method,
        call.url,
        params=call.params,
        json=call.json,
        data=call.data,
        files=call.files,
        content=call.content,
        headers=call.headers,
        follow_redirects=False,
    )


def walk(w: World) -> Report:
    report = Report(w.backend.name)
    table = dict(route_table(w.client))
    started = time.perf_counter()
    for key, rule in MATRIX.items():
        route = table[key]
        report.routes += 1
        # Refused personas first (their calls must change nothing), the allowed ones after.
        order = sorted(PERSONAS, key=lambda p: p in rule.allow)
        route_started = time.perf_counter()
        for persona in order:
            call = build_call(w, key, route, persona)
            r = _send(w.client, call)
            report.calls += 1
            web = not key.split(" ", 1)[1].startswith("/api/")
            answer = judge(r, web)

            def missing(
                key: str = key, persona: str = persona, route: APIRoute = route, web: bool = web
            ) -> Answer:
                report.calls += 1
                return judge(_send(w.client, build_call(w.missing(), key, route, persona)), web)

            cell = evaluate(key, rule, persona, answer, missing)
            if (
                answer.kind in (ALLOWED, OTHER)
                and persona not in rule.readers
                and not rule.public
                and cell.verdict == "ok"
            ):
                found = leaked_secrets(r.content, w)
                if found:
                    cell = Cell(
                        key, persona, cell.expected, answer, "leak", f"body names SP58's {found}"
                    )
            report.cells.append(cell)
        if (
            key.startswith("POST /api/")
            and not rule.public
            and EMPTY_BODY_PERSONA not in rule.allow
        ):
            call = build_call(w, key, route, EMPTY_BODY_PERSONA)
            call.json = call.data = call.files = call.content = None
            r = _send(w.client, call)
            report.calls += 1
            report.empty_body[key] = (r.status_code, _code(r))
        report.route_seconds[key] = time.perf_counter() - route_started
    report.seconds = time.perf_counter() - started
    return report


def summary(report: Report) -> dict[str, Any]:
    verdicts = Counter(c.verdict for c in report.cells)
    return {
        "backend": report.backend,
        "routes": report.routes,
        "personas": len(PERSONAS),
        "calls": report.calls,
        "allowed": report.count(lambda c: c.expected in ("allow",)),
        "public": report.count(lambda c: c.expected == "public"),
        "refused": report.count(lambda c: c.expected.startswith("refuse")),
        "refused_as_not_found": report.count(lambda c: c.expected == "refuse-404"),
        "leaks": verdicts["leak"],
        "over_refusals": verdicts["over-refusal"],
        "known_over_refusals": verdicts["known-over-refusal"],
        "mismatches": verdicts["mismatch"],
        "errors_5xx": verdicts["error"],
        "seconds": round(report.seconds, 1),
        "empty_body_refused_by_authorisation": sorted(
            k for k, (status, _) in report.empty_body.items() if status in (401, 403, 404)
        ),
        "empty_body_refused_by_validation_first": sorted(
            f"{k} -> {status} {code}"
            for k, (status, code) in report.empty_body.items()
            if status not in (401, 403, 404)
        ),
    }


def _problems(report: Report) -> list[str]:
    return [
        f"{c.verdict:13} {c.key} as {c.persona}: want {c.expected}, got {c.answer.status} "
        f"{c.answer.kind} {c.answer.detail[:100]!r} {c.why}"
        for c in report.cells
        if c.verdict not in ("ok", "known-over-refusal")
    ]


# --- fixtures and tests ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=["embedded", "postgres_s3"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"matrix-{request.param}")
    gen = cast(
        Generator[Backend, None, None],
        _backend(cast(pytest.FixtureRequest, _Param(request, request.param)), tmp, dict(OVERRIDES)),
    )
    backend = next(gen)
    try:
        with pytest.MonkeyPatch.context() as mp, backend.client() as client:
            # Two costs that have nothing to do with authorisation, left out of the walk: the
            # PDF of the case record (~1.5 s each: font subsetting; the access check runs
            # before it, unchanged) and the scrypt of the PIN an unknown tracking code is
            # compared with (~0.3 s; the same refusal, a cheaper hash).
            mp.setattr(archive_router, "record_pdf", lambda case, unit, entries: b"%PDF-1.4 stub")
            mp.setattr(access, "_DUMMY_HASH", _cheap_pin_hash())
            yield build_world(backend, client)
    finally:
        gen.close()


def _cheap_pin_hash() -> str:
    salt = b"ezd-no-such-code"
    digest = hashlib.scrypt(b"00000000", salt=salt, n=2, r=access.SCRYPT_R, p=1, dklen=32)
    b64 = base64.b64encode
    return f"scrypt$2${b64(salt).decode()}${b64(digest).decode()}"


def publish(report: Report, config: pytest.Config) -> None:
    """Write the figures to bench/results/access-matrix.json (one entry per backend, the
    other backend's kept from its last run) and print them past pytest's capture."""
    figures = summary(report)
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    old: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            old = json.loads(RESULTS.read_text()).get("backends", {})
        except ValueError:
            old = {}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "test": "tests/test_access_matrix.py",
                "personas": list(PERSONAS),
                "backends": {**old, report.backend: figures},
                "known_over_refusals": [
                    {"route": k, "persona": p, "why": why}
                    for (k, p), why in KNOWN_OVER_REFUSALS.items()
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    f = figures
    line = (
        f"access matrix [{f['backend']}]: {f['routes']} routes x {f['personas']} personas "
        f"(7 roles x own/foreign/city unit + anonymous) -> {f['calls']} calls: "
        f"allowed {f['allowed']}, public {f['public']}, refused {f['refused']} "
        f"({f['refused_as_not_found']} of them as not found); leaks={f['leaks']}, "
        f"over-refusals={f['over_refusals']} (+{f['known_over_refusals']} known), "
        f"mismatches={f['mismatches']}, 5xx={f['errors_5xx']}; {f['seconds']} s"
    )
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\n{line}")
    else:
        print(line)


def test_matrix_names_every_route(world: World) -> None:
    """A new route without an entry in the matrix fails here (and a stale entry too)."""
    keys = [k for k, _ in route_table(world.client)]
    assert len(keys) >= 100  # a broken walk must not pass vacuously
    missing = sorted(set(keys) - set(MATRIX))
    stale = sorted(set(MATRIX) - set(keys))
    assert not missing, f"routes without an entry in tests/access_matrix.py: {missing}"
    assert not stale, f"entries in tests/access_matrix.py for routes that are gone: {stale}"
    # Everything else in the route table is documentation or static files.
    others = non_api_routes(world.client)
    assert all(
        p.startswith(("/openapi.json", "/docs", "/redoc", "/web/static", "/web/vendor/"))
        for p in others
    ), others


def test_every_route_as_every_persona(world: World, request: pytest.FixtureRequest) -> None:
    report = walk(world)
    publish(report, request.config)
    problems = _problems(report)
    # Without a body nothing may pass or break either (a 422 before the authorisation check
    # is FastAPI validating the declared body first; it names nothing of SP58's).
    problems += [
        f"empty body    {k} as {EMPTY_BODY_PERSONA}: {status} {code}"
        for k, (status, code) in report.empty_body.items()
        if status < 400 or status >= 500 or (status not in (401, 403, 404, 422))
    ]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    assert report.count(lambda c: c.verdict == "leak") == 0
