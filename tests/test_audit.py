"""The audit trail (invariant 3): entries are written in the transaction of the change, the table
is append-only, and the hash chain exposes any edited, removed or reordered entry — through
`ezd audit verify` (run as a real subprocess) and through GET /api/v1/audit/verify.

To tamper, the tests act like an attacker with database rights: they switch the append-only
triggers off first (DROP TRIGGER on SQLite, DISABLE TRIGGER USER on PostgreSQL).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Table, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from tests.cli import run_ezd
from tests.conftest import Backend
from tests.helpers import PDF, PNG, error_code, letter_meta, register, token
from workflow.audit.models import AuditEntry
from workflow.audit.repository import AuditRepository
from workflow.audit.service import verify_chain

ENTRIES = cast(Table, AuditEntry.__table__)
CONTENT_COLUMNS = (
    "occurred_at",
    "actor_id",
    "actor_name",
    "unit_id",
    "case_id",
    "document_id",
    "action",
    "object_type",
    "object_id",
    "details",
    "prev_hash",
    "entry_hash",
)


# --- helpers -------------------------------------------------------------------------------


def audit_verify_cli(backend: Backend) -> tuple[int, int | None, str]:
    """Exit code, the sequence number the CLI names as first bad (None when sound), output."""
    p = run_ezd(backend, "audit", "verify")
    out = p.stdout + p.stderr
    m = re.search(r"BROKEN at entry (\d+):", out)
    return p.returncode, int(m.group(1)) if m else None, out


def audit_count(backend: Backend) -> int:
    with backend.container.session_factory() as s:
        return int(s.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def entries(backend: Backend) -> list[dict[str, Any]]:
    with backend.container.session_factory() as s:
        return [dict(r._mapping) for r in s.execute(select(ENTRIES).order_by(ENTRIES.c.seq))]


def verify_in_process(backend: Backend) -> tuple[bool, int | None]:
    with backend.container.uow() as uow:
        v = verify_chain(AuditRepository(uow.session))
    return v.ok, v.first_bad_seq


def tamper(backend: Backend, change: Callable[[Connection], object]) -> None:
    """Switch the append-only triggers off, as someone with database rights could, and change
    the table in one committed transaction."""
    with backend.container.engine.begin() as conn:
        if backend.is_postgres:
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_delete"))
        change(conn)


def some_letters(client: TestClient, n: int = 2) -> None:
    """A few registrations on top of the seeded organisation, so the chain is long and varied."""
    h = token(client, "clerk.sp58")
    for i in range(n):
        r = register(client, h, letter_meta(subject=f"Pismo nr {i}"))
        assert r.status_code == 201, r.text


# --- entries are written with the change ----------------------------------------------------


def test_registration_writes_audit_entries_in_its_transaction(
    backend: Backend, client: TestClient
) -> None:
    h = token(client, "clerk.sp58")  # the login writes its own entry; count after it
    before = audit_count(backend)
    r = register(
        client,
        h,
        letter_meta(),
        [("wniosek.pdf", PDF, "application/pdf"), ("skan.png", PNG, "image/png")],
    )
    assert r.status_code == 201, r.text
    body = r.json()

    new = [e for e in entries(backend) if e["seq"] > before]
    assert sorted(e["action"] for e in new) == sorted(
        ["case.opened", "incoming.registered", "document.created", "document.created"]
    )
    by_action = {e["action"]: e for e in new}
    assert by_action["incoming.registered"]["object_id"] == body["id"]
    assert by_action["incoming.registered"]["details"]["rpw_number"] == body["rpw_number"]
    assert by_action["case.opened"]["case_id"] is not None
    assert {e["object_id"] for e in new if e["action"] == "document.created"} == {
        d["id"] for d in body["documents"]
    }
    assert all(e["actor_name"] == "clerk SP58 (demo)" for e in new)
    # One contiguous run of sequence numbers, chained onto what was there.
    assert [e["seq"] for e in new] == list(range(before + 1, before + 5))
    assert verify_in_process(backend) == (True, None)


def test_failed_registration_writes_no_audit_entry(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.sp58")
    before = audit_count(backend)
    r = register(client, h, letter_meta(jrwa="999999"))
    assert r.status_code == 422, r.text
    assert error_code(r) == "unknown_jrwa_class"
    bad_meta = register(client, h, '{"subject": "brak nadawcy"')
    assert bad_meta.status_code == 422, bad_meta.text
    assert audit_count(backend) == before
    # A later success still chains on cleanly (no sequence number was used up).
    ok = register(client, h, letter_meta())
    assert ok.status_code == 201, ok.text
    assert [e["seq"] for e in entries(backend)][before] == before + 1
    assert verify_in_process(backend) == (True, None)


# --- the database refuses changes -----------------------------------------------------------


REFUSED = (
    "UPDATE audit_entries SET action = 'x' WHERE seq = 1",
    "UPDATE audit_entries SET details = details",
    "DELETE FROM audit_entries WHERE seq = 1",
    "DELETE FROM audit_entries",
)


def test_triggers_refuse_update_and_delete(backend: Backend) -> None:
    before = entries(backend)
    assert len(before) > 1, "the seeded database has audit entries"
    for statement in REFUSED:
        with pytest.raises(DBAPIError, match="append-only"), backend.container.engine.begin() as c:
            c.execute(text(statement))
        assert entries(backend) == before, statement
    # The ORM path is refused the same way.
    with backend.container.uow() as uow, pytest.raises(DBAPIError, match="append-only"):
        row = uow.session.get(AuditEntry, 1)
        assert row is not None
        row.details = {"forged": True}
        uow.session.flush()
    assert entries(backend) == before


def test_trigger_refuses_insert_or_replace_on_sqlite(sqlite_backend: Backend) -> None:
    """INSERT OR REPLACE deletes the old row without firing DELETE triggers."""
    before = entries(sqlite_backend)
    with (
        pytest.raises(DBAPIError, match="append-only"),
        sqlite_backend.container.engine.begin() as c,
    ):
        c.execute(
            text(
                "INSERT OR REPLACE INTO audit_entries (seq, occurred_at, actor_id, actor_name, "
                "unit_id, case_id, document_id, action, object_type, object_id, details, "
                "prev_hash, entry_hash) SELECT seq, occurred_at, actor_id, 'forger', unit_id, "
                "case_id, document_id, action, object_type, object_id, details, prev_hash, "
                "entry_hash FROM audit_entries WHERE seq = 1"
            )
        )
    assert entries(sqlite_backend) == before


def test_trigger_refuses_truncate_on_postgres(pg_backend: Backend) -> None:
    before = audit_count(pg_backend)
    with pytest.raises(DBAPIError, match="append-only"), pg_backend.container.engine.begin() as c:
        c.execute(text("TRUNCATE audit_entries"))
    assert audit_count(pg_backend) == before


# --- the verifier: CLI --------------------------------------------------------------------


def test_cli_verify_sound_chain_exits_0(backend: Backend, client: TestClient) -> None:
    some_letters(client)
    n = audit_count(backend)
    code, bad, out = audit_verify_cli(backend)
    assert code == 0, out
    assert bad is None
    assert f"audit chain OK: {n} entries" in out


def test_cli_verify_names_edited_entry(backend: Backend, client: TestClient) -> None:
    some_letters(client)
    n = audit_count(backend) // 2
    tamper(
        backend,
        lambda c: c.execute(
            update(ENTRIES).where(ENTRIES.c.seq == n).values(details={"forged": True})
        ),
    )
    code, bad, out = audit_verify_cli(backend)
    assert code == 1, out
    assert bad == n, out
    assert "edited" in out


def test_cli_verify_names_removed_middle_entry(backend: Backend, client: TestClient) -> None:
    some_letters(client)
    n = audit_count(backend) // 2
    tamper(backend, lambda c: c.execute(delete(ENTRIES).where(ENTRIES.c.seq == n)))
    code, bad, out = audit_verify_cli(backend)
    assert code == 1, out
    assert bad == n, out
    assert "missing" in out


def test_cli_verify_names_removed_last_entry(backend: Backend, client: TestClient) -> None:
    some_letters(client)
    last = audit_count(backend)
    tamper(backend, lambda c: c.execute(delete(ENTRIES).where(ENTRIES.c.seq == last)))
    # Every remaining entry is intact: only the chain head knows one is gone.
    code, bad, out = audit_verify_cli(backend)
    assert code == 1, out
    assert bad == last, out
    assert "removed" in out


def swap_rows(conn: Connection, a: int, b: int) -> None:
    """Move entry a's content to position b and vice versa (hashes travel with the content)."""
    rows = {
        r.seq: dict(r._mapping)
        for r in conn.execute(select(ENTRIES).where(ENTRIES.c.seq.in_((a, b))))
    }
    for seq, other in ((a, b), (b, a)):
        values = {k: v for k, v in rows[other].items() if k != "seq"}
        conn.execute(update(ENTRIES).where(ENTRIES.c.seq == seq).values(**values))


