"""The XML attack corpus against every endpoint that parses XML from outside.

Endpoints (every XML parse reachable from a request; found by grepping for lxml/signxml use):

- `POST /api/v1/signatures/verify` (raw XML body, verified by workflow.signing.verify),
- `POST /api/v1/units/{code}/official-letters` (raw signed letter: parse_letter_xml, verify),
- `POST /api/v1/process-definitions/preview` and `POST /api/v1/process-definitions` (BPMN XML in
  JSON; workflow.engine.parsing),
- `POST /api/v1/incoming` with the file as an XML attachment: stored as it is (201), its text
  extracted after commit by the outbox worker (search/extract.py) — checked by running the
  worker and looking at what the extraction kept.

The corpus is `tests/xml_attacks/` (files; `{{LISTENER}}` stands for a local listener's
host:port, in whatever encoding the file uses) plus cases made here: too big to keep as files
(100k-deep nesting, a 10 MB attribute, 10 MB of text) or made with the test PKI (a signed
letter with a comment, CDATA or processing instruction put into its signed content, and two
signature-wrapping forgeries).

For each file × endpoint: never a 5xx, never a hang (each request has a time limit), never the
content of /etc/passwd or an expanded entity in the answer, no connection to the listener, and a
4xx with a stable error code — except what the design accepts on purpose: a signature report
(200) from the verifier, a letter with a failing signature registered but marked (201, never
TOTAL_PASSED), an attachment stored as a file (201) whose extraction refuses it. The outcomes go
to `bench/results/fuzz.json` under `xml_attacks`.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import select

from api.app import create_app
from api.bootstrap import key_encryption_key
from api.web.render import FLASH_COOKIE
from api.web.security import CSRF_HEADER, csrf_token_for
from search.extract import DOCX, ODT
from tests.conftest import Backend
from tests.helpers import install_unit_seals, letter_meta, register, token
from tests.pki import TestPki, pki_fixture  # noqa: F401
from tests.test_signing_api import school_letter
from tests.test_web_security import web_login
from workflow.org.repository import OrgRepository
from workflow.search.models import DocumentText
from workflow.signing.service import unit_identity
from workflow.signing.sign import sign_enveloped
from workflow.xmlsafe import XmlRefused

CORPUS = Path(__file__).resolve().parent / "xml_attacks"
RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "fuzz.json"
#: Seconds one request may take before the test calls it a hang.
REQUEST_TIMEOUT = 60.0
#: What must never come back: a line of /etc/passwd, an expanded billion-laughs entity.
LEAKS = (b"root:x:0:0", b"root:*:0:0", b"daemon:", b"lollollollol", b"AAAAAAAAAAAAAAAAAAAAAAAA" * 4)
PLACEHOLDER = "{{LISTENER}}"
DS = "http://www.w3.org/2000/09/xmldsig#"
WNIO = "http://crd.gov.pl/wzor/2017/10/24/4566/"


# --- a listener that must hear nothing ------------------------------------------------------


@dataclass
class Listener:
    address: str
    connections: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    host, port = srv.getsockname()
    found = Listener(f"{host}:{port}")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = srv.accept()
            except OSError:
                continue
            found.connections.append(peer)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield found
    stop.set()
    t.join(2)
    srv.close()


# --- the corpus ---------------------------------------------------------------------------


def _with_listener(data: bytes, address: str) -> bytes:
    for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-7"):
        data = data.replace(PLACEHOLDER.encode(codec), address.encode(codec))
    return data


def corpus_files(address: str) -> dict[str, bytes]:
    files = {
        p.name: _with_listener(p.read_bytes(), address)
        for p in sorted(CORPUS.iterdir())
        if p.is_file() and p.suffix == ".xml"
    }
    files["generated:deep_nesting_100k"] = b"<a>" * 100_000 + b"</a>" * 100_000
    files["generated:huge_attribute_10MB"] = b'<r a="' + b"x" * 10_000_000 + b'"/>'
    files["generated:huge_text_10MB"] = b"<r>" + b"tekst " * 1_700_000 + b"</r>"
    files["generated:many_attributes_50k"] = (
        b"<r " + b" ".join(b'a%d="1"' % i for i in range(50_000)) + b"/>"
    )
    files["generated:docx_with_xxe"] = _zipped(
        {
            "[Content_Types].xml": b"<Types/>",
            "word/document.xml": _with_listener(
                (CORPUS / "xxe_file_entity.xml").read_bytes(), address
            ),
        }
    )
    files["generated:odt_with_billion_laughs"] = _zipped(
        {
            "mimetype": b"application/vnd.oasis.opendocument.text",
            "content.xml": (CORPUS / "billion_laughs.xml").read_bytes(),
        }
    )
    return files


def _attachment(data: bytes) -> tuple[str, bytes, str]:
    """The corpus file as a registration's attachment: XML, or the office file it is."""
    if data.startswith(b"PK") and b"word/document.xml" in data:
        return ("pismo.docx", data, DOCX)
    if data.startswith(b"PK"):
        return ("pismo.odt", data, ODT)
    return ("pismo.xml", data, "application/xml")


