"""`flask db upgrade` is safe on every deploy, also when two machines start at once
(docs/guarantees.md #35): on PostgreSQL the upgrade waits for an advisory lock, so two upgrades
of a fresh database run one after the other; the first builds the schema, the second finds it
current and changes nothing. Both succeed."""

import time

import psycopg
import pytest

from core.database import MIGRATION_LOCK_KEY
from tests import databases, preloaded
from tests.server import ROOT, server_environment

pytestmark = [pytest.mark.server, pytest.mark.postgres_only]

WAIT_SECONDS = 60


@pytest.fixture
def fresh_database():
    try:
        url = databases.create_postgres_database()
    except Exception as error:  # any connection problem: skip or fail, with the reason
        databases.service_missing("PostgreSQL", error)
    yield url
    databases.drop_postgres_database(url)


def start_upgrade(url: str) -> preloaded.Command:
    environment = server_environment(url, LOG_LEVEL="INFO")
    return preloaded.Command("flask", ["--app", "app", "db", "upgrade"], cwd=ROOT, env=environment)


def waiting_for_the_lock(connection) -> int:
    return connection.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()[0]


def test_two_upgrades_at_once_migrate_once_and_both_succeed(fresh_database):
    with psycopg.connect(fresh_database) as holder:
        # The test holds the lock, so both upgrades are surely running when it is released.
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        upgrades = [start_upgrade(fresh_database), start_upgrade(fresh_database)]
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            with psycopg.connect(fresh_database, autocommit=True) as watcher:
                while waiting_for_the_lock(watcher) < 2:
                    exited = [upgrade for upgrade in upgrades if upgrade.process.poll() is not None]
                    assert not exited, exited[0].output()
                    assert time.monotonic() < deadline, "the upgrades never waited for the lock"
                    time.sleep(0.1)
            holder.commit()  # releases the lock: now they run, one after the other
            outputs = [upgrade.finished(timeout=WAIT_SECONDS) for upgrade in upgrades]
        finally:
            for upgrade in upgrades:
                upgrade.stop()
    assert [upgrade.process.returncode for upgrade in upgrades] == [0, 0], outputs
    # One of them built the schema; the other found it current.
    first_migration = "Running upgrade  -> 0001"
    assert sum(first_migration in output for output in outputs) == 1, outputs
    with psycopg.connect(fresh_database) as connection:
        (versions,) = connection.execute("SELECT count(*) FROM alembic_version").fetchone()
        (programs,) = connection.execute("SELECT count(*) FROM programs").fetchone()
    assert (versions, programs) == (1, 1)
