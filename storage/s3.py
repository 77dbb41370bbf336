"""A blob store on S3 (MinIO, SeaweedFS or any S3 with Object Lock) through the `minio` client.

Each object is sent in one PUT; the client signs the body's SHA-256 (plain HTTP) or sends its
Content-MD5 (HTTPS), so the server refuses a corrupted body, and the returned ETag is compared
with the MD5 we computed while receiving. The SHA-256 is kept as object metadata for audits.
A failed PUT leaves no object under the key (S3 PUT is atomic).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from workflow.ports import BlobIntegrityError, BlobStoreUnavailable, SpooledUpload

CHUNK = 1024 * 1024
MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024
MIN_PART = 5 * 1024 * 1024


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
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
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

    def check(self) -> None:
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as e:
            raise BlobStoreUnavailable(f"S3 bucket {self.bucket}: {e}") from e

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
        try:
            self.client.remove_object(self.bucket, self.prefix + key)
        except S3Error as e:
            if e.code != "NoSuchKey":
                raise BlobStoreUnavailable(f"DELETE {key}: {e}") from e
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as e:
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
        """For tests only: remove everything under this store's prefix."""
        for obj in self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True):
            if obj.object_name:
                self.client.remove_object(self.bucket, obj.object_name)


def _chunks(resp: Any) -> Iterator[bytes]:
    try:
        yield from resp.stream(CHUNK)
    finally:
        resp.close()
        resp.release_conn()
