"""Writing archival packages from the unit archive (layout: workflow/archive/package.py)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from workflow.archive.models import ArchiveEntry
from workflow.archive.package import (
    SCHEMA_IN_PACKAGE,
    SCHEMA_PATH,
    ManifestingWriter,
    element,
    new_root,
    open_writer,
    safe_name,
    xml_bytes,
)
from workflow.archive.repository import ArchiveRepository
from workflow.audit.models import AuditEntry
from workflow.audit.repository import AuditRepository
from workflow.cases.models import Case
from workflow.db import utcnow
from workflow.documents.models import Blob, Document, DocumentVersion
from workflow.errors import NotFound
from workflow.org.models import Unit
from workflow.ports import BlobStore
from workflow.uow import UnitOfWork

CHUNK = 200  # cases per batch of queries
PREFETCH_MAX = 1024 * 1024  # files up to this size are fetched in parallel, in memory
PREFETCH_THREADS = 8


@dataclass(frozen=True)
class ExportResult:
    path: Path
    cases: int
    files: int
    bytes: int


def _document_xml(
    doc: Document, versions: list[tuple[DocumentVersion, Blob, str]], report_file: str | None
) -> bytes:
    root = new_root("Dokument")
    element(root, "Identyfikator", doc.identifier)
    element(root, "Tworca", doc.creator)
    element(root, "Tytul", doc.title)
    element(root, "Data", doc.document_date.isoformat(), typ="utworzony")
    element(root, "Format", doc.format)
    element(root, "Dostep", doc.access)
    for name, value in (
        ("Typ", doc.type),
        ("Relacja", doc.relation),
        ("Odbiorca", doc.recipient),
        ("Grupowanie", doc.grouping),
        ("Kwalifikacja", doc.qualification),
        ("Jezyk", doc.language),
        ("Opis", doc.description),
        ("Uprawnienia", doc.rights),
    ):
        if value:
            element(root, name, str(value)[:2000])
    holder = element(root, "Wersje")
    for version, blob, file_name in versions:
        attrs = {
            "numer": str(version.version_no),
            "plik": file_name,
            "nazwaOryginalna": version.file_name[:2000] or file_name,
            "rozmiar": str(blob.size),
            "sha256": blob.sha256,
            "utworzono": version.created_at.isoformat(),
        }
        if blob.disposed_at is not None:
            attrs["wybrakowano"] = blob.disposed_at.isoformat()
        element(holder, "Wersja", **attrs)
    if report_file and doc.signature_report:
        element(
            root,
            "RaportWeryfikacjiPodpisu",
            plik=report_file,
            wynik=str(doc.signature_report.get("indication", "INDETERMINATE")),
        )
    return xml_bytes(root)


def _case_xml(
    unit: Unit,
    case: Case,
    entry: ArchiveEntry,
    documents: list[tuple[str, str]],
    record: Sequence[AuditEntry],
) -> bytes:
    root = new_root("Sprawa")
    element(root, "ZnakSprawy", case.reference)
    element(root, "Tytul", case.title[:2000])
    jednostka = element(root, "Jednostka")
    element(jednostka, "Kod", unit.code)
    element(jednostka, "Nazwa", unit.name)
    element(root, "KlasaJRWA", case.jrwa_symbol)
    element(root, "KategoriaArchiwalna", entry.category)
    element(root, "DataWszczecia", case.opened_at.isoformat())
    assert case.closed_at is not None
    element(root, "DataZakonczenia", case.closed_at.isoformat())
    element(root, "PozycjaSpisu", entry.number)
    docs = element(root, "Dokumenty")
    for identifier, folder in documents:
        element(docs, "Dokument", identyfikator=identifier, katalog=folder)
    record = element(root, "Metryka")
    for e in record:
        element(
            record,
            "Zdarzenie",
            czas=e.occurred_at.isoformat(),
            osoba=e.actor_name[:2000] or "?",
            czynnosc=e.action,
            dokument=str(e.document_id) if e.document_id else None,
            skrot=e.entry_hash,
        )
    return xml_bytes(root)


def export_package(
    uow: UnitOfWork,
    store: BlobStore,
    unit: Unit,
    entries: Sequence[tuple[ArchiveEntry, Case]],
    target: Path,
    kind: str,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write the archive entries of `unit` as a package at `target` (dir, zip or tar)."""
    if not entries:
        raise NotFound(
            "Nie ma akt do przekazania.",
            "There are no records to export.",
            code="nothing_to_export",
        )
    repo = ArchiveRepository(uow.session)
    out = ManifestingWriter(open_writer(target, kind))
    package = new_root("Paczka")
    element(package, "Identyfikator", f"{unit.code}-{uuid.uuid4()}")
    jednostka = element(package, "Jednostka")
    element(jednostka, "Kod", unit.code)
    element(jednostka, "Nazwa", unit.name)
    element(package, "Utworzono", utcnow().isoformat())
    cases_el = element(package, "Sprawy")
    files = 0
    try:
        out.write_bytes(SCHEMA_IN_PACKAGE, SCHEMA_PATH.read_bytes())
        done = 0
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            ids = [case.id for _entry, case in chunk]
            files_of = repo.blobs_of_cases(ids)
            records = AuditRepository(uow.session).for_cases(ids)
            small = [
                b.key
                for rows in files_of.values()
                for _d, _v, b in rows
                if b.disposed_at is None and b.size <= PREFETCH_MAX
            ]
            # S3 answers a GET in a few ms: fetch a batch's small files in parallel, in order
            with ThreadPoolExecutor(PREFETCH_THREADS) as pool:
                fetched = dict(
                    zip(small, pool.map(lambda k: b"".join(store.open(k)), small), strict=True)
                )
            for entry, case in chunk:
                folder = safe_name(case.reference)
                element(cases_el, "Sprawa", znak=case.reference, katalog=folder)
                by_document: dict[
                    uuid.UUID, tuple[Document, list[tuple[DocumentVersion, Blob]]]
                ] = {}
                for document, version, blob in files_of[case.id]:
                    by_document.setdefault(document.id, (document, []))[1].append((version, blob))
                listed = []
                for i, (document, versions) in enumerate(by_document.values(), 1):
                    doc_dir = f"dok-{i:03d}"
                    written = []
                    for version, blob in versions:
                        file_name = f"v{version.version_no}-{safe_name(version.file_name)}"
                        if blob.disposed_at is None:
                            content = fetched.get(blob.key)
                            out.write(
                                f"{folder}/{doc_dir}/{file_name}",
                                [content] if content is not None else store.open(blob.key),
                            )
                            files += 1
                        written.append((version, blob, file_name))
                    report_file = None
                    if document.signature_report:
                        report_file = "raport-weryfikacji-podpisu.json"
                        out.write_bytes(
                            f"{folder}/{doc_dir}/{report_file}",
                            json.dumps(
                                document.signature_report, ensure_ascii=False, indent=2
                            ).encode(),
                        )
                    out.write_bytes(
                        f"{folder}/{doc_dir}/metadane.xml",
                        _document_xml(document, written, report_file),
                    )
                    listed.append((document.identifier, doc_dir))
                out.write_bytes(
                    f"{folder}/sprawa.xml", _case_xml(unit, case, entry, listed, records[case.id])
                )
                done += 1
                if progress:
                    progress(done, len(entries))
        out.write_bytes("paczka.xml", xml_bytes(package))
    except BaseException:
        # no half-written package is left to be mistaken for a whole one
        out.inner.close()
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        raise
    out.finish()
    uow.audit(
        "archive.exported",
        "unit",
        unit.id,
        unit_id=unit.id,
        details={
            "package": target.name,
            "format": kind,
            "cases": [c.reference for _e, c in entries][:1000],
            "files": files,
        },
    )
    return ExportResult(target, len(entries), files, out.bytes_written)
