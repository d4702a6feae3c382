"""A click through a referral link, stored before its 302 leaves: one write, no read.

Without Redis (the embedded default) the click goes straight to the database in one INSERT,
its code resolved from this process's cache of links (referral/links.py). On SQLite it is
appended to the process's journal beside the database instead, and stored in batches by the
process's mover (`ClickJournal`); when the journal is off or cannot be written, the clicks of
requests arriving together share that INSERT (core/group_commit.py), which is a transaction
of its own (`_SqliteClickWriter`).
With Redis, one script call does it all: it counts the link's rate limits
(referral/link_limits.py), resolves the code from the link entry Redis keeps for every process
and appends the click to a Redis stream; the 302 is sent once Redis has it. A code Redis keeps
no entry for (first clicked in a while) is read from the database and its entry kept in the
round trip that appends the click. The worker's `referral.move_clicks` (every
CLICK_MOVE_SECONDS, by beat) moves the stream to the database in batches.
Either way the write is conditional on the links' generation (referral/links.py): the INSERT
stores the click only if the database's generation is still the one the cached answer was read
at, the script uses an entry only if it was read at Redis's current generation; otherwise the
answer is read again and the click stored under the fresh one.

Exactly once: every queued click carries a random id, clicks.queue_id is unique, and a batch
is inserted with ON CONFLICT DO NOTHING and committed before its entries are acknowledged and
deleted from the stream. A mover that dies mid-batch leaves its entries pending in the
consumer group; the next mover claims them once idle for CLICK_CLAIM_SECONDS (XAUTOCLAIM) and
inserts them again, which stores only what the dead one had not committed.

Redis unreachable: the click is written directly (with its queue id, so one that did reach
Redis before the error is not stored twice) and Redis is left alone for RETRY_SECONDS.
"""

import atexit
import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NoReturn, Protocol

import redis
from flask import Flask, current_app
from redis.exceptions import NoScriptError, RedisError, ResponseError
from sqlalchemy import bindparam, event, exists, func, insert, literal_column, select, union_all
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from core import counters
from core.background import BackgroundLoop
from core.clients import ip_prefix
from core.database import insert_unless_present, reading_only
from core.group_commit import GroupCommit
from core.jobs import job
from core.journal import Journal
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
# Journaled clicks per INSERT on SQLite: inserted into the clicks' indexes together, larger
# batches share more pages (measured alone at 100k clicks: 37 us a click in 500s, 29 in
# 2,000s, 23 in 5,000s); 2,000 hold the write lock for some 60 ms.
JOURNAL_BATCH = 2000
# Clicks per INSERT on SQLite, far below its limit on a compound SELECT's terms (500).
BATCH_ROWS = 32
WRITER_CACHE_KIB = 256  # the page cache of the SQLite clicks' writer and journal's mover
READER_CACHE_KIB = 128  # and of the connection reading links for the journal
# One mover run stops after this long even if clicks keep coming; beat starts the next.
MOVE_BUDGET_SECONDS = 10.0
MOVER_GROUP = "movers"
IDLE_MOVER_MS = 3_600_000

