"""Web security (issue 9): CSRF on every unsafe cookie-authenticated web route (the list comes
from the app's route table), security headers on every kind of response, cookie flags, session
expiry and revocation, login throttling, no secrets in the logs.

FastAPI's TestClient, no browser. Most run on the embedded backend only (they are about HTTP);
the login throttle (counts in the database) and the log check (psycopg's and SQLAlchemy's logs)
run on both backends."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from api.web.security import CSRF_FIELD, CSRF_HEADER, csrf_token_for
from tests.conftest import Backend
from tests.pki import TestPki, pki_fixture  # noqa: F401  (the `pki` fixture)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
ADMIN = "admin.wow"


def make_client(backend: Backend, *, https: bool = False) -> TestClient:
    app = create_app(backend.container, start_worker=False)
    return TestClient(
        app,
        raise_server_exceptions=False,
        follow_redirects=False,
        base_url="https://testserver" if https else "http://testserver",
    )


@pytest.fixture
def web(sqlite_backend: Backend) -> Iterator[TestClient]:
    with make_client(sqlite_backend) as c:
        yield c


def login_form_token(client: TestClient) -> str:
    page = client.get("/web/login")
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def web_login(client: TestClient, username: str = ADMIN, password: str = "demo") -> str:
    """Logs in through the form; returns the session cookie's value."""
    token = login_form_token(client)
    r = client.post(
        "/web/login", data={"username": username, "password": password, CSRF_FIELD: token}
    )
    assert r.status_code == 303, r.text
    cookie = client.cookies.get("ezd_session")
    assert cookie
    return cookie


def unsafe_web_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every unsafe route under /web, from the app's route table."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.16x nests
    found = []
    for entry in iterate(app.routes) if iterate else app.routes:
        route = getattr(entry, "original_route", entry)
        if isinstance(route, APIRoute) and entry.path.startswith("/web"):
            found += [(m, entry.path) for m in sorted(set(entry.methods) & UNSAFE)]
    # Logging out last: it ends the session the other requests use.
    return sorted(found, key=lambda mp: (mp[1] == "/web/logout", mp[1], mp[0]))


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


def is_csrf_refusal(r: Any) -> bool:
    return r.status_code == 403 and "csrf_failed" in r.text


# --- CSRF ------------------------------------------------------------------------------------


def test_every_unsafe_web_route_needs_the_session_bound_token(web: TestClient) -> None:
    routes = unsafe_web_routes(web.app)  # type: ignore[arg-type]
    paths = {p for _, p in routes}
    assert {"/web/login", "/web/logout", "/web/register"} <= paths
    assert len(routes) >= 15, routes
    session = web_login(web)
    good = csrf_token_for(session)
    wrong = csrf_token_for("another session")
    problems = []
    for method, path in routes:
        url = concrete(path)
        attempts: dict[str, dict[str, Any]] = {
            "no token": {"data": {"x": "1"}},
            "wrong token (field)": {"data": {CSRF_FIELD: wrong}},
            "wrong token (header)": {"headers": {CSRF_HEADER: wrong}},
            "pre-session token instead": {"data": {CSRF_FIELD: "a" * 43}},
            "multipart without token": {"files": {"f": ("a.txt", b"a")}, "data": {"x": "1"}},
            "multipart with wrong token": {
                "files": {"f": ("a.txt", b"a")},
                "data": {CSRF_FIELD: wrong},
            },
            "cross-site origin": {
                "headers": {CSRF_HEADER: good, "Origin": "https://evil.example"},
            },
            "sec-fetch-site cross-site": {
                "headers": {CSRF_HEADER: good, "Sec-Fetch-Site": "cross-site"},
            },
        }
        for what, kwargs in attempts.items():
            r = web.request(method, url, **kwargs)
            if not is_csrf_refusal(r):
                problems.append(f"{method} {path}: {what} -> {r.status_code}")
            if web.cookies.get("ezd_session") != session:
                problems.append(f"{method} {path}: {what} changed the session cookie")
                web.cookies.set("ezd_session", session)
        for what, kwargs in {
            "header": {"headers": {CSRF_HEADER: good}},
            "field": {"data": {CSRF_FIELD: good}},
            "same origin": {"headers": {CSRF_HEADER: good, "Origin": "http://testserver"}},
            "multipart field": {"files": {"f": ("a.txt", b"a")}, "data": {CSRF_FIELD: good}},
        }.items():
            if path == "/web/logout" and what != "header":
                continue
            r = web.request(method, url, **kwargs)
            if is_csrf_refusal(r) or r.status_code >= 500:
                problems.append(f"{method} {path}: right token ({what}) -> {r.status_code}")
    assert not problems, "\n".join(problems)


