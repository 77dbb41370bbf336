"""Document services: storing uploads as blobs, creating documents and their versions,
serving content, and collecting stray blobs.

Content is stored before the rows that reference it, and deleted again if the transaction rolls
back; a crash in between leaves only a stray blob, which `collect_stray_blobs` removes after a
grace period. So a committed row always has its blob (invariant 1).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path

from workflow.db import new_id, utcnow
from workflow.documents.filetypes import dcmi_type
from workflow.documents.models import Blob, Document, DocumentVersion
from workflow.documents.repository import DocumentRepository
from workflow.errors import NotFound, StorageFailed
from workflow.ports import BlobIntegrityError, BlobStore, BlobStoreUnavailable, SpooledUpload
from workflow.principal import Principal
from workflow.uow import UnitOfWork

log = logging.getLogger(__name__)
BLOB_PREFIX = "blobs/"


@dataclass(frozen=True)
class StoredFile:
    upload: SpooledUpload
    blob: Blob


def new_blob_key() -> str:
    now = utcnow()
    return f"{BLOB_PREFIX}{now:%Y/%m}/{uuid.uuid4().hex}"


@contextmanager
def spooled(data: bytes, file_name: str, media_type: str) -> Iterator[SpooledUpload]:
    """Bytes made in ezd (a signed letter, a receipt, a form, demo data) as an upload for
    `store_uploads`, in a temporary file removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ezd-made-") as tmp:
        path = Path(tmp) / "file"
        path.write_bytes(data)
        yield SpooledUpload(
            path=path,
            file_name=file_name.replace("/", "-")[:200],
            declared_type=media_type,
            detected_type=media_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )


def store_uploads(
    uow: UnitOfWork, store: BlobStore, uploads: Sequence[SpooledUpload]
) -> list[StoredFile]:
    """Put every upload into the blob store (verified) and add its Blob row to the transaction."""
    repo = DocumentRepository(uow.session)
    stored: list[StoredFile] = []
    for up in uploads:
        key = new_blob_key()
        uow.on_rollback(partial(store.delete, key))
        try:
            store.put(key, up)
        except (BlobStoreUnavailable, BlobIntegrityError) as e:
            log.warning("blob store refused %s: %s", key, e)
            raise StorageFailed(details={"file": up.file_name}) from e
        blob = Blob(
            id=new_id(), key=key, sha256=up.sha256, size=up.size, media_type=up.detected_type
        )
        repo.add(blob)
        stored.append(StoredFile(up, blob))
    return stored


@dataclass(frozen=True)
class DocumentMeta:
    title: str
    creator: str
    document_date: date
    access: str = "ograniczony"
    relation: str | None = None
    recipient: str | None = None
    grouping: str | None = None
    qualification: str | None = None
    language: str = "pol"
    description: str | None = None
    rights: str | None = None


def create_document(
    uow: UnitOfWork,
    *,
    unit_id: uuid.UUID,
    identifier: str,
    meta: DocumentMeta,
    file: StoredFile,
    case_id: uuid.UUID | None = None,
    incoming_item_id: uuid.UUID | None = None,
    outgoing_item_id: uuid.UUID | None = None,
) -> Document:
    repo = DocumentRepository(uow.session)
    doc = Document(
        id=new_id(),
        unit_id=unit_id,
        case_id=case_id,
        incoming_item_id=incoming_item_id,
        outgoing_item_id=outgoing_item_id,
        identifier=identifier,
        title=meta.title,
        creator=meta.creator,
        document_date=meta.document_date,
        format=file.blob.media_type,
        access=meta.access,
        type=dcmi_type(file.blob.media_type),
        relation=meta.relation,
        recipient=meta.recipient,
        grouping=meta.grouping,
        qualification=meta.qualification,
        language=meta.language,
        description=meta.description,
        rights=meta.rights,
        created_by=uow.actor.user_id,
    )
    repo.add(doc)
    _add_version(uow, repo, doc, file, 1, note="")
    uow.audit(
        "document.created",
        "document",
        doc.id,
        unit_id=unit_id,
        case_id=case_id,
        document_id=doc.id,
        details={
            "identifier": identifier,
            "title": meta.title,
            "sha256": file.blob.sha256,
            "file_name": file.upload.file_name,
        },
    )
    return doc


