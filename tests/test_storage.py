"""The BlobStore port's contract, run against every adapter: the local folder, S3 on the SeaweedFS
test server, and (when configured) a MinIO server. Each S3 test works under its own key prefix
and removes what it stored."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from storage.local import LocalBlobStore
from storage.s3 import S3BlobStore
from tests.conftest import IN_CI, Backend, need_real_services
from tests.helpers import error_code, letter_meta, register, token
from workflow.audit.models import AuditEntry
from workflow.db import utcnow
from workflow.documents.models import Blob
from workflow.ports import BlobIntegrityError, BlobStore, BlobStoreUnavailable, SpooledUpload
from workflow.uow import UnitOfWork

FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
MB = 1024 * 1024


@dataclass
class Store:
    name: str
    store: BlobStore
    # Time between two puts so that their modification times are told apart reliably
    # (S3 servers may report Last-Modified in whole seconds).
    tick: float

    @property
    def s3(self) -> S3BlobStore | None:
        return self.store if isinstance(self.store, S3BlobStore) else None


def _seaweedfs(prefix: str, bucket: str | None = None) -> S3BlobStore:
    env = need_real_services()
    return S3BlobStore(
        env["EZD_TEST_S3_ENDPOINT"],
        env["EZD_TEST_S3_ACCESS_KEY"],
        env["EZD_TEST_S3_SECRET_KEY"],
        bucket or env["EZD_TEST_S3_BUCKET"],
        secure=os.environ.get("EZD_TEST_S3_SECURE", "false") == "true",
        prefix=prefix,
    )


def _minio_env() -> dict[str, str]:
    keys = ("EZD_TEST_MINIO_ENDPOINT", "EZD_TEST_MINIO_ACCESS_KEY", "EZD_TEST_MINIO_SECRET_KEY")
    env = {k: os.environ.get(k, "") for k in keys}
    if not all(env.values()):
        msg = "MinIO test server not configured (EZD_TEST_MINIO_*)"
        # `make test` builds and starts MinIO (EZD_WITH_MINIO=1): then it is required in CI.
        if IN_CI and os.environ.get("EZD_WITH_MINIO") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return env


def _minio(prefix: str, bucket: str | None = None) -> S3BlobStore:
    env = _minio_env()
    return S3BlobStore(
        env["EZD_TEST_MINIO_ENDPOINT"],
        env["EZD_TEST_MINIO_ACCESS_KEY"],
        env["EZD_TEST_MINIO_SECRET_KEY"],
        bucket or os.environ.get("EZD_TEST_MINIO_BUCKET", "ezd-test"),
        secure=os.environ.get("EZD_TEST_MINIO_SECURE", "false") == "true",
        prefix=prefix,
    )


@pytest.fixture(params=["local", "seaweedfs", "minio"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    prefix = f"t-{uuid.uuid4().hex}/"
    if request.param == "local":
        store = LocalBlobStore(tmp_path / "blobs")
        store.check()
        yield Store("local", store, 0.05)
        return
    s3 = _seaweedfs(prefix) if request.param == "seaweedfs" else _minio(prefix)
    s3.check()
    try:
        yield Store(request.param, s3, 1.1)
    finally:
        s3.remove_all()
        assert list(s3.list_keys("", FAR_FUTURE)) == []


def make_upload(
    tmp_path: Path,
    content: bytes,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    name: str = "plik.bin",
) -> SpooledUpload:
    path = tmp_path / f"upload-{uuid.uuid4().hex}"
    path.write_bytes(content)
    return SpooledUpload(
        path=path,
        file_name=name,
        declared_type="application/octet-stream",
        detected_type="application/octet-stream",
        size=len(content),
        sha256=sha256 or hashlib.sha256(content).hexdigest(),
        md5=md5 or hashlib.md5(content, usedforsecurity=False).hexdigest(),
    )


def read(store: BlobStore, key: str) -> bytes:
    return b"".join(store.open(key))


def keys(store: BlobStore, prefix: str = "", older_than: datetime = FAR_FUTURE) -> list[str]:
    return sorted(store.list_keys(prefix, older_than))


# --- the contract -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 1000, 3 * MB, 6 * MB + 7])
def test_put_then_open_returns_the_same_bytes(blobs: Store, tmp_path: Path, size: int) -> None:
    content = os.urandom(size)
    upload = make_upload(tmp_path, content)
    key = f"blobs/2026/11/{uuid.uuid4().hex}"
    blobs.store.put(key, upload)
    back = read(blobs.store, key)
    assert len(back) == size
    assert hashlib.sha256(back).hexdigest() == upload.sha256
    assert back == content
    assert keys(blobs.store) == [key]
    # The spooled file is the caller's: the store leaves it alone.
    assert upload.path.read_bytes() == content
    if blobs.s3:
        # S3 keeps the SHA-256 as object metadata (for audits) and the plain MD5 as ETag: one
        # PUT, never a multipart upload.
        stat = blobs.s3.client.stat_object(blobs.s3.bucket, blobs.s3.prefix + key)
        assert stat.metadata is not None
        assert stat.metadata.get("x-amz-meta-sha256") == upload.sha256
        assert (stat.etag or "").strip('"') == upload.md5
        assert stat.size == size


def test_open_streams_in_chunks(blobs: Store, tmp_path: Path) -> None:
    content = os.urandom(3 * MB + 1)
    blobs.store.put("blobs/big", make_upload(tmp_path, content))
    chunks = list(blobs.store.open("blobs/big"))
    assert len(chunks) >= 2
    assert max(len(c) for c in chunks) <= 2 * MB
    assert b"".join(chunks) == content


def test_put_with_wrong_sha256_is_refused_locally(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.check()
    content = b"registered content"
    bad = make_upload(tmp_path, content, sha256=hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(BlobIntegrityError):
        store.put("blobs/a/key", bad)
    assert keys(store) == []
    # Not even a temporary file is left behind.
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
    # The same content with its true digest goes in.
    store.put("blobs/a/key", make_upload(tmp_path, content))
    assert read(store, "blobs/a/key") == content


def test_put_with_wrong_digest_is_refused(blobs: Store, tmp_path: Path) -> None:
    content = os.urandom(4096)
    wrong = hashlib.md5(b"other", usedforsecurity=False).hexdigest()
    other_sha = hashlib.sha256(b"other").hexdigest()
    # Local stores check the SHA-256, S3 stores the MD5 against the ETag; a file whose
    # declared digests are both wrong is refused by every store.
    upload = make_upload(tmp_path, content, sha256=other_sha, md5=wrong)
    key = "blobs/wrong/digest"
    with pytest.raises(BlobIntegrityError):
        blobs.store.put(key, upload)
    assert keys(blobs.store) == []
    if blobs.s3:
        only_md5 = make_upload(tmp_path, content, md5=wrong)
        with pytest.raises(BlobIntegrityError, match="ETag"):
            blobs.store.put(key, only_md5)
        assert keys(blobs.store) == []
        with pytest.raises(BlobStoreUnavailable):
            read(blobs.store, key)


def test_open_fails_at_the_call_not_on_the_first_chunk(blobs: Store, tmp_path: Path) -> None:
    # So a caller learns that content is missing before it starts a response.
    with pytest.raises(BlobStoreUnavailable):
        blobs.store.open("blobs/never/stored")
    blobs.store.put("blobs/gone", make_upload(tmp_path, b"gone"))
    blobs.store.delete("blobs/gone")
    with pytest.raises(BlobStoreUnavailable):
        blobs.store.open("blobs/gone")


def test_put_overwrites_nothing_else(blobs: Store, tmp_path: Path) -> None:
    a, b = os.urandom(100), os.urandom(100)
    blobs.store.put("blobs/x/a", make_upload(tmp_path, a))
    blobs.store.put("blobs/x/b", make_upload(tmp_path, b))
    assert (read(blobs.store, "blobs/x/a"), read(blobs.store, "blobs/x/b")) == (a, b)


def test_delete_is_idempotent(blobs: Store, tmp_path: Path) -> None:
    blobs.store.put("blobs/d/1", make_upload(tmp_path, b"1"))
    blobs.store.put("blobs/d/2", make_upload(tmp_path, b"2"))
    blobs.store.delete("blobs/d/1")
    assert keys(blobs.store) == ["blobs/d/2"]
    blobs.store.delete("blobs/d/1")
    blobs.store.delete("blobs/never/stored")
    assert keys(blobs.store) == ["blobs/d/2"]
    assert read(blobs.store, "blobs/d/2") == b"2"


def test_list_keys_respects_prefix_and_age(blobs: Store, tmp_path: Path) -> None:
    s = blobs.store
    s.put("blobs/2026/10/old", make_upload(tmp_path, b"old"))
    s.put("other/2026/10/old", make_upload(tmp_path, b"other"))
    time.sleep(blobs.tick)
    cutoff = utcnow()
    time.sleep(blobs.tick)
    s.put("blobs/2026/11/new", make_upload(tmp_path, b"new"))

    assert keys(s, "blobs/") == ["blobs/2026/10/old", "blobs/2026/11/new"]
    assert keys(s, "blobs/", cutoff) == ["blobs/2026/10/old"]
    assert keys(s, "blobs/", FAR_PAST) == []
    assert keys(s, "blobs/2026/11/") == ["blobs/2026/11/new"]
    assert keys(s, "blobs/2026/11/", cutoff) == []
    assert keys(s, "other/") == ["other/2026/10/old"]
    assert keys(s, "") == ["blobs/2026/10/old", "blobs/2026/11/new", "other/2026/10/old"]
    assert keys(s, "nothing/") == []
    # The cutoff is an instant, whatever its time zone.
    local_cutoff = cutoff.astimezone(ZoneInfo("Europe/Warsaw"))
    assert keys(s, "blobs/", local_cutoff) == ["blobs/2026/10/old"]


def test_check_creates_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "yet" / "there"
    local = LocalBlobStore(folder)
    local.check()
    assert folder.is_dir()
    local.check()  # and again: nothing to do


@pytest.mark.parametrize("server", ["seaweedfs", "minio"])
def test_check_creates_the_bucket(server: str, tmp_path: Path) -> None:
    bucket = f"ezd-check-{uuid.uuid4().hex[:12]}"
    prefix = f"t-{uuid.uuid4().hex}/"
    store = _seaweedfs(prefix, bucket) if server == "seaweedfs" else _minio(prefix, bucket)
    assert not store.client.bucket_exists(bucket)
    try:
        store.check()
        assert store.client.bucket_exists(bucket)
        store.check()  # idempotent
        store.put("blobs/k", make_upload(tmp_path, b"x"))
        assert read(store, "blobs/k") == b"x"
    finally:
        if store.client.bucket_exists(bucket):
            store.remove_all()
            store.client.remove_bucket(bucket)
    assert not store.client.bucket_exists(bucket)


# Every escaping key points into this test's own tmp_path (never at a real system file): a
# broken guard must not be able to damage the machine the tests run on.
@pytest.mark.parametrize(
    "key", ["../x", "../../x", "blobs/../../x", "/ABSOLUTE/x", "", ".", "blobs/.."]
)
def test_local_store_refuses_keys_outside_its_folder(tmp_path: Path, key: str) -> None:
    key = key.replace("/ABSOLUTE", str(tmp_path))
    root = tmp_path / "store" / "blobs"
    store = LocalBlobStore(root)
    store.check()
    (tmp_path / "store" / "x").write_bytes(b"outside")
    upload = make_upload(tmp_path, b"payload")
    with pytest.raises(ValueError, match="escapes"):
        store.put(key, upload)
    with pytest.raises(ValueError, match="escapes"):
        read(store, key)
    with pytest.raises(ValueError, match="escapes"):
        store.delete(key)
    assert (tmp_path / "store" / "x").read_bytes() == b"outside"
    assert not (tmp_path / "x").exists() and not (tmp_path / "store" / "payload").exists()
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_local_store_collects_stale_partial_writes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.check()
    store.put("blobs/a/done", make_upload(tmp_path, b"done"))
    stale = tmp_path / "blobs" / "blobs" / "a" / ".crashed.part"
    stale.write_bytes(b"half")
    fresh = tmp_path / "blobs" / "blobs" / "a" / ".inflight.part"
    fresh.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    cutoff = utcnow() - timedelta(hours=1)
    assert keys(store, "blobs/", cutoff) == []
    assert not stale.exists()  # an interrupted write older than the grace period is removed
    assert fresh.exists()  # one that may still be in flight is not
    assert keys(store, "blobs/") == ["blobs/a/done"]


# --- an unreachable S3 server -------------------------------------------------------------


def test_unreachable_s3_raises_unavailable_quickly(tmp_path: Path) -> None:
    store = S3BlobStore("127.0.0.1:1", "access", "secret", "bucket", secure=False)
    upload = make_upload(tmp_path, b"x")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("check", store.check),
        ("put", lambda: store.put("blobs/k", upload)),
        ("open", lambda: store.open("blobs/k")),
        ("delete", lambda: store.delete("blobs/k")),
        ("list_keys", lambda: keys(store, "blobs/")),
    ]
    for name, call in calls:
        started = time.monotonic()
        with pytest.raises(BlobStoreUnavailable):
            call()
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"{name} took {elapsed:.1f} s"


# --- the API when content cannot be read --------------------------------------------------


def test_download_of_unreadable_content_is_503_not_a_broken_200(
    backend: Backend, client: TestClient
) -> None:
    h = token(client, "clerk.sp58")
    r = register(client, h, letter_meta())
    assert r.status_code == 201, r.text
    doc = r.json()["documents"][0]["id"]
    with backend.container.uow() as uow:
        (key,) = uow.session.execute(select(Blob.key)).scalars().all()
        reads_before = _content_reads(uow)
    backend.container.blob_store.delete(key)  # the blob is lost (or the store is down)

    r = client.get(f"/api/v1/documents/{doc}/versions/1/content", headers=h)
    assert r.status_code == 503, (r.status_code, r.headers, r.content)
    assert error_code(r) == "storage_failed"
    assert "x-content-sha256" not in r.headers
    with backend.container.uow() as uow:
        assert _content_reads(uow) == reads_before  # a failed read is not logged as a read


def _content_reads(uow: UnitOfWork) -> int:
    return int(
        uow.session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "document.content_read")
        ).scalar_one()
    )
