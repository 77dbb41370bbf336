"""Request dependencies: the authenticated principal and the unit of work.

One transaction per request, committed before the response is sent: a 2xx means committed.

Transactions hold database locks (SQLite's write lock, PostgreSQL row locks on counters) and run
their blocking work in the thread pool. If every pool thread were waiting for a lock, the holder
could never get a thread to finish and commit. So every database section takes a *transaction
slot* first, on the event loop, and there are fewer slots than pool threads (one on SQLite,
where writers queue anyway). Authentication runs in its own short read section before the
request's transaction, and uploads are read from the network before their transaction starts,
so no slot is held while a client is slow to send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.bootstrap import Container
from workflow.errors import Unauthenticated
from workflow.org.service import authenticate, session_lifetime
from workflow.principal import SYSTEM, Principal
from workflow.uow import UnitOfWork

SESSION_COOKIE = "ezd_session"
T = TypeVar("T")


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def transaction_slots(request: Request) -> asyncio.Semaphore:
    state = request.app.state
    if getattr(state, "tx_slots", None) is None:
        c = container(request)
        s = c.settings
        # Below the thread pool's 40 threads and within the connection pool (size + overflow).
        n = (
            1
            if s.is_sqlite
            else max(1, min(s.max_concurrent_transactions, 2 * s.database_pool_size, 32))
        )
        state.tx_slots = asyncio.Semaphore(n)
    slots: asyncio.Semaphore = state.tx_slots
    return slots


@asynccontextmanager
async def transaction(request: Request, actor: Principal = SYSTEM) -> AsyncIterator[UnitOfWork]:
    """A unit of work inside a transaction slot; commits on success, rolls back on error."""
    c = container(request)
    async with transaction_slots(request):
        uow = UnitOfWork(c.session_factory, actor)
        try:
            yield uow
            await run_in_threadpool(uow.commit)
            c.worker.wake()
        except BaseException:
            await run_in_threadpool(uow.rollback)
            raise
        finally:
            await run_in_threadpool(uow.close)


async def run_in_transaction(
    request: Request, actor: Principal, work: Callable[[UnitOfWork], T]
) -> T:
    """Run blocking `work` in the thread pool inside one transaction (for endpoints that first
    read an upload from the network, outside any transaction)."""
    async with transaction(request, actor) as uow:
        return await run_in_threadpool(work, uow)


def bearer_or_cookie(request: Request) -> tuple[str, str] | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None


async def current_principal(request: Request) -> Principal:
    found = bearer_or_cookie(request)
    if found is None:
        raise Unauthenticated()
    token, kind = found
    if kind == "cookie":
        from api.web.security import check_api_cookie_request  # api.web imports this module

        check_api_cookie_request(request)
    c = container(request)

    def check() -> Principal:
        with UnitOfWork(c.session_factory) as uow:
            principal = authenticate(
                uow, token, kind=kind, lifetime=session_lifetime(c.settings, kind)
            )
            uow.commit()  # the idle expiry moved forward, if it was time to
            return principal

    async with transaction_slots(request):
        return await run_in_threadpool(check)


Actor = Annotated[Principal, Depends(current_principal)]


async def unit_of_work(request: Request, actor: Actor) -> AsyncIterator[UnitOfWork]:
    async with transaction(request, actor) as uow:
        yield uow


async def anonymous_unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    async with transaction(request) as uow:
        yield uow


UoW = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]
AnonymousUoW = Annotated[UnitOfWork, Depends(anonymous_unit_of_work, scope="function")]
