"""Security headers of every response, in one place: the API's JSON, the staff pages under /web,
the citizen pages under /e-uslugi, static files and error pages (500s included: the middleware
wraps the whole application, outside Starlette's error middleware).

- Content-Security-Policy, per area (below): scripts only from 'self', never 'unsafe-inline';
  a route may send a stricter one of its own (document previews do).
- X-Content-Type-Options: nosniff.
- X-Frame-Options and frame-ancestors: SAMEORIGIN on /web (previews in frames), DENY elsewhere.
- Referrer-Policy: same-origin on /web, no-referrer elsewhere.
- Permissions-Policy: no camera, microphone, geolocation, payment, USB.
- Cache-Control: no-store on pages, redirects and API answers (personal data) unless the route
  chose otherwise; static files stay cacheable.
- Strict-Transport-Security: when served over https (the request's scheme, or
  EZD_LOGIN_SECURE_COOKIE, which says ezd runs behind TLS).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB = "/web"
PUBLIC = "/e-uslugi"
WEB_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; object-src 'self' blob:; "
    "frame-src 'self' blob:; frame-ancestors 'self'; form-action 'self'; base-uri 'none'"
)
PUBLIC_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)
# JSON, and the few HTML documents the API hands out (a receipt): nothing runs, nothing frames.
API_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "form-action 'none'; base-uri 'none'"
)
# FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from a CDN with an inline start-up
# script; they get only what does not break them.
DOCS_CSP = "frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
HSTS = "max-age=31536000"
STATIC_PREFIXES = (f"{WEB}/static/", f"{WEB}/vendor/")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(f"{prefix}/")


def policy_for(path: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers always set, headers set unless the route sent its own) for a request path."""
    static = path.startswith(STATIC_PREFIXES)
    if _under(path, WEB):
        always = {"X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "same-origin"}
        default = {"Content-Security-Policy": WEB_CSP}
    elif _under(path, PUBLIC):
        always = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
        default = {"Content-Security-Policy": PUBLIC_CSP}
    else:
        always = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
        default = {"Content-Security-Policy": DOCS_CSP if path in DOCS else API_CSP}
    always["X-Content-Type-Options"] = "nosniff"
    always["Permissions-Policy"] = PERMISSIONS_POLICY
    if not static:
        default["Cache-Control"] = "no-store"
    return always, default


class SecurityHeaders:
    """ASGI middleware that adds the headers of `policy_for` to every HTTP response."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        always, default = policy_for(scope["path"])
        if self.https or scope.get("scheme") == "https":
            always = {**always, "Strict-Transport-Security": HSTS}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in always.items():
                    headers[name] = value
                for name, value in default.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
