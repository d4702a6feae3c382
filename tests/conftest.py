"""Fixtures: an app per test module and database (SQLite and PostgreSQL), each test on empty
tables with the default program, an empty cache and fresh rate-limit counters.

Markers that change this: `own_app` (a fresh app, e.g. for a test that adds a route),
`module_data` (the test only reads data seeded once per database for its module: see
`seeded_once` in tests/apps.py; its tables are not emptied), `slow` (scheduled first)."""

import gc
import logging
import os

import pytest

from app import create_app
from core.i18n import compile_stale_catalogues
from tests import databases, factories, intensity, preloaded
from tests.apps import ModuleSeeds, SharedApps, app_config, close, forget_state, start_afresh
from tests.helpers import csrf_token, log_in
from tests.workers import redis_broker

pytest_plugins = ["tests.log_scan"]


def pytest_report_header(config):
    return f"races and generated inputs: {intensity.LEVEL} (INVITELOOP_TEST_INTENSITY)"


def pytest_configure(config):
    # The controller compiles the catalogues once, before any xdist worker starts.
    if not hasattr(config, "workerinput"):
        compile_stale_catalogues()
    # A young-generation collection every 700 new objects (Python's default) took 5 % of the
    # in-process tests' CPU; every 20,000 takes 2 %, for a few more MB held between them.
    gc.set_threshold(20_000, 10, 10)
    # Servers, workers and commands are forked from a process that has imported the app
    # (INVITELOOP_TEST_PRELOAD=0: each starts as a new process instead).
    if os.environ.get("INVITELOOP_TEST_PRELOAD") != "0":
        preloaded.enable()


def pytest_collection_modifyitems(items):
    """Slow modules first: each worker takes whole files, so the long ones run while the other
    worker goes through the many short ones, and both finish together. In a module, the tests
    that only read its seeded data come first: one seed per database serves them all, where a
    writing test in between would empty the tables and have it made again."""
    modules = {}
    for item in items:
        modules.setdefault(item.path, len(modules))
    items.sort(
        key=lambda item: (
            item.get_closest_marker("slow") is None,
            modules[item.path],
            item.get_closest_marker("module_data") is None,
        )
    )


def pytest_collection_finish(session):
    """What collection made (every module, Hypothesis, Schemathesis, Playwright) lives to the
    end of the run: frozen, the collections during the tests no longer walk it (about a fifth
    of their cost)."""
    gc.freeze()


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


@pytest.fixture(scope="module")
def shared_apps():
    apps = SharedApps()
    yield apps
    apps.close_all()


@pytest.fixture(scope="module")
def module_seeds():
    return ModuleSeeds()


@pytest.fixture
def app(request, database_url, config_overrides, shared_apps):
    if request.node.get_closest_marker("own_app"):
        app = create_app(app_config(database_url, **config_overrides))
        start_afresh(app)
        yield app
        close(app)
        shared_apps.close_all()  # the rate limiter and Celery now belong to this app
        return
    app = shared_apps.get(database_url, config_overrides)
    if request.node.get_closest_marker("module_data"):
        forget_state(app)  # the seeded tables stay; cached figures and counters do not
    else:
        start_afresh(app)
    yield app
    shared_apps.release(app)


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


@pytest.fixture
def broker():
    """A Redis broker with a queue of this test's own, for real Celery workers."""
    with redis_broker() as broker:
        yield broker
