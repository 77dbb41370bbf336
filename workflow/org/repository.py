"""SQL for units, departments, users, role assignments and login sessions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from workflow.org.models import AuthSession, Department, RoleAssignment, Unit, User

SYSTEM_USER_ID = uuid.UUID(int=0)  # the row migration 0005 adds for ezd itself (SYSTEM)

# Every API request runs this, so it is built once (building the expression cost as much as
# running it) and run as Core: the rows are plain tuples, no ORM entities.
_PRINCIPAL_ROWS = (
    select(
        User.id,
        User.username,
        User.full_name,
        RoleAssignment.unit_id,
        RoleAssignment.role,
        Unit.kind,
        AuthSession.created_at,
        AuthSession.expires_at,
    )
    .join(AuthSession, AuthSession.user_id == User.id)
    .outerjoin(RoleAssignment, RoleAssignment.user_id == User.id)
    .outerjoin(Unit, Unit.id == RoleAssignment.unit_id)
    .where(
        AuthSession.token_hash == bindparam("token_hash"),
        AuthSession.kind == bindparam("kind"),
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > bindparam("now"),
        User.active.is_(True),
    )
)


class OrgRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, obj: Unit | Department | User | RoleAssignment | AuthSession) -> None:
        self.session.add(obj)

    def unit_by_code(self, code: str) -> Unit | None:
        return self.session.execute(select(Unit).where(Unit.code == code)).scalar_one_or_none()

    def city_office(self) -> Unit | None:
        return self.session.execute(
            select(Unit).where(Unit.kind == "city_office", Unit.active).order_by(Unit.code).limit(1)
        ).scalar_one_or_none()

    def unit(self, unit_id: uuid.UUID) -> Unit | None:
        return self.session.get(Unit, unit_id)

    def units(self) -> Sequence[Unit]:
        return self.session.execute(select(Unit).order_by(Unit.code)).scalars().all()

    def departments(self, unit_id: uuid.UUID) -> Sequence[Department]:
        return (
            self.session.execute(
                select(Department).where(Department.unit_id == unit_id).order_by(Department.code)
            )
            .scalars()
            .all()
        )

    def department(self, unit_id: uuid.UUID, code: str) -> Department | None:
        return self.session.execute(
            select(Department).where(Department.unit_id == unit_id, Department.code == code)
        ).scalar_one_or_none()

    def department_by_id(self, department_id: uuid.UUID) -> Department | None:
        return self.session.get(Department, department_id)

    def user_by_username(self, username: str) -> User | None:
        return self.session.execute(
            select(User).where(User.username == username)
        ).scalar_one_or_none()

    def user(self, user_id: uuid.UUID) -> User | None:
        return self.session.get(User, user_id)

    def users(self) -> Sequence[User]:
        """People, without ezd's own system user."""
        return (
            self.session.execute(
                select(User).where(User.id != SYSTEM_USER_ID).order_by(User.username)
            )
            .scalars()
            .all()
        )

    def users_in_units(self, unit_ids: Sequence[uuid.UUID]) -> Sequence[User]:
        return (
            self.session.execute(
                select(User)
                .where(
                    User.id.in_(
                        select(RoleAssignment.user_id).where(RoleAssignment.unit_id.in_(unit_ids))
                    )
                )
                .order_by(User.username)
            )
            .scalars()
            .all()
        )

    def roles_of(self, user_id: uuid.UUID, unit_id: uuid.UUID) -> set[str]:
        return set(
            self.session.execute(
                select(RoleAssignment.role).where(
                    RoleAssignment.user_id == user_id, RoleAssignment.unit_id == unit_id
                )
            )
            .scalars()
            .all()
        )

    def roles_with_unit_kind(self, user_id: uuid.UUID) -> Sequence[tuple[uuid.UUID, str, str]]:
        rows = self.session.execute(
            select(RoleAssignment.unit_id, RoleAssignment.role, Unit.kind)
            .join(Unit, Unit.id == RoleAssignment.unit_id)
            .where(RoleAssignment.user_id == user_id)
        ).all()
        return [(r[0], r[1], r[2]) for r in rows]

    def role_assignment(
        self, user_id: uuid.UUID, unit_id: uuid.UUID, role: str
    ) -> RoleAssignment | None:
        return self.session.execute(
            select(RoleAssignment).where(
                RoleAssignment.user_id == user_id,
                RoleAssignment.unit_id == unit_id,
                RoleAssignment.role == role,
            )
        ).scalar_one_or_none()

    def principal_rows(
        self, token_hash: str, kind: str, now: datetime
    ) -> Sequence[
        tuple[uuid.UUID, str, str, uuid.UUID | None, str | None, str | None, datetime, datetime]
    ]:
        """For a live session: (user id, username, full name, unit id, role, unit kind,
        session created at, session expires at), one row per role (a single row of Nones for
        a user without roles). One round trip: every API request authenticates."""
        rows = self.session.connection().execute(
            _PRINCIPAL_ROWS, {"token_hash": token_hash, "kind": kind, "now": now}
        )
        return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]

    def extend_session(self, token_hash: str, expires_at: datetime) -> None:
        self.session.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash, AuthSession.revoked_at.is_(None))
            .values(expires_at=expires_at)
        )

    def revoke_session(self, token_hash: str, now: datetime) -> None:
        self.session.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