def test_cli_verify_names_reordered_entries(backend: Backend, client: TestClient) -> None:
    some_letters(client)
    n = audit_count(backend) // 2
    tamper(backend, lambda c: swap_rows(c, n, n + 3))
    code, bad, out = audit_verify_cli(backend)
    assert code == 1, out
    assert bad == n, out
    assert "does not link" in out


# --- the verifier: every column is covered, and the API agrees with the CLI ---------------


def _edited(column: str, value: Any) -> Any:
    if column == "occurred_at":
        return value + timedelta(microseconds=1)
    if column in ("actor_id", "unit_id", "case_id", "document_id"):
        return uuid.uuid4()
    if column == "details":
        return {**value, "extra": 1}
    if column in ("prev_hash", "entry_hash"):
        return ("f" if value[0] != "f" else "e") + value[1:]
    return value + "x"


def test_verify_detects_an_edit_of_any_column(backend: Backend, client: TestClient) -> None:
    some_letters(client, 1)
    target = next(e for e in entries(backend) if e["action"] == "incoming.registered")
    n = target["seq"]

    def set_column(column: str, value: Any) -> Callable[[Connection], None]:
        def change(conn: Connection) -> None:
            conn.execute(update(ENTRIES).where(ENTRIES.c.seq == n).values({column: value}))

        return change

    for column in CONTENT_COLUMNS:
        tamper(backend, set_column(column, _edited(column, target[column])))
        assert verify_in_process(backend) == (False, n), column
        tamper(backend, set_column(column, target[column]))  # put it back
        assert verify_in_process(backend) == (True, None), column


