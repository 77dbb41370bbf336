"""Rendering: one Jinja2 environment per language (autoescaped, with gettext installed), the
common page context, flash messages across a redirect, and safe `next` targets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.web.i18n import LANGUAGE_NAMES, LANGUAGES, choose_language, gettext_for
from api.web.security import CSRF_FIELD, expected_token
from workflow.principal import Principal

TEMPLATES = Path(__file__).parent / "templates"
WARSAW = ZoneInfo("Europe/Warsaw")
FLASH_COOKIE = "ezd_flash"
PREFIX = "/web"
DUE_SOON = timedelta(days=3)


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(WARSAW).strftime(fmt)


def file_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@cache
def environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.install_gettext_translations(gettext_for(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["local_time"] = local_time
    env.filters["file_size"] = file_size
    env.filters["tojson_attr"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.globals["PREFIX"] = PREFIX
    env.globals["LANGUAGES"] = LANGUAGES
    env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    return env


def translate(request: Request, message: str) -> str:
    return gettext_for(choose_language(request)).gettext(message)


def pick_message(request: Request, message_pl: str, message_en: str) -> str:
    return message_pl if choose_language(request) == "pl" else message_en


def nav_items(actor: Principal | None) -> list[tuple[str, str]]:
    """Links of the main navigation for the actor's roles: (path, English msgid)."""
    if actor is None:
        return []
    roles = {r for rs in actor.roles.values() for r in rs}
    items = [(f"{PREFIX}/", "Home")]
    if "clerk" in roles:
        items.append((f"{PREFIX}/register", "Register a letter"))
    items.append((f"{PREFIX}/search", "Search"))
    if actor.is_auditor or "auditor" in roles:
        items.append((f"{PREFIX}/audit", "Audit"))
    if actor.is_any_admin:
        items.append((f"{PREFIX}/admin", "Administration"))
    return items


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    actor: Principal | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lang = choose_language(request)
    flash = _read_flash(request)
    ctx: dict[str, Any] = {
        "request": request,
        "lang": lang,
        "actor": actor,
        "nav": nav_items(actor),
        "csrf_token": expected_token(request) or "",
        "flash": flash,
        "now": datetime.now(UTC),
        "due_soon": DUE_SOON,
        "current_path": request.url.path,
        "current_url": _relative_url(request),
        **(context or {}),
    }
    html = environment(lang).get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status_code)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=PREFIX)
    return response


def _relative_url(request: Request) -> str:
    q = request.url.query
    return request.url.path + (f"?{q}" if q else "")


def redirect(
    url: str, *, flash: str | None = None, kind: str = "success", status_code: int = 303
) -> RedirectResponse:
    response = RedirectResponse(url, status_code=status_code)
    if flash:
        set_flash(response, flash, kind)
    return response


def set_flash(response: Response, message: str, kind: str = "success") -> None:
    value = quote(json.dumps({"kind": kind, "message": message}, ensure_ascii=False))
    response.set_cookie(FLASH_COOKIE, value, max_age=60, httponly=True, samesite="lax", path=PREFIX)


def _read_flash(request: Request) -> dict[str, str] | None:
    from urllib.parse import unquote

    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(unquote(raw))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("kind") if data.get("kind") in ("success", "error") else "success"
    return {"kind": str(kind), "message": str(data.get("message", ""))[:500]}


def safe_next(target: str | None, default: str = f"{PREFIX}/") -> str:
    """Only local web paths: never another host (no open redirect)."""
    if target and target.startswith(f"{PREFIX}/") and "\\" not in target and "://" not in target:
        return target
    return default
