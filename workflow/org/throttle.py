"""Throttling of password logins (the API token endpoint, the API cookie login, the web form).

Policy. Failures are counted in a 15-minute window per key, in the database (every API process
sees the same counts), in the table the e-services' PIN throttle uses, under keys of their own:

- one account from one client: 5 failures lock that pair for 15 minutes. This is what stops
  guessing one user's password, and it does not touch the user's own logins from elsewhere.
- one client (any accounts): 20 failures lock the client for 15 minutes (password spraying).
- one account from any clients: 50 failures lock the account for 15 minutes (guessing spread
  over many addresses, at most ~200 guesses an hour).

A lock always ends by itself after 15 minutes; there is no escalation and no permanent lock-out,
so an attacker can keep an account locked only by keeping on failing, from many addresses at
once. While a key is locked every attempt gets the same 429 `login_throttled` with Retry-After,
before the password is even checked, right password or wrong (a lock is no oracle); an unknown
user name counts like a known one. A successful login resets its account's and its pair's
counts (not the client's: one valid account must not reset a sprayer's count).

Rows whose window and lock are over are purged now and then by failed logins (and tracking
logins: the purge is the e-services throttle's, on the same table).

The client is the address the server sees: behind a reverse proxy run uvicorn with
`--proxy-headers --forwarded-allow-ips=<proxy>`, or every user shares the proxy's count.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from workflow.db import utcnow
from workflow.errors import DomainError
from workflow.eservices.access import PURGE_ONE_IN, ThrottlePolicy, purge_expired
from workflow.eservices.models import AccessThrottle
from workflow.uow import UnitOfWork


@dataclass(frozen=True)
class LoginPolicy:
    per_account_and_client: int = 5
    per_client: int = 20
    per_account: int = 50
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


class LoginThrottled(DomainError):
    code = "login_throttled"
    status = 429

    def __init__(self, retry_after_seconds: int) -> None:
        minutes = max(1, math.ceil(retry_after_seconds / 60))
        super().__init__(
            f"Zbyt wiele nieudanych prób logowania. Spróbuj ponownie za {minutes} min.",
            f"Too many failed login attempts. Try again in {minutes} min.",
            details={"retry_after_seconds": retry_after_seconds},
        )
        self.retry_after_seconds = retry_after_seconds


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\0".join((kind, *parts)).encode()).hexdigest()[:64]
    return f"{kind}:{digest}"


def _username(raw: str) -> str:
    return raw.strip().lower()


class LoginThrottle:
    """The counts of one login attempt: `check` before the password, then `failed` or
    `succeeded`. The caller commits the transaction whatever the outcome."""

    def __init__(self, uow: UnitOfWork, username: str, client: str, policy: LoginPolicy) -> None:
        self.uow = uow
        self.policy = policy
        user = _username(username)
        self.limits = {
            _key("login-pair", user, client): policy.per_account_and_client,
            _key("login-client", client): policy.per_client,
            _key("login-user", user): policy.per_account,
        }
        self.now = utcnow()
        rows = uow.session.execute(
            select(AccessThrottle).where(AccessThrottle.key.in_(self.limits)).with_for_update()
        ).scalars()
        self.rows: dict[str, AccessThrottle] = {r.key: r for r in rows}

    def _locked_until(self) -> datetime | None:
        live = [
            r.locked_until
            for r in self.rows.values()
            if r.locked_until is not None and r.locked_until > self.now
        ]
        return max(live) if live else None

    def _error(self, until: datetime) -> LoginThrottled:
        return LoginThrottled(max(1, math.ceil((until - self.now).total_seconds())))

    def check(self) -> LoginThrottled | None:
        until = self._locked_until()
        return self._error(until) if until else None

    def failed(self) -> LoginThrottled | None:
        """Counts a failure on every key; the lock-out it caused, if any."""
        p = self.policy
        for key, limit in self.limits.items():
            row = self.rows.get(key)
            if row is None:
                row = AccessThrottle(key=key, failures=0, window_started_at=self.now)
                self.uow.session.add(row)
                self.rows[key] = row
            if self.now - row.window_started_at > p.window:
                row.failures, row.window_started_at = 0, self.now
            row.failures += 1
            if row.failures >= limit:
                row.locked_until = self.now + p.lockout
                row.failures, row.window_started_at = 0, self.now
        self.uow.flush()
        if secrets.randbelow(PURGE_ONE_IN) == 0:  # keeps the table to the live window
            # After the flush: every row counted here has a live window and is kept.
            purge_expired(self.uow, ThrottlePolicy(window=p.window))
        return self.check()

    def succeeded(self) -> None:
        for key, row in self.rows.items():
            if not key.startswith("login-client:"):
                row.failures = 0
