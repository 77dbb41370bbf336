"""The staff web application: server-rendered pages (Jinja2, htmx) on the same FastAPI app and
the same services as the JSON API. `mount_web(app)` adds it under /web."""

from __future__ import annotations

from api.web.mount import mount_web

__all__ = ["mount_web"]
