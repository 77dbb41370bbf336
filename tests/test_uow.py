"""The unit of work's commit and rollback: what happens to blobs stored for a transaction."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.conftest import Backend
from workflow.documents.service import store_uploads
from workflow.ports import SpooledUpload

FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def _upload(tmp_path: Path) -> SpooledUpload:
    data = b"%PDF-1.4 test\n"
    path = tmp_path / "u.pdf"
    path.write_bytes(data)
    return SpooledUpload(
        path,
        "u.pdf",
        "application/pdf",
        "application/pdf",
        len(data),
        hashlib.sha256(data).hexdigest(),
        hashlib.md5(data, usedforsecurity=False).hexdigest(),
    )


def _stored_keys(backend: Backend) -> list[str]:
    return list(backend.container.blob_store.list_keys("blobs/", FAR_FUTURE))


def test_failure_before_commit_deletes_the_blob(backend: Backend, tmp_path: Path) -> None:
    uow = backend.container.uow()
    (stored,) = store_uploads(uow, backend.container.blob_store, [_upload(tmp_path)])
    assert _stored_keys(backend) == [stored.blob.key]
    # A row that cannot be inserted: the flush inside commit fails, nothing was committed.
    stored.blob.sha256 = None  # type: ignore[assignment]  # the column is NOT NULL
    with pytest.raises(IntegrityError):
        uow.commit()
    uow.close()
    assert _stored_keys(backend) == []


def test_failed_commit_keeps_the_blob_for_the_collector(
    sqlite_backend: Backend, tmp_path: Path
) -> None:
    """When COMMIT itself fails, the database may or may not have committed (a connection lost
    after sending it): the blob stays, and only the collector, which checks references, may
    remove it. Simulated with a deferred foreign key, which SQLite checks at COMMIT."""
    uow = sqlite_backend.container.uow()
    (stored,) = store_uploads(uow, sqlite_backend.container.blob_store, [_upload(tmp_path)])
    uow.flush()
    uow.session.execute(text("PRAGMA defer_foreign_keys = ON"))
    uow.session.execute(
        text("INSERT INTO departments (id, unit_id, code, name) VALUES (:id, :unit, 'X', 'x')"),
        {"id": uuid.uuid4().hex, "unit": uuid.uuid4().hex},
    )
    with pytest.raises(IntegrityError):
        uow.commit()
    uow.close()
    assert _stored_keys(sqlite_backend) == [stored.blob.key]
