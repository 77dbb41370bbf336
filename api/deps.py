"""Request dependencies: the authenticated principal and the unit of work.

One transaction per request, committed before the response is sent: a 2xx means committed.

Transactions hold database locks (SQLite's write lock, PostgreSQL row locks on counters) and run
their blocking work in the thread pool. If every pool thread were waiting for a lock, the holder
could never get a thread to finish and commit. So every database section takes a *transaction
slot* first, on the event loop, and there are fewer slots than pool threads (one on SQLite,
where writers queue anyway). Uploads are read from the network before their transaction starts,
so no slot is held while a client is slow to send; their endpoints authenticate in a short read
section of its own first (`Actor` alone).

An endpoint with the request's unit of work (`UoW`) is authenticated inside that transaction,
in its first step in the thread pool: one transaction and one hop to a pool thread per request
instead of two each, which is most of the API's own time on a fast read such as a search. A
revoked or expired session is refused just as soon: nothing about the principal is cached
beyond the request.
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


Credentials = tuple[str, str]  # the token and its kind ("bearer" or "cookie")


@asynccontextmanager
async def transaction(
    request: Request, actor: Principal = SYSTEM, *, authenticate_with: Credentials | None = None
) -> AsyncIterator[UnitOfWork]:
    """A unit of work inside a transaction slot; commits on success, rolls back on error.
    With `authenticate_with`, its actor is the principal of those credentials, looked up in
    this transaction (refused with 401 before any work)."""
    c = container(request)
    async with transaction_slots(request):
        uow = UnitOfWork(c.session_factory, actor)
        try:
            if authenticate_with is not None:
                uow.actor = await run_in_threadpool(_authenticate, c, uow, authenticate_with)
                request.state.principal = uow.actor
            yield uow
        except BaseException:
            await run_in_threadpool(uow.close)  # rolls back what is not committed
            raise
        await run_in_threadpool(_commit_and_close, uow)
        c.worker.wake()


def _authenticate(c: Container, uow: UnitOfWork, credentials: Credentials) -> Principal:
    token, kind = credentials
    return authenticate(uow, token, kind=kind, lifetime=session_lifetime(c.settings, kind))


def _commit_and_close(uow: UnitOfWork) -> None:
    try:
        uow.commit()
    finally:
        uow.close()


async def run_in_transaction(
    request: Request, actor: Principal, work: Callable[[UnitOfWork], T]
) -> T:
    """Run blocking `work` as `actor` inside one transaction (for endpoints that first read an
    upload from the network, outside any transaction)."""
    return await _in_one_step(request, work, actor=actor)


async def run_authenticated(request: Request, work: Callable[[UnitOfWork], T]) -> T:
    """Authenticate the caller and run blocking `work` as them in the same transaction: for a
    hot read endpoint (search), whose own time is mostly these steps. The same transaction and
    refusals as `UoW` with `Actor`, one hop to a pool thread instead of three."""
    return await _in_one_step(request, work, credentials=request_credentials(request))


async def _in_one_step(
    request: Request,
    work: Callable[[UnitOfWork], T],
    *,
    actor: Principal = SYSTEM,
    credentials: Credentials | None = None,
) -> T:
    """One transaction in one step in the thread pool: authenticate (with `credentials`), run
    `work`, commit; anything unfinished is rolled back."""
    c = container(request)

    def steps() -> T:
        uow = UnitOfWork(c.session_factory, actor)
        try:
            if credentials is not None:
                uow.actor = _authenticate(c, uow, credentials)
            result = work(uow)
            uow.commit()
            return result
        finally:
            uow.close()  # rolls back what is not committed

    async with transaction_slots(request):
        result = await run_in_threadpool(steps)
    c.worker.wake()
    return result


def bearer_or_cookie(request: Request) -> Credentials | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None


def request_credentials(request: Request) -> Credentials:
    """The request's bearer token or session cookie; a cookie-authenticated unsafe call must
    come from our own pages (CSRF)."""
    found = bearer_or_cookie(request)
    if found is None:
        raise Unauthenticated()
    if found[1] == "cookie":
        from api.web.security import check_api_cookie_request  # api.web imports this module

        check_api_cookie_request(request)
    return found


async def current_principal(request: Request) -> Principal:
    """The caller. When the request's unit of work authenticated it already, that principal;
    otherwise looked up in a short transaction of its own (the endpoints that read an upload
    before their transaction starts)."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    credentials = request_credentials(request)
    c = container(request)

    def check() -> Principal:
        with UnitOfWork(c.session_factory) as uow:
            principal = _authenticate(c, uow, credentials)
            uow.commit()  # the idle expiry moved forward, if it was time to
            return principal

    async with transaction_slots(request):
        principal = await run_in_threadpool(check)
    request.state.principal = principal
    return principal


Actor = Annotated[Principal, Depends(current_principal)]


async def unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's transaction, its actor authenticated inside it. Declared before `Actor`
    in an endpoint's parameters, so that `Actor` then finds the principal it looked up."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        async with transaction(request, known) as uow:
            yield uow
    else:
        credentials = request_credentials(request)
        async with transaction(request, authenticate_with=credentials) as uow:
            yield uow


async def anonymous_unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    async with transaction(request) as uow:
        yield uow


UoW = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]
AnonymousUoW = Annotated[UnitOfWork, Depends(anonymous_unit_of_work, scope="function")]
