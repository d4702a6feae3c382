"""The referral link's rate limits, counted in the Redis round trip that queues its click.

Flask-Limiter spends one Redis round trip per limit before the view runs, and the click
costs another. When the click goes to Redis and the limiter keeps its counters there too,
the view counts the limits itself, in the one script that appends the click
(referral/clicks.py). It counts them exactly as Flask-Limiter's fixed window would: the same
keys, the smallest window first, stopping at the first limit exceeded. So both count into
the same windows, whichever of them counts a given request. A visitor over a limit gets
Flask-Limiter's own 429, with Retry-After and the X-RateLimit-* headers.

Whenever the click cannot go to Redis (no Redis, Redis down, or the limiter keeping its
counters elsewhere), Flask-Limiter counts the limits as for any other view, with its
in-memory fallback. The one request in flight when Redis fails is counted by neither.

Without Redis, the limiter keeps its windows in the process's memory; the plain click
answered before Flask (referral/click_shortcut.py) counts them there, through Flask-Limiter's
own strategy, the same way (`counted_in_memory`).
"""

import functools
from dataclasses import dataclass
from typing import NoReturn

from flask import current_app, g, request
from flask_limiter import RequestLimit
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage
from werkzeug.exceptions import TooManyRequests

from extensions import limiter
from referral import clicks


@dataclass(frozen=True)
class LinkLimits:
    """This request's limits: the counters' keys and, per limit, its amount and window."""

    items: tuple[RateLimitItem, ...]  # smallest window first
    request_args: tuple[str, ...]  # what Flask-Limiter builds each limit's key from
    keys: tuple[str, ...]

    def bounds(self) -> list[int]:
        """Amount and window in seconds, limit after limit, for the script."""
        return [number for item in self.items for number in (item.amount, item.get_expiry())]

    def exceeded(self, index: int) -> NoReturn:
        """Answer 429 for the limit at `index`; Flask-Limiter adds the headers from it."""
        limiter.context.view_rate_limit = RequestLimit(
            limiter, self.items[index], list(self.request_args), breached=True, shared=False
        )
        raise TooManyRequests()


def counted_with_the_click(limits: str) -> bool:
    """True when the click's script will count `limits` (the view then finds them in
    `requested()`), so Flask-Limiter skips the request (referral.routes' request filter,
    asked only while the limiter is enabled). Made once per request."""
    if "link_limits" not in g:
        g.link_limits = limits_for_the_script(limits, get_remote_address(), request.endpoint)
    return g.link_limits is not None


def requested() -> LinkLimits | None:
    """The limits the click's script is to count for this request, if it is to count them."""
    return g.get("link_limits")


@functools.lru_cache(maxsize=8)  # the setting's text, parsed once rather than per click
def _parsed(limits: str) -> tuple[RateLimitItem, ...]:
    return tuple(sorted(parse_many(limits)))


def limits_for_the_script(
    limits: str, address: str | None, endpoint: str, kind: type[LinkLimits] = LinkLimits
) -> LinkLimits | None:
    """`limits` of a visitor from `address` to the view `endpoint`, as the click's script is
    to count them; None when it cannot (then Flask-Limiter counts them). Within an app."""
    queue = clicks.click_queue()
    storage = limiter.storage
    config = current_app.config
    if not (
        queue is not None
        and queue.available()
        and isinstance(storage, RedisStorage)
        and config["RATELIMIT_STORAGE_URI"] == config["REDIS_URL"]  # one Redis for both
        and config.get("RATELIMIT_STRATEGY", "fixed-window") == "fixed-window"
        and address
    ):
        return None
    request_args = _request_args(address, endpoint)
    return kind(_parsed(limits), request_args, _keys(storage, limits, request_args))


@functools.lru_cache(maxsize=4096)  # a visitor's keys, made once while they keep clicking
def _keys(storage: RedisStorage, limits: str, request_args: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(storage.prefixed_key(item.key_for(*request_args)) for item in _parsed(limits))


def counted_in_memory(limits: str, address: str, endpoint: str) -> bool | None:
    """Count `limits` of a visitor from `address` to the view `endpoint` as Flask-Limiter
    does, in its windows, when it keeps them in this process's memory: True while within
    them, False once one is exceeded (smallest window first, stopping there), None when it
    keeps them elsewhere. Within an app."""
    if not isinstance(limiter.storage, MemoryStorage):
        return None
    request_args = _request_args(address, endpoint)
    strategy = limiter.limiter
    return all(strategy.hit(item, *request_args) for item in _parsed(limits))


def _request_args(address: str, endpoint: str) -> tuple[str, ...]:
    """What Flask-Limiter builds a limit's key from: its prefix, the visitor, the view."""
    prefix = current_app.config["RATELIMIT_KEY_PREFIX"]
    return (prefix, address, endpoint) if prefix else (address, endpoint)