def _add_version(
    uow: UnitOfWork,
    repo: DocumentRepository,
    doc: Document,
    file: StoredFile,
    version_no: int,
    note: str,
) -> DocumentVersion:
    version = DocumentVersion(
        document_id=doc.id,
        version_no=version_no,
        blob_id=file.blob.id,
        file_name=file.upload.file_name,
        note=note,
        created_by=uow.actor.user_id,
        created_at=utcnow(),
    )
    repo.add(version)
    return version


def add_version(uow: UnitOfWork, doc: Document, file: StoredFile, note: str) -> DocumentVersion:
    """New content is a new version; registered versions are never changed (invariant 5)."""
    repo = DocumentRepository(uow.session)
    repo.lock(doc.id)  # two new versions at once must not take the same number
    version_no = repo.last_version_no(doc.id) + 1
    version = _add_version(uow, repo, doc, file, version_no, note)
    uow.audit(
        "document.version_added",
        "document",
        doc.id,
        unit_id=doc.unit_id,
        case_id=doc.case_id,
        document_id=doc.id,
        details={
            "version": version_no,
            "sha256": file.blob.sha256,
            "file_name": file.upload.file_name,
            "note": note,
        },
    )
    return version


def readable_document(uow: UnitOfWork, actor: Principal, document_id: uuid.UUID) -> Document:
    """The document if the actor may read its unit; otherwise 'not found', never 'forbidden',
    so no endpoint reveals that another unit's document exists."""
    doc = DocumentRepository(uow.session).document(document_id)
    if doc is None or not actor.can_read_unit(doc.unit_id):
        raise NotFound(
            "Nie znaleziono dokumentu.", "Document not found.", code="document_not_found"
        )
    return doc


@dataclass(frozen=True)
class Content:
    version: DocumentVersion
    blob: Blob
    chunks: Iterator[bytes]


def open_version(
    uow: UnitOfWork, store: BlobStore, actor: Principal, document_id: uuid.UUID, version_no: int
) -> Content:
    doc = readable_document(uow, actor, document_id)
    repo = DocumentRepository(uow.session)
    version = repo.version(doc.id, version_no)
    blob = repo.blob(version.blob_id) if version else None
    if version is None or blob is None:
        raise NotFound(
            "Nie ma takiej wersji dokumentu.", "No such document version.", code="version_not_found"
        )
    uow.audit(
        "document.content_read",
        "document",
        doc.id,
        unit_id=doc.unit_id,
        case_id=doc.case_id,
        document_id=doc.id,
        details={"version": version_no},
    )
    try:
        chunks = store.open(blob.key)
    except BlobStoreUnavailable as e:
        log.warning("blob store cannot open %s: %s", blob.key, e)
        raise StorageFailed() from e
    return Content(version, blob, chunks)


def collect_stray_blobs(
    uow: UnitOfWork, store: BlobStore, grace: timedelta, batch: int = 500
) -> int:
    """Delete stored objects that no committed Blob row references and that are older than the
    grace period (so uploads of requests still in flight are left alone)."""
    repo = DocumentRepository(uow.session)
    cutoff = utcnow() - grace
    removed = 0
    keys: list[str] = []

    def flush_batch() -> int:
        known = repo.known_keys(keys)
        stray = [k for k in keys if k not in known]
        for k in stray:
            store.delete(k)
            uow.audit("blob.collected", "blob", k, details={"reason": "no committed reference"})
        keys.clear()
        return len(stray)

    for key in store.list_keys(BLOB_PREFIX, cutoff):
        keys.append(key)
        if len(keys) >= batch:
            removed += flush_batch()
    removed += flush_batch()
    return removed
