"""Login: OAuth2 password flow for API clients (bearer token) and a cookie session for the web."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import SESSION_COOKIE, Actor, AnonymousUoW, UoW, bearer_or_cookie, container
from api.schemas import MeOut, RoleOut, TokenOut
from api.web.security import secure_cookies
from workflow.org.repository import OrgRepository
from workflow.org.service import login, logout

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut, summary="Get a bearer token (OAuth2 password)")
def issue_token(
    request: Request, uow: AnonymousUoW, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenOut:
    ttl = timedelta(minutes=container(request).settings.token_ttl_minutes)
    issued = login(uow, form.username, form.password, kind="bearer", ttl=ttl)
    return TokenOut(access_token=issued.token, expires_in=int(ttl.total_seconds()))


@router.post("/login", response_model=MeOut, summary="Log in and get a session cookie")
def login_with_cookie(
    request: Request,
    response: Response,
    uow: AnonymousUoW,
    username: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=200)],
) -> MeOut:
    settings = container(request).settings
    ttl = timedelta(minutes=settings.session_ttl_minutes)
    issued = login(uow, username, password, kind="cookie", ttl=ttl)
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
