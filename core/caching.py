"""A Redis cache that keeps the app serving while Redis cannot be reached.

The shared cache only saves work (leaderboard pages, analytics figures, Saleor's keys and the
throttle on fetching them). When Redis fails, the cache falls back to a small cache in this
process's memory (like the rate limiter's in-memory fallback) instead of answering 500: pages
are computed and cached per process, invalidation is seen only by the process that made it.
After a failure Redis is left alone for RETRY_SECONDS (no request waits on a dead socket),
then one operation tries it again; once it answers, Redis is used again and the process's
fallback is emptied. One warning per WARNING_INTERVAL_SECONDS goes to the log, not one per
request.

Near copies (`NearCopies`): the few answers read on every public request (the board's JSON
and page) are also kept in each process's memory, so a hit costs no round trip at all. Each
copy is dropped the moment any process announces a change (`FailSoftRedisCache.announce`, a
Redis PUBLISH, sent right after the change is written), and copies are served only while
this process is subscribed to those announcements: a broken subscription drops them all and
serves from Redis again until it is back. A copy also lives at most NEAR_COPY_SECONDS, in
case an announcement was lost without the subscription breaking.

Config: CACHE_TYPE = "core.caching.FailSoftRedisCache" (config.py sets it with REDIS_URL).
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from cachelib import SimpleCache
from flask_caching.backends.rediscache import RedisCache
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

log = logging.getLogger(__name__)

# After a failure, how long Redis is left alone before one operation tries it again.
RETRY_SECONDS = 5.0
# At most one "Redis unreachable" warning this often per process.
WARNING_INTERVAL_SECONDS = 60.0
# Entries the in-process fallback holds at most (it drops some when full).
FALLBACK_ITEMS = 1000
# A near copy's longest life, whatever the announcements say.
NEAR_COPY_SECONDS = 5.0
# Near copies a process keeps at most (it starts afresh when full).
NEAR_COPY_ITEMS = 500
# How long subscribing to the announcements may take before it counts as failed.
SUBSCRIBE_SECONDS = 1.0


class NearCopies:
    """Copies of shared-cache values in this process, valid while nothing was announced.

    The epoch `look` gives is read before the shared cache is, and a copy is kept under it
    (`keep`): any announcement or break in the subscription starts a new epoch, so a copy of
    a value read before a change can never be served after it. Announcements are read from the
    subscription's socket (no round trip, no thread) before every lookup: one that was
    published before a request arrived is seen by that request. Thread-safe; after a fork
    the child subscribes on its own connection."""

    def __init__(self, subscriber: Callable[[], redis.Redis], channel: str) -> None:
        self._subscriber = subscriber
        self.channel = channel
        self._lock = threading.Lock()
        self._copies: dict[str, tuple[int, float, Any]] = {}
        self._epoch = 0
        self._pubsub = None
        self._pid = None
        self._listening = False
        self._retry_at = 0.0

    def look(self, key: str) -> tuple[int | None, Any]:
        """(the current epoch, the copy of `key` or None); (None, None) while announcements
        cannot be heard. Keep what is read from the shared cache under that epoch."""
        with self._lock:
            if not self._hear():
                return None, None
            copy = self._copies.get(key)
            if copy is None or copy[0] != self._epoch or copy[1] < time.monotonic():
                return self._epoch, None
            return self._epoch, copy[2]

    def keep(self, key: str, value: Any, epoch: int) -> None:
        with self._lock:
            if epoch != self._epoch or not self._listening:
                return  # something was announced since the value was read
            if len(self._copies) >= NEAR_COPY_ITEMS:
                self._copies.clear()
            self._copies[key] = (epoch, time.monotonic() + NEAR_COPY_SECONDS, value)

    def forget(self) -> None:
        """Drop every copy of this process (it changed something, or told others to)."""
        with self._lock:
            self._new_epoch()

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._copies.clear()

    def _hear(self) -> bool:
        """Read what was announced since the last look; True while subscribed."""
        if self._pid != os.getpid():  # new, or a forked child: a connection of its own
            self._pid, self._pubsub, self._listening = os.getpid(), None, False
            self._new_epoch()
        if self._pubsub is None:
            if time.monotonic() < self._retry_at:
                return False
            try:
                self._pubsub = self._subscriber().pubsub()
                self._pubsub.subscribe(self.channel)
                # Listening from the confirmation on: waited for here (one round trip per
                # subscription), so the next lookup does not depend on when it arrives.
                if self._pubsub.get_message(timeout=SUBSCRIBE_SECONDS) is None:
                    raise TimeoutError("no confirmation of the subscription")
            except (RedisError, OSError):
                self._lost()
                return False
            self._listening = True
            self._new_epoch()
        try:
            while self._pubsub.get_message(timeout=0) is not None:
                self._new_epoch()  # an announcement: copies made before it may be stale
        except (RedisError, OSError):
            self._lost()
        return self._listening

    def _lost(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                self._pubsub.close()
        self._pubsub, self._listening = None, False
        self._retry_at = time.monotonic() + RETRY_SECONDS
        self._new_epoch()


class FailSoftRedisCache(RedisCache):
    """Flask-Caching's RedisCache that uses process memory while Redis is unreachable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fallback = SimpleCache(threshold=FALLBACK_ITEMS, default_timeout=self.default_timeout)
        self._state_lock = threading.Lock()
        self._down = False
        self._down_until = 0.0  # time.monotonic() until which Redis is not tried
        self._last_warning = float("-inf")
        self.near: NearCopies | None = None  # set by `factory`, which knows where Redis is

    @classmethod
    def factory(cls, app, config, args, kwargs) -> "FailSoftRedisCache":
        options = dict(config.get("CACHE_OPTIONS") or {})
        made = super().factory(app, config, args, kwargs)
        url = config["CACHE_REDIS_URL"]

        def subscriber() -> redis.Redis:
            # No silent reconnects: a dropped subscription must be noticed (it may have
            # missed announcements), so an error is raised, not retried.
            return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)

        made.near = NearCopies(subscriber, f"{made._get_prefix()}near-copies")
        return made

    def announce(self) -> None:
        """Tell every process (this one at once) to drop its near copies."""
        if self.near is None:
            return
        self.near.forget()
        try:
            if time.monotonic() >= self._down_until:
                self._write_client.publish(self.near.channel, "")
        except RedisError as error:
            # Unheard, the others' subscriptions break too (and drop their copies), or
            # their copies age out within NEAR_COPY_SECONDS.
            self._mark_down(error, time.monotonic())

    def _attempt(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._down_until:
            try:
                result = getattr(super(), operation)(*args, **kwargs)
            except RedisError as error:
                self._mark_down(error, now)
            else:
                if self._down:
                    self._mark_up()
                return result
        return getattr(self._fallback, operation)(*args, **kwargs)

    def _mark_down(self, error: RedisError, now: float) -> None:
        with self._state_lock:
            self._down = True
            self._down_until = now + RETRY_SECONDS
            warn = now - self._last_warning >= WARNING_INTERVAL_SECONDS
            if warn:
                self._last_warning = now
        if warn:
            log.warning(
                "cache: Redis unreachable (%s); caching in this process only, "
                "retrying every %.0f s",
                error.__class__.__name__,
                RETRY_SECONDS,
            )

    def _mark_up(self) -> None:
        with self._state_lock:
            if not self._down:
                return
            self._down = False
        self._fallback.clear()
        log.warning("cache: Redis reachable again; the shared cache is back in use")

    def get(self, key: str) -> Any:
        return self._attempt("get", key)

    def get_many(self, *keys: str) -> list[Any]:
        return self._attempt("get_many", *keys)

    def has(self, key: str) -> bool:
        return self._attempt("has", key)

    def set(self, key: str, value: Any, timeout: int | None = None) -> Any:
        return self._attempt("set", key, value, timeout=timeout)

    def add(self, key: str, value: Any, timeout: int | None = None) -> Any:
        return self._attempt("add", key, value, timeout=timeout)

    def set_many(self, mapping: dict[str, Any], timeout: int | None = None) -> list[Any]:
        return self._attempt("set_many", mapping, timeout=timeout)

    def delete(self, key: str) -> bool:
        return self._attempt("delete", key)

    def delete_many(self, *keys: str) -> list[Any]:
        return self._attempt("delete_many", *keys)

    def unlink(self, *keys: str) -> Any:
        return self._attempt("delete_many", *keys)

    def clear(self) -> bool:
        self._fallback.clear()
        cleared = self._attempt("clear")
        self.announce()
        return cleared

    def inc(self, key: str, delta: int = 1) -> Any:
        return self._attempt("inc", key, delta=delta)

    def dec(self, key: str, delta: int = 1) -> Any:
        return self._attempt("dec", key, delta=delta)


def announce_change(shared) -> None:
    """After writing something near copies are made from (Flask-Caching's `cache`): every
    process drops its copies. Nothing to do for a cache without them."""
    announce = getattr(shared.cache, "announce", None)
    if announce is not None:
        announce()


def near_copies(shared) -> NearCopies | None:
    """The process's near copies of `shared` (Flask-Caching's `cache`), if it keeps any."""
    return getattr(shared.cache, "near", None)
