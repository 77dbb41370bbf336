"""Login and authentication over HTTP: bearer tokens, the session cookie, expiry, logout,
deactivated users, that every API endpoint needs credentials, and the admin-only endpoints."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import fastapi.routing
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.conftest import Backend
from tests.helpers import error_code, letter_meta, register, token
from workflow.db import utcnow
from workflow.org.models import AuthSession, User

# The only API endpoints that answer without credentials.
PUBLIC = {("POST", "/api/v1/auth/token"), ("POST", "/api/v1/auth/login")}
# Citizen e-services need no account: each request is checked by tracking code and PIN
# (tests/test_eservices.py covers that and the throttling).
CITIZEN_PREFIX = "/api/v1/public/"


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def _raw_token(client: TestClient, username: str, password: str = "demo") -> str:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _set_user_active(backend: Backend, username: str, active: bool) -> None:
    with backend.container.uow() as uow:
        uow.session.execute(update(User).where(User.username == username).values(active=active))
        uow.commit()


# --- bearer tokens -------------------------------------------------------------------------


def test_token_with_good_password_works_on_me(backend: Backend, client: TestClient) -> None:
    r = client.post("/api/v1/auth/token", data={"username": "clerk.sp58", "password": "demo"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == backend.settings.token_ttl_minutes * 60
    assert len(body["access_token"]) >= 32

    me = client.get("/api/v1/auth/me", headers=_bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "clerk.sp58"
    assert me.json()["full_name"] == "clerk SP58 (demo)"
    assert me.json()["roles"] == [{"unit": "SP58", "role": "clerk"}]


def test_token_is_stored_only_as_digest(backend: Backend, client: TestClient) -> None:
    raw = _raw_token(client, "clerk.sp58")
    with backend.container.uow() as uow:
        hashes = uow.session.execute(select(AuthSession.token_hash)).scalars().all()
    assert hashlib.sha256(raw.encode()).hexdigest() in hashes
    assert raw not in hashes


def test_bad_password_and_unknown_user_get_the_same_answer(client: TestClient) -> None:
    bad = client.post("/api/v1/auth/token", data={"username": "clerk.sp58", "password": "wrong"})
    unknown = client.post(
        "/api/v1/auth/token", data={"username": "nobody.sp58", "password": "wrong"}
    )
    assert bad.status_code == unknown.status_code == 401
    assert error_code(bad) == "invalid_credentials"
    assert bad.json() == unknown.json()
    assert bad.headers.get("www-authenticate") == "Bearer"
    assert "access_token" not in bad.text


def test_garbage_token_is_rejected(client: TestClient) -> None:
    for value in ("garbage", "x" * 43, str(uuid.uuid4())):
        r = client.get("/api/v1/auth/me", headers=_bearer(value))
        assert r.status_code == 401, value
        assert error_code(r) == "invalid_token"
        assert r.headers.get("www-authenticate") == "Bearer"


def test_expired_token_is_rejected(backend: Backend, client: TestClient) -> None:
    raw = _raw_token(client, "clerk.sp58")
    assert client.get("/api/v1/auth/me", headers=_bearer(raw)).status_code == 200
    digest = hashlib.sha256(raw.encode()).hexdigest()
    with backend.container.uow() as uow:
        uow.session.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == digest)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        uow.commit()
    with backend.container.uow() as uow:
        expires = uow.session.execute(
            select(AuthSession.expires_at).where(AuthSession.token_hash == digest)
        ).scalar_one()
    assert expires < utcnow()
    r = client.get("/api/v1/auth/me", headers=_bearer(raw))
    assert r.status_code == 401
    assert error_code(r) == "invalid_token"


def test_logout_revokes_the_token(client: TestClient) -> None:
    raw = _raw_token(client, "clerk.sp58")
    other = _raw_token(client, "clerk.sp58")
    r = client.post("/api/v1/auth/logout", headers=_bearer(raw))
    assert r.status_code == 204, r.text
    after = client.get("/api/v1/auth/me", headers=_bearer(raw))
    assert after.status_code == 401
    assert error_code(after) == "invalid_token"
    # Only that token: another login of the same user still works.
    assert client.get("/api/v1/auth/me", headers=_bearer(other)).status_code == 200
    # Logging out again with the revoked token is refused, not a 500.
    assert client.post("/api/v1/auth/logout", headers=_bearer(raw)).status_code == 401


def test_a_request_authenticates_inside_its_own_transaction(
    backend: Backend, client: TestClient
) -> None:
    """An endpoint with the request's unit of work looks the caller up in that transaction:
    one transaction per request (search included), not a second one for the token. Upload
    endpoints read their body first, so they authenticate in a short one of their own."""
    from sqlalchemy import event

    h = token(client, "clerk.sp58")
    begun: list[object] = []

    def count(conn: object) -> None:
        begun.append(conn)

    engine = backend.container.engine
    event.listen(engine, "begin", count)
    try:
        for path in ("/api/v1/auth/me", "/api/v1/cases", "/api/v1/search?q=wniosek"):
            begun.clear()
            r = client.get(path, headers=h)
            assert r.status_code == 200, (path, r.text)
            assert len(begun) == 1, (path, len(begun))
        begun.clear()
        r = register(client, h, letter_meta())
        assert r.status_code == 201, r.text
        assert len(begun) == 2, len(begun)
        # Nothing about the caller outlives the request: a revoked token is refused next time.
        raw = h["Authorization"].removeprefix("Bearer ")
        assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
        for path in ("/api/v1/auth/me", "/api/v1/search?q=wniosek"):
            r = client.get(path, headers=_bearer(raw))
            assert r.status_code == 401, path
            assert error_code(r) == "invalid_token"
    finally:
        event.remove(engine, "begin", count)


# --- the session cookie --------------------------------------------------------------------


def test_cookie_login_sets_httponly_session_cookie(backend: Backend, client: TestClient) -> None:
    r = client.post("/api/v1/auth/login", data={"username": "headteacher.sp58", "password": "demo"})
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "headteacher.sp58"
    assert r.json()["roles"] == [{"unit": "SP58", "role": "headteacher"}]
    set_cookie = r.headers["set-cookie"]
    attrs = [a.strip().lower() for a in set_cookie.split(";")]
    assert set_cookie.startswith("ezd_session=")
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    assert f"max-age={backend.settings.session_ttl_minutes * 60}" in attrs
    cookie = r.cookies["ezd_session"]
    assert cookie

    # The client's cookie jar now authenticates GET requests, without any header.
    me = client.get("/api/v1/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "headteacher.sp58"
    assert client.get("/api/v1/cases", params={"unit": "SP58"}).status_code == 200

    # A cookie session is not a bearer token (and vice versa).
    client.cookies.clear()
    assert client.get("/api/v1/auth/me").status_code == 401
    assert client.get("/api/v1/auth/me", headers=_bearer(cookie)).status_code == 401
    raw = _raw_token(client, "headteacher.sp58")
    client.cookies.set("ezd_session", raw)
    assert client.get("/api/v1/auth/me").status_code == 401
    client.cookies.set("ezd_session", cookie)
    assert client.get("/api/v1/auth/me").status_code == 200


def test_cookie_login_with_bad_password_sets_no_cookie(client: TestClient) -> None:
    r = client.post("/api/v1/auth/login", data={"username": "clerk.sp58", "password": "nope"})
    assert r.status_code == 401
    assert error_code(r) == "invalid_credentials"
    assert "set-cookie" not in r.headers


def test_cookie_logout_revokes_the_session(client: TestClient) -> None:
    r = client.post("/api/v1/auth/login", data={"username": "clerk.sp58", "password": "demo"})
    cookie = r.cookies["ezd_session"]
    out = client.post("/api/v1/auth/logout")
    assert out.status_code == 204
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert "ezd_session" not in client.cookies
    # A copy of the old cookie is useless now.
    client.cookies.set("ezd_session", cookie)
    r = client.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert error_code(r) == "invalid_token"


# --- deactivated users ---------------------------------------------------------------------


def test_deactivated_user_cannot_log_in(backend: Backend, client: TestClient) -> None:
    raw = _raw_token(client, "clerk.sp12")
    _set_user_active(backend, "clerk.sp12", False)
    for path in ("/api/v1/auth/token", "/api/v1/auth/login"):
        r = client.post(path, data={"username": "clerk.sp12", "password": "demo"})
        assert r.status_code == 401, path
        assert error_code(r) == "invalid_credentials"
        assert "set-cookie" not in r.headers
    # The token issued before deactivation stops working too.
    r = client.get("/api/v1/auth/me", headers=_bearer(raw))
    assert r.status_code == 401
    assert error_code(r) == "invalid_token"
    _set_user_active(backend, "clerk.sp12", True)
    assert client.get("/api/v1/auth/me", headers=_bearer(raw)).status_code == 200


# --- every endpoint needs credentials ------------------------------------------------------


def _dummy_path(path: str, route: APIRoute) -> str:
    values: dict[str, str] = {}
    for param in route.dependant.path_params:
        annotation = param.field_info.annotation
        if annotation is uuid.UUID:
            values[param.name] = str(uuid.uuid4())
        elif annotation is int:
            values[param.name] = "1"
        else:
            values[param.name] = "SP58.431.1.2026" if param.name == "reference" else "SP58"
    return path.format(**values)


def _api_endpoints(client: TestClient) -> list[tuple[str, str, str]]:
    """(method, path template, concrete url) of every /api/v1 route. FastAPI >= 0.16x keeps
    included routers as nested entries of `app.routes`; `iter_route_contexts` flattens them."""
    routes = client.app.routes  # type: ignore[attr-defined]
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    found = []
    for entry in iterate(routes) if iterate else routes:
        route = getattr(entry, "original_route", entry)
        path = entry.path
        if not isinstance(route, APIRoute) or not path.startswith("/api/v1/"):
            continue
        for method in sorted(entry.methods):
            found.append((method, path, _dummy_path(path, route)))
    return found


def test_every_api_endpoint_needs_credentials(client: TestClient) -> None:
    endpoints = _api_endpoints(client)
    paths = {(m, p) for m, p, _ in endpoints}
    # The walk sees the whole API (a broken walk must not pass vacuously).
    assert len(endpoints) >= 20
    assert paths >= PUBLIC
    for expected in [
        ("POST", "/api/v1/incoming"),
        ("GET", "/api/v1/cases/{reference}"),
        ("GET", "/api/v1/documents/{document_id}/versions/{version}/content"),
        ("POST", "/api/v1/users/{username}/roles"),
        ("GET", "/api/v1/jrwa"),
    ]:
        assert expected in paths

    checked = []
    citizen = [p for _, p, _ in endpoints if p.startswith(CITIZEN_PREFIX)]
    for method, path, url in endpoints:
        if (method, path) in PUBLIC or path.startswith(CITIZEN_PREFIX):
            continue
        for headers, code in (({}, "unauthenticated"), (_bearer("not-a-token"), "invalid_token")):
            r = client.request(method, url, headers=headers)
            assert r.status_code == 401, f"{method} {url} {headers}: {r.status_code} {r.text}"
            assert error_code(r) == code, f"{method} {url}"
        checked.append(path)
    assert len(checked) == len(endpoints) - len(PUBLIC) - len(citizen)


def test_public_endpoints_refuse_without_a_password(client: TestClient) -> None:
    for path in sorted(p for _, p in PUBLIC):
        r = client.post(path)
        assert r.status_code == 422, path
        assert error_code(r) == "validation_failed"


# --- admin endpoints -----------------------------------------------------------------------

UNIT = {
    "code": "SP99",
    "name": "Szkoła Podstawowa nr 99",
    "kind": "school",
    "jrwa_plan": "szkola",
    "address": "ul. Nowa 99, 00-099 Miasto",
}
USER = {
    "username": "jan.nowak",
    "full_name": "Jan Nowak",
    "password": "tajne-haslo-1",
    "email": "jan.nowak@example.org",
}


def _admin_calls() -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", "/api/v1/units", UNIT),
        ("POST", "/api/v1/units/SP58/departments", {"code": "SEK", "name": "Sekretariat"}),
        ("POST", "/api/v1/users", USER),
        ("POST", "/api/v1/users/clerk.sp12/roles", {"unit": "SP58", "role": "clerk"}),
        ("GET", "/api/v1/users", None),
    ]


NON_ADMINS = ["clerk.sp58", "headteacher.sp58", "handler.wow", "city_officer.wow", "auditor.wow"]


def test_admin_endpoints_are_forbidden_for_non_admins(client: TestClient) -> None:
    for username in NON_ADMINS:
        h = token(client, username)
        for method, url, body in _admin_calls():
            r = client.request(method, url, headers=h, json=body)
            assert r.status_code == 403, f"{username} {method} {url}: {r.text}"
            assert error_code(r) == "forbidden"
    # Nothing was created on the way.
    admin = token(client, "admin.wow")
    assert "SP99" not in [u["code"] for u in client.get("/api/v1/units", headers=admin).json()]
    assert "jan.nowak" not in [
        u["username"] for u in client.get("/api/v1/users", headers=admin).json()
    ]
    depts = client.get("/api/v1/units/SP58/departments", headers=admin).json()
    assert depts == []
    me12 = client.get("/api/v1/auth/me", headers=token(client, "clerk.sp12")).json()
    assert me12["roles"] == [{"unit": "SP12", "role": "clerk"}]


def test_admin_creates_unit_department_user_and_role(client: TestClient) -> None:
    admin = token(client, "admin.wow")
    r = client.post("/api/v1/units", headers=admin, json=UNIT)
    assert r.status_code == 201, r.text
    assert r.json() == UNIT
    again = client.post("/api/v1/units", headers=admin, json=UNIT)
    assert again.status_code == 409 and error_code(again) == "unit_exists"

    r = client.post(
        "/api/v1/units/SP99/departments", headers=admin, json={"code": "SEK", "name": "Sekretariat"}
    )
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/units/SP99/departments", headers=admin).json() == [
        {"code": "SEK", "name": "Sekretariat"}
    ]

    r = client.post("/api/v1/users", headers=admin, json=USER)
    assert r.status_code == 201, r.text
    assert r.json() == {
        "username": "jan.nowak",
        "full_name": "Jan Nowak",
        "email": "jan.nowak@example.org",
        "active": True,
    }
    assert "password" not in r.text and "hash" not in r.text
    users = client.get("/api/v1/users", headers=admin)
    assert users.status_code == 200
    assert "jan.nowak" in [u["username"] for u in users.json()]

    r = client.post(
        "/api/v1/users/jan.nowak/roles",
        headers=admin,
        json={"unit": "SP99", "role": "clerk", "department": "SEK"},
    )
    assert r.status_code == 204, r.text
    bad = client.post(
        "/api/v1/users/nobody/roles", headers=admin, json={"unit": "SP99", "role": "clerk"}
    )
    assert bad.status_code == 404 and error_code(bad) == "user_not_found"

    # The new user logs in, holds the role, and works in the new unit only.
    h = token(client, "jan.nowak", "tajne-haslo-1")
    me = client.get("/api/v1/auth/me", headers=h).json()
    assert me["username"] == "jan.nowak"
    assert me["roles"] == [{"unit": "SP99", "role": "clerk"}]
    reg = register(client, h, letter_meta())
    assert reg.status_code == 201, reg.text
    assert reg.json()["unit"] == "SP99"
    assert reg.json()["case_reference"].startswith("SP99.431.1.")
    assert register(client, h, letter_meta(unit="SP58")).status_code == 403


def test_admin_input_is_validated(client: TestClient) -> None:
    admin = token(client, "admin.wow")
    short = client.post("/api/v1/users", headers=admin, json={**USER, "password": "short"})
    assert short.status_code == 422 and error_code(short) == "validation_failed"
    kind = client.post("/api/v1/units", headers=admin, json={**UNIT, "kind": "castle"})
    assert kind.status_code == 422
    role = client.post(
        "/api/v1/users/clerk.sp12/roles", headers=admin, json={"unit": "NOPE", "role": "clerk"}
    )
    assert role.status_code == 422 and error_code(role) == "unknown_unit"
    dup = client.post("/api/v1/users", headers=admin, json={**USER, "username": "clerk.sp58"})
    assert dup.status_code == 409 and error_code(dup) == "user_exists"
