"""Documents: metadata, new versions, content download."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse

from api.deps import Actor, UoW, container, run_in_transaction
from api.errors import UPLOAD_ERRORS, error_responses
from api.presenters import Presenter
from api.routers.uploads import multipart_openapi, multipart_upload, one_file
from api.schemas import DocumentOut, VersionOut
from workflow.cases.service import add_document_version
from workflow.documents.service import open_version, readable_document
from workflow.errors import ValidationFailed
from workflow.text import clean_text
from workflow.uow import UnitOfWork

router = APIRouter(prefix="/api/v1", tags=["documents"], responses=error_responses(*UPLOAD_ERRORS))


@router.get("/documents/{document_id}", response_model=DocumentOut)
def get_document(document_id: uuid.UUID, uow: UoW, actor: Actor) -> DocumentOut:
    doc = readable_document(uow, actor, document_id)
    uow.audit("document.read", "document", doc.id, unit_id=doc.unit_id, document_id=doc.id)
    return Presenter(uow).document(doc)


@router.post(
    "/documents/{document_id}/versions",
    response_model=VersionOut,
    status_code=201,
    summary="Add a new version (content is never replaced)",
    openapi_extra=multipart_openapi(None, "file", many=False),
)
async def add_version(document_id: uuid.UUID, request: Request, actor: Actor) -> VersionOut:
    store = container(request).blob_store
    async with multipart_upload(request) as form:
        upload = one_file(form)
        try:
            note = clean_text(form.fields.get("note", ""))[:2000]
        except ValueError:
            raise ValidationFailed(code="invalid_note") from None

        def work(uow: UnitOfWork) -> VersionOut:
            v = add_document_version(uow, store, document_id, upload, note)
            return Presenter(uow).version(v)

        return await run_in_transaction(request, actor, work)


@router.get(
    "/documents/{document_id}/versions/{version}/content",
    summary="Download a version's content",
    response_class=StreamingResponse,
)
def download(
    document_id: uuid.UUID,
    request: Request,
    uow: UoW,
    actor: Actor,
    version: int = Path(ge=1, le=2_147_483_647),  # a database INTEGER; beyond it is a 422
) -> StreamingResponse:
    content = open_version(uow, container(request).blob_store, actor, document_id, version)
    name = content.version.file_name
    return StreamingResponse(
        content.chunks,
        media_type=content.blob.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "Content-Length": str(content.blob.size),
            "X-Content-SHA256": content.blob.sha256,
            "X-Content-Type-Options": "nosniff",
        },
    )
