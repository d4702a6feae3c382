"""Test databases: one migrated SQLite file and one migrated PostgreSQL database per run.

PostgreSQL is required when INVITELOOP_TEST_REQUIRE_SERVICES is set (CI); elsewhere its
tests are skipped with the reason shown in pytest's summary.
"""

import os
import secrets

import psycopg
import pytest
from flask_migrate import upgrade
from sqlalchemy import text

REQUIRE_SERVICES = os.environ.get("INVITELOOP_TEST_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

TABLES = (
    "analytics_daily",
    "analytics_daily_accounts",
    "analytics_rollup",
    "audit_log",
    "phone_codes",
    "webhook_deliveries",
    "webhook_endpoints",
    "contracts",
    "leads",
    "rewards",
    "payouts",
    "api_keys",
    "conversions",
    "clicks",
    "referrals",
    "referral_codes",
    "users",
    "programs",
    "campaigns",
    "services",
)


def service_missing(what: str, error: Exception):
    """Fail in CI, skip elsewhere: the run says plainly which service it could not reach."""
    message = f"{what} unavailable ({error.__class__.__name__}: {error})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " - required by INVITELOOP_TEST_REQUIRE_SERVICES", pytrace=False)
    pytest.skip(message)


def create_postgres_database() -> str:
    name = f"inviteloop_test_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
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
    """Every table emptied, as a new installation after its first migration has them."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    else:
        # Leads and contracts point at each other: check the keys at commit, not per row.
        db.session.execute(text("PRAGMA defer_foreign_keys = ON"))
        for table in TABLES:
            db.session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
    db.session.commit()