def _zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _signed_letter(backend: Backend) -> bytes:
    with backend.container.uow() as uow:
        unit = OrgRepository(uow.session).unit_by_code("SP58")
        assert unit is not None
        identity = unit_identity(uow, unit, lambda: key_encryption_key(backend.settings))
    return sign_enveloped(school_letter(), identity)


def signed_cases(signed: bytes) -> dict[str, bytes]:
    """A genuine signed letter and what an attacker can make of it without the key."""
    title = b"Arkusz organizacji na rok 2027/2028"
    assert title in signed
    cases = {"signed:genuine": signed}
    # Comments are outside C14N: the signature still holds; a reader of `.text` would see only
    # "Arkusz organizacji na rok 2027" (the SAML comment-truncation trick).
    cases["signed:comment_in_signed_text"] = signed.replace(
        title, b"Arkusz organizacji na rok 2027<!-- -->/2028"
    )
    cases["signed:cdata_in_signed_text"] = signed.replace(title, b"<![CDATA[" + title + b"]]>")
    cases["signed:processing_instruction_in_signed_content"] = signed.replace(
        b"<wnio:Tytul>", b'<?xml-stylesheet href="http://{{LISTENER}}/x.xsl"?><wnio:Tytul>'
    )
    # Wrapping 1: a forged letter at the root carries the genuine signature, and the genuine
    # (signed) letter is tucked into the signature's ds:Object.
    root = etree.fromstring(signed)
    sig = root.find(f"{{{DS}}}Signature")
    assert sig is not None
    forged = etree.fromstring(signed)
    forged.remove(forged.find(f"{{{DS}}}Signature"))
    for el in forged.iter(f"{{{WNIO}}}Tytul"):
        el.text = "Polecenie przelewu 100 000 zł na konto 00 1111 2222"
    root.remove(sig)
    obj = etree.SubElement(sig, f"{{{DS}}}Object")
    obj.append(root)
    forged.append(sig)
    cases["signed:wrapping_original_in_object"] = etree.tostring(
        forged, xml_declaration=True, encoding="UTF-8"
    )
    # Wrapping 2: the genuine signed letter, whole, inside a forged one's content.
    outer = etree.fromstring(signed)
    outer.remove(outer.find(f"{{{DS}}}Signature"))
    for el in outer.iter(f"{{{WNIO}}}Tytul"):
        el.text = "Polecenie przelewu"
    info = next(outer.iter(f"{{{WNIO}}}Informacja"))
    info.append(etree.fromstring(signed))
    cases["signed:wrapping_genuine_nested_in_forgery"] = etree.tostring(
        outer, xml_declaration=True, encoding="UTF-8"
    )
    return cases


# --- the endpoints ----------------------------------------------------------------------------


def _as_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@dataclass
class Endpoint:
    name: str
    send: Callable[[TestClient, bytes], Any]
    #: 2xx answers the design gives on purpose (see the module docstring)
    accepts: tuple[int, ...] = ()
    #: a staff web form: refusals are a redirect back with an error flash, not a 4xx
    web: bool = False


def endpoints(headers: dict[str, dict[str, str]], web: TestClient | None = None) -> list[Endpoint]:
    found = [
        Endpoint(
            "POST /api/v1/signatures/verify",
            lambda c, d: c.post(
                "/api/v1/signatures/verify",
                headers={**headers["admin.wow"], "Content-Type": "application/xml"},
                content=d,
            ),
            accepts=(200,),
        ),
        Endpoint(
            "POST /api/v1/units/{code}/official-letters",
            lambda c, d: c.post(
                "/api/v1/units/WOW/official-letters",
                headers={**headers["clerk.wow"], "Content-Type": "application/xml"},
                content=d,
            ),
            accepts=(201,),
        ),
        Endpoint(
            "POST /api/v1/process-definitions/preview",
            lambda c, d: c.post(
                "/api/v1/process-definitions/preview",
                headers=headers["admin.wow"],
                json={"bpmn": _as_text(d)},
            ),
        ),
        Endpoint(
            "POST /api/v1/process-definitions",
            lambda c, d: c.post(
                "/api/v1/process-definitions",
                headers=headers["admin.wow"],
                json={"bpmn": _as_text(d)},
            ),
        ),
        Endpoint(
            "POST /api/v1/incoming (XML attachment, extracted by the worker)",
            lambda c, d: register(
                c,
                headers["clerk.sp58"],
                letter_meta(subject="Pismo w XML"),
                files=[_attachment(d)],
            ),
            accepts=(201,),
        ),
    ]
    if web is not None:
        session = web.cookies.get("ezd_session")
        assert session
        found.append(
            Endpoint(
                "POST /web/admin/processes (staff form upload, preview)",
                lambda _c, d: web.post(
                    "/web/admin/processes",
                    headers={CSRF_HEADER: csrf_token_for(session)},
                    files=[("files", ("upload.bpmn", d, "application/xml"))],
                    follow_redirects=False,
                ),
                web=True,
            )
        )
    return found


