"""Tenant isolation (invariant 6): another unit's staff get 404 for everything of a SP58 case, the
same answer as for something that does not exist; auditors read everything and change nothing;
only clerks register; reads of content are audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import Backend
from tests.helpers import PDF, error_code, letter_meta, register, token
from workflow.audit.models import AuditEntry
from workflow.documents.models import DocumentVersion
from workflow.registry.models import IncomingItem

NEW_PDF = PDF.replace(b"%%EOF", b"% v2\n%%EOF")


@dataclass(frozen=True)
class Letter:
    item_id: str
    reference: str
    document_id: str
    year: str


def _sp58_letter(client: TestClient) -> Letter:
    r = register(client, token(client, "clerk.sp58"), letter_meta())
    assert r.status_code == 201, r.text
    body = r.json()
    return Letter(
        body["id"],
        body["case_reference"],
        body["documents"][0]["id"],
        body["rpw_number"].split("/")[2],
    )


def _version_upload(client: TestClient, headers: dict[str, str], document_id: str) -> Any:
    return client.post(
        f"/api/v1/documents/{document_id}/versions",
        headers=headers,
        data={"note": "poprawka"},
        files=[("file", ("v2.pdf", NEW_PDF, "application/pdf"))],
    )


def _case_document_upload(client: TestClient, headers: dict[str, str], reference: str) -> Any:
    return client.post(
        f"/api/v1/cases/{reference}/documents",
        headers=headers,
        data={"meta": '{"title": "Notatka"}'},
        files=[("file", ("notatka.pdf", PDF, "application/pdf"))],
    )


def _reads(letter: Letter) -> list[str]:
    return [
        f"/api/v1/cases/{letter.reference}",
        f"/api/v1/cases/{letter.reference}/record",
        f"/api/v1/incoming/{letter.item_id}",
        f"/api/v1/documents/{letter.document_id}",
        f"/api/v1/documents/{letter.document_id}/versions/1/content",
    ]


def _counts(backend: Backend) -> tuple[int, int]:
    with backend.container.uow() as uow:
        versions = len(uow.session.execute(select(DocumentVersion.id)).all())
        items = len(uow.session.execute(select(IncomingItem.id)).all())
    return versions, items


# --- another unit sees nothing ------------------------------------------------------------


def test_other_unit_gets_404_for_everything(backend: Backend, client: TestClient) -> None:
    letter = _sp58_letter(client)
    expected = {
        "cases": "case_not_found",
        "incoming": "item_not_found",
        "documents": "document_not_found",
    }
    for username in ("clerk.sp12", "headteacher.sp12"):
        h = token(client, username)
        for url in _reads(letter):
            r = client.get(url, headers=h)
            assert r.status_code == 404, f"{username} {url}: {r.status_code} {r.text}"
            assert error_code(r) == expected[url.split("/")[3]], url
            assert letter.reference not in r.text or url.startswith("/api/v1/cases/")
            assert "SP58" not in r.text.replace(letter.reference, "")

        before = _counts(backend)
        r = _version_upload(client, h, letter.document_id)
        assert r.status_code == 404, r.text
        assert error_code(r) == "document_not_found"
        r = _case_document_upload(client, h, letter.reference)
        assert r.status_code == 404, r.text
        assert error_code(r) == "case_not_found"
        assert _counts(backend) == before

        # Their own case list does not show it either.
        listing = client.get("/api/v1/cases", headers=h)
        assert listing.status_code == 200
        assert listing.json()["unit"] == "SP12" and listing.json()["cases"] == []


def test_foreign_404_is_the_same_as_nonexistent(client: TestClient) -> None:
    letter = _sp58_letter(client)
    h = token(client, "clerk.sp12")
    # A reference of the same shape that does not exist.
    missing_ref = f"SP58.431.97.{letter.year}"
    missing_doc = str(uuid.uuid4())
    missing_item = str(uuid.uuid4())
    pairs = [
        (f"/api/v1/cases/{letter.reference}", f"/api/v1/cases/{missing_ref}"),
        (f"/api/v1/cases/{letter.reference}/record", f"/api/v1/cases/{missing_ref}/record"),
        (f"/api/v1/incoming/{letter.item_id}", f"/api/v1/incoming/{missing_item}"),
        (f"/api/v1/documents/{letter.document_id}", f"/api/v1/documents/{missing_doc}"),
        (
            f"/api/v1/documents/{letter.document_id}/versions/1/content",
            f"/api/v1/documents/{missing_doc}/versions/1/content",
        ),
    ]
    for existing, missing in pairs:
        a, b = client.get(existing, headers=h), client.get(missing, headers=h)
        assert a.status_code == b.status_code == 404, existing
        assert error_code(a) == error_code(b), existing
        # The case messages name the reference that was asked for; apart from that, and
        # everywhere else byte for byte, the answers are identical.
        assert a.content.replace(letter.reference.encode(), missing_ref.encode()) == b.content
        if not existing.startswith("/api/v1/cases/"):
            assert a.content == b.content

    a = _version_upload(client, h, letter.document_id)
    b = _version_upload(client, h, missing_doc)
    assert a.status_code == b.status_code == 404
    assert a.content == b.content


def test_other_unit_cannot_file_into_the_case(backend: Backend, client: TestClient) -> None:
    letter = _sp58_letter(client)
    h = token(client, "clerk.sp12")
    before = _counts(backend)
    r = register(client, h, letter_meta(new_case=False, jrwa=None, case_reference=letter.reference))
    assert r.status_code == 404, r.text
    assert error_code(r) == "case_not_found"
    missing_ref = f"SP58.431.97.{letter.year}"
    missing = register(
        client, h, letter_meta(new_case=False, jrwa=None, case_reference=missing_ref)
    )
    assert missing.status_code == 404
    assert r.content.replace(letter.reference.encode(), missing_ref.encode()) == missing.content
    assert _counts(backend) == before
    # The SP12 register is still empty: the failed attempts took no number.
    ok = register(client, h, letter_meta(new_case=False))
    assert ok.status_code == 201 and ok.json()["rpw_number"] == f"RPW/1/{letter.year}"


def test_clerk_cannot_register_for_another_unit(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp12")
    before = _counts(backend)
    r = register(client, h, letter_meta(unit="SP58"))
    assert r.status_code == 403, r.text
    assert error_code(r) == "forbidden"
    assert _counts(backend) == before


def test_clerk_cannot_list_another_units_registers(client: TestClient) -> None:
    _sp58_letter(client)
    h = token(client, "clerk.sp12")
    for url in ("/api/v1/incoming", "/api/v1/cases", "/api/v1/outgoing", "/api/v1/jrwa"):
        r = client.get(url, params={"unit": "SP58"}, headers=h)
        assert r.status_code == 403, url
        assert error_code(r) == "forbidden"
        assert "RPW" not in r.text


# --- auditors read everything, change nothing ---------------------------------------------


def test_auditor_reads_everything_and_is_audited(backend: Backend, client: TestClient) -> None:
    letter = _sp58_letter(client)
    h = token(client, "auditor.wow")
    for url in _reads(letter):
        r = client.get(url, headers=h)
        assert r.status_code == 200, f"{url}: {r.text}"
    case = client.get(f"/api/v1/cases/{letter.reference}", headers=h).json()
    assert case["unit"] == "SP58" and case["reference"] == letter.reference
    content = client.get(f"/api/v1/documents/{letter.document_id}/versions/1/content", headers=h)
    assert content.content == PDF
    listing = client.get("/api/v1/incoming", params={"unit": "SP58"}, headers=h)
    assert listing.status_code == 200
    assert [i["id"] for i in listing.json()["items"]] == [letter.item_id]

    me = client.get("/api/v1/auth/me", headers=h).json()
    with backend.container.uow() as uow:
        entries = [
            (e.action, str(e.document_id), e.details)
            for e in uow.session.execute(
                select(AuditEntry).where(AuditEntry.actor_name == me["full_name"])
            ).scalars()
        ]
    actions = [action for action, _, _ in entries]
    content_reads = [e for e in entries if e[0] == "document.content_read"]
    assert content_reads == [("document.content_read", letter.document_id, {"version": 1})] * 2
    assert actions.count("case.read") == 2
    assert "case.record_read" in actions
    assert "incoming.read" in actions and "document.read" in actions

    # The audit chain is intact after all those reads.
    verify = client.get("/api/v1/audit/verify", headers=h)
    assert verify.status_code == 200 and verify.json()["ok"] is True


def test_auditor_is_read_only(backend: Backend, client: TestClient) -> None:
    letter = _sp58_letter(client)
    h = token(client, "auditor.wow")
    before = _counts(backend)
    for unit in ("SP58", "WOW"):
        r = register(client, h, letter_meta(unit=unit))
        assert r.status_code == 403, f"{unit}: {r.text}"
        assert error_code(r) == "forbidden"
    r = register(
        client,
        h,
        letter_meta(unit="SP58", new_case=False, jrwa=None, case_reference=letter.reference),
    )
    assert r.status_code == 403
    r = client.post(
        "/api/v1/cases", headers=h, json={"unit": "SP58", "jrwa": "431", "title": "Sprawa audytora"}
    )
    assert r.status_code == 403
    assert _version_upload(client, h, letter.document_id).status_code == 403
    assert _case_document_upload(client, h, letter.reference).status_code == 403
    r = client.post(
        "/api/v1/outgoing",
        headers=h,
        json={
            "unit": "SP58",
            "subject": "Odpowiedź",
            "channel": "paper",
            "recipients": [{"name": "Anna Kowalska"}],
        },
    )
    assert r.status_code == 403
    assert _counts(backend) == before
    # Nothing new in the case either.
    case = client.get(f"/api/v1/cases/{letter.reference}", headers=h).json()
    assert len(case["documents"]) == 1
    assert [v["version"] for v in case["documents"][0]["versions"]] == [1]


# --- staff of the unit --------------------------------------------------------------------


def test_unit_staff_can_read(client: TestClient) -> None:
    letter = _sp58_letter(client)
    for username in ("handler.sp58", "headteacher.sp58", "admin.sp58"):
        h = token(client, username)
        for url in _reads(letter):
            r = client.get(url, headers=h)
            assert r.status_code == 200, f"{username} {url}: {r.text}"
        listing = client.get("/api/v1/cases", headers=h).json()
        assert [c["reference"] for c in listing["cases"]] == [letter.reference]


def test_only_clerks_register_incoming(backend: Backend, client: TestClient) -> None:
    before = _counts(backend)
    for username in ("handler.sp58", "headteacher.sp58"):
        h = token(client, username)
        r = register(client, h, letter_meta(unit="SP58"))
        assert r.status_code == 403, f"{username}: {r.text}"
        assert error_code(r) == "forbidden"
        assert r.json()["error"]["details"] == {"required_roles": ["clerk"]}
        # Without a unit the service cannot pick one (they are a clerk nowhere): refused too.
        r = register(client, h, letter_meta())
        assert (r.status_code, error_code(r)) in ((403, "forbidden"), (422, "unit_required"))
    assert _counts(backend) == before
    # A handler may still work on a case: add a version to a document of their unit.
    letter = _sp58_letter(client)
    r = _version_upload(client, token(client, "handler.sp58"), letter.document_id)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
