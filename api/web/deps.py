"""Dependencies of the web routes: the router with CSRF protection, the optional actor."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from api.deps import container, transaction_slots
from api.web.render import PREFIX
from api.web.security import csrf_protect, session_token
from workflow.errors import Unauthenticated
from workflow.org.service import authenticate, session_lifetime
from workflow.principal import Principal
from workflow.uow import UnitOfWork


def web_router() -> APIRouter:
    """Every web route: under /web, out of the OpenAPI schema, CSRF-checked when unsafe."""
    return APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(csrf_protect)])


async def optional_actor(request: Request) -> Principal | None:
    token = session_token(request)
    if not token:
        return None
    c = container(request)

    def check() -> Principal | None:
        with UnitOfWork(c.session_factory) as uow:
            try:
                principal = authenticate(
                    uow, token, kind="cookie", lifetime=session_lifetime(c.settings, "cookie")
                )
            except Unauthenticated:
                return None
            uow.commit()  # the idle expiry moved forward, if it was time to
            return principal

    async with transaction_slots(request):
        return await run_in_threadpool(check)
