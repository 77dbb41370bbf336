"""Organisation services: managing units, departments, users and roles; password login and the
sessions behind the web cookie and the API bearer token."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workflow.db import utcnow
from workflow.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from workflow.org.models import AuthSession, Department, Role, RoleAssignment, Unit, UnitKind, User
from workflow.org.repository import OrgRepository
from workflow.org.throttle import LoginPolicy, LoginThrottle
from workflow.principal import CITYWIDE_ROLES, Principal
from workflow.settings import Settings
from workflow.uow import UnitOfWork

_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal valid usernames.
_DUMMY_HASH = _hasher.hash("not a password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionLifetime:
    """How long a login lasts: at most `absolute` after it began, and only while it is used at
    least every `idle` (the server moves `expires_at` forward as it is used, in steps of
    EXTEND_STEP, never past the absolute limit)."""

    absolute: timedelta
    idle: timedelta | None = None

    def expiry(self, created_at: datetime, now: datetime) -> datetime:
        limit = created_at + self.absolute
        return limit if self.idle is None else min(limit, now + self.idle)


EXTEND_STEP = timedelta(minutes=1)  # at most one write a minute per session in use


def session_lifetime(settings: Settings, kind: str) -> SessionLifetime:
    if kind == "cookie":
        minutes = (settings.session_ttl_minutes, settings.session_idle_minutes)
    else:
        minutes = (settings.token_ttl_minutes, settings.token_idle_minutes)
    return SessionLifetime(timedelta(minutes=minutes[0]), timedelta(minutes=minutes[1]))


@dataclass(frozen=True)
class IssuedSession:
    token: str
    expires_at: datetime
    principal: Principal


def _invalid_login() -> Unauthenticated:
    return Unauthenticated(
        "Nieprawidłowa nazwa użytkownika lub hasło.",
        "Invalid username or password.",
        code="invalid_credentials",
    )


@dataclass(frozen=True)
class LoginAttempt:
    """The outcome of a throttled login. A refusal is returned, not raised, so the failure it
    counted is committed with the caller's transaction; the caller answers with it afterwards."""

    issued: IssuedSession | None
    error: DomainError | None


def attempt_login(
    uow: UnitOfWork,
    username: str,
    password: str,
    *,
    kind: str,
    ttl: timedelta | SessionLifetime,
    client: str,
    policy: LoginPolicy = LoginPolicy(),
) -> LoginAttempt:
    """`login` behind the login throttle (workflow/org/throttle.py states the policy)."""
    throttle = LoginThrottle(uow, username, client, policy)
    locked = throttle.check()
    if locked is not None:
        return LoginAttempt(None, locked)
    try:
        issued = login(uow, username, password, kind=kind, ttl=ttl)
    except Unauthenticated as e:
        return LoginAttempt(None, throttle.failed() or e)
    throttle.succeeded()
    return LoginAttempt(issued, None)


def login(
    uow: UnitOfWork,
    username: str,
    password: str,
    *,
    kind: str,
    ttl: timedelta | SessionLifetime,
) -> IssuedSession:
    """Check the password and open a session of `kind` ("cookie" or "bearer"). Unthrottled:
    requests from clients go through `attempt_login`."""
    repo = OrgRepository(uow.session)
    user = repo.user_by_username(username)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise _invalid_login() from None
    if user is None or not user.active:
        raise _invalid_login()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    lifetime = ttl if isinstance(ttl, SessionLifetime) else SessionLifetime(ttl)
    expires_at = lifetime.expiry(now, now)
    repo.add(
        AuthSession(
            token_hash=_token_digest(token),
            user_id=user.id,
            kind=kind,
            created_at=now,
            expires_at=expires_at,
        )
    )
    principal = principal_for(repo, user)
    uow.actor = principal
    uow.audit("auth.login", "user", user.id, details={"kind": kind})
    return IssuedSession(token, expires_at, principal)


def logout(uow: UnitOfWork, token: str) -> None:
    OrgRepository(uow.session).revoke_session(_token_digest(token), utcnow())
    uow.audit("auth.logout", "user", uow.actor.user_id)


def principal_for(repo: OrgRepository, user: User) -> Principal:
    return _principal(user.id, user.username, user.full_name, repo.roles_with_unit_kind(user.id))


def _principal(
    user_id: uuid.UUID,
    username: str,
    full_name: str,
    grants: Iterable[tuple[uuid.UUID | None, str | None, str | None]],
) -> Principal:
    roles: dict[uuid.UUID, set[str]] = {}
    citywide: set[str] = set()
    for unit_id, role, unit_kind in grants:
        if unit_id is None or role is None:
            continue
        roles.setdefault(unit_id, set()).add(role)
        if unit_kind == UnitKind.city_office and role in CITYWIDE_ROLES:
            citywide.add(role)
    return Principal(
        user_id,
        username,
        full_name,
        {k: frozenset(v) for k, v in roles.items()},
        citywide=frozenset(citywide),
    )