def unsafe_api_routes(app: FastAPI) -> list[tuple[str, str]]:
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    found = []
    for entry in iterate(app.routes) if iterate else app.routes:
        route = getattr(entry, "original_route", entry)
        path = entry.path
        if isinstance(route, APIRoute) and path.startswith("/api/v1/"):
            if path.startswith(("/api/v1/public/", "/api/v1/auth/token", "/api/v1/auth/login")):
                continue
            found += [(m, path) for m in sorted(set(entry.methods) & UNSAFE)]
    return sorted(found)


def test_cookie_authenticated_api_requests_from_another_site_are_refused(
    web: TestClient,
) -> None:
    """The JSON API takes the session cookie too: an unsafe request with it must come from our
    own pages (Origin / Sec-Fetch-Site), and a CSRF header, when sent, must be right. Bearer
    tokens are not ambient, so another origin does not matter for them."""
    routes = unsafe_api_routes(web.app)  # type: ignore[arg-type]
    assert ("POST", "/api/v1/incoming") in routes and len(routes) >= 20
    session = web_login(web)
    problems = []
    for method, path in routes:
        url = concrete(path)
        for what, headers in {
            "cross-site origin": {"Origin": "https://evil.example"},
            "sibling subdomain": {"Origin": "https://szkola.testserver"},
            "sec-fetch-site cross-site": {"Sec-Fetch-Site": "cross-site"},
            "sec-fetch-site same-site": {"Sec-Fetch-Site": "same-site"},
            "wrong CSRF header": {CSRF_HEADER: csrf_token_for("another session")},
        }.items():
            r = web.request(method, url, headers=headers, json={})
            if not (r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"):
                problems.append(f"{method} {path}: {what} -> {r.status_code}")
    assert not problems, "\n".join(problems)
    # From our own pages (same origin, or a script with the header) it goes through.
    me = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    r = web.post("/api/v1/incoming", headers=me, data={"meta": "{}"})
    assert r.status_code == 422, r.text
    r = web.post("/api/v1/incoming", headers={CSRF_HEADER: csrf_token_for(session)})
    assert r.status_code == 422, r.text
    # A bearer token from anywhere is not a CSRF question.
    bearer = {"Authorization": f"Bearer {_api_login(web, ADMIN, 'demo').json()['access_token']}"}
    r = web.post("/api/v1/incoming", headers={**bearer, "Origin": "https://evil.example"})
    assert r.status_code == 422, r.text
    # Nor can another site log a browser in through the API's cookie login.
    r = web.post(
        "/api/v1/auth/login",
        data={"username": ADMIN, "password": "demo"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_login_form_uses_a_double_submit_token(web: TestClient) -> None:
    creds = {"username": ADMIN, "password": "demo"}
    # No pre-session cookie at all: refused.
    r = web.post("/web/login", data={**creds, CSRF_FIELD: "x" * 43})
    assert is_csrf_refusal(r), r.status_code
    page = web.get("/web/login")
    cookie = page.headers["set-cookie"]
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert cookie.startswith("ezd_csrf=") and "httponly" in attrs and "samesite=strict" in attrs
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token and token.group(1) == web.cookies.get("ezd_csrf")
    for data, headers in (
        (creds, {}),
        ({**creds, CSRF_FIELD: ""}, {}),
        ({**creds, CSRF_FIELD: "y" * 43}, {}),
        ({**creds, CSRF_FIELD: token.group(1)}, {"Origin": "https://evil.example"}),
    ):
        r = web.post("/web/login", data=data, headers=headers)
        assert is_csrf_refusal(r), (data, headers, r.status_code)
        assert "ezd_session" not in web.cookies
    r = web.post("/web/login", data={**creds, CSRF_FIELD: token.group(1)})
    assert r.status_code == 303 and web.cookies.get("ezd_session")


# --- security headers ------------------------------------------------------------------------


def _directives(csp: str) -> dict[str, str]:
    out = {}
    for part in csp.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            out[name] = value
    return out


def check_headers(r: Any, *, what: str, cacheable: bool = False) -> list[str]:
    h = r.headers
    problems = []
    csp = _directives(h.get("content-security-policy", ""))
    scripts = csp.get("script-src", csp.get("default-src"))
    if scripts is None or "unsafe-inline" in scripts or "unsafe-eval" in scripts:
        problems.append(f"{what}: script policy {scripts!r}")
    if csp.get("frame-ancestors") not in ("'self'", "'none'"):
        problems.append(f"{what}: frame-ancestors {csp.get('frame-ancestors')!r}")
    if h.get("x-content-type-options") != "nosniff":
        problems.append(f"{what}: no nosniff")
    if h.get("referrer-policy") not in ("same-origin", "no-referrer", "strict-origin"):
        problems.append(f"{what}: referrer-policy {h.get('referrer-policy')!r}")
    if h.get("x-frame-options") not in ("DENY", "SAMEORIGIN"):
        problems.append(f"{what}: x-frame-options {h.get('x-frame-options')!r}")
    if "camera=()" not in h.get("permissions-policy", ""):
        problems.append(f"{what}: permissions-policy {h.get('permissions-policy')!r}")
    if not cacheable and "no-store" not in h.get("cache-control", ""):
        problems.append(f"{what}: cache-control {h.get('cache-control')!r}")
    return problems


def test_security_headers_on_every_kind_of_response(sqlite_backend: Backend) -> None:
    app = create_app(sqlite_backend.container, start_worker=False)

    def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/api/v1/test-boom", boom, methods=["GET"])
    app.add_api_route("/web/test-boom", boom, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as c:
        r = c.post("/api/v1/auth/token", data={"username": ADMIN, "password": "demo"})
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        problems = check_headers(r, what="token answer")
        responses: list[tuple[str, Any, bool]] = [
            ("API JSON", c.get("/api/v1/auth/me", headers=bearer), False),
            ("API list", c.get("/api/v1/cases", params={"unit": "SP58"}, headers=bearer), False),
            ("API 401", c.get("/api/v1/auth/me"), False),
            ("API 404", c.get("/api/v1/no-such-thing", headers=bearer), False),
            ("API 422", c.post("/api/v1/auth/token", data={}), False),
            ("API 500", c.get("/api/v1/test-boom"), False),
            ("health", c.get("/healthz"), False),
            ("root redirect", c.get("/"), False),
            ("public API", c.get("/api/v1/public/services"), False),
            ("login page", c.get("/web/login"), False),
            ("web static", c.get("/web/static/ezd.css"), True),
            ("e-uslugi catalogue", c.get("/e-uslugi"), False),
            ("e-uslugi tracking", c.get("/e-uslugi/sledzenie"), False),
            ("e-uslugi 404", c.get("/e-uslugi/no-such-service"), False),
            ("e-uslugi wrong PIN", c.post("/e-uslugi/sledzenie", data={"code": "x"}), False),
            ("web redirect to login", c.get("/web/"), False),
        ]
        web_login(c)
        responses += [
            ("web page", c.get("/web/"), False),
            ("web 404", c.get("/web/no-such-page"), False),
            ("web 422", c.get("/web/cases/not-a-uuid"), False),
            ("web 500", c.get("/web/test-boom"), False),
            ("web 403", c.post("/web/logout"), False),
        ]
    statuses = {what: r.status_code for what, r, _ in responses}
    assert statuses["API 500"] == statuses["web 500"] == 500, statuses
    assert statuses["API 404"] == statuses["web 404"] == 404, statuses
    assert statuses["API 422"] == 422 and statuses["web static"] == 200, statuses
    for what, r, cacheable in responses:
        problems += check_headers(r, what=what, cacheable=cacheable)
    assert not problems, "\n".join(problems)
    assert "strict-transport-security" not in {k.lower() for k in responses[0][1].headers}


def test_hsts_and_secure_cookies_when_served_over_https(sqlite_backend: Backend) -> None:
    with make_client(sqlite_backend, https=True) as c:
        page = c.get("/web/login")
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert "secure" in [a.strip().lower() for a in page.headers["set-cookie"].split(";")]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        r = c.post(
            "/web/login",
            data={"username": ADMIN, "password": "demo", CSRF_FIELD: token.group(1)},
            headers={"Origin": "https://testserver"},
        )
        assert r.status_code == 303, r.text
        cookies = r.headers.get_list("set-cookie")
        session = [v for v in cookies if v.startswith("ezd_session=")]
        attrs = [a.strip().lower() for a in session[0].split(";")]
        assert {"httponly", "secure", "samesite=lax"} <= set(attrs), attrs
        api = c.post("/api/v1/auth/login", data={"username": ADMIN, "password": "demo"})
        attrs = [a.strip().lower() for a in api.headers["set-cookie"].split(";")]
        assert {"httponly", "secure", "samesite=lax"} <= set(attrs), attrs
        assert api.headers["strict-transport-security"].startswith("max-age=")
        assert c.get("/api/v1/public/services").headers["strict-transport-security"]


@pytest.mark.settings(login_secure_cookie=True)
def test_hsts_behind_a_tls_proxy_by_setting(sqlite_backend: Backend) -> None:
    with make_client(sqlite_backend) as c:
        assert c.get("/healthz").headers["strict-transport-security"].startswith("max-age=")
        r = c.post("/api/v1/auth/login", data={"username": ADMIN, "password": "demo"})
        assert "secure" in [a.strip().lower() for a in r.headers["set-cookie"].split(";")]


def test_plain_http_cookies_are_httponly_and_samesite(web: TestClient) -> None:
    page = web.get("/web/login")
    assert "strict-transport-security" not in page.headers
    r = web.post("/api/v1/auth/login", data={"username": ADMIN, "password": "demo"})
    attrs = [a.strip().lower() for a in r.headers["set-cookie"].split(";")]
    assert {"httponly", "samesite=lax"} <= set(attrs) and "secure" not in attrs


# --- login throttling ------------------------------------------------------------------------


def _client_from(backend: Backend, host: str) -> TestClient:
    app = create_app(backend.container, start_worker=False)
    return TestClient(
        app, raise_server_exceptions=False, follow_redirects=False, client=(host, 50000)
    )


def _api_login(c: TestClient, username: str, password: str) -> Any:
    return c.post("/api/v1/auth/token", data={"username": username, "password": password})


def _assert_throttled(r: Any) -> None:
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["error"]["code"] == "login_throttled"


def test_failed_logins_for_one_account_are_throttled(backend: Backend) -> None:
    from workflow.org.throttle import LoginPolicy

    limit = LoginPolicy().per_account_and_client
    with _client_from(backend, "10.0.0.1") as attacker, _client_from(backend, "10.0.0.2") as user:
        for _ in range(limit - 1):
            assert _api_login(attacker, "clerk.sp58", "wrong").status_code == 401
        # A success before the limit resets the count.
        assert _api_login(attacker, "clerk.sp58", "demo").status_code == 200
        for _ in range(limit - 1):
            assert _api_login(attacker, "clerk.sp58", "wrong").status_code == 401
        _assert_throttled(_api_login(attacker, "clerk.sp58", "wrong"))
        # Locked: the right password gets the same answer (a lock is no oracle), on every
        # login endpoint, the web form too.
        _assert_throttled(_api_login(attacker, "clerk.sp58", "demo"))
        r = attacker.post("/api/v1/auth/login", data={"username": "clerk.sp58", "password": "demo"})
        _assert_throttled(r)
        assert "set-cookie" not in r.headers
        token = login_form_token(attacker)
        r = attacker.post(
            "/web/login",
            data={"username": "Clerk.SP58 ", "password": "demo", CSRF_FIELD: token},
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "ezd_session" not in attacker.cookies
        # The user, from their own computer, is not locked out by the attacker.
        assert _api_login(user, "clerk.sp58", "demo").status_code == 200
        # Another account from the attacker's address is not locked either (yet).
        assert _api_login(attacker, "clerk.sp12", "demo").status_code == 200


def test_failed_logins_from_one_client_are_throttled(
    sqlite_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argon2 import PasswordHasher

    import workflow.org.service as service
    from workflow.org.throttle import LoginPolicy

    # Unknown users are checked against a dummy hash: a cheap one keeps the test quick.
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(service, "_DUMMY_HASH", cheap.hash("not a password"))
    limit = LoginPolicy().per_client
    with _client_from(sqlite_backend, "10.0.0.3") as sprayer:
        token = login_form_token(sprayer)
        for i in range(limit - 1):
            if i % 5 == 0:  # the web form and the API count alike
                r = sprayer.post(
                    "/web/login",
                    data={"username": f"user{i}", "password": "demo", CSRF_FIELD: token},
                )
            else:
                r = _api_login(sprayer, f"user{i}", "demo")
            assert r.status_code == 401, r.text
        # A successful login does not reset the client's count.
        assert _api_login(sprayer, "clerk.sp58", "demo").status_code == 200
        _assert_throttled(_api_login(sprayer, "nobody", "x"))
        _assert_throttled(_api_login(sprayer, "headteacher.sp58", "demo"))


def test_login_lock_ends_by_itself(
    sqlite_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workflow.org.throttle as throttle
    from workflow.db import utcnow

    limit = throttle.LoginPolicy().per_account_and_client
    monkeypatch.setattr(throttle, "PURGE_ONE_IN", 1)  # every failure also purges: harmless
    with _client_from(sqlite_backend, "10.0.0.4") as c:
        for _ in range(limit):
            _api_login(c, "clerk.sp58", "wrong")
        r = _api_login(c, "clerk.sp58", "demo")
        _assert_throttled(r)
        assert int(r.headers["retry-after"]) <= 15 * 60
        later = utcnow() + throttle.LoginPolicy().lockout + timedelta(seconds=1)
        monkeypatch.setattr(throttle, "utcnow", lambda: later)
        assert _api_login(c, "clerk.sp58", "demo").status_code == 200


# --- session expiry and revocation -----------------------------------------------------------


class Clock:
    """The login service's clock, moved by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import workflow.org.service as service
        from workflow.db import utcnow

        self.now = utcnow()
        monkeypatch.setattr(service, "utcnow", lambda: self.now)

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.mark.settings(
    session_ttl_minutes=60, session_idle_minutes=20, token_ttl_minutes=60, token_idle_minutes=20
)
def test_sessions_and_tokens_end_when_idle_and_at_their_absolute_limit(
    sqlite_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    with make_client(sqlite_backend) as c:

        def web_ok() -> bool:
            r = c.get("/web/")
            assert r.status_code in (200, 303), r.status_code
            return r.status_code == 200

        def api_ok(bearer: dict[str, str]) -> bool:
            r = c.get("/api/v1/auth/me", headers=bearer)
            assert r.status_code in (200, 401), r.status_code
            return r.status_code == 200

        cookie = web_login(c)
        r = _api_login(c, ADMIN, "demo")
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        # Used every 15 minutes (under the 20 of idleness): alive until the absolute 60.
        for _ in range(3):
            clock.advance(15)
            assert web_ok() and api_ok(bearer)
        clock.advance(14)  # 59 minutes after login
        assert web_ok() and api_ok(bearer)
        clock.advance(2)  # 61: past the absolute limit, although used 2 minutes ago
        assert not web_ok() and not api_ok(bearer)
        assert c.get("/web/").headers["location"].startswith("/web/login")

        # Idle: a fresh session unused for longer than 20 minutes is over.
        c.cookies.clear()
        cookie = web_login(c)
        r = _api_login(c, ADMIN, "demo")
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        clock.advance(19)
        assert web_ok() and api_ok(bearer)
        clock.advance(21)
        assert not web_ok() and not api_ok(bearer)
        c.cookies.set("ezd_session", cookie)
        assert c.get("/api/v1/auth/me").status_code == 401


def test_web_logout_revokes_the_session_on_the_server(web: TestClient) -> None:
    cookie = web_login(web)
    assert web.get("/web/").status_code == 200
    r = web.post("/web/logout", headers={CSRF_HEADER: csrf_token_for(cookie)})
    assert r.status_code == 303 and r.headers["location"] == "/web/login"
    assert "ezd_session" not in web.cookies
    web.cookies.set("ezd_session", cookie)  # a copy of the old cookie is useless
    assert web.get("/web/").status_code == 303
    assert web.get("/api/v1/auth/me").status_code == 401


# --- no secrets in the logs ------------------------------------------------------------------


def test_no_secret_reaches_the_logs(
    backend: Backend,
    pki: TestPki,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Everything logged at DEBUG by every logger (SQL statements with their parameters
    included) and every request line an access log would print, across logins, a failed
    login, token and cookie use, user creation, a seal import with its passphrase and loading
    the settings, contains none of the secrets involved."""
    import base64
    import logging

    from sqlalchemy.engine import make_url

    from workflow.db import make_engine
    from workflow.settings import Settings

    secrets = {
        "api user password": "Zaq1-Xsw2-Cde3-Vfr4",
        "web user password": "Mko0-Nji9-Bhu8-Vgy7",
        "wrong password": "Wrong-Zaq1-Guess-77",
        "seal passphrase": "seal-passphrase-Qw3rty",
        "database password": "Db-Pa55-Secret-1",
        "S3 secret key": "S3-Secret-Key-XYZ123",
        "SMTP password": "Smtp-Pa55-Secret-2",
        "key encryption key": base64.b64encode(b"k" * 32).decode(),
    }
    real_db = make_url(backend.settings.resolved_database_url).password
    if real_db and len(real_db) >= 8:  # a short one ("ezd") matches harmless text
        secrets["test database password"] = real_db
    request_lines: list[str] = []
    caplog.set_level(logging.DEBUG)  # the root logger: every logger propagates to it
    # ... and every logger that sets its own level (SQLAlchemy's: SQL with its parameters).
    for name in ["sqlalchemy", *logging.root.manager.loggerDict]:
        caplog.set_level(logging.DEBUG, logger=name)

    with make_client(backend) as c:
        c.event_hooks["request"] = [
            lambda req: request_lines.append(f"{req.method} {req.url.raw_path.decode()}")
        ]
        admin = {"Authorization": f"Bearer {_api_login(c, ADMIN, 'demo').json()['access_token']}"}
        secrets["admin token"] = admin["Authorization"].split()[1]
        r = c.post(
            "/api/v1/users",
            headers=admin,
            json={
                "username": "tajny.api",
                "full_name": "Tajny Api",
                "password": secrets["api user password"],
            },
        )
        assert r.status_code == 201, r.text
        session = web_login(c)
        secrets["admin session cookie"] = session
        secrets["admin CSRF token"] = csrf_token_for(session)
        r = c.post(
            "/web/admin/users",
            data={
                "username": "tajny.web",
                "full_name": "Tajny Web",
                "password": secrets["web user password"],
                CSRF_FIELD: csrf_token_for(session),
            },
        )
        assert r.status_code == 303, r.text
        r = c.post(
            "/api/v1/units/SP58/signing-keys",
            headers=admin,
            json={
                "label": "Pieczęć",
                "key_base64": base64.b64encode(
                    pki.seal.p12(secrets["seal passphrase"].encode())
                ).decode(),
                "password": secrets["seal passphrase"],
            },
        )
        assert r.status_code == 201, r.text
        assert _api_login(c, "tajny.api", secrets["wrong password"]).status_code == 401
        r = _api_login(c, "tajny.api", secrets["api user password"])
        assert r.status_code == 200
        secrets["user token"] = r.json()["access_token"]
        bearer = {"Authorization": f"Bearer {secrets['user token']}"}
        assert c.get("/api/v1/auth/me", headers=bearer).status_code == 200
        c.cookies.clear()
        secrets["web user cookie"] = web_login(c, "tajny.web", secrets["web user password"])
        assert c.get("/web/").status_code == 200
        assert c.post("/api/v1/auth/logout", headers=bearer).status_code == 204

    monkeypatch.setenv(
        "EZD_DATABASE_URL",
        f"postgresql+psycopg://ezd:{secrets['database password']}@127.0.0.1:1/ezd",
    )
    monkeypatch.setenv("EZD_S3_SECRET_KEY", secrets["S3 secret key"])
    monkeypatch.setenv("EZD_SMTP_PASSWORD", secrets["SMTP password"])
    monkeypatch.setenv("EZD_KEY_ENCRYPTION_KEY", secrets["key encryption key"])
    settings = Settings()
    log = logging.getLogger("ezd.test")
    log.debug("settings: %r", settings)
    log.info("settings: %s", settings)
    log.debug("database: %s", make_url(settings.resolved_database_url))
    engine = make_engine(settings.resolved_database_url)
    log.info("engine: %r", engine)
    engine.dispose()

    logged = [r.getMessage() for r in caplog.records]
    logged += [*caplog.text.splitlines(), *request_lines]
    assert len(caplog.records) > 50  # SQL at DEBUG was captured: the check is not vacuous
    found = {name: line for name, value in secrets.items() for line in logged if value in line}
    assert not found, "in the logs:\n" + "\n".join(f"{k}: {v[:3000]}" for k, v in found.items())
