"""CSRF protection of the cookie-authenticated web forms.

A logged-in page carries a token derived from the session cookie (HMAC-SHA256 keyed by the
session's secret token): it is bound to the session, needs no server state, and cannot be
computed by another site, which never sees the cookie. Forms send it as the `csrf_token` field,
htmx and fetch as the `X-CSRF-Token` header. Before login there is no session, so the login form
uses a double-submit token: a random `ezd_csrf` cookie (SameSite=Strict) repeated in the form.
Every unsafe method of the web routes is checked (multipart bodies too: by the router dependency,
or after streaming by the upload endpoints marked `checks_csrf_after_upload`); the Origin header,
when present, must be ours, and Sec-Fetch-Site must not say another site. The JSON API's unsafe
requests authenticated by the cookie get the origin check too (`check_api_cookie_request`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request

from api.deps import SESSION_COOKIE
from workflow.errors import DomainError

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PRE_SESSION_COOKIE = "ezd_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
F = TypeVar("F", bound=Callable[..., object])


class CsrfFailed(DomainError):
    code = "csrf_failed"
    status = 403
    message_pl = (
        "Formularz wygasł lub nie pochodzi z tej strony. Odśwież stronę i spróbuj ponownie."
    )
    message_en = "The form has expired or did not come from this site. Reload and try again."


def secure_cookies(request: Request) -> bool:
    """Cookies get the Secure flag when the request came over https or ezd is configured to be
    behind TLS (EZD_LOGIN_SECURE_COOKIE)."""
    settings = request.app.state.container.settings
    return bool(settings.login_secure_cookie) or request.url.scheme == "https"


def client_address(request: Request) -> str:
    """The client a login throttle counts against (the peer address uvicorn reports)."""
    return request.client.host if request.client else "unknown"


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def csrf_token_for(session: str) -> str:
    return hmac.new(session.encode(), b"ezd-web-csrf-v1", hashlib.sha256).hexdigest()


def expected_token(request: Request) -> str | None:
    """The token this request's page carries: bound to the session, or the pre-login one."""
    session = session_token(request)
    if session:
        return csrf_token_for(session)
    return request.cookies.get(PRE_SESSION_COOKIE) or None


def new_pre_session_token() -> str:
    return secrets.token_urlsafe(32)


def check_origin(request: Request) -> None:
    """A browser says where an unsafe request comes from (Origin; Sec-Fetch-Site in current
    browsers): another site, even a sibling subdomain that SameSite lets through, is refused."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        raise CsrfFailed()
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise CsrfFailed()


def check_api_cookie_request(request: Request) -> None:
    """The JSON API also accepts the session cookie (the web pages' scripts use it). An unsafe
    request authenticated by the cookie must come from our own pages: its Origin (when the
    browser sends one) must be ours, and an X-CSRF-Token, when sent, must be right. Bearer
    tokens are not ambient credentials and need neither."""
    if request.method in SAFE_METHODS:
        return
    check_origin(request)
    given = request.headers.get(CSRF_HEADER)
    if given is not None:
        check_csrf(request, given)


def check_csrf(request: Request, submitted: str | None) -> None:
    check_origin(request)
    expected = expected_token(request)
    given = request.headers.get(CSRF_HEADER) or submitted or ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfFailed()


def checks_csrf_after_upload(endpoint: F) -> F:
    """Marks an endpoint that streams its multipart body itself and then calls
    `check_csrf(request, form.fields.get(CSRF_FIELD))` when `request.state.csrf_pending`."""
    endpoint.__dict__["ezd_csrf_after_upload"] = True
    return endpoint


async def csrf_protect(request: Request) -> None:
    """Router dependency: every unsafe request carries the header or the form field.
    Multipart bodies of the upload endpoints (`checks_csrf_after_upload`) are streamed by the
    upload parser, so their field is checked by the endpoint after parsing unless the header
    came along; any other endpoint's multipart body is parsed and checked here."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get(CSRF_HEADER):
        check_csrf(request, None)
        return
    ctype = request.headers.get("content-type", "")
    endpoint = request.scope.get("endpoint")
    if ctype.startswith("multipart/form-data") and getattr(
        endpoint, "ezd_csrf_after_upload", False
    ):
        request.state.csrf_pending = True
        check_origin(request)
        return
    form = await request.form()
    value = form.get(CSRF_FIELD)
    check_csrf(request, value if isinstance(value, str) else None)
