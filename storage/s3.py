"""A blob store on S3 (MinIO, SeaweedFS or any S3 with Object Lock) through the `minio` client.

Each object is sent in one PUT; the client signs the body's SHA-256 (plain HTTP) or sends its
Content-MD5 (HTTPS), so the server refuses a corrupted body, and the returned ETag is compared
with the MD5 we computed while receiving. The SHA-256 is kept as object metadata for audits.
A failed PUT leaves no object under the key (S3 PUT is atomic).

Retention (WORM) is S3 Object Lock in COMPLIANCE mode: a bucket that ezd creates has Object Lock
enabled (which also turns on versioning), `lock` sets an object's retain-until date, and the
server refuses to delete a retained version; ezd refuses before asking. In such a bucket a
delete removes every version of the key, so nothing is left behind. ezd never writes to an
existing key (every key is new), so replacing a retained object cannot happen through it, and
on the server a PUT to the same key would only add a version: the retained one stays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import urllib3
import urllib3.connectionpool
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import MinioException, S3Error
from minio.retention import Retention

from workflow.ports import BlobIntegrityError, BlobLocked, BlobStoreUnavailable, SpooledUpload

_NO_LOCK_CONFIG = {"ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"}
_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)

CHUNK = 1024 * 1024
MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024
MIN_PART = 5 * 1024 * 1024
# How long to wait for the server's answer once a request is sent. A server that accepts
# connections but does not answer (hung, paused, cut off) must become a prompt refusal (503
# storage_failed), not a registration that hangs: 60 s, retried 3 times, held one for 4 minutes.
READ_TIMEOUT_S = 15


class _Retry(urllib3.Retry):
    """Retries what fails fast (a refused or dropped connection, a 5xx answer), never a read
    timeout: the server took the request and went silent, asking again only waits again."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: urllib3.BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: urllib3.connectionpool.ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise urllib3.exceptions.MaxRetryError(_pool, url, error) from error  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