# One round trip per click: counts the link's rate limits as Flask-Limiter's fixed window
# does (referral/link_limits.py), stopping at the first one exceeded; resolves the code from
# the link entry Redis keeps for every process, if it was read at Redis's current generation;
# and appends the click if the link is usable now. KEYS: generation, stream, the code's
# entry, one counter per limit. ARGV: now (epoch seconds); an entry to keep first ('' for
# none) and its lifetime in seconds; the mode ('add'; 'add-anyway', whatever the generation;
# 'look', append nothing); the number of limits, amount and window in seconds per limit; the
# click's fields but its code id. An entry is "generation, usable from, usable until, code
# id, link" joined by tabs ('' from: never usable; '' until: no end).
# Answers {-1, which limit} over a limit, {0, current generation} no entry of the current
# generation (read the database), {1, link} appended, {2, link} not usable, {3, link} looked.
_CLICK = """
local limits = tonumber(ARGV[5])
for i = 1, limits do
  local count = redis.call('INCR', KEYS[3 + i])
  if count == 1 then redis.call('EXPIRE', KEYS[3 + i], ARGV[5 + 2 * i]) end
  if count > tonumber(ARGV[4 + 2 * i]) then return {-1, i} end
end
local current = redis.call('GET', KEYS[1]) or '0'
local entry = ARGV[2]
if entry ~= '' then
  redis.call('SET', KEYS[3], entry, 'EX', ARGV[3])
else
  entry = redis.call('GET', KEYS[3])
  if not entry then return {0, current} end
end
local generation, from, till, code_id, link =
  string.match(entry, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
if not generation or (generation ~= current and ARGV[4] ~= 'add-anyway') then
  return {0, current}
end
local now = tonumber(ARGV[1])
if from == '' or now < tonumber(from) or (till ~= '' and now >= tonumber(till)) then
  return {2, link}
end
if ARGV[4] == 'look' then return {3, link} end
redis.call('XADD', KEYS[2], '*', 'code_id', code_id, unpack(ARGV, 6 + 2 * limits))
return {1, link}
"""
OVER_LIMIT, NOT_KEPT, ADDED, UNUSABLE, LOOKED = -1, 0, 1, 2, 3

