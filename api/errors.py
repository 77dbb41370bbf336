"""The one place that turns errors into responses: domain errors by their code and status,
request validation as 422 `validation_failed`, anything unexpected as 500 `internal_error`
(logged, never with internals in the body). Messages come in Polish and English."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflow.errors import DomainError

log = logging.getLogger(__name__)


def error_body(
    code: str, message_pl: str, message_en: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message_pl,
            "message_en": message_en,
            "details": details or {},
        }
    }


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable error code, e.g. `not_found`, `validation_failed`")
    message: str = Field(description="What went wrong, in Polish")
    message_en: str = Field(description="The same in English")
    details: dict[str, Any] = Field(description="Machine-readable details (fields, limits, …)")


class ErrorResponse(BaseModel):
    """The body of every error answer (see `error_body`)."""

    error: ErrorDetail


ERROR_STATUSES: dict[int, str] = {
    400: "The request cannot be carried out as sent (a domain rule refuses it)",
    401: "Not logged in, or the token has expired (`unauthenticated`)",
    403: "Logged in but not allowed (`forbidden`, or a more specific code)",
    404: "Not found, or not visible to the caller (`not_found`)",
    409: "Conflicts with the current state (`conflict`, `concurrent_change`, …)",
    413: "A file or the request body is above its limit",
    415: "The file type is not accepted",
    422: "The data is invalid (`validation_failed`, or a more specific code)",
    429: "Too many requests or failed attempts; try again later",
    503: "A backing service (database, storage, search, signing) is temporarily unavailable",
}


# The domain errors the routers' operations can answer with (each router passes its set to
# `error_responses`); every operation can also meet a database outage (503).
STAFF_ERRORS = (400, 401, 403, 404, 409, 422, 503)
UPLOAD_ERRORS = (*STAFF_ERRORS, 413, 415)
BODY_ERRORS = (*STAFF_ERRORS, 413)
AUTH_ERRORS = (401, 422, 429, 503)
PUBLIC_ERRORS = (400, 403, 404, 409, 413, 415, 422, 429, 503)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the domain errors a route (or a router) can answer with, all in
    the one `ErrorResponse` shape. A 422 given here replaces FastAPI's default, which describes
    a body this app never sends. Errors are JSON also where the success is HTML or PDF (FastAPI
    files the model under the route's media type, so JSON is named explicitly too)."""
    json_body = {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
    return {
        status: {
            "model": ErrorResponse,
            "description": ERROR_STATUSES[status],
            "content": {"application/json": json_body},
        }
        for status in statuses
    }


def validation_details(errors: Any) -> dict[str, Any]:
    fields = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
        fields.append({"field": ".".join(loc), "problem": e.get("msg", ""), "type": e.get("type")})
    return {"fields": fields}


def error_headers(exc: DomainError) -> dict[str, str]:
    """The headers of a refusal: how to authenticate (401), and when to try again, for the
    errors that say so in `details["retry_after_seconds"]` (the throttles' 429s)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    retry = (exc.details or {}).get("retry_after_seconds")
    if isinstance(retry, int) and retry > 0:
        headers["Retry-After"] = str(retry)
    return headers


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message_pl, exc.message_en, exc.details),
            status_code=exc.status,
            headers=error_headers(exc),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body(
                "validation_failed",
                "Dane są niepoprawne.",
                "The data is invalid.",
                validation_details(exc.errors()),
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {
            404: ("not_found", "Nie znaleziono.", "Not found."),
            405: ("method_not_allowed", "Niedozwolona metoda.", "Method not allowed."),
        }
        code, pl, en = messages.get(
            exc.status_code, ("http_error", str(exc.detail), str(exc.detail))
        )
        return JSONResponse(
            error_body(code, pl, en),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        # A uniqueness race the services did not foresee (two requests creating the same
        # thing at once): nothing was written, and trying again is the right answer.
        log.warning("integrity error mapped to 409: %s", exc.orig)
        return JSONResponse(
            error_body(
                "concurrent_change",
                "Ktoś właśnie zmienił te same dane. Spróbuj ponownie.",
                "Someone changed the same data at the same moment. Try again.",
            ),
            status_code=409,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_down(_request: Request, exc: DBAPIError) -> JSONResponse:
        # The database is unreachable or restarting: the request wrote nothing; retry later.
        log.error("database unavailable: %s", exc.orig)
        return JSONResponse(
            error_body(
                "database_unavailable",
                "Baza danych jest chwilowo niedostępna. Spróbuj ponownie za chwilę.",
                "The database is temporarily unavailable. Try again shortly.",
            ),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body(
                "internal_error", "Wystąpił błąd wewnętrzny.", "An internal error occurred."
            ),
            status_code=500,
        )
