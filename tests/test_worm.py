"""WORM retention of archived blobs (BlobStore.lock): on the real S3 servers (SeaweedFS, and
MinIO when it runs) with Object Lock in COMPLIANCE mode, and the same rule in code in the local
store. Deleting or replacing a retained object is refused — by ezd, and on S3 by the server
itself when asked directly — and an expired retention lets it go."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio.error import S3Error

from storage.local import LocalBlobStore
from storage.s3 import S3BlobStore
from tests.test_storage import Store, _minio, _seaweedfs, make_upload, read
from workflow.ports import BlobLocked, BlobStoreUnavailable

WORM_BUCKET = "ezd-test-worm"


def _worm_store(kind: str, tmp_path: Path) -> Iterator[Store]:
    prefix = f"t-{uuid.uuid4().hex}/"
    if kind == "local":
        store = LocalBlobStore(tmp_path / "blobs")
        store.check()
        yield Store("local", store, 0.05)
        return
    make = _seaweedfs if kind == "seaweedfs" else _minio
    s3 = make(prefix, WORM_BUCKET)
    s3.check()  # creates the bucket with Object Lock
    try:
        yield Store(kind, s3, 1.1)
    finally:
        s3.remove_all()  # what is still retained stays until its date


@pytest.fixture(params=["local", "seaweedfs", "minio"])
def worm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from _worm_store(request.param, tmp_path)


@pytest.fixture(params=["seaweedfs", "minio"])
def worm_s3(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The real S3 servers only: what the server itself refuses."""
    yield from _worm_store(request.param, tmp_path)


def test_a_retained_object_cannot_be_deleted_or_replaced(worm: Store, tmp_path: Path) -> None:
    store = worm.store
    key = f"blobs/2026/11/{uuid.uuid4().hex}"
    store.put(key, make_upload(tmp_path, b"akta kategorii A"))
    until = datetime.now(UTC) + timedelta(days=2)
    store.lock(key, until)
    locked = store.locked_until(key)
    assert locked is not None and abs((locked - until).total_seconds()) < 1
    with pytest.raises(BlobLocked) as refused:
        store.delete(key)
    assert refused.value.key == key
    if worm.name == "local":
        # (ezd never writes to an existing key; on S3 a PUT would only add a version, below)
        with pytest.raises(BlobLocked):
            store.put(key, make_upload(tmp_path, b"podmieniona tresc"))
    assert read(store, key) == b"akta kategorii A"
    # A lock is never shortened.
    store.lock(key, datetime.now(UTC) + timedelta(hours=1))
    assert store.locked_until(key) == locked


def test_the_s3_server_itself_refuses_deleting_a_retained_version(
    worm_s3: Store, tmp_path: Path
) -> None:
    """Going around ezd: the server keeps the retained version (COMPLIANCE mode)."""
    s3 = worm_s3.s3
    assert s3 is not None
    key = f"blobs/2026/11/{uuid.uuid4().hex}"
    s3.put(key, make_upload(tmp_path, b"oryginal"))
    s3.lock(key, datetime.now(UTC) + timedelta(days=2))
    name = s3.prefix + key
    (version,) = [
        v.version_id
        for v in s3.client.list_objects(s3.bucket, prefix=name, include_version=True)
        if v.object_name == name
    ]
    with pytest.raises(S3Error):
        s3.client.remove_object(s3.bucket, name, version_id=version)
    # An overwrite through the raw client only adds a version: the retained one is intact.
    s3.client.put_object(s3.bucket, name, io.BytesIO(b"podmiana"), 8)
    original = s3.client.get_object(s3.bucket, name, version_id=version)
    try:
        assert original.read() == b"oryginal"
    finally:
        original.close()
        original.release_conn()


def test_an_expired_retention_lets_the_object_go(worm: Store, tmp_path: Path) -> None:
    store = worm.store
    key = f"blobs/2026/11/{uuid.uuid4().hex}"
    store.put(key, make_upload(tmp_path, b"kategoria B"))
    store.lock(key, datetime.now(UTC) + timedelta(seconds=2))
    with pytest.raises(BlobLocked):
        store.delete(key)
    time.sleep(3)
    assert store.locked_until(key) is None
    store.delete(key)
    with pytest.raises(BlobStoreUnavailable):
        read(store, key)


def test_a_bucket_without_object_lock_refuses_to_retain(tmp_path: Path) -> None:
    s3 = _seaweedfs(f"t-{uuid.uuid4().hex}/")  # the main test bucket, made without Object Lock
    s3.check()
    key = f"blobs/{uuid.uuid4().hex}"
    s3.put(key, make_upload(tmp_path, b"x"))
    try:
        with pytest.raises(BlobStoreUnavailable, match="no Object Lock"):
            s3.lock(key, datetime.now(UTC) + timedelta(days=1))
        assert isinstance(s3, S3BlobStore) and s3.locked_until(key) is None
    finally:
        s3.remove_all()
