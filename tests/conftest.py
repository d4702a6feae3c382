"""Fixtures: an app per test module and database (SQLite and PostgreSQL), each test on empty
tables with the default program, an empty cache and fresh rate-limit counters."""

import logging
import re
from datetime import timedelta

import celery
import pytest

from app import create_app
from extensions import cache, db, limiter
from models import utcnow
from referral.services import ensure_default_program
from tests import databases, factories

TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"
FAST_HASH = "pbkdf2:sha256:1"  # tests only; config refuses it outside TESTING


def app_config(database_url: str, **overrides) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": database_url,
        "PASSWORD_HASH_METHOD": FAST_HASH,
        "CACHE_TYPE": "SimpleCache",
        "RATELIMIT_STORAGE_URI": "memory://",
        "REDIS_URL": None,
        **overrides,
    }


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'inviteloop.db'}"
    databases.migrate(create_app(app_config(url)))
    return url


@pytest.fixture(scope="session")
def postgresql_url():
    try:
        url = databases.create_postgres_database()
    except Exception as error:  # any connection problem: skip or fail, with the reason
        databases.service_missing("PostgreSQL", error)
    try:
        databases.migrate(create_app(app_config(url)))
        yield url
    finally:
        databases.drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def backend(database_url):
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def config_overrides():
    """Override in a test module to change the app's configuration."""
    return {}


# Paths under the test's own tmp_path: set per test on a shared app, never part of its key.
PER_TEST_SETTINGS = frozenset({"CONTRACTS_FOLDER"})


class SharedApps:
    """The apps of one test module, one per database, made with the same overrides.

    Making an app costs about 30 ms and rebinds process-wide singletons (the rate limiter's
    storage, Celery's default app); so the module keeps one app per database while its
    overrides stay the same, and starts afresh whenever they change or a test made an app
    of its own."""

    def __init__(self):
        self.overrides_key = None
        self.apps = {}  # database URL -> (app, its configuration as made)

    def get(self, database_url: str, overrides: dict):
        key = repr(sorted(overrides.items()))
        if key != self.overrides_key:
            self.close_all()
            self.overrides_key = key
        if database_url not in self.apps:
            made = create_app(app_config(database_url, **overrides))
            self.apps[database_url] = (made, dict(made.config))
        app, settings = self.apps[database_url]
        app.config.clear()  # undo whatever the previous test changed in app.config
        app.config.update(settings)
        app.extensions["celery"].set_current()  # as if just made, for @shared_task lookups
        app.extensions["celery"].set_default()
        return app

    def forget_if_another_app_was_made(self, app) -> None:
        if celery.current_app._get_current_object() is not app.extensions["celery"]:
            self.close_all()

    def close_all(self) -> None:
        for app, _ in self.apps.values():
            close(app)
        self.apps.clear()


@pytest.fixture(scope="module")
def shared_apps():
    apps = SharedApps()
    yield apps
    apps.close_all()


@pytest.fixture
def app(request, database_url, config_overrides, shared_apps):
    if request.node.get_closest_marker("own_app"):
        app = create_app(app_config(database_url, **config_overrides))
        start_afresh(app)
        yield app
        close(app)
        shared_apps.close_all()  # the rate limiter and Celery now belong to this app
        return
    shared = {k: v for k, v in config_overrides.items() if k not in PER_TEST_SETTINGS}
    app = shared_apps.get(database_url, shared)
    app.config.update({k: v for k, v in config_overrides.items() if k in PER_TEST_SETTINGS})
    start_afresh(app)
    yield app
    with app.app_context():
        db.session.remove()
    shared_apps.forget_if_another_app_was_made(app)


def start_afresh(app) -> None:
    """Empty tables, the default program, no cached pages, counters or sent emails."""
    with app.app_context():
        databases.empty_tables(db)
        # Started a year ago, so tests may date signups and referrals in the past.
        ensure_default_program().starts_at = utcnow() - timedelta(days=365)
        db.session.commit()
        cache.clear()
        limiter.reset()
    getattr(app.extensions["mailman"], "outbox", []).clear()


def close(app) -> None:
    """Give back every connection an app opened (pytest turns leaks into errors)."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_participant(app):
    """Create a participant through the real signup service: make_participant("Ann Lee")."""

    def make(name="Alice Zimmer", **kwargs):
        with app.app_context():
            return factories.participant(name, **kwargs)

    return make


CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str) -> str:
    page = client.get(path)
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def signup(client):
    """Sign up through the real form, CSRF token and all; returns the response."""

    def submit(name="Bob Baker", email=None, password="correct horse battery staple", **extra):
        email = email or f"{name.split()[0].lower()}@example.com"
        token = csrf_token(client, "/auth/signup")
        data = {"csrf_token": token, "name": name, "email": email, "password": password}
        data.update(extra)
        return client.post("/auth/signup", data=data)

    return submit


def log_in(client, email, password=factories.PASSWORD, query=None, **extra):
    """Log `client` in through the real form; returns the response."""
    token = csrf_token(client, "/auth/login")
    data = {"csrf_token": token, "email": email, "password": password, **extra}
    return client.post("/auth/login", data=data, query_string=query)


@pytest.fixture
def sms_log(caplog):
    """The log of the console SMS backend, where phone codes are "sent" in tests."""
    caplog.set_level(logging.INFO, logger="inviteloop.sms")
    return caplog


@pytest.fixture
def login(client):
    def submit(email, password=factories.PASSWORD, **extra):
        return log_in(client, email, password, **extra)

    return submit
