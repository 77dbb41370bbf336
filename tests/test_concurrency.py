"""Gapless, unique numbers under concurrent registration: 50 clients register at once into the
same register and JRWA class, over real HTTP against a live server."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import select

from api.app import create_app
from tests.conftest import Backend
from tests.helpers import PDF, letter_meta
from tests.live import live_server
from workflow.audit.repository import AuditRepository
from workflow.audit.service import verify_chain
from workflow.cases.models import Case
from workflow.registry.models import IncomingItem

N = 50


def _register_concurrently(base: str, n: int) -> list[httpx.Response]:
    with httpx.Client(base_url=base, timeout=60) as c:
        tok = c.post(
            "/api/v1/auth/token", data={"username": "clerk.sp58", "password": "demo"}
        ).json()["access_token"]
    headers = {"Authorization": f"Bearer {tok}"}

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=120) as c:
            return c.post(
                "/api/v1/incoming",
                headers=headers,
                data={"meta": json.dumps(letter_meta(subject=f"Wniosek nr {i}"))},
                files=[("files", (f"w{i}.pdf", PDF, "application/pdf"))],
            )

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _assert_gapless(backend: Backend, responses: list[httpx.Response]) -> None:
    assert all(r.status_code == 201 for r in responses), [
        r.text for r in responses if r.status_code != 201
    ][:3]
    rpw = sorted(
        int(re.match(r"RPW/(\d+)/\d{4}", r.json()["rpw_number"]).group(1))  # type: ignore[union-attr]
        for r in responses
    )
    cases = sorted(int(r.json()["case_reference"].split(".")[2]) for r in responses)
    assert rpw == list(range(1, N + 1))
    assert cases == list(range(1, N + 1))
    with backend.container.uow() as uow:
        items = uow.session.execute(select(IncomingItem)).scalars().all()
        refs = uow.session.execute(select(Case.reference)).scalars().all()
        assert len(items) == N and len(set(refs)) == N
        assert verify_chain(AuditRepository(uow.session)).ok


def test_fifty_concurrent_registrations_are_gapless_on_postgres(pg_backend: Backend) -> None:
    with live_server(create_app(pg_backend.container, start_worker=False)) as base:
        responses = _register_concurrently(base, N)
    _assert_gapless(pg_backend, responses)


def test_fifty_concurrent_registrations_are_gapless_on_sqlite(sqlite_backend: Backend) -> None:
    with live_server(create_app(sqlite_backend.container, start_worker=False)) as base:
        responses = _register_concurrently(base, N)
    _assert_gapless(sqlite_backend, responses)


def test_concurrent_dispatch_of_one_item_succeeds_once(pg_backend: Backend) -> None:
    """Two clerks dispatch the same outgoing item at once: the second waits for the first and
    is refused, instead of both recording a dispatch."""
    import threading

    from workflow.errors import Conflict
    from workflow.org.repository import OrgRepository
    from workflow.org.service import principal_for
    from workflow.registry.schemas import Party, RegisterOutgoing
    from workflow.registry.service import dispatch_outgoing_item, register_outgoing_item
    from workflow.uow import UnitOfWork

    c = pg_backend.container
    with c.uow() as uow:
        repo = OrgRepository(uow.session)
        user = repo.user_by_username("clerk.sp58")
        assert user is not None
        clerk = principal_for(repo, user)
    with UnitOfWork(c.session_factory, clerk) as uow:
        item = register_outgoing_item(
            uow,
            RegisterOutgoing(
                subject="Odpowiedź", channel="paper", recipients=[Party(name="Anna Kowalska")]
            ),
        )
        item_id = item.id
        uow.commit()

    first = UnitOfWork(c.session_factory, clerk)
    dispatch_outgoing_item(first, item_id)  # holds the row lock until commit
    outcome: list[str] = []

    def second() -> None:
        with UnitOfWork(c.session_factory, clerk) as uow:
            try:
                dispatch_outgoing_item(uow, item_id)
                uow.commit()
                outcome.append("dispatched")
            except Conflict as e:
                outcome.append(e.code)

    t = threading.Thread(target=second)
    t.start()
    t.join(timeout=1.0)
    assert t.is_alive(), "the second dispatch should wait for the first one's lock"
    first.commit()
    first.close()
    t.join(timeout=10)
    assert outcome == ["already_dispatched"]
