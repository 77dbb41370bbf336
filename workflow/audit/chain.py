"""How an audit entry is hashed. One definition, used when appending and when verifying."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def entry_hash(
    *,
    seq: int,
    occurred_at: datetime,
    actor_id: uuid.UUID | None,
    actor_name: str,
    unit_id: uuid.UUID | None,
    case_id: uuid.UUID | None,
    document_id: uuid.UUID | None,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "at": occurred_at.isoformat(timespec="microseconds"),
        "actor": _str(actor_id),
        "actor_name": actor_name,
        "unit": _str(unit_id),
        "case": _str(case_id),
        "document": _str(document_id),
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "details": details,
        "prev": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
