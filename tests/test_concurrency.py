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
        tok = c.post("/api/v1/auth/token",
                     data={"username": "clerk.sp58", "password": "demo"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {tok}"}

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=120) as c:
            return c.post("/api/v1/incoming", headers=headers,
                          data={"meta": json.dumps(letter_meta(subject=f"Wniosek nr {i}"))},
                          files=[("files", (f"w{i}.pdf", PDF, "application/pdf"))])

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _assert_gapless(backend: Backend, responses: list[httpx.Response]) -> None:
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses
                                                          if r.status_code != 201][:3]
    rpw = sorted(int(re.match(r"RPW/(\d+)/\d{4}", r.json()["rpw_number"]).group(1))  # type: ignore[union-attr]
                 for r in responses)
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
