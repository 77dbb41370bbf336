"""Streaming multipart/form-data reader for uploads.

Starlette buffers whole files before a handler runs; this reader instead hashes (SHA-256 and MD5)
and counts each file part while it arrives and refuses it with 413 the moment it passes the size
limit. Files are spooled to temporary files; the caller deletes them (`ParsedForm.cleanup`).
File names and declared types are checked here too, so bad input is refused before anything is
stored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import IO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from workflow.documents.filetypes import SNIFF_BYTES, reconcile
from workflow.errors import PayloadTooLarge, ValidationFailed
from workflow.ports import SpooledUpload

MAX_FIELD_BYTES = 256 * 1024  # one form field, and all of them together
MAX_FILE_NAME_BYTES = 255


@dataclass
class ParsedForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[SpooledUpload] = field(default_factory=list)
    _temp_paths: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        for p in self._temp_paths:
            p.unlink(missing_ok=True)
        self._temp_paths.clear()


def check_file_name(raw: str) -> str:
    name = unicodedata.normalize("NFC", raw).strip()
    bad = (
        not name
        or name in (".", "..")
        or any(c in name for c in "/\\")
        or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name)
        or len(name.encode("utf-8")) > MAX_FILE_NAME_BYTES
    )
    if bad:
        raise ValidationFailed(
            "Nazwa pliku jest niedozwolona (ścieżka, znaki sterujące lub zbyt długa).",
            "The file name is not allowed (a path, control characters or too long).",
            code="invalid_file_name",
            details={"file_name": raw[:300]},
        )
    return name


class _Part:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.name: str | None = None
        self.file_name: str | None = None
        self.declared_type: str | None = None
        self.buffer = bytearray()
        self.file: IO[bytes] | None = None
        self.path: Path | None = None
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.head = bytearray()


async def read_multipart(
    request: Request, *, max_file_bytes: int, max_files: int, spool_dir: Path | None = None
) -> ParsedForm:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise ValidationFailed(
            "Oczekiwano multipart/form-data.",
            "Expected multipart/form-data.",
            code="multipart_expected",
        )
    declared_length = request.headers.get("content-length")
    overall_limit = max_files * (max_file_bytes + 16 * 1024) + MAX_FIELD_BYTES
    if declared_length and declared_length.isdigit() and int(declared_length) > overall_limit:
        raise PayloadTooLarge(details={"limit_bytes": max_file_bytes})

    form = ParsedForm()
    header_field = bytearray()
    header_value = bytearray()
    current: list[_Part] = []
    field_bytes = [0]  # all non-file parts of the request, so many small fields cannot pile up

    def on_part_begin() -> None:
        current.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        current[-1].headers[header_field.decode("latin-1").lower()] = header_value.decode(
            "utf-8", "replace"
        )
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        part = current[-1]
        msg = Message()
        msg["content-disposition"] = part.headers.get("content-disposition", "")
        name = msg.get_param("name", header="content-disposition")
        part.name = name if isinstance(name, str) else None
        raw_file_name = msg.get_filename()
        if raw_file_name is not None:
            if len(form.files) + 1 > max_files:
                raise ValidationFailed(
                    f"Najwyżej {max_files} plików w jednym zgłoszeniu.",
                    f"At most {max_files} files per submission.",
                    code="too_many_files",
                )
            part.file_name = check_file_name(raw_file_name)
            part.declared_type = part.headers.get("content-type")
            fd, tmp = tempfile.mkstemp(prefix="ezd-upload-", dir=spool_dir)
            part.path = Path(tmp)
            form._temp_paths.append(part.path)
            part.file = os.fdopen(fd, "wb")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = current[-1]
        chunk = data[start:end]
        if part.file is None:
            part.buffer.extend(chunk)
            field_bytes[0] += len(chunk)
            if field_bytes[0] > MAX_FIELD_BYTES:
                raise ValidationFailed(
                    "Pole formularza jest zbyt duże.",
                    "A form field is too large.",
                    code="field_too_large",
                )
            return
        part.size += len(chunk)
        if part.size > max_file_bytes:
            raise PayloadTooLarge(
                f"Plik „{part.file_name}” przekracza limit {max_file_bytes} bajtów.",
                f"File '{part.file_name}' exceeds the limit of {max_file_bytes} bytes.",
                details={"file_name": part.file_name, "limit_bytes": max_file_bytes},
            )
        if len(part.head) < SNIFF_BYTES:
            part.head.extend(chunk[: SNIFF_BYTES - len(part.head)])
        part.sha256.update(chunk)
        part.md5.update(chunk)
        part.file.write(chunk)

    def on_part_end() -> None:
        part = current.pop()
        if part.file is None:
            if part.name:
                form.fields[part.name] = part.buffer.decode("utf-8", "replace")
            return
        part.file.close()
        assert part.path is not None and part.file_name is not None
        if part.size == 0:
            raise ValidationFailed(
                f"Plik „{part.file_name}” jest pusty.",
                f"File '{part.file_name}' is empty.",
                code="empty_file",
                details={"file_name": part.file_name},
            )
        detected, honest = reconcile(part.declared_type, bytes(part.head))
        if not honest:
            raise ValidationFailed(
                f"Plik „{part.file_name}” nie jest typu {part.declared_type} "
                f"(rozpoznano {detected}).",
                f"File '{part.file_name}' is not {part.declared_type} (detected {detected}).",
                code="content_type_mismatch",
                details={
                    "file_name": part.file_name,
                    "declared": part.declared_type,
                    "detected": detected,
                },
            )
        form.files.append(
            SpooledUpload(
                path=part.path,
                file_name=part.file_name,
                declared_type=part.declared_type,
                detected_type=detected,
                size=part.size,
                sha256=part.sha256.hexdigest(),
                md5=part.md5.hexdigest(),
            )
        )

    parser = MultipartParser(
        params[b"boundary"],
        {  # type: ignore[arg-type]
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except (PayloadTooLarge, ValidationFailed):
        _close_open(current)
        form.cleanup()
        raise
    except Exception as e:
        _close_open(current)
        form.cleanup()
        raise ValidationFailed(
            "Niepoprawne dane multipart.",
            "Malformed multipart data.",
            code="malformed_multipart",
            details={"reason": str(e)[:200]},
        ) from e
    if current:
        _close_open(current)
        form.cleanup()
        raise ValidationFailed(
            "Niepełne dane multipart.", "Truncated multipart data.", code="malformed_multipart"
        )
    return form


def _close_open(parts: list[_Part]) -> None:
    for p in parts:
        if p.file is not None and not p.file.closed:
            p.file.close()
