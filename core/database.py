"""Engine set-up per database, and work that must wait until a transaction commits."""

from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from extensions import db

_AFTER_COMMIT = "after_commit_callbacks"
# A fixed number naming "InviteLoop's migrations" among PostgreSQL's advisory locks.
MIGRATION_LOCK_KEY = 1_726_017_017


def hold_migration_lock(connection: Connection) -> None:
    """Make every other `flask db upgrade` on this database wait until the current
    transaction ends (docs/guarantees.md #35). Two machines starting at once then migrate one
    after the other, and the second finds the schema current. SQLite serves one machine:
    nothing to take."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def configure_engine(engine: Engine, busy_timeout_seconds: int) -> None:
    if engine.dialect.name != "sqlite":
        return

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

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A deferred transaction that reads and then writes cannot wait for the write lock
        # (SQLITE_BUSY at once when another writer committed in between). Taking the lock
        # at BEGIN makes concurrent writers queue on busy_timeout instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def insert_unless_present(model, conflict_columns: list[str] | None = None):
    """An INSERT into `model`'s table that skips a row clashing with one already there (on
    `conflict_columns`' unique key, or with None on any): `ON CONFLICT DO NOTHING`, spelled
    alike by PostgreSQL and SQLite. With RETURNING, a skipped row returns nothing, so one
    round trip both writes a new row and says that it was one. A clash with a row another
    transaction is still writing waits for that transaction to end, as a plain INSERT does."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).on_conflict_do_nothing(index_elements=conflict_columns)


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