# Redis's generation moved on if the database's (ARGV[1]) is not the one seen last time.
# KEYS: generation, the database generation seen. Answers 1 when it moved it.
_CATCH_UP = """
if redis.call('GET', KEYS[2]) == ARGV[1] then return 0 end
redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Visit:
    """Who followed the link, as the request tells it."""

    visitor_id: str
    ip_prefix: str | None
    user_agent: str | None
    referrer: str | None
    utm: dict[str, str | None]

    @classmethod
    def of_request(cls, request, visitor_id: str, address: str) -> "Visit":
        """The visit a request tells of (Flask's request, or a plain Werkzeug one before
        Flask's request cycle), from `address`."""
        # Werkzeug raises (and catches) an exception for each key a query or the headers
        # lack: a query-less link, the most common, skips the query; headers come from the
        # environ.
        args = request.args if request.query_string else {}
        return cls(
            visitor_id=visitor_id,
            ip_prefix=ip_prefix(address),
            user_agent=request.environ.get("HTTP_USER_AGENT"),
            referrer=request.environ.get("HTTP_REFERER"),
            utm={key: args.get(f"utm_{key}") for key in UTM_KEYS},
        )

    def columns(self, code_id: int | None, at: datetime, queue_id: str | None) -> dict:
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


class _Outage:
    """Where clicks usually go (Redis, the journal) failed: they go straight to the database
    for RETRY_SECONDS, then it is tried again; a warning at most every
    WARNING_INTERVAL_SECONDS."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._until = 0.0
        self._last_warning = float("-inf")

    def over(self) -> bool:
        return time.monotonic() >= self._until

    def began(self, error: Exception) -> None:
        now = time.monotonic()
        self._until = now + RETRY_SECONDS
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            self._last_warning = now
            log.warning(
                "clicks: %s (%s: %s); writing clicks to the database, retrying every %.0f s",
                self.what,
                error.__class__.__name__,
                error,
                RETRY_SECONDS,
            )


class ClickJournal:
    """SQLite without Redis (the embedded default): a click is acknowledged once appended to
    its process's journal file (core/journal.py), and the process's mover writes the journal
    to the database every CLICK_MOVE_SECONDS, up to JOURNAL_BATCH clicks per INSERT; it also
    moves the files of processes gone (a worker killed, a server stopped mid-move). The
    journal is beside the database file: `<database>-clicks/`.

    Why: a click written by its own request costs a transaction, and on SQLite a
    transaction's commit is most of a click's work (pages to the WAL, each other
    connection's page cache emptied); the mover's batches share that over hundreds of clicks.
    A line is as durable as a commit with synchronous=NORMAL (core/database.py): it survives
    a killed process, not a power cut. Exactly once: each line carries a queue id, inserted
    ON CONFLICT DO NOTHING (`_insert_journaled`), so a file moved again after a crash stores
    nothing twice. A journal that cannot be written (a full disk, a read-only folder) is left
    alone for RETRY_SECONDS; clicks are written to the database meanwhile."""

    def __init__(self, app: Flask, engine: Engine, directory: Path) -> None:
        self.journal = Journal(directory, self._move, JOURNAL_BATCH)
        self.reads = _SqliteReader(engine)
        self.processors = _bind_processors(engine)
        self.insert_sql = _insert_journaled(engine)
        self.mover_connection = _OwnConnection(engine, WRITER_CACHE_KIB)
        self.mover = BackgroundLoop(
            app, "click-mover", self.journal.move_now, app.config["CLICK_MOVE_SECONDS"]
        )
        self._outage = _Outage(f"journal {directory} unwritable")
        # A process that ends without gunicorn's worker_exit (`flask run`, a command).
        atexit.register(_close_at_exit, weakref.ref(self))

    def available(self) -> bool:
        return self._outage.over()

    def append(self, columns: dict) -> bool:
        """The click on disk and the mover running; False (nothing appended) on an error."""
        # The row as SQLite stores it, a JSON array: the mover's INSERT reads it as it is.
        row = [columns[name] for name in _CLICK_COLUMNS]
        for index, process in self.processors:
            row[index] = process(row[index])
        try:
            self.journal.append(json.dumps(row, separators=(",", ":")).encode())
        except OSError as error:
            self._outage.began(error)
            return False
        self.mover.ensure_started()
        return True

    def close(self) -> None:
        """The process leaves: its mover stopped, its journal moved (docs/guarantees.md #54)."""
        self.mover.stop()
        self.journal.close()

    def _move(self, lines: list[bytes]) -> None:
        """One INSERT of the lines (JSON arrays) as one JSON array, a transaction of its own
        (autocommit), so SQLite's write lock is held only inside SQLite; clicks already
        stored (a file moved again after a crash) and clicks of codes deleted since are
        skipped. A line that is no JSON (never written here) is dropped with a warning."""
        connection = self.mover_connection.get()
        try:
            try:
                connection.execute(self.insert_sql, (_json_array(lines),))
            except sqlite3.OperationalError as error:
                if "JSON" not in str(error):
                    raise
                valid = [line for line in lines if _is_json(line)]
                dropped = len(lines) - len(valid)
                log.warning("clicks: dropped %d journal lines that are no JSON", dropped)
                connection.execute(self.insert_sql, (_json_array(valid),))
        except BaseException:
            self.mover_connection.close()
            raise


def _close_at_exit(journal: "weakref.ref[ClickJournal]") -> None:
    alive = journal()
    if alive is None:
        return
    try:
        alive.close()
    except Exception:  # noqa: BLE001 - the journal stays on disk: the next process stores it
        log.warning("clicks: the journal was not stored at exit", exc_info=True)


def _json_array(lines: list[bytes]) -> str:
    return (b"[" + b",".join(lines) + b"]").decode()


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _insert_journaled(engine: Engine) -> str:
    """The INSERT of journaled clicks bound as one JSON array of rows (each in _CLICK_COLUMNS'
    order, as SQLite stores them); SQLite's own json_each reads them, so the mover's Python
    does nothing per click. Compiled once, sent as the only parameter."""
    row = func.json_each(bindparam("clicks")).table_valued("value").alias("row")

    def column(index: int):
        return func.json_extract(row.c.value, literal_column(f"'$[{index}]'"))

    code_id = column(_CLICK_COLUMNS.index("code_id"))
    statement = insert_unless_present(Click.__table__, ["queue_id"]).from_select(
        _CLICK_COLUMNS,
        select(*(column(index) for index in range(len(_CLICK_COLUMNS)))).where(
            exists().where(ReferralCode.id == code_id)  # a code deleted meanwhile: dropped
        ),
    )
    return str(statement.compile(dialect=engine.dialect))


def _bind_processors(engine: Engine) -> list[tuple[int, Callable]]:
    """(index in _CLICK_COLUMNS, the column's bind processor) for the columns SQLite stores
    otherwise than Python holds them (the times)."""
    table = Click.__table__
    processors = [
        (index, table.c[name].type.dialect_impl(engine.dialect).bind_processor(engine.dialect))
        for index, name in enumerate(_CLICK_COLUMNS)
    ]
    return [(index, process) for index, process in processors if process]


class _OwnConnection:
    """A DBAPI connection of one user's own in this process (the clicks' writer, reader or
    mover): taken from the pool once and kept out of it, in autocommit (core/database.py
    hands transactions to SQLAlchemy), with a page cache of `cache_kib` (each only touches
    a few pages, and any other writer empties a cache: WAL). A pool connection, whose
    cache fills to 2 MB, cost a worker megabytes. One inherited through fork is the
    parent's and is not used. It is closed when the engine is disposed of, or by `close`
    (after an error: the next use opens another)."""

    def __init__(self, engine: Engine, cache_kib: int) -> None:
        self.engine = engine
        self.cache_kib = cache_kib
        self._own: tuple[int, PoolProxiedConnection] | None = None  # (process id, connection)
        event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def get(self) -> sqlite3.Connection:
        if self._own is None or self._own[0] != os.getpid():
            connection = self.engine.raw_connection()
            connection.detach()
            connection.dbapi_connection.execute(f"PRAGMA cache_size=-{self.cache_kib}")
            self._own = (os.getpid(), connection)
        return self._own[1].dbapi_connection

    def close(self) -> None:
        own, self._own = self._own, None
        if own is not None and own[0] == os.getpid():
            own[1].close()


class _SqliteReader:
    """What a journaled click reads, on a DBAPI connection of the process's own (in
    autocommit: each SELECT its own read transaction, beside any writer), one thread at a
    time: the links' generation, and a link not cached yet. Through SQLAlchemy's execution
    layer and its pool, each read cost ten times SQLite's; the statements are SQLAlchemy's,
    compiled once, their results processed by the columns' own types."""

    def __init__(self, engine: Engine) -> None:
        self.generation_sql = str(_DATABASE_GENERATION.compile(dialect=engine.dialect))
        link = links.READ.compile(dialect=engine.dialect)
        self.link_sql, self.link_parameters = str(link), tuple(link.positiontup)
        self.link_bound = link.params  # the statement's own values, and "code" to fill in
        self.link_processors = [
            column.type.dialect_impl(engine.dialect).result_processor(engine.dialect, None)
            for column in links.READ.selected_columns
        ]
        self._lock = threading.Lock()
        self.connection = _OwnConnection(engine, READER_CACHE_KIB)

    def generation(self) -> str:
        return str(self._fetch(self.generation_sql, ())[0])

    def link(self, code: str) -> tuple[str, links.Link] | None:
        """As links.read: the code's link and the generation; None for a code nobody has."""
        values = {**self.link_bound, "code": code}
        row = self._fetch(self.link_sql, tuple(values[name] for name in self.link_parameters))
        if row is None:
            return None
        processed = zip(self.link_processors, row, strict=True)
        row = [value if process is None else process(value) for process, value in processed]
        return str(row[-1]), links.Link(*row[:-1])

    def _fetch(self, sql: str, parameters: tuple):
        with self._lock:
            try:
                return self.connection.get().execute(sql, parameters).fetchone()
            except sqlite3.Error as error:
                self.connection.close()
                raise DBAPIError.instance(sql, parameters, error, sqlite3.Error) from error


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
        self.seen_generation_key = f"{namespace}:link-generation-of-database"
        self.link_prefix = f"{namespace}:link:"  # + code: the link entries of every process
        self._click = self.client.register_script(_CLICK)
        self._catch_up = self.client.register_script(_CATCH_UP)
        self._own = threading.local()  # each thread's connection for the click's script
        self._outage = _Outage("Redis unreachable")

    # -- the web side

    def available(self) -> bool:
        return self._outage.over()

    def mark_down(self, error: Exception) -> None:
        self._outage.began(error)

    def click(
        self,
        code: str,
        now: datetime,
        mode: str,
        fields: dict[str, str],
        limits: RateLimits | None = None,
        entry: str = "",
    ) -> tuple[int, str]:
        """One call of the click's script (see _CLICK): its outcome and detail (the link as
        JSON, or Redis's current generation for NOT_KEPT). `limits` are counted first (429
        once one is exceeded); `entry` (links.shared_entry) is kept before anything else."""
        keys = [self.generation_key, self.stream, self.link_prefix + code]
        bounds = []
        if limits is not None:
            keys.extend(limits.keys)
            bounds = limits.bounds()
        flat = [part for pair in fields.items() for part in pair]
        args = (f"{now.timestamp():.6f}", entry, links.ENTRY_SECONDS, mode)
        outcome, detail = self._run_click(keys, (*args, len(bounds) // 2, *bounds, *flat))
        if outcome == OVER_LIMIT:
            limits.exceeded(detail - 1)
        return outcome, detail

    def _run_click(self, keys: list[str], args: tuple):
        """The click's script on this thread's own connection. The client's command layer and
        its pool cost about twice the CPU of the round trip itself (measured on redis-py 8: 80
        µs of a script call's 125), and a click does nothing else with Redis. A connection
        that fails is closed; one Redis closed (a restart, an idle client dropped) is opened
        again and the script sent once more, as redis-py's client would retry: a click that
        was appended before the failure and again after is stored once (its queue id)."""
        command = ("EVALSHA", self._click.sha, len(keys), *keys, *args)
        try:
            return self._send(command)
        except redis.ConnectionError:
            return self._send(command)

    def _send(self, command: tuple):
        connection = self._connection()
        try:
            try:
                connection.send_command(*command, check_health=False)
                return connection.read_response()
            except NoScriptError:  # Redis restarted or flushed its scripts
                self._click.sha = self.client.script_load(_CLICK)
                connection.send_command("EVALSHA", self._click.sha, *command[2:])
                return connection.read_response()
        except ResponseError:
            raise  # the connection is fine: Redis answered
        except BaseException:
            connection.disconnect()
            raise

    def _connection(self) -> redis.Connection:
        own = self._own
        if getattr(own, "pid", None) != os.getpid():  # new thread, or a forked process
            pool = self.client.connection_pool
            own.connection = pool.connection_class(**pool.connection_kwargs)
            own.pid = os.getpid()
        return own.connection

    def bump_generation(self) -> None:
        try:
            self.client.incr(self.generation_key)
        except RedisError as error:
            # The mover makes it (catch_up_generation) once Redis answers again.
            log.warning("clicks: could not bump the links' generation in Redis (%s)", error)

    def catch_up_generation(self, database_generation: str) -> bool:
        """Move Redis's generation on if the database's moved since the last look: a bump a
        web process could not make (Redis unreachable just then) is made now. A bump made
        twice only costs each code one read. True when it moved it."""
        keys = [self.generation_key, self.seen_generation_key]
        return bool(self._catch_up(keys=keys, args=[database_generation]))

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
    with app.app_context():
        engine = db.engine
    sqlite = engine.dialect.name == "sqlite"
    app.extensions["click_batches"] = GroupCommit(_SqliteClickWriter(engine)) if sqlite else None
    url = app.config["REDIS_URL"]
    database = engine.url.database if sqlite else None
    journaled = app.config["CLICK_JOURNAL"] and not url and database not in (None, "", ":memory:")
    folder = Path(os.path.abspath(f"{database}-clicks")) if journaled else None
    app.extensions["click_journal"] = ClickJournal(app, engine, folder) if folder else None
    app.extensions["click_queue"] = (
        ClickQueue(url, app.config["CELERY_DEFAULT_QUEUE"], app.config["REDIS_TIMEOUT_SECONDS"])
        if url
        else None
    )


def click_queue() -> ClickQueue | None:
    return current_app.extensions.get("click_queue")


def start_click_mover(app: Flask) -> None:
    """A new worker process: its journal's mover starts, and moves what processes gone left."""
    journal = getattr(app, "extensions", {}).get("click_journal")  # None: the app failed
    if journal is not None:
        journal.mover.wake()


def close_click_journal(app: Flask) -> None:
    """A worker process leaving: what it journaled is moved to the database now."""
    journal = getattr(app, "extensions", {}).get("click_journal")
    if journal is not None:
        journal.close()


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
    that is unknown, malformed or not usable now. `visit` is asked once, for a code of the
    right form; through Redis, before it is known whether the click is stored.
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
            return _record_in_redis(queue, queue_id, code, visit, owner_excluded, now, limits)
        except RedisError as error:
            queue.mark_down(error)
    if code is None:
        return None
    batches = current_app.extensions.get("click_batches")
    if batches is not None and not _session_writing():
        journal = current_app.extensions.get("click_journal")
        store = (
            _BatchedStore(batches, queue_id)
            if journal is None or not journal.available()
            else _JournaledStore(journal, batches)
        )
        return _record(store, code, visit, owner_excluded, now)
    with _connection() as connection:
        store = _DatabaseStore(connection, queue_id)
        return _record(store, code, visit, owner_excluded, now)


def _record_in_redis(
    queue: ClickQueue,
    queue_id: str,
    code: str | None,
    visit: Callable[[], Visit],
    owner_excluded: int | None,
    now: datetime,
    limits: RateLimits | None,
) -> links.Link | None:
    """The click in one round trip when Redis keeps its code's link; else the link is read
    from the database and kept for every process, in the round trip that appends the click.
    A signed-in visitor's click is looked at first: their own link is not a visit."""
    if code is None:
        queue.click("", now, "look", {}, limits)  # counts the limits, finds nothing
        return None
    fields = _stream_fields(visit().columns(None, now, queue_id))
    mode = "add" if owner_excluded is None else "look"
    outcome, link = _through_redis(queue, code, now, mode, fields, limits)
    if outcome == LOOKED and link.owner_id != owner_excluded:
        outcome, link = _through_redis(queue, code, now, "add", fields, None)
    if outcome != ADDED:
        return None
    counters.CLICKS.inc()
    return link


def _through_redis(queue: ClickQueue, code: str, now: datetime, mode: str, fields, limits):
    """The script's outcome and the link (None when no participant has the code), reading
    the database for as long as Redis holds no entry of its current generation."""
    outcome, detail = queue.click(code, now, mode, fields, limits)
    attempt = 0
    while outcome == NOT_KEPT:
        # `detail` is Redis's generation before the read: a change after it moves it again.
        with _reading() as connection:
            found = links.read(connection, code)
        if found is None:
            return NOT_KEPT, None
        attempt += 1
        link = found[1]
        if attempt >= ATTEMPTS and mode == "look":
            return (LOOKED if link.usable(now) else UNUSABLE), link  # as read just now
        # The last attempt stores whatever the generation: the link was usable a moment ago.
        then = "add-anyway" if attempt >= ATTEMPTS else mode
        entry = links.shared_entry(detail, link)
        outcome, detail = queue.click(code, now, then, fields, None, entry)
    return outcome, links.link_from_json(detail)


def _record(store, code: str, visit, owner_excluded: int | None, now: datetime):
    """The click through the database, its links kept in this process (links.LinkCache)."""
    cache = links.cache()
    cached = cache.get(code)
    columns = None
    for attempt in range(ATTEMPTS + 1):
        unusable = cached is not None and not cached.link.usable(now)
        if cached is None or (unusable and cached.generation != store.generation()):
            # Not cached, or cached as unusable and changed since (say, its owner reactivated).
            found = store.read(code)
            if found is None:
                return None
            cached = cache.put(code, *found)
        link = cached.link
        if not link.usable(now) or link.owner_id == owner_excluded:
            return None
        if columns is None:
            columns = visit().columns(link.code_id, now, store.queue_id)
        # The last attempt stores without the check: the link was usable a moment ago.
        if store.add(columns, cached.generation if attempt < ATTEMPTS else None):
            counters.CLICKS.inc()
            return link
        cached = None
    raise AssertionError("unreachable: the last attempt stores unconditionally")


class _DatabaseStore:
    """Clicks inserted into the database; Flask-Limiter has counted the limits."""

    def __init__(self, connection: Connection, queue_id: str | None) -> None:
        self.connection = connection
        self.queue_id = queue_id

    def generation(self) -> str:
        return str(self.connection.scalar(_DATABASE_GENERATION))

    def read(self, code: str) -> tuple[str, links.Link] | None:
        return links.read(self.connection, code)

    def add(self, columns: dict, generation: str | None) -> bool:
        if generation is None:
            self.connection.execute(_INSERT_CLICK, columns)
            return True
        stored = self.connection.execute(
            _INSERT_CLICK_IF_CURRENT, {**columns, "generation": int(generation)}
        )
        return stored.first() is not None


class _BatchedStore:
    """SQLite: clicks written in the transactions of a GroupCommit, with those of the
    requests arriving beside them (core/group_commit.py); the links read beside the writer."""

    def __init__(self, batches: GroupCommit, queue_id: str | None) -> None:
        self.batches = batches
        self.queue_id = queue_id

    def generation(self) -> str:
        with _reading() as connection:
            return str(connection.scalar(_DATABASE_GENERATION))

    def read(self, code: str) -> tuple[str, links.Link] | None:
        with _reading() as connection:
            return links.read(connection, code)

    def add(self, columns: dict, generation: str | None) -> bool:
        return self.batches.submit((columns, generation))


class _JournaledStore(_BatchedStore):
    """SQLite without Redis: the click appended to this process's journal (ClickJournal),
    which its mover writes to the database in batches; written through the GroupCommit if
    the journal cannot take it."""

    def __init__(self, journal: "ClickJournal", batches: GroupCommit) -> None:
        super().__init__(batches, uuid.uuid4().hex)  # its queue id: stored once, however moved
        self.journal = journal

    def generation(self) -> str:
        return self.journal.reads.generation()

    def read(self, code: str) -> tuple[str, links.Link] | None:
        return self.journal.reads.link(code)

    def add(self, columns: dict, generation: str | None) -> bool:
        # The check the batched INSERT makes in its statement, made before the append.
        if generation is not None and generation != self.generation():
            return False
        if self.journal.append(columns):
            return True
        return super().add(columns, generation)


class _SqliteClickWriter:
    """Writes a batch of clicks into SQLite: one statement per `BATCH_ROWS` clicks read at the
    same generation, each statement a transaction of its own (the connection is in
    autocommit: core/database.py hands transactions to SQLAlchemy), so SQLite's write lock is
    held only inside SQLite's own code, never while Python runs. That is why it takes no turn
    (core/sqlite_turns.py): a turn lasts as long as its holder waits for the interpreter
    between statements, which on a busy worker was ten times the statement itself. The rare
    click that finds another writer mid-transaction waits in SQLite's busy handler.

    Written as SQLAlchemy would send it (the statement compiled from `_insert_clicks`, the
    columns' own bind processing) on a DBAPI connection of the writer's own (`_OwnConnection`;
    GroupCommit runs one batch at a time): SQLAlchemy's execution layer, and a checkout and
    checkin of the pool per batch, each cost more CPU than SQLite's insert."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.own = _OwnConnection(engine, WRITER_CACHE_KIB)
        self.processors = {
            _CLICK_COLUMNS[index]: process for index, process in _bind_processors(engine)
        }
        self.statements: dict[tuple[int, bool], tuple[str, tuple[str, ...]]] = {}

    def __call__(self, batch: Sequence[tuple[dict, str | None]]) -> list[bool]:
        by_generation: dict[str | None, list[int]] = {}
        for index, (_columns, generation) in enumerate(batch):
            by_generation.setdefault(generation, []).append(index)
        stored = [False] * len(batch)
        connection = self.own.get()
        try:
            for generation, indexes in by_generation.items():
                for first in range(0, len(indexes), BATCH_ROWS):
                    chunk = indexes[first : first + BATCH_ROWS]
                    rows = [batch[index][0] for index in chunk]
                    inserted = self._insert(connection, rows, generation)
                    for index in chunk:
                        stored[index] = inserted
        except BaseException:
            self.own.close()
            raise
        return stored

    def _insert(self, connection, rows: list[dict], generation: str | None) -> bool:
        """The rows inserted, if `generation` (None: whatever it is) is the database's."""
        sql, names = self._statement(len(rows), generation is not None)
        values = {}
        for number, row in enumerate(rows):
            for name in _CLICK_COLUMNS:
                value = row[name]
                process = self.processors.get(name)
                values[f"{name}_{number}"] = value if process is None else process(value)
        values["generation"] = None if generation is None else int(generation)
        parameters = tuple(values[name] for name in names)
        try:
            return connection.execute(sql, parameters).rowcount > 0
        except sqlite3.Error as error:
            raise DBAPIError.instance(sql, parameters, error, sqlite3.Error) from error

    def _statement(self, rows: int, checked: bool) -> tuple[str, tuple[str, ...]]:
        """The SQL and its parameters' names in order, compiled once per shape."""
        key = (rows, checked)
        if key not in self.statements:
            compiled = _insert_clicks(rows, checked).compile(dialect=self.engine.dialect)
            self.statements[key] = (str(compiled), tuple(compiled.positiontup))
        return self.statements[key]


def _insert_clicks(rows: int, checked: bool):
    """INSERT ... SELECT of `rows` clicks, their columns bound as "<column>_<n>"; `checked`:
    only while the database's generation is the bound "generation"."""
    table = Click.__table__
    current = links.database_generation()
    selects = []
    for number in range(rows):
        row = select(
            *(bindparam(f"{name}_{number}", type_=table.c[name].type) for name in _CLICK_COLUMNS)
        )
        selects.append(row.where(current == bindparam("generation")) if checked else row)
    return insert(table).from_select(
        _CLICK_COLUMNS, selects[0] if rows == 1 else union_all(*selects)
    )


def _session_writing() -> bool:
    """The request's session holds SQLite's one write lock already (a signed-in visitor was
    loaded): a transaction of our own would wait for it. (A request with no session yet, the
    plain click, does not make one to ask.)"""
    return db.session.registry.has() and db.session().in_transaction()


@contextlib.contextmanager
def _reading() -> Iterator[Connection]:
    """A connection that only reads: on PostgreSQL in autocommit (no BEGIN or ROLLBACK round
    trips), on SQLite beside the writer (core/database.py)."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        with reading_only(), engine.connect() as connection:
            yield connection


@contextlib.contextmanager
def _connection() -> Iterator[Connection]:
    """Where a click is written when it is not batched: on PostgreSQL a connection of its own
    in autocommit (each statement its own transaction, nothing to roll back at teardown); on
    SQLite the request's session, which holds the write lock already (`_session_writing`)."""
    if db.engine.dialect.name == "postgresql":
        with _reading() as connection:  # autocommit: the INSERT commits itself
            yield connection
    else:
        yield db.session.connection()
        db.session.commit()


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
# SQLite's batches: executemany, whose rowcount (SQLite gives one) says what went in.
_INSERT_CLICKS_IF_CURRENT = insert(Click.__table__).from_select(
    _CLICK_COLUMNS,
    select(*(bindparam(name, type_=Click.__table__.c[name].type) for name in _CLICK_COLUMNS)).where(
        links.database_generation() == bindparam("generation")
    ),
)
# RETURNING says whether a row went in (psycopg gives no rowcount for INSERT ... SELECT).
_INSERT_CLICK_IF_CURRENT = _INSERT_CLICKS_IF_CURRENT.returning(Click.__table__.c.id)


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
    a crashed mover left; beat runs it every CLICK_MOVE_SECONDS. First, Redis's links'
    generation catches up with the database's (a bump a web process missed)."""
    queue = click_queue()
    if queue is None:
        return 0
    queue.catch_up_generation(str(db.session.scalar(_DATABASE_GENERATION)))
    db.session.rollback()  # the read's transaction ends here, not after the batches
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
