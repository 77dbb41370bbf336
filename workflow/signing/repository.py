"""SQL for unit signing keys and trust anchors."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.signing.models import TrustAnchor, UnitSigningKey


class SigningRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, obj: UnitSigningKey | TrustAnchor) -> None:
        self.session.add(obj)

    def key_by_fingerprint(self, sha256: str) -> UnitSigningKey | None:
        return self.session.execute(
            select(UnitSigningKey).where(UnitSigningKey.certificate_sha256 == sha256)
        ).scalar_one_or_none()

    def key(self, key_id: uuid.UUID) -> UnitSigningKey | None:
        return self.session.get(UnitSigningKey, key_id)

    def keys_of_unit(self, unit_id: uuid.UUID) -> Sequence[UnitSigningKey]:
        return (
            self.session.execute(
                select(UnitSigningKey)
                .where(UnitSigningKey.unit_id == unit_id)
                .order_by(UnitSigningKey.created_at)
            )
            .scalars()
            .all()
        )

    def active_key(self, unit_id: uuid.UUID) -> UnitSigningKey | None:
        """The unit's newest active key."""
        return self.session.execute(
            select(UnitSigningKey)
            .where(UnitSigningKey.unit_id == unit_id, UnitSigningKey.active)
            .order_by(UnitSigningKey.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()

    def anchor_by_fingerprint(self, sha256: str) -> TrustAnchor | None:
        return self.session.execute(
            select(TrustAnchor).where(TrustAnchor.certificate_sha256 == sha256)
        ).scalar_one_or_none()

    def anchors(self) -> Sequence[TrustAnchor]:
        return self.session.execute(select(TrustAnchor).order_by(TrustAnchor.label)).scalars().all()
