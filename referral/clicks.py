"""A click through a referral link, stored before its 302 leaves: one write, no read.

Without Redis (the embedded default) the click goes straight to the database in one INSERT.
With Redis it is appended to a Redis stream by one script (which also counts the link's rate
limits, referral/link_limits.py), and the 302 is sent once Redis has it; the worker's
`referral.move_clicks` (every CLICK_MOVE_SECONDS, by beat) moves the stream to the database
in batches. Either way the write is conditional on the link cache's generation
(referral/links.py): the INSERT stores the click only if the database's generation is still
the one the cached answer was read at, the script appends it only if Redis's is; otherwise the
answer is read again and the click stored under the fresh one.

Exactly once: every queued click carries a random id, clicks.queue_id is unique, and a batch
is inserted with ON CONFLICT DO NOTHING and committed before its entries are acknowledged and
deleted from the stream. A mover that dies mid-batch leaves its entries pending in the
consumer group; the next mover claims them once idle for CLICK_CLAIM_SECONDS (XAUTOCLAIM) and
inserts them again, which stores only what the dead one had not committed.

Redis unreachable: the click is written directly (with its queue id, so one that did reach
Redis before the error is not stored twice) and Redis is left alone for RETRY_SECONDS.
"""

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn, Protocol

import redis
from flask import Flask, current_app
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from core import counters
from core.database import insert_unless_present
from core.jobs import job
from extensions import db
from models import Click, ReferralCode, utcnow
from referral import links
from referral.codes import normalize_code

log = logging.getLogger(__name__)

UTM_KEYS = ("source", "medium", "campaign", "term", "content")
# After a Redis error, how long clicks go straight to the database before Redis is tried again.
RETRY_SECONDS = 5.0
WARNING_INTERVAL_SECONDS = 60.0
# Reads of a link whose generation keeps moving before the click is stored without the check.
ATTEMPTS = 3
MOVE_BATCH = 500
# One mover run stops after this long even if clicks keep coming; beat starts the next.
MOVE_BUDGET_SECONDS = 10.0
MOVER_GROUP = "movers"
IDLE_MOVER_MS = 3_600_000

# Counts the link's rate limits as Flask-Limiter's fixed window does (referral/link_limits.py),
# stopping at the first one exceeded; then appends the click, if any, unless the caller gave
# a generation and Redis's has moved on. KEYS: generation, stream, one counter per limit.
# ARGV: generation ('' appends whatever it is), number of limits, amount and window in
# seconds per limit, the click's fields. Answers {1} appended, {1, current generation} only
# counted (no fields), {0, current generation} not appended, {-1, which limit} over a limit.
_COUNT_AND_ADD = """
local limits = tonumber(ARGV[2])
for i = 1, limits do
  local count = redis.call('INCR', KEYS[2 + i])
  if count == 1 then redis.call('EXPIRE', KEYS[2 + i], ARGV[2 + 2 * i]) end
  if count > tonumber(ARGV[1 + 2 * i]) then return {-1, i} end
end
local fields = 3 + 2 * limits
if #ARGV < fields then return {1, redis.call('GET', KEYS[1]) or '0'} end
if ARGV[1] ~= '' then
  local current = redis.call('GET', KEYS[1]) or '0'
  if current ~= ARGV[1] then return {0, current} end
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, fields))
return {1}
"""


@dataclass(frozen=True)
class Visit:
    """Who followed the link, as the request tells it."""

    visitor_id: str
    ip_prefix: str | None
    user_agent: str | None
    referrer: str | None
    utm: dict[str, str | None]

    def columns(self, code_id: int, at: datetime, queue_id: str | None) -> dict:
        return {
            "code_id": code_id,
            "visitor_id": self.visitor_id,
            "ip_prefix": self.ip_prefix,
            "user_agent": _clip(self.user_agent, 400),
            "referrer": _clip(self.referrer, 400),
            **{f"utm_{key}": _clip(self.utm.get(key), 100) for key in UTM_KEYS},
            "created_at": at,
            "queue_id": queue_id,
        }


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


class RateLimits(Protocol):
    """Rate limits to count in the click's round trip (referral/link_limits.py)."""

    keys: tuple[str, ...]  # one Redis counter per limit

    def bounds(self) -> list[int]:
        """Amount and window in seconds, limit after limit."""

    def exceeded(self, index: int) -> NoReturn:
        """Refuse the request: the limit at `index` is used up."""


