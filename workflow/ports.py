"""Ports the core depends on; adapters live outside the core (storage/, search/) and are wired by
`api.bootstrap`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class SpooledUpload:
    """A received file, already hashed and size-checked, waiting in a local temporary file."""

    path: Path
    file_name: str
    declared_type: str | None
    detected_type: str
    size: int
    sha256: str
    md5: str


class BlobIntegrityError(Exception):
    """The store holds something other than what was sent."""


class BlobStoreUnavailable(Exception):
    """The store could not be reached or refused the operation."""


class BlobLocked(Exception):
    """The object is under retention (WORM) until `until`: it cannot be deleted or replaced."""

    def __init__(self, key: str, until: datetime) -> None:
        super().__init__(f"{key} is retained until {until.isoformat()}")
        self.key = key
        self.until = until


class BlobStore(Protocol):
    def put(self, key: str, upload: SpooledUpload) -> None:
        """Store the file under `key` and verify what was stored; raise BlobIntegrityError
        or BlobStoreUnavailable otherwise. Never leaves a partial object under `key`."""

    def open(self, key: str) -> Iterator[bytes]:
        """Stream the content in chunks."""

    def delete(self, key: str) -> None:
        """Remove the object; missing objects are fine."""

    def list_keys(self, prefix: str, older_than: datetime) -> Iterator[str]:
        """Keys under `prefix` last modified before `older_than`."""

    def check(self) -> None:
        """Make sure the store is usable (bucket or folder exists); raise otherwise."""

    def lock(self, key: str, until: datetime) -> None:
        """Retain the object (WORM) until `until`: deleting or replacing it is refused until
        then (S3 Object Lock in COMPLIANCE mode, or the same rule in code). A lock can be
        extended, never shortened or removed."""

    def locked_until(self, key: str) -> datetime | None:
        """The end of the object's retention if it is still in force, else None."""
