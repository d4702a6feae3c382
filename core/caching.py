"""A Redis cache that keeps the app serving while Redis cannot be reached.

The shared cache only saves work (leaderboard pages, analytics figures, Saleor's keys and the
throttle on fetching them). When Redis fails, the cache falls back to a small cache in this
process's memory (like the rate limiter's in-memory fallback) instead of answering 500: pages
are computed and cached per process, invalidation is seen only by the process that made it.
After a failure Redis is left alone for RETRY_SECONDS (no request waits on a dead socket),
then one operation tries it again; once it answers, Redis is used again and the process's
fallback is emptied. One warning per WARNING_INTERVAL_SECONDS goes to the log, not one per
request.

Config: CACHE_TYPE = "core.caching.FailSoftRedisCache" (config.py sets it with REDIS_URL).
"""

import logging
import threading
import time
from typing import Any

from cachelib import SimpleCache
from flask_caching.backends.rediscache import RedisCache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# After a failure, how long Redis is left alone before one operation tries it again.
RETRY_SECONDS = 5.0
# At most one "Redis unreachable" warning this often per process.
WARNING_INTERVAL_SECONDS = 60.0
# Entries the in-process fallback holds at most (it drops some when full).
FALLBACK_ITEMS = 1000


class FailSoftRedisCache(RedisCache):
    """Flask-Caching's RedisCache that uses process memory while Redis is unreachable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fallback = SimpleCache(threshold=FALLBACK_ITEMS, default_timeout=self.default_timeout)
        self._state_lock = threading.Lock()
        self._down = False
        self._down_until = 0.0  # time.monotonic() until which Redis is not tried
        self._last_warning = float("-inf")

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
        return self._attempt("clear")

    def inc(self, key: str, delta: int = 1) -> Any:
        return self._attempt("inc", key, delta=delta)

    def dec(self, key: str, delta: int = 1) -> Any:
        return self._attempt("dec", key, delta=delta)