#: Answers that are right although 2xx: the document is valid apart from what is ignored.
HARMLESS_WHEN_ACCEPTED = {
    (
        "xslt_stylesheet_pi.xml",
        ep,
    ): "a valid BPMN with xml-stylesheet and other processing instructions, which the hardened "
    "parser drops and nothing applies (the listener stays silent)"
    for ep in (
        "POST /api/v1/process-definitions/preview",
        "POST /api/v1/process-definitions",
        "POST /web/admin/processes (staff form upload, preview)",
    )
}


# --- the run --------------------------------------------------------------------------------


def _call(pool: ThreadPoolExecutor, send: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    future = pool.submit(send)
    try:
        response = future.result(timeout=REQUEST_TIMEOUT)
    except FutureTimeout:
        pytest.fail(f"no answer within {REQUEST_TIMEOUT} s")
    return response, time.monotonic() - started


def _code(response: Any) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _judge(
    name: str, endpoint: Endpoint, response: Any, backend: Backend
) -> tuple[list[str], dict[str, Any]]:
    """Problems with one answer, and the outcome to record."""
    problems: list[str] = []
    status = response.status_code
    outcome: dict[str, Any] = {"status": status}
    body = response.content
    for leak in LEAKS:
        if leak in body:
            problems.append(f"answer contains {leak[:20]!r}")
    if status >= 500:
        problems.append(f"server error {status}: {body[:300]!r}")
    elif endpoint.web:
        flash = response.cookies.get(FLASH_COOKIE)
        kind = json.loads(unquote(flash)).get("kind") if flash else None
        outcome["flash"] = kind
        page_code = re.search(rb"<code>([a-z_]+)</code> \((\d{3})\)", body)
        if status == 303 and kind == "error":
            outcome["code"] = "refused with an error flash"
        elif 400 <= status < 500 and page_code and int(page_code.group(2)) == status:
            outcome["code"] = page_code.group(1).decode()  # the error page names the code
        elif status == 200 and (name, endpoint.name) in HARMLESS_WHEN_ACCEPTED:
            outcome["accepted_on_purpose"] = HARMLESS_WHEN_ACCEPTED[name, endpoint.name]
        else:
            problems.append(f"web form answered {status} (flash {kind})")
    elif 400 <= status < 500:
        outcome["code"] = _code(response)
        if outcome["code"] is None:
            problems.append(f"{status} without a stable error code: {body[:200]!r}")
    elif (name, endpoint.name) in HARMLESS_WHEN_ACCEPTED:
        outcome["accepted_on_purpose"] = HARMLESS_WHEN_ACCEPTED[name, endpoint.name]
    elif status not in endpoint.accepts:
        problems.append(f"accepted with {status}")
    else:
        data = response.json()
        report = data.get("signature_report") or next(
            (d.get("signature_report") for d in data.get("documents", []) if d), None
        )
        if "indication" in data:
            report = data
        if report:
            outcome["indication"] = report.get("indication")
            outcome["sub_indication"] = report.get("sub_indication")
        # Comments and CDATA are outside C14N (the signature holds); a processing instruction
        # is inside it (the signature breaks), like any other change.
        genuine = name in (
            "signed:genuine",
            "signed:comment_in_signed_text",
            "signed:cdata_in_signed_text",
        )
        if endpoint.name.startswith("POST /api/v1/incoming"):
            outcome["extraction"] = "pending"
        elif report is None:
            problems.append(f"accepted without a signature report: {body[:200]!r}")
        elif genuine:
            # Comments, CDATA and PIs do not change the signed content (C14N): still valid,
            # and the letter as registered must read what was signed, whole.
            if report.get("indication") != "TOTAL_PASSED":
                problems.append(f"a genuine signature reported {report.get('indication')}")
            if "subject" in data and data["subject"] != "Arkusz organizacji na rok 2027/2028":
                problems.append(f"registered subject {data['subject']!r} is not what was signed")
        elif report.get("indication") == "TOTAL_PASSED":
            problems.append("a forged or broken document verified as TOTAL_PASSED")
    return problems, outcome


def _extractions(backend: Backend) -> dict[str, tuple[str, str, str | None, str]]:
    with backend.container.uow() as uow:
        rows = uow.session.scalars(select(DocumentText)).all()
        return {str(r.document_id): (r.status, r.method, r.reason, r.text[:2000]) for r in rows}


def test_xml_attack_corpus(
    backend: Backend, client: TestClient, pki: TestPki, listener: Listener
) -> None:
    install_unit_seals(client, pki)
    headers = {u: token(client, u) for u in ("admin.wow", "clerk.wow", "clerk.sp58")}
    web = TestClient(create_app(backend.container, start_worker=False), follow_redirects=False)
    web.__enter__()
    web_login(web, "admin.wow")
    files = corpus_files(listener.address)
    files.update(
        {
            k: _with_listener(v, listener.address)
            for k, v in signed_cases(_signed_letter(backend)).items()
        }
    )
    problems: list[str] = []
    outcomes: dict[str, dict[str, Any]] = {}
    attachments: dict[str, str] = {}  # document id -> corpus name
    slowest = (0.0, "")
    with ThreadPoolExecutor(max_workers=1) as pool:
        for ep in endpoints(headers, web):
            for name, data in files.items():
                response, took = _call(pool, partial(ep.send, client, data))
                slowest = max(slowest, (took, f"{name} → {ep.name}"))
                found, outcome = _judge(name, ep, response, backend)
                outcome["seconds"] = round(took, 2)
                outcomes.setdefault(name, {})[ep.name] = outcome
                problems += [f"{name} → {ep.name}: {p}" for p in found]
                if outcome.get("extraction") == "pending":
                    for doc in response.json().get("documents", []):
                        attachments[str(doc["id"])] = name
                if listener.connections:
                    problems.append(f"{name} → {ep.name}: connection to the listener")
                    listener.connections.clear()
        # The attachments' text is extracted after commit: run the worker, then look.
        started = time.monotonic()
        while backend.container.worker.run_once():
            assert time.monotonic() - started < 300, "the worker did not drain in 5 minutes"
    extracted = _extractions(backend)
    ep_name = endpoints(headers)[-1].name  # the attachment
    for doc_id, name in attachments.items():
        status, method, reason, text = extracted.get(doc_id, ("missing", "", None, ""))
        outcomes[name][ep_name]["extraction"] = {
            "status": status,
            "method": method,
            "reason": (reason or "")[:120],
        }
        if any(leak.decode() in text for leak in LEAKS):
            problems.append(f"{name} → extraction kept a leak: {text[:200]!r}")
        if status == "missing":
            problems.append(f"{name} → no extraction record")
    if listener.connections:
        problems.append(f"connections to the listener: {listener.connections}")

    web.__exit__(None, None, None)
    _write(backend, files, outcomes, slowest)
    assert not problems, "\n".join(problems)


def _write(
    backend: Backend,
    files: dict[str, bytes],
    outcomes: dict[str, dict[str, Any]],
    slowest: tuple[float, str],
) -> None:
    summary: dict[str, Any] = {}
    for per_ep in outcomes.values():
        for ep, o in per_ep.items():
            key = str(o["status"]) + (f" {o['code']}" if o.get("code") else "")
            if o.get("indication"):
                key += f" {o['indication']}/{o.get('sub_indication') or '-'}"
            summary.setdefault(ep, {}).setdefault(key, 0)
            summary[ep][key] += 1
    n_endpoints = len({ep for per in outcomes.values() for ep in per})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    section = old.get("xml_attacks", {})
    section[backend.name] = {
        "corpus_files": len(files),
        "endpoints": n_endpoints,
        "requests": len(files) * n_endpoints,
        "listener_connections": 0,
        "slowest_request": {"seconds": round(slowest[0], 2), "what": slowest[1]},
        "outcomes_by_endpoint": summary,
        "outcomes": outcomes,
    }
    old["xml_attacks"] = section
    RESULTS.write_text(json.dumps(old, indent=2, ensure_ascii=False) + "\n")


# --- every XML parse goes through workflow/xmlsafe.py ---------------------------------------


def test_the_bpmn_library_folder_is_read_through_the_hardened_parser(tmp_path: Path) -> None:
    """`library_files` parsed the configured BPMN folder with a plain lxml parser, which keeps a
    DOCTYPE with its entities; it now goes through workflow.xmlsafe like every other parse."""
    from workflow.processes.service import library_files

    (tmp_path / "decisions").mkdir()
    (tmp_path / "x.bpmn").write_text(
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]>'
        '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&e;</definitions>'
    )
    with pytest.raises(XmlRefused):
        library_files(tmp_path)
