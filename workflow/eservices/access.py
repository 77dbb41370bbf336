"""Tracking codes, PINs and the throttle against guessing them.

- A tracking code is 12 characters from an alphabet without look-alikes (no 0/O, 1/I/L), about
  59 bits from the OS's CSPRNG, shown as `XXXX-XXXX-XXXX`; input is normalised (case, dashes,
  spaces), so it can be read over the phone.
- A PIN is 8 digits; only its salted scrypt hash is stored, compared in constant time.
- Failures are counted per code (whether or not it exists) and per client; past the limit the
  key is locked for a while and every attempt answers the same lock-out, with the PIN right or
  wrong. "No such code" and "wrong PIN" give the same answer, after the same work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select

from workflow.db import utcnow
from workflow.errors import DomainError
from workflow.eservices.models import AccessThrottle, Submission
from workflow.uow import UnitOfWork

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12
PIN_LENGTH = 8
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PURGE_ONE_IN = 20  # failed logins that also forget expired throttle rows


@dataclass(frozen=True)
class ThrottlePolicy:
    per_code: int = 5
    per_client: int = 20
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


class AccessDenied(DomainError):
    code = "tracking_denied"
    status = 403
    message_pl = "Nieprawidłowy kod sprawy lub PIN."
    message_en = "Wrong tracking code or PIN."


class AccessLocked(DomainError):
    code = "tracking_locked"
    status = 429


def new_tracking_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def new_pin() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(PIN_LENGTH))


def display_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalise_code(raw: str) -> str:
    return "".join(c for c in raw.upper() if c.isalnum())[:40]


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${b64(salt).decode()}${b64(digest).decode()}"


# Compared against when the code does not exist, so both answers take the same time.
_DUMMY_HASH = hash_pin("00000000", b"ezd-no-such-code")


def pin_matches(pin: str, stored: str) -> bool:
    try:
        _, n, salt_b64, digest_b64 = stored.split("$")
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    except ValueError:
        return False
    candidate = hashlib.scrypt(
        pin.encode()[:64], salt=salt, n=int(n), r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return hmac.compare_digest(candidate, expected)


def _key(kind: str, value: str) -> str:
    return f"{kind}:" + hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()[:64]


def _row(uow: UnitOfWork, key: str) -> AccessThrottle | None:
    return uow.session.execute(
        select(AccessThrottle).where(AccessThrottle.key == key).with_for_update()
    ).scalar_one_or_none()


def _locked(rows: list[AccessThrottle | None], now: datetime) -> datetime | None:
    until = [r.locked_until for r in rows if r is not None and r.locked_until is not None]
    live = [u for u in until if u > now]
    return max(live) if live else None


def _fail(
    uow: UnitOfWork,
    key: str,
    row: AccessThrottle | None,
    limit: int,
    p: ThrottlePolicy,
    now: datetime,
) -> AccessThrottle:
    if row is None:
        row = AccessThrottle(key=key, failures=0, window_started_at=now)
        uow.session.add(row)
    if now - row.window_started_at > p.window:
        row.failures, row.window_started_at = 0, now
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = now + p.lockout
        row.failures, row.window_started_at = 0, now
    return row


def locked_error(until: datetime) -> AccessLocked:
    from workflow.cases.service import WARSAW

    at = until.astimezone(WARSAW).strftime("%H:%M")
    return AccessLocked(
        f"Zbyt wiele nieudanych prób. Ze względów bezpieczeństwa sprawdzanie zablokowano do "
        f"godz. {at}. Spróbuj ponownie później.",
        f"Too many failed attempts. For security, checking is locked until {at} "
        "(Warsaw time). Please try again later.",
        details={
            "locked_until": until.isoformat(timespec="seconds"),
            "retry_after_seconds": max(1, math.ceil((until - utcnow()).total_seconds())),
        },
    )


@dataclass(frozen=True)
class AccessResult:
    """The outcome of a tracking login. A refusal is returned, not raised, so the failure it
    counted is committed with the caller's transaction; the caller raises it afterwards."""

    submission: Submission | None
    error: DomainError | None


def check_access(
    uow: UnitOfWork,
    raw_code: str,
    pin: str,
    client: str,
    policy: ThrottlePolicy = ThrottlePolicy(),
) -> AccessResult:
    now = utcnow()
    code = normalise_code(raw_code)
    code_key, client_key = _key("code", code), _key("client", client)
    code_row, client_row = _row(uow, code_key), _row(uow, client_key)
    until = _locked([code_row, client_row], now)
    if until is not None:
        return AccessResult(None, locked_error(until))
    submission = (
        uow.session.execute(
            select(Submission).where(Submission.tracking_code == code)
        ).scalar_one_or_none()
        if len(code) == CODE_LENGTH
        else None
    )
    ok = pin_matches(pin, submission.pin_hash if submission else _DUMMY_HASH)
    if submission is not None and ok:
        if code_row is not None:
            code_row.failures = 0
        return AccessResult(submission, None)
    if secrets.randbelow(PURGE_ONE_IN) == 0:
        purge_expired(uow, policy)  # keeps the table to the live window, without a timer
    rows = [
        _fail(uow, code_key, code_row, policy.per_code, policy, now),
        _fail(uow, client_key, client_row, policy.per_client, policy, now),
    ]
    uow.flush()
    until = _locked(list(rows), now)
    return AccessResult(None, locked_error(until) if until else AccessDenied())


def purge_expired(uow: UnitOfWork, policy: ThrottlePolicy = ThrottlePolicy()) -> int:
    """Forget throttle rows whose window and lock-out are over (periodic, by the worker)."""
    now = utcnow()
    result = uow.session.execute(
        delete(AccessThrottle).where(
            AccessThrottle.window_started_at < now - policy.window,
            or_(AccessThrottle.locked_until.is_(None), AccessThrottle.locked_until < now),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
