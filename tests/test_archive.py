"""Records lifecycle (workflow/archive/): closing with its conditions and reopening, the unit
archive (transfer, register, loans), WORM retention of archived files on the real S3 server
(Object Lock bucket) and in the local store, archival packages written and verified on their
own, and disposal of a B5 case past retention through the disposal process — on both backends,
with each refusal the law asks for."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import Backend
from tests.helpers import error_code, letter_meta, register, token
from tests.test_process_library import do, drain
from tests.test_processes import inbox, only, start
from workflow.archive.export import export_package
from workflow.archive.package import verify_package
from workflow.archive.service import archive_register
from workflow.audit.repository import AuditRepository
from workflow.audit.service import verify_chain
from workflow.cases.models import Case
from workflow.cases.service import WARSAW
from workflow.documents.models import Blob, Document, DocumentVersion
from workflow.org.repository import OrgRepository
from workflow.ports import BlobLocked

pytestmark = pytest.mark.settings(s3_bucket="ezd-test-worm")

CLERK, HEAD, ARCHIVIST = "clerk.sp58", "headteacher.sp58", "archivist.sp58"
OTHER_ARCHIVIST = "archivist.sp12"


def new_case(client: TestClient, jrwa: str, subject: str) -> str:
    pdf = b"%PDF-1.4\n% " + subject.encode() + b"\n%%EOF\n"
    r = register(
        client,
        token(client, CLERK),
        letter_meta(jrwa=jrwa, subject=subject),
        [("skan.pdf", pdf, "application/pdf")],
    )
    assert r.status_code == 201, r.text
    return str(r.json()["case_reference"])


def close(client: TestClient, ref: str, who: str = CLERK) -> Any:
    return client.post(
        f"/api/v1/cases/{ref}/close", headers=token(client, who), json={"reason": "załatwiona"}
    )


def closed_long_ago(backend: Backend, ref: str, year: int) -> None:
    """A case closed in an earlier year (taken over from the previous system, say): the archive
    rules count from 1 January after closing."""
    with backend.container.uow() as uow:
        case = uow.session.execute(select(Case).where(Case.reference == ref)).scalar_one()
        case.closed_at = datetime(year, 6, 1, 10, tzinfo=UTC)
        uow.commit()


def transfer(client: TestClient, refs: list[str], who: str = ARCHIVIST, unit: str = "SP58") -> Any:
    return client.post(
        "/api/v1/archive/transfers",
        headers=token(client, who),
        json={"unit": unit, "case_references": refs, "location": "regał 1"},
    )


class BlobRow(NamedTuple):
    id: uuid.UUID
    key: str
    sha256: str
    locked_until: datetime | None
    disposed_at: datetime | None


def blobs_of(backend: Backend, ref: str) -> list[BlobRow]:
    with backend.container.uow() as uow:
        return [
            BlobRow(b.id, b.key, b.sha256, b.locked_until, b.disposed_at)
            for b in uow.session.execute(
                select(Blob)
                .join(DocumentVersion, DocumentVersion.blob_id == Blob.id)
                .join(Document, Document.id == DocumentVersion.document_id)
                .join(Case, Case.id == Document.case_id)
                .where(Case.reference == ref)
            ).scalars()
        ]


def export(backend: Backend, tmp: Path, kind: str) -> Path:
    target = tmp / f"paczka.{kind}" if kind != "dir" else tmp / "paczka"
    with backend.container.uow() as uow:
        unit = OrgRepository(uow.session).unit_by_code("SP58")
        assert unit is not None
        export_package(
            uow, backend.container.blob_store, unit, archive_register(uow, unit), target, kind
        )
        uow.commit()
    return target


def test_closing_needs_no_open_tasks_and_reopening_needs_a_reason(
    backend: Backend, client: TestClient
) -> None:
    ref = new_case(client, "431", "Duplikat legitymacji")
    start(client, "incoming_letter", ref)
    r = close(client, ref)
    assert r.status_code == 409 and error_code(r) == "case_has_open_tasks"
    ref2 = new_case(client, "431", "Drugi wniosek")
    out = client.post(
        "/api/v1/outgoing",
        headers=token(client, CLERK),
        json={
            "subject": "Odpowiedź",
            "recipients": [{"name": "Anna Kowalska"}],
            "channel": "paper",
            "case_reference": ref2,
        },
    )
    assert out.status_code == 201, out.text
    r = close(client, ref2)
    assert r.status_code == 409 and error_code(r) == "case_has_unsent_items"
    sent = client.post(
        f"/api/v1/outgoing/{out.json()['id']}/dispatch", headers=token(client, CLERK)
    )
    assert sent.status_code == 200, sent.text
    assert close(client, ref2).json()["status"] == "closed"
    headers = token(client, HEAD)
    r = client.post(f"/api/v1/cases/{ref2}/reopen", headers=headers, json={"reason": " "})
    assert r.status_code == 422
    r = client.post(f"/api/v1/cases/{ref2}/reopen", headers=headers, json={"reason": "nowe dowody"})
    assert r.status_code == 200 and r.json()["status"] == "open"
    record = client.get(f"/api/v1/cases/{ref2}/record", headers=headers).json()
    assert [e["action"] for e in record][-2:] == ["case.closed", "case.reopened"]


def test_lifecycle_archive_worm_package_and_disposal(
    backend: Backend, client: TestClient, tmp_path: Path
) -> None:
    # Two cases, handled and closed: a B5 one closed in 2019, an A one closed in 2024.
    b5 = new_case(client, "431", "Wniosek o duplikat legitymacji szkolnej")
    a = new_case(client, "050", "Regulamin rady pedagogicznej")
    assert close(client, b5).json()["status"] == "closed"
    assert close(client, a).json()["status"] == "closed"
    # Not before two years from 1 January after closing.
    r = transfer(client, [b5])
    assert r.status_code == 409 and error_code(r) == "archive_too_early"
    closed_long_ago(backend, b5, 2019)
    closed_long_ago(backend, a, 2023)
    # Only the unit's archivist takes records over; another school's archivist gets nothing.
    assert transfer(client, [b5], who=CLERK).status_code in (403, 404)
    assert transfer(client, [b5], who=OTHER_ARCHIVIST, unit="SP58").status_code == 404
    assert transfer(client, [b5], who=OTHER_ARCHIVIST, unit="SP12").status_code == 404
    r = transfer(client, [b5, a])
    assert r.status_code == 201, r.text
    entries = {e["case_reference"]: e for e in r.json()}
    assert entries[b5]["category"] == "B5" and entries[b5]["retention_until"] == "2025-01-01"
    assert entries[a]["category"] == "A" and entries[a]["retention_until"] is None
    assert [e["number"] for e in r.json()] == [
        f"SZO/1/{date.today().year}",
        f"SZO/2/{date.today().year}",
    ]
    drain(backend)  # the WORM locks, after commit

    # WORM: the A case's files are retained (its B5 retention already ended in 2025).
    store = backend.container.blob_store
    (a_blob,) = blobs_of(backend, a)
    new_year_2049 = datetime(2049, 1, 1, tzinfo=WARSAW)
    assert a_blob.locked_until == new_year_2049
    until = store.locked_until(a_blob.key)
    assert until is not None and abs((until - new_year_2049).total_seconds()) < 1
    with pytest.raises(BlobLocked):
        store.delete(a_blob.key)
    (b5_blob,) = blobs_of(backend, b5)
    assert b5_blob.locked_until is None
    # No route of the API deletes a file: every DELETE route answers without touching it.
    delete_routes = [
        route.path
        for route in client.app.routes  # type: ignore[attr-defined]
        if "DELETE" in getattr(route, "methods", set())
    ]
    for path in delete_routes:
        url = path
        for name in ("document_id", "case_id", "item_id", "id", "reference"):
            url = url.replace("{" + name + "}", str(a_blob.id))
        client.delete(url, headers=token(client, "admin.wow"))
    assert b"".join(store.open(a_blob.key)).startswith(b"%PDF")
    # An archived case is not reopened, and takes no new documents.
    r = client.post(f"/api/v1/cases/{a}/reopen", headers=token(client, HEAD), json={"reason": "x"})
    assert r.status_code == 409 and error_code(r) == "case_archived"

    # The register; loans for inspection with return.
    register_rows = client.get("/api/v1/archive/SP58/register", headers=token(client, HEAD)).json()
    assert [row["case_reference"] for row in register_rows] == [b5, a]
    assert (
        client.get("/api/v1/archive/SP58/register", headers=token(client, "clerk.sp12")).status_code
        == 404
    )
    lend = client.post(
        f"/api/v1/archive/SP58/entries/{entries[b5]['id']}/loans",
        headers=token(client, ARCHIVIST),
        json={
            "borrower": "handler.sp58",
            "purpose": "kontrola",
            "due_on": str(date.today() + timedelta(days=7)),
        },
    )
    assert lend.status_code == 201, lend.text
    again = client.post(
        f"/api/v1/archive/SP58/entries/{entries[b5]['id']}/loans",
        headers=token(client, ARCHIVIST),
        json={"borrower": "handler.sp58", "purpose": "x", "due_on": str(date.today())},
    )
    assert again.status_code == 409 and error_code(again) == "entry_on_loan"
    back = client.post(
        f"/api/v1/archive/SP58/loans/{lend.json()['id']}/return", headers=token(client, ARCHIVIST)
    )
    assert back.status_code == 200 and back.json()["returned_at"]
    outsider = client.post(
        f"/api/v1/archive/SP58/entries/{entries[b5]['id']}/loans",
        headers=token(client, ARCHIVIST),
        json={"borrower": "handler.sp12", "purpose": "x", "due_on": str(date.today())},
    )
    assert outsider.status_code == 422 and error_code(outsider) == "borrower_invalid"

    # An archival package, verified on its own (here and by the CLI), as folder, zip and tar.
    for kind in ("dir", "zip", "tar"):
        package = export(backend, tmp_path, kind)
        assert verify_package(package) == [], kind
    cli = subprocess.run(
        [sys.executable, "-m", "api.cli", "archive", "verify", str(tmp_path / "paczka.zip")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    # Tampering: a changed file, a removed file, an extra file, a broken manifest line.
    folder = tmp_path / "paczka"
    metas = sorted(folder.rglob("metadane.xml"))
    pdf = next(p for p in folder.rglob("v1-*") if p.suffix == ".pdf")
    pdf.write_bytes(pdf.read_bytes() + b"x")
    metas[0].unlink()
    (folder / "dodatkowy.txt").write_text("?")
    faults = {(f.path.split("/")[-1], f.problem.split(" ")[0]) for f in verify_package(folder)}
    assert ("dodatkowy.txt", "not") in faults
    assert (pdf.name, "content") in faults
    assert ("metadane.xml", "listed") in faults
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tmp_path / "paczka.zip") as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "manifest-sha256.txt":
                data = data.replace(b"  ", b" ", 1)
            dst.writestr(info, data)
    assert any("manifest" in f.path for f in verify_package(tampered))
    cli = subprocess.run(
        [sys.executable, "-m", "api.cli", "archive", "verify", "--json", str(tampered)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1 and '"ok": false' in cli.stdout
    shutil.rmtree(folder)

    # Disposal: only B past retention; A is refused; the process runs to the end.
    candidates = client.get(
        "/api/v1/archive/SP58/disposal-candidates", headers=token(client, ARCHIVIST)
    ).json()
    assert candidates == [entries[b5]["id"]]
    refused = client.post(
        "/api/v1/archive/disposals",
        headers=token(client, ARCHIVIST),
        json={"unit": "SP58", "entries": [entries[a]["id"]]},
    )
    assert refused.status_code == 409 and error_code(refused) == "category_not_disposable"
    proposed = client.post(
        "/api/v1/archive/disposals",
        headers=token(client, ARCHIVIST),
        json={"unit": "SP58", "entries": [entries[b5]["id"]], "reason": "upływ okresu"},
    )
    assert proposed.status_code == 201, proposed.text
    disposal = proposed.json()
    assert disposal["status"] == "proposed" and disposal["entries"] == [entries[b5]["number"]]
    do(client, HEAD, "approve", {"decision": "approve"})
    do(
        client,
        ARCHIVIST,
        "record_consent",
        {"consent_reference": "AP.4231.12.2026", "consent_date": date.today().isoformat()},
    )
    drain(backend)  # the content goes after commit
    done = client.get(
        f"/api/v1/archive/disposals/{disposal['id']}", headers=token(client, ARCHIVIST)
    ).json()
    assert done["status"] == "executed" and done["consent_reference"] == "AP.4231.12.2026"
    (gone,) = blobs_of(backend, b5)
    assert gone.disposed_at is not None and gone.sha256 == b5_blob.sha256  # the tombstone
    with pytest.raises(Exception):  # noqa: B017 (the store's own error for a missing object)
        b"".join(store.open(gone.key))
    # Metadata and audit stay; the case is still found; its content answers 404/410.
    case = client.get(f"/api/v1/cases/{b5}", headers=token(client, HEAD))
    assert case.status_code == 200
    register_rows = client.get("/api/v1/archive/SP58/register", headers=token(client, HEAD)).json()
    assert [row["status"] for row in register_rows] == ["disposed", "archived"]
    with backend.container.uow() as uow:
        assert verify_chain(AuditRepository(uow.session)).ok
    # The package of a disposed case says so, and still verifies.
    assert verify_package(export(backend, tmp_path / "po-brakowaniu", "zip")) == []


def test_disposal_rejected_by_the_head_keeps_everything(
    backend: Backend, client: TestClient
) -> None:
    ref = new_case(client, "431", "Wniosek")
    assert close(client, ref).json()["status"] == "closed"
    closed_long_ago(backend, ref, 2018)
    (entry,) = transfer(client, [ref]).json()
    r = client.post(
        "/api/v1/archive/disposals",
        headers=token(client, ARCHIVIST),
        json={"unit": "SP58", "entries": [entry["id"]]},
    )
    assert r.status_code == 201
    task = only(inbox(client, HEAD), "approve")
    assert task["unit"] == "SP58"
    do(client, HEAD, "approve", {"decision": "reject", "decision_comment": "akta potrzebne"})
    drain(backend)
    d = client.get(f"/api/v1/archive/disposals/{r.json()['id']}", headers=token(client, HEAD))
    assert d.json()["status"] == "rejected"
    (blob,) = blobs_of(backend, ref)
    assert blob.disposed_at is None
    # Back on the candidates' list for a later disposal.
    assert client.get(
        "/api/v1/archive/SP58/disposal-candidates", headers=token(client, ARCHIVIST)
    ).json() == [entry["id"]]
    assert uuid.UUID(entry["id"])


def test_audit_exports_and_the_printable_case_record(backend: Backend, client: TestClient) -> None:
    import csv
    import io
    import json

    from pypdf import PdfReader

    ref = new_case(client, "431", "Zażółć gęślą jaźń — wniosek")
    head = token(client, HEAD)
    # A case's trail: the head, the city's auditor; not a clerk; not another school's head.
    r = client.get(f"/api/v1/audit/cases/{ref}", headers=head)
    assert r.status_code == 200, r.text
    actions = [e["action"] for e in json.loads(r.text)]
    assert actions[:2] == ["case.opened", "incoming.registered"]
    r = client.get(f"/api/v1/audit/cases/{ref}?format=csv", headers=token(client, "auditor.wow"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["action"] == "case.opened" and len(rows[0]["entry_hash"]) == 64
    assert client.get(f"/api/v1/audit/cases/{ref}", headers=token(client, CLERK)).status_code == 403
    other = client.get(f"/api/v1/audit/cases/{ref}", headers=token(client, "headteacher.sp12"))
    assert other.status_code == 404
    # A person's actions: the city's administrator or auditor only.
    r = client.get("/api/v1/audit/users/clerk.sp58", headers=token(client, "admin.wow"))
    assert r.status_code == 200
    assert {e["action"] for e in json.loads(r.text)} >= {"case.opened", "incoming.registered"}
    assert client.get("/api/v1/audit/users/clerk.sp58", headers=head).status_code == 403
    assert (
        client.get("/api/v1/audit/users/nobody", headers=token(client, "admin.wow")).status_code
        == 404
    )
    # The exports are themselves in the trail.
    again = json.loads(client.get(f"/api/v1/audit/cases/{ref}", headers=head).text)
    assert "audit.case_trail_exported" in [e["action"] for e in again]
    # The printable record: HTML and PDF, in Polish, with the case's actions.
    page = client.get(f"/api/v1/cases/{ref}/record.html", headers=head)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert f"Metryka sprawy {ref}" in page.text
    assert "Rejestracja przesyłki wpływającej" in page.text
    assert "Zażółć gęślą jaźń" in page.text
    pdf = client.get(f"/api/v1/cases/{ref}/record.pdf", headers=head)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert f"Metryka sprawy {ref}" in text and "Rejestracja przesyłki wpływającej" in text
    assert "Zażółć gęślą jaźń" in text
    foreign = client.get(f"/api/v1/cases/{ref}/record.pdf", headers=token(client, "clerk.sp12"))
    assert foreign.status_code == 404
