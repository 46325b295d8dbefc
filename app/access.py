"""Who is acting, and what they may do: checked on the server for every callback.

With `--auth` the user is the one Gradio's login cookie names and their role comes from the review
store; an API call without the right role is refused whatever the page shows. Without `--auth` every
request acts as the local user.

`LoginThrottle` is the policy for guessing passwords: after a few failed logins for one user (or many
from one address) within a window, logins for it are refused for a delay that doubles with every
further lockout, whether the password is right or not.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from review import ReviewService, Role, UserView
from review.policy import role_refusal


class AccessDenied(Exception):
    """The request's user may not do this (or is not logged in)."""


def resolve_user(service: ReviewService, username: str | None) -> UserView:
    if not username:
        raise AccessDenied("log in first")
    for user in service.list_users():
        if user.username == username:
            if not user.active:
                raise AccessDenied(f"the account {username!r} is disabled")
            return user
    raise AccessDenied(f"unknown user {username!r}")


def require_role(user: UserView, *roles: Role) -> UserView:
    """The user when `review.policy.role_allows` lets their role do what `roles` may (admins: everything)."""
    refusal = role_refusal(user.username, user.role, *roles)
    if refusal is not None:
        raise AccessDenied(refusal)
    return user


def ensure_local_user(service: ReviewService, username: str) -> UserView:
    """The user that acts when --auth is off: created as an admin with an unusable random password."""
    import secrets

    for user in service.list_users():
        if user.username == username:
            return user
    return service.add_user(username, secrets.token_urlsafe(24), Role.ADMIN)


class LoginRefused(Exception):
    """Logins for this user or from this address are locked for `retry_after` more seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)  # times of the failures inside the window
    locked_until: float = 0.0
    lockouts: int = 0  # lockouts in a row; the delay doubles with each
    last_failure: float = -math.inf


@dataclass
class LoginThrottle:
    """Failed logins counted per user name and per client address; a key that reaches its limit within
    `window_s` is locked for `base_delay_s`, doubled at every further lockout (up to `max_delay_s`). A
    user's record is cleared by a successful login; an address's only by `window_s` without failures."""

    max_user_failures: int = 5
    max_address_failures: int = 20  # higher: an office behind one address shares it
    window_s: float = 900.0
    base_delay_s: float = 30.0
    max_delay_s: float = 900.0
    clock: Callable[[], float] = time.monotonic
    max_records: int = 10_000  # forgotten first: records with no failure inside the window
    _records: dict[tuple[str, str], _Record] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keys(self, username: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("user", username.strip().lower())]
        if address:
            keys.append(("address", address))
        return keys

    def locked_for(self, username: str, address: str | None) -> float:
        """Seconds until a login for `username` from `address` may be tried again (0: now)."""
        now = self.clock()
        with self._lock:
            return self._wait(self._keys(username, address), now)

    def _wait(self, keys: list[tuple[str, str]], now: float) -> float:
        records = [self._records.get(k) for k in keys]
        return max([0.0, *(r.locked_until - now for r in records if r is not None)])

    def _refusal(self, username: str, address: str | None, wait: float) -> LoginRefused:
        seconds = math.ceil(wait)
        return LoginRefused(
            f"too many failed logins for {username.strip()!r} or from {address or 'this address'}: "
            f"logins are paused, try again in {seconds} s",
            seconds,
        )

    def check(self, username: str, address: str | None) -> None:
        """Raise LoginRefused (with a message for the user) while `username` or `address` is locked."""
        wait = self.locked_for(username, address)
        if wait > 0:
            raise self._refusal(username, address, wait)

    def _fail(self, kind: str, key: str, now: float) -> None:
        record = self._records.setdefault((kind, key), _Record())
        if now - record.last_failure > self.window_s and now >= record.locked_until:
            record.lockouts = 0  # a quiet window forgives earlier lockouts
        record.last_failure = now
        record.failures = [t for t in record.failures if now - t <= self.window_s] + [now]
        limit = self.max_user_failures if kind == "user" else self.max_address_failures
        if len(record.failures) >= limit:
            record.lockouts += 1
            record.locked_until = now + min(self.max_delay_s, self.base_delay_s * 2 ** (record.lockouts - 1))
            record.failures = []

    def _succeed(self, kind: str, key: str, failed_at: float | None) -> None:
        if kind == "user":
            self._records.pop((kind, key), None)
            return
        record = self._records.get((kind, key))
        if failed_at is not None and record is not None and failed_at in record.failures:
            record.failures.remove(failed_at)

    def record(self, username: str, address: str | None, success: bool) -> None:
        """Count one login attempt that was checked against the password."""
        now = self.clock()
        with self._lock:
            for kind, key in self._keys(username, address):
                if success:
                    self._succeed(kind, key, None)
                else:
                    self._fail(kind, key, now)
            if len(self._records) > self.max_records:
                self._forget(now)

    def _forget(self, now: float) -> None:
        stale = [
            k
            for k, r in self._records.items()
            if now - r.last_failure > self.window_s and now >= r.locked_until
        ]
        for key in stale:
            del self._records[key]

    def attempt(self, username: str, address: str | None, verify: Callable[[], bool]) -> bool:
        """`verify()` (the password check) unless locked (LoginRefused); the outcome is counted.

        The attempt counts as a failure before `verify` runs and is taken back when it succeeds, so
        many attempts sent at once cannot all pass the check before any of them is counted.
        """
        keys = self._keys(username, address)
        now = self.clock()
        with self._lock:
            wait = self._wait(keys, now)
            if wait > 0:
                raise self._refusal(username, address, wait)
            for kind, key in keys:
                self._fail(kind, key, now)
            if len(self._records) > self.max_records:
                self._forget(now)
        ok = False
        try:
            ok = bool(verify())
        finally:
            if ok:
                with self._lock:
                    for kind, key in keys:
                        self._succeed(kind, key, now)
        return ok


def login_checker(service: ReviewService, throttle: LoginThrottle) -> Callable[[str, str], Awaitable[bool]]:
    """The `auth` callable for Gradio's login route: the review store's password check behind `throttle`,
    run off the event loop. A locked login answers 400 (the login page then says the credentials were
    not accepted) with the reason and a Retry-After header for API clients."""
    from anyio import to_thread
    from fastapi import HTTPException

    from app.guard import client_address

    async def check(username: str, password: str) -> bool:
        address = client_address()

        def verify() -> bool:
            return service.login(username, password) is not None

        try:
            return await to_thread.run_sync(throttle.attempt, username, address, verify)
        except LoginRefused as exc:
            headers = {"Retry-After": str(exc.retry_after)}
            raise HTTPException(status_code=400, detail=str(exc), headers=headers) from None

    return check