class S3BlobStore:
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = True,
        region: str | None = None,
        prefix: str = "",
        pool_size: int = 32,
    ) -> None:
        http = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            timeout=urllib3.Timeout(connect=5, read=READ_TIMEOUT_S),
            retries=_Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self.bucket = bucket
        self.prefix = prefix  # lets several installations (or test runs) share a bucket
        self._object_lock: bool | None = None  # learnt from the bucket on first need

    def check(self) -> None:
        try:
            if not self.client.bucket_exists(self.bucket):
                # Object Lock can only be enabled when a bucket is made: the archive needs it.
                self.client.make_bucket(self.bucket, object_lock=True)
        except _ERRORS as e:
            raise BlobStoreUnavailable(f"S3 bucket {self.bucket}: {e}") from e

    def object_lock_enabled(self) -> bool:
        if self._object_lock is None:
            try:
                self.client.get_object_lock_config(self.bucket)
                self._object_lock = True
            except S3Error as e:
                if e.code not in _NO_LOCK_CONFIG:
                    raise BlobStoreUnavailable(f"S3 bucket {self.bucket}: {e}") from e
                self._object_lock = False
            except _ERRORS as e:
                raise BlobStoreUnavailable(f"S3 bucket {self.bucket}: {e}") from e
        return self._object_lock

    def lock(self, key: str, until: datetime) -> None:
        if not self.object_lock_enabled():
            raise BlobStoreUnavailable(
                f"S3 bucket {self.bucket} has no Object Lock: archived records cannot be retained"
            )
        current = self.locked_until(key)
        if current is not None and current >= until:
            return  # COMPLIANCE retention is never shortened
        try:
            self.client.set_object_retention(
                self.bucket, self.prefix + key, Retention(COMPLIANCE, until.astimezone(UTC))
            )
        except _ERRORS as e:
            raise BlobStoreUnavailable(f"lock {key}: {e}") from e

    def locked_until(self, key: str) -> datetime | None:
        if not self.object_lock_enabled():
            return None
        try:
            retention = self.client.get_object_retention(self.bucket, self.prefix + key)
        except S3Error as e:
            if e.code in _NO_LOCK_CONFIG or e.code == "NoSuchKey":
                return None
            raise BlobStoreUnavailable(f"retention of {key}: {e}") from e
        except _ERRORS as e:
            raise BlobStoreUnavailable(f"retention of {key}: {e}") from e
        until = retention.retain_until_date if retention is not None else None
        return until if until is not None and until > datetime.now(UTC) else None

    def put(self, key: str, upload: SpooledUpload) -> None:
        if upload.size > MAX_SINGLE_PUT:
            raise BlobStoreUnavailable("object too large for a single verified PUT")
        try:
            with open(upload.path, "rb") as f:
                result = self.client.put_object(
                    self.bucket,
                    self.prefix + key,
                    f,
                    length=upload.size,
                    content_type=upload.detected_type,
                    part_size=max(MIN_PART, upload.size),  # one PUT, never multipart
                    metadata={"sha256": upload.sha256},
                )
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as e:
            raise BlobStoreUnavailable(f"PUT {key}: {e}") from e
        etag = (result.etag or "").strip('"')
        if etag != upload.md5:
            self.delete(key)
            raise BlobIntegrityError(f"{key}: stored ETag {etag} differs from MD5 {upload.md5}")

    def open(self, key: str) -> Iterator[bytes]:
        # The GET is sent now, not on the first chunk: an unreachable server or a missing
        # object fails here, before a caller has started a response.
        try:
            resp = self.client.get_object(self.bucket, self.prefix + key)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as e:
            raise BlobStoreUnavailable(f"GET {key}: {e}") from e
        return _chunks(resp)

    def delete(self, key: str) -> None:
        until = self.locked_until(key)
        if until is not None:
            raise BlobLocked(key, until)
        name = self.prefix + key
        try:
            if not self.object_lock_enabled():
                self.client.remove_object(self.bucket, name)
                return
            # versioned (Object Lock) bucket: a plain DELETE would only add a delete marker
            for version in self.client.list_objects(self.bucket, prefix=name, include_version=True):
                if version.object_name == name:
                    self.client.remove_object(self.bucket, name, version_id=version.version_id)
        except S3Error as e:
            if e.code == "AccessDenied" or e.code == "InvalidRequest":
                # the server refused a retained version that ezd did not know was locked
                raise BlobLocked(key, datetime.max.replace(tzinfo=UTC)) from e
            if e.code != "NoSuchKey":
                raise BlobStoreUnavailable(f"DELETE {key}: {e}") from e
        except _ERRORS as e:
            raise BlobStoreUnavailable(f"DELETE {key}: {e}") from e

    def list_keys(self, prefix: str, older_than: datetime) -> Iterator[str]:
        start = len(self.prefix)
        try:
            for obj in self.client.list_objects(
                self.bucket, prefix=self.prefix + prefix, recursive=True
            ):
                if obj.object_name and obj.last_modified and obj.last_modified < older_than:
                    yield obj.object_name[start:]
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as e:
            raise BlobStoreUnavailable(f"LIST {prefix}: {e}") from e

    def remove_all(self) -> None:
        """For tests only: remove everything under this store's prefix that is not retained."""
        versioned = self.object_lock_enabled()
        for obj in self.client.list_objects(
            self.bucket, prefix=self.prefix, recursive=True, include_version=versioned
        ):
            if obj.object_name:
                with contextlib.suppress(S3Error):  # retained (WORM): it stays until its date
                    self.client.remove_object(
                        self.bucket, obj.object_name, version_id=obj.version_id
                    )


def _chunks(resp: Any) -> Iterator[bytes]:
    try:
        yield from resp.stream(CHUNK)
    finally:
        resp.close()
        resp.release_conn()
