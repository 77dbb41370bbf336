"""Login and logout with the session cookie, and the language switch."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Form, Request
from starlette.responses import Response

from api.deps import SESSION_COOKIE, Actor, AnonymousUoW, UoW, container
from api.web.deps import optional_actor, web_router
from api.web.i18n import LANG_COOKIE, LANGUAGES
from api.web.render import PREFIX, pick_message, redirect, render, safe_next
from api.web.security import (
    PRE_SESSION_COOKIE,
    client_address,
    new_pre_session_token,
    secure_cookies,
    session_token,
)
from workflow.org.service import attempt_login, logout, session_lifetime
from workflow.org.throttle import LoginThrottled
from workflow.principal import Principal

router = web_router()


@router.get("/login")
def login_page(
    request: Request,
    next: str = "",
    actor: Principal | None = Depends(optional_actor),
) -> Response:
    if actor is not None:
        return redirect(safe_next(next))
    token = request.cookies.get(PRE_SESSION_COOKIE) or new_pre_session_token()
    request.cookies[PRE_SESSION_COOKIE] = token  # the page renders this very token
    response = render(request, "login.html", {"next": safe_next(next)})
    response.set_cookie(
        PRE_SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path=f"{PREFIX}/login",
        secure=secure_cookies(request),
    )
    return response


@router.post("/login")
def login_submit(
    request: Request,
    uow: AnonymousUoW,
    username: Annotated[str, Form(max_length=80)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    settings = container(request).settings
    ttl = timedelta(minutes=settings.session_ttl_minutes)
    lifetime = session_lifetime(settings, "cookie")
    attempt = attempt_login(
        uow, username.strip(), password, kind="cookie", ttl=lifetime, client=client_address(request)
    )
    if attempt.issued is None:
        e = attempt.error
        assert e is not None
        page = render(
            request,
            "login.html",
            {
                "next": safe_next(next),
                "username": username,
                "error": pick_message(request, e.message_pl, e.message_en),
            },
            status_code=e.status,
        )
        if isinstance(e, LoginThrottled):
            page.headers["Retry-After"] = str(e.retry_after_seconds)
        return page
    issued = attempt.issued
    response = redirect(safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    response.delete_cookie(PRE_SESSION_COOKIE, path=f"{PREFIX}/login")
    return response


@router.post("/logout")
def logout_submit(request: Request, uow: UoW, actor: Actor) -> Response:
    token = session_token(request)
    if token:
        logout(uow, token)
    response = redirect(f"{PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/language/{lang}")
def switch_language(lang: str, next: str = "") -> Response:
    """Changes only the page language (a preference cookie), so a plain link is enough."""
    response = redirect(safe_next(next))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax")
    return response
