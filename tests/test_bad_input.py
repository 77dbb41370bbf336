"""Bad input on registration: every case gets a 4xx with a stable code, and nothing is written —
no row, no number taken, no audit entry, no blob left in the store. Runs on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import Backend
from tests.helpers import PDF, PNG, error_code, letter_meta, register, token
from workflow.audit.models import AuditEntry
from workflow.cases.models import Case
from workflow.documents.models import Blob, Document
from workflow.registry.models import IncomingItem, NumberCounter

FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def snapshot(backend: Backend) -> dict[str, Any]:
    with backend.container.uow() as uow:
        s = uow.session
        counts = {
            m.__name__: s.execute(select(func.count()).select_from(m)).scalar_one()
            for m in (IncomingItem, Case, Document, Blob, AuditEntry)
        }
        counters = sorted(
            (c.series, c.year, c.last_value) for c in s.execute(select(NumberCounter)).scalars()
        )
    keys = sorted(backend.container.blob_store.list_keys("blobs/", FAR_FUTURE))
    return {"counts": counts, "counters": counters, "blobs": keys}


def raw_multipart(parts: list[tuple[str, dict[str, str], bytes]]) -> tuple[bytes, str]:
    """Build a body by hand, for file names an HTTP client would refuse or rewrite."""
    boundary = "ezdtestboundary7f3a"
    out = b""
    for disposition, headers, content in parts:
        out += f"--{boundary}\r\n".encode()
        out += b"Content-Disposition: " + disposition.encode("utf-8") + b"\r\n"
        for k, v in headers.items():
            out += f"{k}: {v}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def post_raw(
    client: TestClient, h: dict[str, str], file_disposition: str, meta: dict[str, Any] | None = None
) -> Any:
    body, ctype = raw_multipart(
        [
            ('form-data; name="meta"', {}, json.dumps(meta or letter_meta()).encode()),
            (file_disposition, {"Content-Type": "application/pdf"}, PDF),
        ]
    )
    return client.post("/api/v1/incoming", headers={**h, "Content-Type": ctype}, content=body)


BAD_META = [
    ("no subject", letter_meta(subject=None), "validation_failed"),
    ("blank subject", letter_meta(subject="   "), "validation_failed"),
    ("control chars in subject", letter_meta(subject="Wniosek\x07"), "validation_failed"),
    ("no sender name", letter_meta(sender={"kind": "person"}), "validation_failed"),
    ("unknown channel", letter_meta(channel="pigeon"), "validation_failed"),
    ("unknown field", letter_meta(colour="red"), "validation_failed"),
    ("new case without class", letter_meta(jrwa=None), "validation_failed"),
    ("new case and reference", letter_meta(case_reference="SP58.431.1.2026"), "validation_failed"),
    (
        "received in the future",
        letter_meta(received_at=(datetime.now(UTC) + timedelta(days=2)).isoformat()),
        "validation_failed",
    ),
    ("bad jrwa symbol", letter_meta(jrwa="43a"), "validation_failed"),
    ("non-leaf class", letter_meta(jrwa="43"), "jrwa_class_not_leaf"),
    ("unknown class", letter_meta(jrwa="9999"), "unknown_jrwa_class"),
    ("unknown unit", letter_meta(unit="SP999"), "unknown_unit"),
    ("unknown department", letter_meta(department="XX"), "unknown_department"),
    (
        "unknown case",
        letter_meta(new_case=False, jrwa=None, case_reference="SP58.431.77.2026"),
        "case_not_found",
    ),
]


@pytest.mark.parametrize(("label", "meta", "code"), BAD_META, ids=[b[0] for b in BAD_META])
def test_bad_metadata_is_refused_and_nothing_is_written(
    backend: Backend, client: TestClient, label: str, meta: dict[str, Any], code: str
) -> None:
    h = token(client, "clerk.sp58")
    before = snapshot(backend)
    r = register(client, h, {k: v for k, v in meta.items() if v is not None})
    assert r.status_code in (404, 422), r.text
    assert error_code(r) == code
    assert r.json()["error"]["message"] and r.json()["error"]["message_en"]
    assert snapshot(backend) == before


BAD_FILES = [
    ("empty file", [("pusty.pdf", b"", "application/pdf")], 422, "empty_file"),
    (
        "type lies: text as pdf",
        [("wniosek.pdf", b"just text", "application/pdf")],
        422,
        "content_type_mismatch",
    ),
    ("type lies: pdf as png", [("skan.png", PDF, "image/png")], 422, "content_type_mismatch"),
    ("type lies: png as text", [("notatka.txt", PNG, "text/plain")], 422, "content_type_mismatch"),
    (
        "second file bad",
        [("ok.pdf", PDF, "application/pdf"), ("zly.pdf", b"", "application/pdf")],
        422,
        "empty_file",
    ),
]


@pytest.mark.parametrize(
    ("label", "files", "status", "code"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_bad_files_are_refused_and_nothing_is_written(
    backend: Backend,
    client: TestClient,
    label: str,
    files: list[tuple[str, bytes, str]],
    status: int,
    code: str,
) -> None:
    h = token(client, "clerk.sp58")
    before = snapshot(backend)
    r = register(client, h, letter_meta(), files)
    assert r.status_code == status, r.text
    assert error_code(r) == code
    assert snapshot(backend) == before


BAD_NAMES = [
    'form-data; name="files"; filename="../../etc/passwd.pdf"',
    'form-data; name="files"; filename="..\\\\windows\\\\system.pdf"',
    'form-data; name="files"; filename="/abs/path.pdf"',
    'form-data; name="files"; filename="dzwonek\x07.pdf"',
    'form-data; name="files"; filename="right\u202eto-left.pdf"',
    'form-data; name="files"; filename=".."',
    'form-data; name="files"; filename="' + "a" * 300 + '.pdf"',
    "form-data; name=\"files\"; filename*=UTF-8''..%2F..%2Fsecret.pdf",
]


@pytest.mark.parametrize("disposition", BAD_NAMES, ids=range(len(BAD_NAMES)))
def test_unsafe_file_names_are_refused(
    backend: Backend, client: TestClient, disposition: str
) -> None:
    h = token(client, "clerk.sp58")
    before = snapshot(backend)
    r = post_raw(client, h, disposition)
    assert r.status_code == 422, r.text
    assert error_code(r) == "invalid_file_name"
    assert snapshot(backend) == before


def test_polish_file_name_is_accepted(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    r = post_raw(client, h, "form-data; name=\"files\"; filename*=UTF-8''%C5%BC%C3%B3%C5%82w.pdf")
    assert r.status_code == 201, r.text
    assert r.json()["documents"][0]["versions"][0]["file_name"] == "żółw.pdf"


@pytest.mark.settings(max_upload_bytes=64 * 1024)
def test_file_over_limit_is_refused_while_streaming(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    before = snapshot(backend)
    big = PDF + b"0" * (200 * 1024)
    r = register(client, h, letter_meta(), [("duzy.pdf", big, "application/pdf")])
    assert r.status_code == 413, r.text
    assert error_code(r) == "file_too_large"
    assert r.json()["error"]["details"]["limit_bytes"] == 64 * 1024

    # A chunked body without Content-Length is cut off at the limit too.
    body, ctype = raw_multipart(
        [
            ('form-data; name="meta"', {}, json.dumps(letter_meta()).encode()),
            (
                'form-data; name="files"; filename="duzy.pdf"',
                {"Content-Type": "application/pdf"},
                big,
            ),
        ]
    )
    sent = []

    def chunks() -> Any:
        for i in range(0, len(body), 8192):
            sent.append(i)
            yield body[i : i + 8192]

    r = client.post("/api/v1/incoming", headers={**h, "Content-Type": ctype}, content=chunks())
    assert r.status_code == 413
    assert snapshot(backend) == before


def test_missing_meta_malformed_json_and_not_multipart(
    backend: Backend, client: TestClient
) -> None:
    h = token(client, "clerk.sp58")
    before = snapshot(backend)
    r = register(client, h, None)
    assert (r.status_code, error_code(r)) == (422, "meta_missing")
    r = register(client, h, "{not json")
    assert (r.status_code, error_code(r)) == (422, "validation_failed")
    r = client.post("/api/v1/incoming", headers=h, json=letter_meta())
    assert (r.status_code, error_code(r)) == (422, "multipart_expected")
    body, ctype = raw_multipart([('form-data; name="meta"', {}, b"{}")])
    r = client.post(
        "/api/v1/incoming", headers={**h, "Content-Type": ctype}, content=body[: len(body) // 2]
    )
    assert r.status_code == 422 and error_code(r) in ("malformed_multipart", "meta_missing")
    assert snapshot(backend) == before


@pytest.mark.settings(max_files_per_item=2)
def test_too_many_files(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    before = snapshot(backend)
    r = register(
        client, h, letter_meta(), [(f"s{i}.pdf", PDF, "application/pdf") for i in range(3)]
    )
    assert (r.status_code, error_code(r)) == (422, "too_many_files")
    assert snapshot(backend) == before


def test_duplicate_idempotency_key(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    key = {"Idempotency-Key": "skan-2026-11-28-0001"}
    first = register(client, h, letter_meta(), extra_headers=key)
    assert first.status_code == 201
    before = snapshot(backend)
    again = register(client, h, letter_meta(), extra_headers=key)
    assert again.status_code == 409
    assert error_code(again) == "duplicate_submission"
    assert again.json()["error"]["details"]["rpw_number"] == first.json()["rpw_number"]
    assert snapshot(backend) == before
    # Another clerk's key space is separate.
    other = register(client, token(client, "clerk.sp12"), letter_meta(), extra_headers=key)
    assert other.status_code == 201


def test_many_small_fields_cannot_pile_up(backend: Backend, client: TestClient) -> None:
    """Each form field is limited, and so are all of them together."""
    h = token(client, "clerk.sp58")
    before = snapshot(backend)
    parts = [('form-data; name="meta"', {}, json.dumps(letter_meta()).encode())]
    parts += [(f'form-data; name="pad{i}"', {}, b"x" * 60_000) for i in range(10)]
    body, ctype = raw_multipart(parts)
    r = client.post("/api/v1/incoming", headers={**h, "Content-Type": ctype}, content=body)
    assert (r.status_code, error_code(r)) == (422, "field_too_large")
    assert snapshot(backend) == before
