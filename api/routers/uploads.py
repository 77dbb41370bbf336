"""Shared handling of multipart uploads: read (streaming, limited), parse the `meta` part with a
core command schema, always delete the spooled files afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from api.deps import container
from api.errors import validation_details
from api.multipart import ParsedForm, read_multipart
from workflow.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


@asynccontextmanager
async def multipart_upload(request: Request) -> AsyncIterator[ParsedForm]:
    settings = container(request).settings
    form = await read_multipart(
        request, max_file_bytes=settings.max_upload_bytes, max_files=settings.max_files_per_item
    )
    try:
        yield form
    finally:
        form.cleanup()


def parse_meta(form: ParsedForm, model: type[M], *, required: bool = True) -> M:
    raw = form.fields.get("meta")
    if raw is None:
        if not required:
            return model()
        raise ValidationFailed(
            "Brak części „meta” z danymi w formacie JSON.",
            "The 'meta' part with JSON data is missing.",
            code="meta_missing",
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        raise ValidationFailed(details=validation_details(e.errors())) from None


def one_file(form: ParsedForm) -> Any:
    if len(form.files) != 1:
        raise ValidationFailed(
            "Dołącz dokładnie jeden plik (część „file”).",
            "Attach exactly one file (part 'file').",
            code="one_file_expected",
        )
    return form.files[0]


def multipart_openapi(meta_schema: str | None, files_field: str, many: bool) -> dict[str, Any]:
    file_schema: dict[str, Any] = {"type": "string", "format": "binary"}
    props: dict[str, Any] = {
        files_field: {"type": "array", "items": file_schema} if many else file_schema,
    }
    if meta_schema:
        props["meta"] = {"type": "string", "description": f"JSON: {meta_schema}"}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": props}}},
        }
    }