def authenticate(
    uow: UnitOfWork, token: str, *, kind: str, lifetime: SessionLifetime | None = None
) -> Principal:
    """The principal of a live session. With a `lifetime` that has an idle limit, a use moves
    the session's expiry forward (a write at most every EXTEND_STEP): the caller commits."""
    repo = OrgRepository(uow.session)
    digest = _token_digest(token)
    now = utcnow()
    rows = repo.principal_rows(digest, kind, now)
    if rows and lifetime is not None and lifetime.idle is not None:
        created_at, expires_at = rows[0][6], rows[0][7]
        extended = lifetime.expiry(created_at, now)
        if extended < expires_at or extended - expires_at >= EXTEND_STEP:
            repo.extend_session(digest, extended)
        if extended <= now:
            rows = []
    if not rows:
        raise Unauthenticated(
            "Sesja wygasła lub jest nieważna. Zaloguj się ponownie.",
            "The session has expired or is invalid. Log in again.",
            code="invalid_token",
        )
    user_id, username, full_name = rows[0][:3]
    return _principal(user_id, username, full_name, (r[3:6] for r in rows))


def _require_admin(actor: Principal, unit_id: uuid.UUID | None = None) -> None:
    """The city's administrator may do anything; a unit's administrator only what concerns
    that unit (`unit_id`). Without `unit_id` only the city's administrator passes."""
    allowed = actor.is_admin if unit_id is None else actor.can_admin_unit(unit_id)
    if not allowed:
        raise Forbidden(
            "Operacja dostępna tylko dla administratora.", "Only an administrator may do this."
        )


def get_unit(repo: OrgRepository, code: str) -> Unit:
    unit = repo.unit_by_code(code)
    if unit is None:
        raise ValidationFailed(
            f"Nie ma jednostki o kodzie „{code}”.",
            f"There is no unit with code '{code}'.",
            code="unknown_unit",
        )
    return unit


def create_unit(
    uow: UnitOfWork, *, code: str, name: str, kind: str, jrwa_plan: str, address: str | None = None
) -> Unit:
    _require_admin(uow.actor)
    repo = OrgRepository(uow.session)
    if kind not in set(UnitKind):
        raise ValidationFailed(
            "Nieznany rodzaj jednostki.", "Unknown unit kind.", code="unknown_unit_kind"
        )
    if repo.unit_by_code(code):
        raise Conflict(
            f"Jednostka „{code}” już istnieje.",
            f"Unit '{code}' already exists.",
            code="unit_exists",
        )
    unit = Unit(code=code, name=name, kind=kind, jrwa_plan=jrwa_plan, address=address)
    repo.add(unit)
    uow.flush()
    uow.audit(
        "unit.created", "unit", unit.id, unit_id=unit.id, details={"code": code, "name": name}
    )
    return unit


def create_department(uow: UnitOfWork, unit_code: str, *, code: str, name: str) -> Department:
    repo = OrgRepository(uow.session)
    unit = get_unit(repo, unit_code)
    _require_admin(uow.actor, unit.id)
    if repo.department(unit.id, code):
        raise Conflict(
            f"Komórka „{code}” już istnieje.",
            f"Department '{code}' already exists.",
            code="department_exists",
        )
    dept = Department(unit_id=unit.id, code=code, name=name)
    repo.add(dept)
    uow.flush()
    uow.audit(
        "department.created",
        "department",
        dept.id,
        unit_id=unit.id,
        details={"code": code, "name": name},
    )
    return dept


def list_users(uow: UnitOfWork) -> Sequence[User]:
    """The city's administrator sees every user; a unit's administrator only the users who
    hold a role in the units they administer."""
    actor = uow.actor
    if not actor.is_any_admin:
        _require_admin(actor)
    repo = OrgRepository(uow.session)
    if actor.is_admin:
        return repo.users()
    return repo.users_in_units(actor.units_with(Role.admin))


def create_user(
    uow: UnitOfWork, *, username: str, full_name: str, password: str, email: str | None = None
) -> User:
    if not uow.actor.is_any_admin:  # users belong to no unit; roles are granted per unit
        _require_admin(uow.actor)
    repo = OrgRepository(uow.session)
    if repo.user_by_username(username):
        raise Conflict(
            f"Użytkownik „{username}” już istnieje.",
            f"User '{username}' already exists.",
            code="user_exists",
        )
    if len(password) < 8:
        raise ValidationFailed(
            "Hasło musi mieć co najmniej 8 znaków.",
            "The password must have at least 8 characters.",
            code="weak_password",
        )
    user = User(
        username=username, full_name=full_name, email=email, password_hash=hash_password(password)
    )
    repo.add(user)
    uow.flush()
    uow.audit("user.created", "user", user.id, details={"username": username})
    return user


def grant_role(
    uow: UnitOfWork, username: str, unit_code: str, role: str, department_code: str | None = None
) -> RoleAssignment:
    repo = OrgRepository(uow.session)
    user = repo.user_by_username(username)
    if user is None:
        raise NotFound("Nie ma takiego użytkownika.", "No such user.", code="user_not_found")
    unit = get_unit(repo, unit_code)
    _require_admin(uow.actor, unit.id)
    if role not in set(Role):
        raise ValidationFailed("Nieznana rola.", "Unknown role.", code="unknown_role")
    dept_id = None
    if department_code:
        dept = repo.department(unit.id, department_code)
        if dept is None:
            raise ValidationFailed(
                "Nieznana komórka organizacyjna.", "Unknown department.", code="unknown_department"
            )
        dept_id = dept.id
    existing = repo.role_assignment(user.id, unit.id, role)
    if existing:
        return existing
    ra = RoleAssignment(user_id=user.id, unit_id=unit.id, role=role, department_id=dept_id)
    repo.add(ra)
    uow.flush()
    uow.audit("role.granted", "user", user.id, unit_id=unit.id, details={"role": role})
    return ra
