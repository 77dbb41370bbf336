"""Mounting the web application: routers, static files (ours and the npm packages'), HTML error
pages for web paths. Security headers are api/web/headers.py's (every response of the app)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.routing import include_flat
from api.web import admin, auth, cases, home, registry, search
from api.web.render import PREFIX, pick_message, redirect, render, translate
from workflow.errors import DomainError

STATIC = Path(__file__).parent / "static"
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
# What the pages load from the npm packages (installed by scripts/web.sh, never committed).
VENDOR = {
    "htmx.org": NODE_MODULES / "htmx.org" / "dist",
    "bpmn-js": NODE_MODULES / "bpmn-js" / "dist",
}

Handler = Any  # Starlette's handlers may be sync or async; the API's are async


def mount_web(app: FastAPI) -> None:
    for module in (auth, home, registry, cases, search, admin):
        include_flat(app, module.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="web-static")
    for name, folder in VENDOR.items():
        app.mount(
            f"{PREFIX}/vendor/{name}",
            StaticFiles(directory=folder, check_dir=False),
            name=f"web-vendor-{name}",
        )
    _html_errors(app)


def _is_web(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(f"{PREFIX}/")


def _html_errors(app: FastAPI) -> None:
    """Web paths get pages (or a login redirect) instead of the API's JSON errors."""
    json_domain: Handler = app.exception_handlers[DomainError]
    json_validation: Handler = app.exception_handlers[RequestValidationError]
    json_http: Handler = app.exception_handlers[StarletteHTTPException]

    async def domain(request: Request, exc: DomainError) -> Response:
        if not _is_web(request):
            return await json_domain(request, exc)
        if exc.status == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = f"{PREFIX}/"
            return redirect(f"{PREFIX}/login?next={quote(target)}", status_code=303)
        return _error_page(
            request, exc.status, pick_message(request, exc.message_pl, exc.message_en), exc.code
        )

    async def validation(request: Request, exc: RequestValidationError) -> Response:
        if not _is_web(request):
            return await json_validation(request, exc)
        return _error_page(request, 422, translate(request, "The data is invalid."), "invalid")

    async def http(request: Request, exc: StarletteHTTPException) -> Response:
        if not _is_web(request) or exc.status_code not in (404, 405):
            return await json_http(request, exc)
        return _error_page(request, exc.status_code, translate(request, "Not found."), "not_found")

    app.add_exception_handler(DomainError, domain)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http)  # type: ignore[arg-type]


def _error_page(request: Request, status: int, message: str, code: str) -> Response:
    return render(
        request,
        "error.html",
        {"status": status, "message": message, "code": code},
        status_code=status,
    )
