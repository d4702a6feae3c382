"""Engine set-up per database, which transactions take SQLite's write lock, and work that
must wait until a transaction commits.

SQLite has one writer at a time. A transaction that will write takes the write lock at its
BEGIN (IMMEDIATE): a deferred one that reads and then writes cannot wait for the lock (SQLITE_BUSY
at once when another writer holds it or committed since its read), while one that asks at BEGIN
queues on busy_timeout. A unit of work that only reads begins deferred instead: in WAL mode it
reads its snapshot beside the writer and never queues for the lock (docs/guarantees.md #52).
Reading only is declared: every GET, HEAD and OPTIONS request but the views marked
`@writes_on_get`, and `reading_only()` blocks in commands and jobs. Everything else takes the
lock at BEGIN, as it always did."""

import contextlib
import logging
from collections.abc import Callable, Iterator

from flask import Flask, current_app, g, has_app_context, has_request_context, request
from sqlalchemy import bindparam, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.visitors import InternalTraversal

from core import sqlite_turns
from extensions import db

log = logging.getLogger(__name__)

_AFTER_COMMIT = "after_commit_callbacks"
_READING_ONLY = "database_reading_only"  # on `g`: this unit of work does not write
_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# On a SQLite connection's info, per transaction: begun deferred, and whether it has read yet.
_DEFERRED, _HAS_READ = "deferred_begin", "deferred_has_read"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# A fixed number naming "InviteLoop's migrations" among PostgreSQL's advisory locks.
MIGRATION_LOCK_KEY = 1_726_017_017


def hold_migration_lock(connection: Connection) -> None:
    """Make every other `flask db upgrade` on this database wait until the current
    transaction ends (docs/guarantees.md #35). Two machines starting at once then migrate one
    after the other, and the second finds the schema current. SQLite serves one machine:
    nothing to take."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def configure_engine(engine: Engine, busy_timeout_seconds: int) -> sqlite_turns.WriteTurns | None:
    """SQLite: the connection's settings, and writers taking turns; returns the turns."""
    if engine.dialect.name != "sqlite":
        return None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Hand transaction control to SQLAlchemy, so the BEGIN below is the only one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        cursor.close()

    turns = sqlite_turns.take_turns(engine, busy_timeout_seconds)

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        deferred = _reading_only()
        connection.info[_DEFERRED] = False
        if deferred:
            connection.exec_driver_sql("BEGIN")
        else:
            sqlite_turns.begin_writing(connection, turns)
        connection.info[_DEFERRED], connection.info[_HAS_READ] = deferred, False

    @event.listens_for(engine, "before_cursor_execute")
    def _watch_deferred(connection, _cursor, statement, *_args):
        if not connection.info.get(_DEFERRED):
            return
        if not statement.lstrip().upper().startswith(_WRITES):
            connection.info[_HAS_READ] = True
        elif connection.info[_HAS_READ]:
            _wrote_after_reading(statement)

    return turns


def _reading_only() -> bool:
    return has_app_context() and g.get(_READING_ONLY, False)


class WriteInReadOnlyWork(RuntimeError):
    """A unit of work declared read-only wrote after reading (tests only: see below)."""


def _wrote_after_reading(statement: str) -> None:
    # The write must upgrade a read transaction: it works while nobody else writes, and fails
    # with "database is locked" at once under contention. Loud in tests, a warning in
    # production, so a GET view that writes gets its @writes_on_get.
    where = request.endpoint if has_request_context() else "a reading_only() block"
    message = f"{where} wrote after reading in a read-only transaction: {statement[:60]}"
    if has_app_context() and current_app.config.get("TESTING"):
        raise WriteInReadOnlyWork(message)
    log.warning("%s; mark it as writing", message)


def writes_on_get(view: Callable) -> Callable:
    """Mark a view that writes on GET (a click on a referral link): its transactions take
    SQLite's write lock at BEGIN like any POST's."""
    view.writes_on_get = True
    return view


@contextlib.contextmanager
def reading_only() -> Iterator[None]:
    """Within this block (a command or job that only reads) SQLite transactions begin
    deferred and read beside the writer; one begun here stays so until it ends."""
    before = g.get(_READING_ONLY, False)
    setattr(g, _READING_ONLY, True)
    try:
        yield
    finally:
        setattr(g, _READING_ONLY, before)


def init_app(app: Flask) -> None:
    """Engine set-up, and requests that only read declared as such (first of all hooks, so no
    earlier hook begins a transaction the old way)."""
    with app.app_context():
        turns = configure_engine(db.engine, app.config["SQLITE_BUSY_TIMEOUT_SECONDS"])
    app.extensions["sqlite_write_turns"] = turns
    app.before_request_funcs.setdefault(None, []).insert(0, _declare_request_mode)
    app.teardown_request(_forget_request_mode)


def _declare_request_mode() -> None:
    if request.method in _READ_ONLY_METHODS:
        view = current_app.view_functions.get(request.endpoint)
        if not getattr(view, "writes_on_get", False):
            setattr(g, _READING_ONLY, True)


def _forget_request_mode(_error=None) -> None:
    # A test's outer app context outlives the request: the mode must not outlive it.
    g.pop(_READING_ONLY, None)


def values_given_later(*columns: str) -> dict[str, BindParameter]:
    """The VALUES of an INSERT built once and run many times (building one costs about as
    much as running it): each column takes the parameter of its name, given at execution."""
    return {column: bindparam(column) for column in columns}


def insert_unless_present(model, conflict_columns: list[str] | None = None):
    """An INSERT into `model`'s table that skips a row clashing with one already there (on
    `conflict_columns`' unique key, or with None on any): `ON CONFLICT DO NOTHING`, spelled
    alike by PostgreSQL and SQLite. With RETURNING, a skipped row returns nothing, so one
    round trip both writes a new row and says that it was one. A clash with a row another
    transaction is still writing waits for that transaction to end, as a plain INSERT does."""
    return _InsertSkippingClashes(model, conflict_columns)


class _SkipClashes(ClauseElement):
    """`ON CONFLICT [(columns)] DO NOTHING`. The dialects' own clause cannot be part of a
    cache key, so SQLAlchemy compiled every statement holding it anew (about 0.5 ms of CPU
    per INSERT); this one names its columns in its cache key."""

    __visit_name__ = "skip_clashes"
    _traverse_internals = [("columns", InternalTraversal.dp_string_list)]

    def __init__(self, columns: list[str] | None):
        self.columns = tuple(columns or ())


@compiles(_SkipClashes)
def _compile_skip_clashes(clause: _SkipClashes, compiler, **_kw) -> str:
    if not clause.columns:
        return "ON CONFLICT DO NOTHING"
    names = ", ".join(compiler.preparer.quote(column) for column in clause.columns)
    return f"ON CONFLICT ({names}) DO NOTHING"


class _InsertSkippingClashes(Insert):
    """A plain INSERT (cached like any) followed by `_SkipClashes`, which the compilers of
    both databases place after VALUES, before RETURNING."""

    inherit_cache = True

    def __init__(self, table, conflict_columns: list[str] | None):
        super().__init__(table)
        self._post_values_clause = _SkipClashes(conflict_columns)


def dialect_insert(model):
    """An INSERT into `model` (a class or a Table) in the session's dialect, so that it offers
    `on_conflict_do_nothing` and `on_conflict_do_update`, spelled alike by both databases."""
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current transaction commits; forget it if it rolls back."""
    db.session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(db.session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    for callback in session.info.pop(_AFTER_COMMIT, []):
        callback()


@event.listens_for(db.session, "after_rollback")
def _forget_after_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_AFTER_COMMIT, None)
