"""Login: OAuth2 password flow for API clients (bearer token) and a cookie session for the web."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import SESSION_COOKIE, Actor, AnonymousUoW, UoW, bearer_or_cookie, container
from api.errors import AUTH_ERRORS, error_body, error_headers, error_responses
from api.schemas import MeOut, RoleOut, TokenOut
from api.web.security import check_origin, client_address, secure_cookies
from workflow.errors import DomainError
from workflow.org.repository import OrgRepository
from workflow.org.service import attempt_login, logout, session_lifetime

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=error_responses(*AUTH_ERRORS))


def refusal(e: DomainError) -> JSONResponse:
    """A refused login as the error handler would answer it, but returned, so that the
    request's transaction commits the failure the throttle counted."""
    return JSONResponse(
        error_body(e.code, e.message_pl, e.message_en, e.details),
        status_code=e.status,
        headers=error_headers(e),
    )


THROTTLED = {429: {"description": "Too many failed logins (`login_throttled`, with Retry-After)"}}


@router.post(
    "/token",
    response_model=TokenOut,
    summary="Get a bearer token (OAuth2 password)",
    responses=THROTTLED,
)
def issue_token(
    request: Request, uow: AnonymousUoW, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenOut | JSONResponse:
    ttl = timedelta(minutes=container(request).settings.token_ttl_minutes)
    lifetime = session_lifetime(container(request).settings, "bearer")
    attempt = attempt_login(
        uow,
        form.username,
        form.password,
        kind="bearer",
        ttl=lifetime,
        client=client_address(request),
    )
    if attempt.issued is None:
        assert attempt.error is not None
        return refusal(attempt.error)
    return TokenOut(access_token=attempt.issued.token, expires_in=int(ttl.total_seconds()))


@router.post(
    "/login",
    response_model=MeOut,
    summary="Log in and get a session cookie",
    responses=THROTTLED,
)
def login_with_cookie(
    request: Request,
    response: Response,
    uow: AnonymousUoW,
    username: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=200)],
) -> MeOut | JSONResponse:
    check_origin(request)  # no logging a browser into someone else's session from elsewhere
    settings = container(request).settings
    ttl = timedelta(minutes=settings.session_ttl_minutes)
    lifetime = session_lifetime(settings, "cookie")
    attempt = attempt_login(
        uow, username, password, kind="cookie", ttl=lifetime, client=client_address(request)
    )
    if attempt.issued is None:
        assert attempt.error is not None
        return refusal(attempt.error)
    issued = attempt.issued
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    return _me(uow, issued.principal)


@router.post("/logout", status_code=204, summary="End the current session or token")
def end_session(request: Request, response: Response, uow: UoW, actor: Actor) -> None:
    found = bearer_or_cookie(request)
    if found:
        logout(uow, found[0])
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me", response_model=MeOut, summary="Who am I, with my roles per unit")
def me(uow: UoW, actor: Actor) -> MeOut:
    return _me(uow, actor)


def _me(uow: UoW, actor: Actor) -> MeOut:
    repo = OrgRepository(uow.session)
    roles = []
    for unit_id, unit_roles in actor.roles.items():
        unit = repo.unit(unit_id)
        roles += [RoleOut(unit=unit.code if unit else "?", role=r) for r in sorted(unit_roles)]
    return MeOut(
        username=actor.username,
        full_name=actor.full_name,
        roles=sorted(roles, key=lambda r: (r.unit, r.role)),
    )
