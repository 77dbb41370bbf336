"""A blob store in a local folder, for the embedded mode.

Writes go to a temporary file in the same folder, are hashed again while copied, fsynced, and
renamed into place, so a key never points at a partial file.

Retention (WORM) is enforced in code, as S3 Object Lock would: a locked object's end of
retention is kept in a sidecar file `.<name>.lock` beside it, and `delete` and `put` refuse the
object until then; the file itself is made read-only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from workflow.ports import BlobIntegrityError, BlobLocked, BlobStoreUnavailable, SpooledUpload

CHUNK = 1024 * 1024


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise BlobStoreUnavailable(f"blob folder {self.root} is not writable")

    def _lock_path(self, key: str) -> Path:
        path = self._path(key)
        return path.with_name(f".{path.name}.lock")

    def locked_until(self, key: str) -> datetime | None:
        lock = self._lock_path(key)
        try:
            until = datetime.fromisoformat(lock.read_text().strip())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            # an unreadable lock must not read as "unlocked"
            raise BlobStoreUnavailable(f"lock of {key}: {e}") from e
        return until if until > datetime.now(UTC) else None

    def _refuse_if_locked(self, key: str) -> None:
        until = self.locked_until(key)
        if until is not None:
            raise BlobLocked(key, until)

    def lock(self, key: str, until: datetime) -> None:
        path, lock = self._path(key), self._lock_path(key)
        if not path.exists():
            raise BlobStoreUnavailable(f"lock {key}: no such object")
        current = self.locked_until(key)
        if current is not None and current >= until:
            return  # never shortened
        tmp = lock.with_name(lock.name + ".part")
        try:
            tmp.write_text(until.astimezone(UTC).isoformat())
            os.replace(tmp, lock)
            path.chmod(0o444)
        except OSError as e:
            raise BlobStoreUnavailable(f"lock {key}: {e}") from e

    def put(self, key: str, upload: SpooledUpload) -> None:
        self._refuse_if_locked(key)
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            digest = hashlib.sha256()
            with open(upload.path, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if digest.hexdigest() != upload.sha256:
                tmp.unlink(missing_ok=True)
                raise BlobIntegrityError(f"{key}: content changed while stored")
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise BlobStoreUnavailable(str(e)) from e

    def open(self, key: str) -> Iterator[bytes]:
        # Opened now, not on the first chunk: a missing or unreadable file fails here, before
        # a caller has started a response.
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 (closed by _chunks)
        except OSError as e:
            raise BlobStoreUnavailable(f"open {key}: {e}") from e
        return _chunks(f)

    def delete(self, key: str) -> None:
        self._refuse_if_locked(key)
        self._path(key).unlink(missing_ok=True)
        self._lock_path(key).unlink(missing_ok=True)  # an expired lock

    def list_keys(self, prefix: str, older_than: datetime) -> Iterator[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.exists():
            return
        cutoff = older_than.astimezone(UTC).timestamp()
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                path = Path(dirpath) / name
                if name.startswith(".") and name.endswith(".lock"):
                    continue  # a retention sidecar, not an object
                if name.startswith(".") and name.endswith(".part"):
                    # An interrupted write; collected with the same grace period.
                    if path.stat().st_mtime < cutoff:
                        path.unlink(missing_ok=True)
                    continue
                if path.stat().st_mtime < cutoff:
                    yield path.relative_to(self.root).as_posix()

    def remove_all(self) -> None:
        """For tests only: empty the folder."""
        shutil.rmtree(self.root, ignore_errors=True)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk
