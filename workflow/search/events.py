"""Which audit entries change what the index shows. Every change in the core already writes an
audit entry in its transaction; the unit of work turns those into `search.index` outbox events
at commit, so no service (present or future) has to remember to reindex what it changed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TOPIC = "search.index"

OBJECT_KINDS = {
    "incoming_item": "incoming",
    "outgoing_item": "outgoing",
    "case": "case",
    "document": "document",
}


def changes_index(action: str) -> bool:
    """Reads (incoming.read, document.content_read, …) and search's own entries change
    nothing."""
    return not (action.endswith((".read", "_read")) or action.startswith("search."))


def index_events(entries: Iterable[Any]) -> list[dict[str, str]]:
    """One payload per changed object, in first-change order (entries: PendingAuditEntry)."""
    seen: dict[tuple[str, str], None] = {}
    for e in entries:
        kind = OBJECT_KINDS.get(e.object_type)
        if kind and changes_index(e.action):
            seen.setdefault((kind, e.object_id), None)
    return [{"kind": k, "id": i} for k, i in seen]
