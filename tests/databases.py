"""Test databases: one migrated SQLite file and one migrated PostgreSQL database per run, or
per worker when pytest-xdist runs several (each worker makes its own).

PostgreSQL is required when INVITELOOP_TEST_REQUIRE_SERVICES is set (CI); elsewhere its
tests are skipped with the reason shown in pytest's summary.
"""

import contextlib
import os
import random
import secrets

import psycopg
import pytest
import redis
from flask_migrate import upgrade
from sqlalchemy import text

from models import User

REQUIRE_SERVICES = os.environ.get("INVITELOOP_TEST_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Children before parents, from the models: a new table is emptied without a change here.
TABLES = tuple(table.name for table in reversed(User.metadata.sorted_tables))


def service_missing(what: str, error: Exception):
    """Fail in CI, skip elsewhere: the run says plainly which service it could not reach."""
    message = f"{what} unavailable ({error.__class__.__name__}: {error})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " - required by INVITELOOP_TEST_REQUIRE_SERVICES", pytrace=False)
    pytest.skip(message)


def create_postgres_database() -> str:
    return _new_postgres_database()


def _new_postgres_database(template: str | None = None) -> str:
    name = f"inviteloop_test_{secrets.token_hex(4)}"
    copied = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copied}')
        # A test database outlives no crash of PostgreSQL itself, so a commit need not wait
        # for its WAL to reach the disk: every commit of the run is one flush shorter.
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(app) -> None:
    with app.app_context():
        upgrade(directory=os.path.join(app.root_path, "migrations"))
        app.extensions["sqlalchemy"].engine.dispose()


def empty_tables(db) -> None:
    """Every table emptied and every id counting from 1 again, as a new installation after its
    first migration has them. Every test starts here, so it is written for speed: the
    statements go to the driver in one call (one round trip on PostgreSQL), not through the ORM."""
    cursor = db.session.connection().connection.driver_connection.cursor()
    if db.engine.dialect.name == "postgresql":
        cursor.execute(_postgres_emptying_script(db))
    else:
        # Leads and contracts point at each other: check the keys at commit, not per row.
        cursor.execute("PRAGMA defer_foreign_keys = ON")
        for table in TABLES:
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    cursor.close()
    db.session.commit()


# Per database URL: whether the test user is a superuser is asked once, not before every test.
_emptying_scripts: dict[str, str] = {}


def _postgres_emptying_script(db) -> str:
    """The statements that empty every table, in one string."""
    url = str(db.engine.url)
    if url not in _emptying_scripts:
        superuser = db.session.execute(text("SHOW is_superuser")).scalar() == "on"
        _emptying_scripts[url] = _deleting_everything() if superuser else _truncating_everything()
    return _emptying_scripts[url]


def _truncating_everything() -> str:
    # TRUNCATE makes new files for every table and index (about 0.1 s for these tables):
    # only for a user who may not switch the foreign key triggers off.
    return f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"


def _deleting_everything() -> str:
    # DELETE on a test's few rows takes milliseconds. Every table is emptied, so the foreign
    # key triggers a superuser switches off for this transaction have nothing to keep.
    deletes = "; ".join(f"DELETE FROM {table}" for table in TABLES)
    every_sequence = "SELECT setval(oid::regclass, 1, false) FROM pg_class WHERE relkind = 'S'"
    return f"SET LOCAL session_replication_role = replica; {deletes}; {every_sequence}"


def sequences_past_their_rows(db, *tables: str) -> None:
    """After rows were written with explicit ids: on PostgreSQL, the tables' id sequences go
    on from the largest (SQLite does so by itself)."""
    if db.engine.dialect.name == "postgresql":
        for table in tables:
            sequence = f"pg_get_serial_sequence('{table}', 'id')"
            db.session.execute(text(f"SELECT setval({sequence}, max(id)) FROM {table}"))


def copy_postgres_database(template_url: str) -> str:
    """A new database holding what `template_url` holds; nothing may be connected to that one.
    Named like create_postgres_database's, and dropped the same way."""
    return _new_postgres_database(template=template_url.rsplit("/", 1)[1])


@contextlib.contextmanager
def redis_client(url: str = REDIS_URL):
    """A client of the tests' Redis that has answered a PING (else the service is missing),
    closed afterwards."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        service_missing("Redis", error)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def redis_keys_forgotten(*patterns: str):
    """The tests' Redis keys matching `patterns` (a module's namespace) deleted before the
    block and after it."""
    with redis_client() as client:

        def forget() -> None:
            keys = [key for pattern in patterns for key in client.scan_iter(pattern)]
            if keys:
                client.delete(*keys)

        forget()
        try:
            yield
        finally:
            forget()


@contextlib.contextmanager
def redis_database_of_its_own():
    """The URL of a Redis database (10-15) for one module, emptied of the app's keys before
    and after: the leaderboard cache's keys are not per database, so another module or run
    must not share them."""
    url = REDIS_URL.rsplit("/", 1)[0] + f"/{random.randint(10, 15)}"
    with redis_client(url) as client:

        def forget() -> None:
            for key in client.scan_iter("inviteloop*"):
                client.delete(key)

        forget()
        try:
            yield url
        finally:
            forget()
