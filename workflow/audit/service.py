"""Recording audit entries (through the unit of work) and verifying the chain."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflow.audit.chain import GENESIS_HASH, entry_hash
from workflow.audit.repository import AuditRepository
from workflow.db import utcnow


@dataclass
class PendingAuditEntry:
    action: str
    object_type: str
    object_id: str
    actor_id: uuid.UUID | None
    actor_name: str
    unit_id: uuid.UUID | None = None
    case_id: uuid.UUID | None = None
    document_id: uuid.UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime = field(default_factory=utcnow)


def append_entries(repo: AuditRepository, pending: list[PendingAuditEntry]) -> None:
    """Chain and insert `pending` after the current head. Must run inside the transaction that
    made the changes, as its last step."""
    if not pending:
        return
    seq, prev = repo.lock_head()
    rows = []
    for p in pending:
        seq += 1
        fields: dict[str, Any] = {
            "seq": seq,
            "occurred_at": p.occurred_at,
            "actor_id": p.actor_id,
            "actor_name": p.actor_name,
            "unit_id": p.unit_id,
            "case_id": p.case_id,
            "document_id": p.document_id,
            "action": p.action,
            "object_type": p.object_type,
            "object_id": p.object_id,
            "details": p.details,
        }
        h = entry_hash(**fields, prev_hash=prev)
        rows.append({**fields, "prev_hash": prev, "entry_hash": h})
        prev = h
    repo.append(rows, seq, prev)


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    entries_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"audit chain OK: {self.entries_checked} entries"
        return f"audit chain BROKEN at entry {self.first_bad_seq}: {self.problem}"


def verify_chain(repo: AuditRepository) -> ChainVerdict:
    """Walk the chain in sequence order; report the first entry that was edited, removed or
    moved, or a head that does not match the last entry (entries removed from the end)."""
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    for e in repo.iter_entries():
        if e.seq != expected_seq:
            return ChainVerdict(
                False,
                count,
                expected_seq,
                f"entry {expected_seq} is missing (next found is {e.seq})",
            )
        if e.prev_hash != prev:
            return ChainVerdict(
                False, count, e.seq, "does not link to the entry before it (removed or reordered)"
            )
        recomputed = entry_hash(
            seq=e.seq,
            occurred_at=e.occurred_at,
            actor_id=e.actor_id,
            actor_name=e.actor_name,
            unit_id=e.unit_id,
            case_id=e.case_id,
            document_id=e.document_id,
            action=e.action,
            object_type=e.object_type,
            object_id=e.object_id,
            details=e.details,
            prev_hash=e.prev_hash,
        )
        if recomputed != e.entry_hash:
            return ChainVerdict(False, count, e.seq, "content does not match its hash (edited)")
        prev, count, expected_seq = e.entry_hash, count + 1, expected_seq + 1
    head = repo.head()
    last_seq = head.last_seq if head else 0
    last_hash = head.last_hash if head else GENESIS_HASH
    if last_seq != count or last_hash != prev:
        return ChainVerdict(
            False,
            count,
            count + 1,
            f"chain head expects {last_seq} entries, found {count} (removed)",
        )
    return ChainVerdict(True, count)
