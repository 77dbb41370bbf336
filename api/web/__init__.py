"""The staff web application: server-rendered pages (Jinja2, htmx) on the same FastAPI app and
the same services as the JSON API. `mount_web(app)` adds it under /web."""

from __future__ import annotations

from fastapi import FastAPI

from api.routing import include_flat
from api.web import public
from api.web.mount import mount_web as mount_staff_web

__all__ = ["mount_web"]


def mount_web(app: FastAPI) -> None:
    """The staff pages under /web and the public citizen pages under /e-uslugi."""
    mount_staff_web(app)
    include_flat(app, public.router)
