"""Blobs and crashes (invariant 1): content is stored before the rows that reference it. A rollback
deletes what the request stored (compensation); a crash between storing and committing leaves a
stray blob, which the collector removes once it is older than the grace period — through
`collect_stray_blobs`, the worker's periodic 'blobs.collect' job and `ezd blobs collect`. Blobs of
committed rows are never collected, and every removal is audited.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from storage.local import LocalBlobStore
from tests.cli import run_ezd
from tests.conftest import Backend
from tests.helpers import PDF, PNG, error_code, letter_meta, register, token
from workflow.audit.models import AuditEntry
from workflow.audit.repository import AuditRepository
from workflow.audit.service import verify_chain
from workflow.documents.models import Blob
from workflow.documents.service import collect_stray_blobs, new_blob_key
from workflow.org.repository import OrgRepository
from workflow.org.service import principal_for
from workflow.outbox.models import OutboxEvent
from workflow.ports import BlobStore, BlobStoreUnavailable, SpooledUpload
from workflow.principal import Principal
from workflow.registry.models import IncomingItem
from workflow.registry.schemas import RegisterIncoming
from workflow.registry.service import register_incoming_item
from workflow.uow import UnitOfWork

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


# --- helpers -------------------------------------------------------------------------------


def stored_keys(store: BlobStore) -> set[str]:
    """Every object under blobs/, whatever its age."""
    return set(store.list_keys("blobs/", FAR_FUTURE))


def referenced_keys(backend: Backend) -> set[str]:
    with backend.container.session_factory() as s:
        return set(s.execute(select(Blob.key)).scalars())


def incoming_count(backend: Backend) -> int:
    with backend.container.session_factory() as s:
        return int(s.execute(select(func.count()).select_from(IncomingItem)).scalar_one())


def collected_audit(backend: Backend) -> list[tuple[str, str, dict[str, Any]]]:
    with backend.container.session_factory() as s:
        rows = s.execute(
            select(AuditEntry.object_id, AuditEntry.actor_name, AuditEntry.details)
            .where(AuditEntry.action == "blob.collected")
            .order_by(AuditEntry.seq)
        ).all()
    return [(r.object_id, r.actor_name, r.details) for r in rows]


def chain_length(backend: Backend) -> int:
    with backend.container.session_factory() as s:
        return int(s.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def chain_ok(backend: Backend) -> bool:
    with backend.container.uow() as uow:
        return verify_chain(AuditRepository(uow.session)).ok


def make_upload(
    tmp_path: Path,
    content: bytes = PDF,
    name: str = "skan.pdf",
    media_type: str = "application/pdf",
) -> SpooledUpload:
    path = tmp_path / f"upload-{hashlib.md5(content + name.encode()).hexdigest()}"
    path.write_bytes(content)
    return SpooledUpload(
        path=path,
        file_name=name,
        declared_type=media_type,
        detected_type=media_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        md5=hashlib.md5(content).hexdigest(),
    )


def put_stray(backend: Backend, tmp_path: Path, content: bytes) -> str:
    key = new_blob_key()
    backend.container.blob_store.put(
        key, make_upload(tmp_path, content, "stray.bin", "application/octet-stream")
    )
    return key


def collect(backend: Backend, grace: timedelta) -> int:
    with backend.container.uow() as uow:
        n = collect_stray_blobs(uow, backend.container.blob_store, grace)
        uow.commit()
    return n


def clerk(backend: Backend) -> Principal:
    with backend.container.session_factory() as s:
        repo = OrgRepository(s)
        user = repo.user_by_username("clerk.sp58")
        assert user is not None
        return principal_for(repo, user)


def command(**overrides: Any) -> RegisterIncoming:
    return RegisterIncoming.model_validate(letter_meta(unit="SP58", **overrides))


class WrappedStore:
    """Delegates to the real store; subclasses break `put` in a chosen way."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.puts: list[str] = []

    def put(self, key: str, upload: SpooledUpload) -> None:
        self.inner.put(key, upload)
        self.puts.append(key)

    def open(self, key: str) -> Iterator[bytes]:
        return self.inner.open(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list_keys(self, prefix: str, older_than: datetime) -> Iterator[str]:
        return self.inner.list_keys(prefix, older_than)

    def check(self) -> None:
        self.inner.check()


@contextmanager
def store_swapped(backend: Backend, store: BlobStore) -> Iterator[None]:
    original = backend.container.blob_store
    backend.container.blob_store = store
    try:
        yield
    finally:
        backend.container.blob_store = original


# --- the collector --------------------------------------------------------------------------


def test_collector_removes_old_strays_only(
    backend: Backend, client: TestClient, tmp_path: Path
) -> None:
    store = backend.container.blob_store
    h = token(client, "clerk.sp58")
    r = register(
        client,
        h,
        letter_meta(),
        [("wniosek.pdf", PDF, "application/pdf"), ("skan.png", PNG, "image/png")],
    )
    assert r.status_code == 201, r.text
    referenced = referenced_keys(backend)
    assert len(referenced) == 2 and stored_keys(store) == referenced

    old = put_stray(backend, tmp_path, b"left behind by a crash")
    if backend.is_postgres:
        # S3 keeps last-modified to the (truncated) second: let the old one age past a short
        # grace; the young one stays younger than it by more than a second of slack.
        grace = timedelta(seconds=2.4)
        time.sleep(3.5)
    else:
        grace = timedelta(hours=1)
        two_hours_ago = time.time() - 7200
        os.utime(Path(backend.settings.blob_dir) / old, (two_hours_ago, two_hours_ago))
    young = put_stray(backend, tmp_path, b"a request still in flight")

    assert collect(backend, grace) == 1
    assert stored_keys(store) == referenced | {young}
    assert collected_audit(backend) == [(old, "ezd (system)", {"reason": "no committed reference"})]

    # Nothing more to do with the same grace; once the young one is old enough, it goes too.
    assert collect(backend, grace) == 0
    assert collect(backend, timedelta(0)) == 1
    assert stored_keys(store) == referenced
    assert [k for k, _, _ in collected_audit(backend)] == [old, young]
    assert chain_ok(backend)

    # The registered content is untouched.
    doc = r.json()["documents"][0]
    c = client.get(f"/api/v1/documents/{doc['id']}/versions/1/content", headers=h)
    assert c.status_code == 200 and c.content == PDF


@pytest.mark.settings(blob_gc_grace_seconds=0)
def test_worker_periodic_job_collects_strays(
    backend: Backend, client: TestClient, tmp_path: Path
) -> None:
    store = backend.container.blob_store
    r = register(client, token(client, "clerk.sp58"), letter_meta())
    assert r.status_code == 201, r.text
    referenced = referenced_keys(backend)
    stray = put_stray(backend, tmp_path, b"stray")

    worker = backend.container.worker
    while worker.run_once():  # the registration's own events (search indexing) first
        pass
    worker.schedule_periodic()
    worker.schedule_periodic()  # several workers schedule the same slot once
    assert worker.run_once() == 1
    assert stored_keys(store) == referenced
    assert [k for k, _, _ in collected_audit(backend)] == [stray]
    with backend.container.session_factory() as s:
        jobs = (
            s.execute(select(OutboxEvent).where(OutboxEvent.topic == "blobs.collect"))
            .scalars()
            .all()
        )
    assert [(j.status, j.attempts) for j in jobs] == [("done", 1)]


def test_interrupted_local_write_is_collected_after_grace(tmp_path: Path) -> None:
    """The local store writes to a hidden .part file first; a crash mid-write leaves it."""
    store = LocalBlobStore(tmp_path / "blobs-root")
    folder = store.root / "blobs" / "2026" / "11"
    folder.mkdir(parents=True)
    old, young = folder / ".aaaa.part", folder / ".bbbb.part"
    old.write_bytes(b"half a fi")
    young.write_bytes(b"being writ")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    cutoff = datetime.now(UTC) - timedelta(minutes=10)
    assert list(store.list_keys("blobs/", cutoff)) == []  # never offered as a blob key
    assert not old.exists() and young.exists()


# --- crash between storing and committing -----------------------------------------------------


def test_crash_before_commit_leaves_only_a_stray_blob(backend: Backend, tmp_path: Path) -> None:
    store = backend.container.blob_store
    audit_before = chain_length(backend)
    uow = UnitOfWork(backend.container.session_factory, clerk(backend))
    result = register_incoming_item(uow, store, command(), [make_upload(tmp_path)])
    assert result.item.rpw_number.startswith("RPW/1/")
    stored = stored_keys(store)
    assert len(stored) == 1

    # The process dies here: the database drops the open transaction, and no rollback
    # compensation (blob deletion) ever runs.
    uow.session.close()
    del uow

    assert incoming_count(backend) == 0
    assert referenced_keys(backend) == set()
    assert chain_length(backend) == audit_before
    assert stored_keys(store) == stored  # the stray blob is still there ...

    assert collect(backend, timedelta(hours=1)) == 0  # ... for the grace period
    assert collect(backend, timedelta(0)) == 1
    assert stored_keys(store) == set()
    assert [k for k, _, _ in collected_audit(backend)] == sorted(stored)

    # The numbers the dead transaction took were never committed: no gap.
    with UnitOfWork(backend.container.session_factory, clerk(backend)) as again:
        result = register_incoming_item(again, store, command(), [make_upload(tmp_path)])
        again.commit()
    assert result.item.rpw_number.startswith("RPW/1/")


# --- rollback deletes what was stored ---------------------------------------------------------


def test_rollback_after_storing_deletes_the_blobs(backend: Backend, tmp_path: Path) -> None:
    store = backend.container.blob_store
    uploads = [make_upload(tmp_path), make_upload(tmp_path, PNG, "foto.png", "image/png")]
    with (
        pytest.raises(RuntimeError, match="after storing"),
        UnitOfWork(backend.container.session_factory, clerk(backend)) as uow,
    ):
        register_incoming_item(uow, store, command(), uploads)
        assert len(stored_keys(store)) == 2
        raise RuntimeError("something failed after storing")
    assert stored_keys(store) == set()
    assert incoming_count(backend) == 0


class SecondPutFails(WrappedStore):
    """Stores every file, but reports a failure for the second one (worst case: the object
    may exist although the store said no)."""

    def put(self, key: str, upload: SpooledUpload) -> None:
        super().put(key, upload)
        if len(self.puts) == 2:
            raise BlobStoreUnavailable("connection reset after upload")


def test_http_registration_failing_after_a_stored_blob_deletes_it(
    backend: Backend, client: TestClient
) -> None:
    h = token(client, "clerk.sp58")
    audit_before = chain_length(backend)
    failing = SecondPutFails(backend.container.blob_store)
    with store_swapped(backend, failing):
        r = register(
            client,
            h,
            letter_meta(),
            [
                ("a.pdf", PDF, "application/pdf"),
                ("b.png", PNG, "image/png"),
                ("c.pdf", PDF + b"%c\n", "application/pdf"),
            ],
        )
    assert r.status_code == 503, r.text
    assert error_code(r) == "storage_failed"
    assert len(failing.puts) == 2  # the first file was stored, the second "failed"
    assert stored_keys(backend.container.blob_store) == set()
    assert incoming_count(backend) == 0
    assert chain_length(backend) == audit_before


def test_duplicate_idempotency_key_leaves_no_blob(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    key = {"Idempotency-Key": "letter-2026-0001"}
    first = register(client, h, letter_meta(), extra_headers=key)
    assert first.status_code == 201, first.text
    kept = stored_keys(backend.container.blob_store)
    assert len(kept) == 1
    again = register(client, h, letter_meta(), extra_headers=key)
    assert again.status_code == 409, again.text
    assert error_code(again) == "duplicate_submission"
    assert stored_keys(backend.container.blob_store) == kept == referenced_keys(backend)
    assert incoming_count(backend) == 1


class TwinCommitsDuringPut(WrappedStore):
    """While the request stores its file, an identical submission (same user, same
    Idempotency-Key) commits: the request's insert then fails in the database."""

    def __init__(self, inner: BlobStore, twin: Any) -> None:
        super().__init__(inner)
        self.twin = twin

    def put(self, key: str, upload: SpooledUpload) -> None:
        super().put(key, upload)
        if len(self.puts) == 1:
            self.twin()


def test_database_error_after_storing_deletes_the_blob(pg_backend: Backend, tmp_path: Path) -> None:
    """PostgreSQL only: on SQLite the request holds the write lock, so no twin can commit."""
    backend = pg_backend
    inner = backend.container.blob_store
    idem = "twin-42"
    twins: list[str] = []

    def twin() -> None:
        with UnitOfWork(backend.container.session_factory, clerk(backend)) as uow:
            done = register_incoming_item(uow, inner, command(), [make_upload(tmp_path)], idem)
            uow.commit()
        twins.append(done.item.rpw_number)

    racing = TwinCommitsDuringPut(inner, twin)
    with backend.client() as client, store_swapped(backend, racing):
        h = token(client, "clerk.sp58")
        r = register(client, h, letter_meta(), extra_headers={"Idempotency-Key": idem})
    assert r.status_code == 409, r.text
    assert error_code(r) == "duplicate_submission"
    assert r.json()["error"]["details"]["rpw_number"] == twins[0]
    assert len(racing.puts) == 1
    # The request's own blob was deleted; the twin's stays with its committed row.
    assert racing.puts[0] not in stored_keys(inner)
    assert stored_keys(inner) == referenced_keys(backend)
    assert len(referenced_keys(backend)) == 1
    assert incoming_count(backend) == 1
    assert chain_ok(backend)


# --- the CLI --------------------------------------------------------------------------------


def test_cli_blobs_collect(backend: Backend, client: TestClient, tmp_path: Path) -> None:
    store = backend.container.blob_store
    r = register(client, token(client, "clerk.sp58"), letter_meta())
    assert r.status_code == 201, r.text
    referenced = referenced_keys(backend)
    strays = sorted(put_stray(backend, tmp_path, f"stray {i}".encode()) for i in range(2))

    p = run_ezd(backend, "blobs", "collect", EZD_BLOB_GC_GRACE_SECONDS="0")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "removed 2 stray blobs" in p.stdout
    assert stored_keys(store) == referenced
    assert sorted(k for k, _, _ in collected_audit(backend)) == strays
    assert chain_ok(backend)
