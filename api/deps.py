"""Request dependencies: the unit of work (one transaction per request, committed before the
response is sent) and the authenticated principal (bearer token or session cookie)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from api.bootstrap import Container
from workflow.errors import Unauthenticated
from workflow.org.service import authenticate
from workflow.principal import Principal
from workflow.uow import UnitOfWork

SESSION_COOKIE = "ezd_session"


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def unit_of_work(request: Request) -> Iterator[UnitOfWork]:
    """Commit when the endpoint returns, roll back when it raises. Declared with
    scope="function", so this runs before the response goes out: a 2xx means committed."""
    c = container(request)
    uow = UnitOfWork(c.session_factory)
    try:
        yield uow
        uow.commit()
        c.worker.wake()
    except BaseException:
        uow.rollback()
        raise
    finally:
        uow.close()


UoW = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]


def bearer_or_cookie(request: Request) -> tuple[str, str] | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None


def current_principal(request: Request, uow: UoW) -> Principal:
    found = bearer_or_cookie(request)
    if found is None:
        raise Unauthenticated()
    token, kind = found
    principal = authenticate(uow, token, kind=kind)
    uow.actor = principal
    return principal


Actor = Annotated[Principal, Depends(current_principal)]
