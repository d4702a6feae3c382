"""Failed password logins per account, whatever address they come from.

Each email typed at the login form has counters in the rate limiter's storage (Redis when
REDIS_URL is set, so every process shares them; else this process's memory), one per rule of
LOGIN_FAILURE_LIMITS, e.g. "10/minute;20/15 minutes;50/hour": the longer the run of failures,
the longer the wait. An attempt takes its place in every counter before the password is
checked, atomically, so concurrent guesses cannot slip past; a correct password gives the
place back, and so does an attempt refused for being over a limit: only wrong passwords
count. Unknown emails are counted exactly like known ones, so the answer tells nothing about
which addresses have accounts. The limit guards the password only: a password reset link or a
phone code still signs the owner in (and a reset clears the count)."""

import hashlib
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from flask_babel import ngettext
from limits import parse_many
from limits.storage import MemoryStorage, Storage

from core.errors import DomainError
from extensions import limiter

log = logging.getLogger(__name__)

_SCOPE = "login-failures"
# Used when the configured storage cannot be reached: per process, but never no limit at all.
_FALLBACK = "inviteloop.login_failures_fallback"


class AccountThrottled(DomainError):
    status = 429
    code = "account_throttled"

    def __init__(self, wait_seconds: float):
        self.retry_after = max(1, math.ceil(wait_seconds))
        if self.retry_after < 120:
            message = ngettext(
                "Too many wrong passwords were tried for this email address. Wait %(num)d"
                " second before trying a password again, or get in now with a password reset"
                " link or by signing in with your phone.",
                "Too many wrong passwords were tried for this email address. Wait %(num)d"
                " seconds before trying a password again, or get in now with a password reset"
                " link or by signing in with your phone.",
                self.retry_after,
            )
        else:
            message = ngettext(
                "Too many wrong passwords were tried for this email address. Wait %(num)d"
                " minute before trying a password again, or get in now with a password reset"
                " link or by signing in with your phone.",
                "Too many wrong passwords were tried for this email address. Wait %(num)d"
                " minutes before trying a password again, or get in now with a password reset"
                " link or by signing in with your phone.",
                math.ceil(self.retry_after / 60),
            )
        super().__init__(message)


def _account(email: str) -> str:
    # As `authenticate` looks the account up; hashed, so no address is stored in the limiter.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _counters(email: str) -> list[tuple[str, int, int]]:
    """(storage key, window in seconds, allowed failures) for each rule."""
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    identity = [part for part in (prefix, _SCOPE, _account(email)) if part]
    return [
        (item.key_for(*identity), item.get_expiry(), item.amount)
        for item in parse_many(current_app.config["LOGIN_FAILURE_LIMITS"])
    ]


def _fallback() -> Storage:
    extensions = current_app.extensions
    if _FALLBACK not in extensions:
        extensions[_FALLBACK] = MemoryStorage()
    return extensions[_FALLBACK]


def _add(storage: Storage, counters, amount: int) -> list[float]:
    """Add `amount` to each counter; the seconds left in the window of each one now over."""
    waits = []
    for key, window, allowed in counters:
        if storage.incr(key, window, amount=amount) > allowed:
            waits.append(storage.get_expiry(key) - time.time())
    return waits


@contextmanager
def password_attempt(email: str) -> Iterator[None]:
    """Count the block's password check against the account's failure budget: refused with
    AccountThrottled (before any check) when the budget is spent, given back when the block
    ends without an exception (the password was right)."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        yield
        return
    counters = _counters(email)
    storage = limiter.limiter.storage
    try:
        waits = _add(storage, counters, 1)
    except Exception as error:  # the shared storage is down: count in this process instead
        log.warning("login failure counters unreachable (%s); counting in memory", error)
        storage = _fallback()
        waits = _add(storage, counters, 1)
    if waits:
        _add(storage, counters, -1)  # a refused attempt checked no password
        raise AccountThrottled(max(waits))
    yield
    _add(storage, counters, -1)


def forget_failures(email: str) -> None:
    """Clear the account's failed logins: its owner just proved who they are another way."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    for storage in (limiter.limiter.storage, current_app.extensions.get(_FALLBACK)):
        if storage is None:
            continue
        try:
            for key, _, _ in _counters(email):
                storage.clear(key)
        except Exception as error:
            log.warning("could not clear login failure counters (%s)", error)
