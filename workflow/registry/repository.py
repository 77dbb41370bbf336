"""SQL for the registers and the gapless counters."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from workflow.db import dialect_insert, insert_new_objects
from workflow.registry.models import IncomingItem, NumberCounter, OutgoingItem, OutgoingStatus

COUNTERS = cast(Table, NumberCounter.__table__)


class NumberingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def next_value(self, unit_id: uuid.UUID, series: str, year: int) -> int:
        """Take the next number of (unit, series, year). The UPDATE row-locks the counter until
        the transaction ends; a rollback gives the number back, so numbers stay gapless."""
        upsert = (
            dialect_insert(self.session)(COUNTERS)
            .values(unit_id=unit_id, series=series, year=year, last_value=1)
            .on_conflict_do_update(
                index_elements=["unit_id", "series", "year"],
                set_={"last_value": COUNTERS.c.last_value + 1},
            )
            .returning(COUNTERS.c.last_value)
        )
        return int(self.session.execute(upsert).scalar_one())


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, obj: IncomingItem | OutgoingItem) -> None:
        self.session.add(obj)

    def insert_pending(self) -> None:
        insert_new_objects(self.session)

    def incoming(self, item_id: uuid.UUID) -> IncomingItem | None:
        return self.session.get(IncomingItem, item_id)

    def incoming_by_idempotency_key(self, user_id: uuid.UUID, key: str) -> IncomingItem | None:
        return self.session.execute(
            select(IncomingItem).where(
                IncomingItem.registered_by == user_id, IncomingItem.idempotency_key == key
            )
        ).scalar_one_or_none()

    def incoming_register(
        self, unit_id: uuid.UUID, year: int, *, limit: int, offset: int
    ) -> Sequence[IncomingItem]:
        return (
            self.session.execute(
                select(IncomingItem)
                .where(IncomingItem.unit_id == unit_id, IncomingItem.rpw_year == year)
                .order_by(IncomingItem.rpw_seq.desc())
                .limit(limit)
                .offset(offset)
            )
            .scalars()
            .all()
        )

    def sender_names(self, unit_id: uuid.UUID, prefix: str, limit: int) -> Sequence[str]:
        """Names of earlier senders to the unit starting with `prefix`, latest first."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return (
            self.session.execute(
                select(IncomingItem.sender_name)
                .where(
                    IncomingItem.unit_id == unit_id,
                    # lower() on both sides rather than ILIKE: the (unit_id, lower(sender_name))
                    # index (migration 0010) serves the prefix; ILIKE reads the whole unit.
                    func.lower(IncomingItem.sender_name).like(
                        func.lower(f"{escaped}%"), escape="\\"
                    ),
                )
                .group_by(IncomingItem.sender_name)
                .order_by(func.max(IncomingItem.registered_at).desc())
                .limit(limit)
            )
            .scalars()
            .all()
        )

    def incoming_for_case(self, case_id: uuid.UUID) -> Sequence[IncomingItem]:
        return (
            self.session.execute(
                select(IncomingItem)
                .where(IncomingItem.case_id == case_id)
                .order_by(IncomingItem.registered_at)
            )
            .scalars()
            .all()
        )

    def outgoing_by_number(self, unit_id: uuid.UUID, number: str) -> OutgoingItem | None:
        return self.session.execute(
            select(OutgoingItem).where(
                OutgoingItem.unit_id == unit_id, OutgoingItem.number == number
            )
        ).scalar_one_or_none()

    def undispatched_outgoing(self, case_id: uuid.UUID) -> Sequence[OutgoingItem]:
        """Outgoing items of the case not yet sent; one handed to internal e-delivery (it has a
        letter id) counts as sent: the worker signs and delivers it."""
        return (
            self.session.execute(
                select(OutgoingItem).where(
                    OutgoingItem.case_id == case_id,
                    OutgoingItem.status == OutgoingStatus.ready,
                    OutgoingItem.letter_id.is_(None),
                )
            )
            .scalars()
            .all()
        )

    def outgoing(self, item_id: uuid.UUID, *, for_update: bool = False) -> OutgoingItem | None:
        return self.session.get(OutgoingItem, item_id, with_for_update=for_update)

    def outgoing_register(
        self, unit_id: uuid.UUID, year: int, *, limit: int, offset: int
    ) -> Sequence[OutgoingItem]:
        return (
            self.session.execute(
                select(OutgoingItem)
                .where(OutgoingItem.unit_id == unit_id, OutgoingItem.year == year)
                .order_by(OutgoingItem.seq.desc())
                .limit(limit)
                .offset(offset)
            )
            .scalars()
            .all()
        )