def test_verify_detects_content_swapped_but_hashes_kept(
    backend: Backend, client: TestClient
) -> None:
    some_letters(client, 1)
    n = audit_count(backend) - 5

    def swap_content(conn: Connection) -> None:
        rows = {
            r.seq: dict(r._mapping)
            for r in conn.execute(select(ENTRIES).where(ENTRIES.c.seq.in_((n, n + 1))))
        }
        for seq, other in ((n, n + 1), (n + 1, n)):
            values = {
                k: v for k, v in rows[other].items() if k not in ("seq", "prev_hash", "entry_hash")
            }
            conn.execute(update(ENTRIES).where(ENTRIES.c.seq == seq).values(**values))

    tamper(backend, swap_content)
    assert verify_in_process(backend) == (False, n)


def test_api_verify_for_city_admin_and_auditor_not_clerk(
    backend: Backend, client: TestClient
) -> None:
    some_letters(client, 1)
    for user in ("admin.wow", "auditor.wow"):
        h = token(client, user)
        r = client.get("/api/v1/audit/verify", headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ok"] is True and body["first_bad_seq"] is None and body["problem"] is None
        # Every login adds an entry; all of them (up to this request) were checked.
        assert body["entries_checked"] == audit_count(backend)
    clerk = client.get("/api/v1/audit/verify", headers=token(client, "clerk.sp58"))
    assert clerk.status_code == 403, clerk.text
    assert clerk.json()["error"]["code"]
    anonymous = client.get("/api/v1/audit/verify")
    assert anonymous.status_code == 401


def test_api_verify_reports_tampering(backend: Backend, client: TestClient) -> None:
    some_letters(client, 1)
    h = token(client, "auditor.wow")
    last = audit_count(backend)
    tamper(backend, lambda c: c.execute(delete(ENTRIES).where(ENTRIES.c.seq == last)))
    body = client.get("/api/v1/audit/verify", headers=h).json()
    assert body["ok"] is False
    assert body["first_bad_seq"] == last
    assert body["entries_checked"] == last - 1