class ClickQueue:
    """The Redis side: the stream of clicks, the links' generation, the mover's group."""

    def __init__(self, url: str, namespace: str, timeout_seconds: float) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            decode_responses=True,
        )
        self.stream = f"{namespace}:clicks"
        self.generation_key = f"{namespace}:link-generation"
        self._count_and_add = self.client.register_script(_COUNT_AND_ADD)
        self._down_until = 0.0
        self._last_warning = float("-inf")

    # -- the web side

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def mark_down(self, error: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + RETRY_SECONDS
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            self._last_warning = now
            log.warning(
                "clicks: Redis unreachable (%s); writing clicks to the database, "
                "retrying Redis every %.0f s",
                error.__class__.__name__,
                RETRY_SECONDS,
            )

    def generation(self, limits: RateLimits | None = None) -> str:
        """The links' generation in Redis; `limits` counted in the same round trip (429 once
        one is exceeded)."""
        if limits is None:
            return self.client.get(self.generation_key) or "0"
        _outcome, current = self._count_and_add_call({}, None, limits)
        return current

    def add(
        self, fields: dict[str, str], generation: str | None, limits: RateLimits | None = None
    ) -> bool:
        """In one round trip: count `limits` (429 once one is exceeded), then append the click's
        `fields` if the links' generation is still `generation` (None: whatever it is). False
        when the generation has moved on; the limits were counted all the same."""
        outcome, _current = self._count_and_add_call(fields, generation, limits)
        return outcome == 1

    def _count_and_add_call(
        self, fields: dict[str, str], generation: str | None, limits: RateLimits | None
    ) -> tuple[int, str | None]:
        """The script's outcome and the generation it answered with, if any."""
        keys = [self.generation_key, self.stream, *(limits.keys if limits else ())]
        bounds = limits.bounds() if limits else []
        flat = [part for pair in fields.items() for part in pair]
        outcome, *detail = self._count_and_add(
            keys=keys, args=[generation or "", len(bounds) // 2, *bounds, *flat]
        )
        if outcome == -1:
            limits.exceeded(detail[0] - 1)
        return outcome, (detail[0] if detail else None)

    def bump_generation(self) -> None:
        try:
            self.client.incr(self.generation_key)
        except RedisError as error:
            # Entries read under the old generation age out (links.ENTRY_SECONDS).
            log.warning("clicks: could not bump the links' generation in Redis (%s)", error)

    # -- the mover's side

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, MOVER_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def claim_stale(self, consumer: str, idle_ms: int, count: int) -> list:
        """Entries another mover read but never acknowledged, idle for `idle_ms`."""
        _next, entries, *_deleted = self.client.xautoclaim(
            self.stream, MOVER_GROUP, consumer, min_idle_time=idle_ms, start_id="0-0", count=count
        )
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    def forget_idle_movers(self, consumer: str) -> None:
        """Drop from the group the movers of processes long gone that left nothing pending
        (one name per worker process; one with entries pending keeps them claimable)."""
        for mover in self.client.xinfo_consumers(self.stream, MOVER_GROUP):
            if mover["name"] != consumer and not mover["pending"] and mover["idle"] > IDLE_MOVER_MS:
                self.client.xgroup_delconsumer(self.stream, MOVER_GROUP, mover["name"])

    def read_new(self, consumer: str, count: int) -> list:
        answer = self.client.xreadgroup(MOVER_GROUP, consumer, {self.stream: ">"}, count=count)
        return answer[0][1] if answer else []

    def done(self, entry_ids: list[str]) -> None:
        pipeline = self.client.pipeline(transaction=False)
        pipeline.xack(self.stream, MOVER_GROUP, *entry_ids)
        pipeline.xdel(self.stream, *entry_ids)
        pipeline.execute()

    def waiting(self) -> int:
        """Clicks acknowledged to visitors and not yet in the database."""
        return self.client.xlen(self.stream)


def init_click_queue(app: Flask) -> None:
    """With REDIS_URL, clicks go through Redis; the links' cache is made either way."""
    links.init_link_cache(app)
    url = app.config["REDIS_URL"]
    app.extensions["click_queue"] = (
        ClickQueue(url, app.config["CELERY_DEFAULT_QUEUE"], app.config["REDIS_TIMEOUT_SECONDS"])
        if url
        else None
    )


def click_queue() -> ClickQueue | None:
    return current_app.extensions.get("click_queue")


# -- recording a click


def record_click(
    raw_code: str | None,
    visit: Callable[[], Visit],
    *,
    owner_excluded: int | None = None,
    now: datetime | None = None,
    limits: RateLimits | None = None,
) -> links.Link | None:
    """Store a click through `raw_code` and return its link; None (nothing stored) for a code
    that is unknown, malformed or not usable now. `visit` is asked only for a click to store.
    A click by `owner_excluded` (the owner trying their own link) is not a visit: None too.
    `limits` are the link's rate limits, to count in Redis with the click (429 when one is
    exceeded, before anything is read or stored)."""
    code = normalize_code(raw_code)
    now = now or utcnow()
    queue = click_queue()
    queue_id = None
    if queue is not None and queue.available():
        queue_id = uuid.uuid4().hex
        try:
            return _record(_RedisStore(queue, queue_id, limits), code, visit, owner_excluded, now)
        except RedisError as error:
            queue.mark_down(error)
    if code is None:
        return None
    with _connection() as connection:
        store = _DatabaseStore(connection, queue_id)
        return _record(store, code, visit, owner_excluded, now)


def _record(store, code: str | None, visit, owner_excluded: int | None, now: datetime):
    cache = links.cache()
    cached = cache.get(store.source, code) if code else None
    columns = None
    for attempt in range(ATTEMPTS + 1):
        unusable = cached is not None and not cached.link.usable(now)
        if cached is None or (unusable and cached.generation != store.generation()):
            # Not cached, or cached as unusable and changed since (say, its owner reactivated).
            found = store.read(code)
            if found is None:
                return None
            cached = cache.put(store.source, code, *found)
        link = cached.link
        if not link.usable(now) or link.owner_id == owner_excluded:
            store.count_limits()
            return None
        if columns is None:
            columns = visit().columns(link.code_id, now, store.queue_id)
        # The last attempt stores without the check: the link was usable a moment ago.
        if store.add(columns, cached.generation if attempt < ATTEMPTS else None):
            counters.CLICKS.inc()
            return link
        cached = None
    raise AssertionError("unreachable: the last attempt stores unconditionally")


class _RedisStore:
    """Clicks appended to the stream; the link's limits, if given, counted once, with the
    first command that reaches Redis's script."""

    source = "redis"

    def __init__(self, queue: ClickQueue, queue_id: str, limits: RateLimits | None) -> None:
        self.queue = queue
        self.queue_id = queue_id
        self.limits = limits

    def count_limits(self) -> None:
        if self.limits is not None:
            self.generation()

    def generation(self) -> str:
        limits, self.limits = self.limits, None  # counted once
        return self.queue.generation(limits)

    def read(self, code: str | None) -> tuple[str, links.Link] | None:
        # The generation first (a change after it moves it again), and with it the limits:
        # a visitor over a limit costs the database nothing.
        generation = self.generation()
        if code is None:
            return None
        with _connection() as connection:
            found = links.read(connection, code)
        return (generation, found[1]) if found else None

    def add(self, columns: dict, generation: str | None) -> bool:
        limits, self.limits = self.limits, None  # counted once, even if the click is not added
        return self.queue.add(_stream_fields(columns), generation, limits)


class _DatabaseStore:
    """Clicks inserted into the database; Flask-Limiter has counted the limits."""

    source = "database"

    def __init__(self, connection: Connection, queue_id: str | None) -> None:
        self.connection = connection
        self.queue_id = queue_id

    def count_limits(self) -> None:
        pass

    def generation(self) -> str:
        return str(self.connection.scalar(_DATABASE_GENERATION))

    def read(self, code: str | None) -> tuple[str, links.Link] | None:
        return links.read(self.connection, code) if code else None

    def add(self, columns: dict, generation: str | None) -> bool:
        if generation is None:
            self.connection.execute(_INSERT_CLICK, columns)
            return True
        stored = self.connection.execute(
            _INSERT_CLICK_IF_CURRENT, {**columns, "generation": int(generation)}
        )
        return stored.first() is not None


@contextlib.contextmanager
def _connection() -> Iterator[Connection]:
    """A connection of its own, outside the request's session: on PostgreSQL in autocommit
    (each statement its own transaction: no BEGIN or COMMIT round trips, nothing to roll back
    at teardown); on SQLite a transaction, which takes the write lock at BEGIN as every other
    writer does (core/database.py)."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    elif db.session().in_transaction():
        # The request's session already holds SQLite's one write lock (a signed-in visitor
        # was loaded): a connection of our own would wait for it. Write in its transaction.
        yield db.session.connection()
        db.session.commit()
    else:
        # The threads of this process take turns here, not in SQLite's busy handler, which
        # sleeps in steps of milliseconds while another writer holds the lock.
        with _SQLITE_CLICK_WRITERS, engine.begin() as connection:
            yield connection


_SQLITE_CLICK_WRITERS = threading.Lock()

_STREAM_COLUMNS = (
    "code_id",
    "visitor_id",
    "ip_prefix",
    "user_agent",
    "referrer",
    *(f"utm_{key}" for key in UTM_KEYS),
)
_CLICK_COLUMNS = (*_STREAM_COLUMNS, "created_at", "queue_id")  # the keys of Visit.columns

# The direct writes, built once (SQLAlchemy keeps each statement's cache key with it):
# the click, and the click only while the database's generation is the caller's.
_DATABASE_GENERATION = select(links.database_generation())
_INSERT_CLICK = insert(Click.__table__)
_INSERT_CLICK_IF_CURRENT = (
    insert(Click.__table__)
    .from_select(
        _CLICK_COLUMNS,
        select(
            *(bindparam(name, type_=Click.__table__.c[name].type) for name in _CLICK_COLUMNS)
        ).where(links.database_generation() == bindparam("generation")),
    )
    # RETURNING says whether a row went in (psycopg gives no rowcount for INSERT ... SELECT).
    .returning(Click.__table__.c.id)
)


def _stream_fields(columns: dict) -> dict[str, str]:
    fields = {name: str(columns[name]) for name in _STREAM_COLUMNS if columns[name] is not None}
    fields["created_at"] = columns["created_at"].isoformat()
    fields["queue_id"] = columns["queue_id"]
    return fields


def _columns_of(fields: dict[str, str]) -> dict:
    columns = {name: fields.get(name) for name in _STREAM_COLUMNS}
    columns["code_id"] = int(fields["code_id"])
    columns["created_at"] = datetime.fromisoformat(fields["created_at"])
    columns["queue_id"] = fields["queue_id"]
    return columns


# -- moving queued clicks to the database


@job("referral.move_clicks")
def move_clicks() -> int:
    """Move the clicks waiting in Redis to the database, batch by batch, claiming first what
    a crashed mover left; beat runs it every CLICK_MOVE_SECONDS."""
    queue = click_queue()
    if queue is None:
        return 0
    return move_queued(queue, current_app.config["CLICK_CLAIM_SECONDS"])


def move_queued(
    queue: ClickQueue, claim_seconds: float, budget_seconds: float = MOVE_BUDGET_SECONDS
) -> int:
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    queue.ensure_group()
    queue.forget_idle_movers(consumer)
    moved = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        entries = queue.claim_stale(consumer, int(claim_seconds * 1000), MOVE_BATCH)
        if not entries:
            entries = queue.read_new(consumer, MOVE_BATCH)
        if not entries:
            break
        _insert_batch([_columns_of(fields) for _entry_id, fields in entries])
        queue.done([entry_id for entry_id, _fields in entries])
        moved += len(entries)
    return moved


def _insert_batch(rows: list[dict]) -> None:
    """One multi-row INSERT, committed; clicks already stored (a batch moved again after a
    crash) are skipped by their queue id, and clicks of codes deleted since are dropped."""
    code_ids = {row["code_id"] for row in rows}
    existing = set(db.session.scalars(select(ReferralCode.id).where(ReferralCode.id.in_(code_ids))))
    rows = [row for row in rows if row["code_id"] in existing]
    if rows:
        db.session.execute(insert_unless_present(Click.__table__, ["queue_id"]).values(rows))
    db.session.commit()
