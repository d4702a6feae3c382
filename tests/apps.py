"""The apps the tests run: their settings, one shared app per module and database, and
what each test starts from."""

import contextlib
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import celery
import pytest

from app import create_app
from extensions import cache, db, limiter
from models import utcnow
from referral.services import ensure_default_program
from tests import databases
from tests.helpers import log_in

TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"
FAST_HASH = "pbkdf2:sha256:1"  # tests only; config refuses it outside TESTING
# Templates compiled once for every app and server process of the run (and the next runs):
# each test module's apps would otherwise compile the same templates again, a tenth of the
# CPU of a page-heavy module. Jinja compiles a changed template again (its source checksum).
TEMPLATE_CACHE = Path(tempfile.gettempdir()) / f"inviteloop-test-templates-{os.getuid()}"


def app_config(database_url: str, **overrides) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": database_url,
        "PASSWORD_HASH_METHOD": FAST_HASH,
        "CACHE_TYPE": "SimpleCache",
        "RATELIMIT_STORAGE_URI": "memory://",
        "REDIS_URL": None,
        # Delivered right after the commit, in the test's thread, so a test sees the mail a
        # request sent as soon as it answers; the real senders: test_outbox*.py.
        "OUTBOX_DELIVERY": "inline",
        # Clicks stored by the request that made them; the journal: test_click_journal.py.
        "CLICK_JOURNAL": False,
        "TEMPLATE_CACHE_DIR": str(TEMPLATE_CACHE),
        **overrides,
    }


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
        shared = {k: v for k, v in overrides.items() if k not in PER_TEST_SETTINGS}
        key = repr(sorted(shared.items()))
        if key != self.overrides_key:
            self.close_all()
            self.overrides_key = key
        if database_url not in self.apps:
            made = create_app(app_config(database_url, **shared))
            self.apps[database_url] = (made, dict(made.config))
        app, settings = self.apps[database_url]
        app.config.clear()  # undo whatever the previous test changed in app.config
        app.config.update(settings)
        app.config.update({k: v for k, v in overrides.items() if k in PER_TEST_SETTINGS})
        # As if just made: Celery's current app is how `release` spots a test's own app.
        app.extensions["celery"].set_current()
        app.extensions["celery"].set_default()
        return app

    def release(self, app) -> None:
        """After a test: its session ends; if it made an app of its own, that app now owns
        the singletons, so the shared apps are made again for the next test."""
        with app.app_context():
            db.session.remove()
        if celery.current_app._get_current_object() is not app.extensions["celery"]:
            self.close_all()

    def close_all(self) -> None:
        for app, _ in self.apps.values():
            close(app)
        self.apps.clear()


# How often each database's tables were emptied: data seeded at one count is still all
# there is while the count stays the same.
_emptied: dict[str, int] = {}


def times_emptied(app) -> int:
    return _emptied.get(str(app.config["DATABASE_URL"]), 0)


def start_afresh(app) -> None:
    """Empty tables, the default program, no cached pages, links, counters or sent emails."""
    journal = app.extensions["click_journal"]
    if journal is not None:
        journal.close()  # what an earlier test journaled goes in now, and out with the rest
    with app.app_context():
        databases.empty_tables(db)
        # Started a year ago, so tests may date signups and referrals in the past.
        ensure_default_program().starts_at = utcnow() - timedelta(days=365)
        db.session.commit()
    url = str(app.config["DATABASE_URL"])
    _emptied[url] = _emptied.get(url, 0) + 1
    forget_state(app)


def forget_state(app) -> None:
    """No cached pages, links, counters or sent emails; the tables stay as they are."""
    with app.app_context():
        cache.clear()
        app.extensions["link_cache"].clear()  # codes of emptied tables may be drawn again
        limiter.reset()
    getattr(app.extensions["mailman"], "outbox", []).clear()


class ModuleSeeds:
    """The data a module's `seeded_once` fixture made, one per database, for the module's
    `module_data` tests: they read it without emptying the tables first. It is made again
    when any test emptied the tables since (a test that writes starts from empty tables), or
    when a test wants another seed of the module."""

    def __init__(self):
        self.held = {}  # database URL -> (times emptied, build, its value)

    def get(self, node, app, build):
        if not node.get_closest_marker("module_data"):
            return build(app)  # tables emptied for this test, which may change what it makes
        url = str(app.config["DATABASE_URL"])
        held = self.held.get(url)
        if held and held[0] == times_emptied(app) and held[1] is build:
            return held[2]
        start_afresh(app)
        value = build(app)
        self.held[url] = (times_emptied(app), build, value)
        return value


def seeded_once(build, name: str | None = None):
    """A fixture (named `name`, else as `build`) of `build(app)`'s value: made once per
    database for the module's tests marked `module_data`, which only read it, and afresh for
    each of its other tests."""

    def fixture(request, app, module_seeds):
        return module_seeds.get(request.node, app, build)

    fixture.__doc__ = build.__doc__
    return pytest.fixture(name=name or build.__name__)(fixture)


def signed_in(client, cookies: dict):
    """Give a test's client the cookies of a sign-in made once, in a seed (`cookies_of`)."""
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def sign_in_once(app, email: str) -> dict:
    """Sign `email` in on a client of its own (in a seed); its cookies, for `signed_in`."""
    client = app.test_client()
    assert log_in(client, email).status_code == 302
    return cookies_of(client)


def cookies_of(client) -> dict:
    """The session and remember-me cookies `client` holds."""
    config = client.application.config
    names = (config["SESSION_COOKIE_NAME"], config.get("REMEMBER_COOKIE_NAME", "remember_token"))
    found = {name: client.get_cookie(name) for name in names}
    return {name: cookie.value for name, cookie in found.items() if cookie is not None}


def close(app) -> None:
    """Give back every connection an app opened (pytest turns leaks into errors), after
    ending its background threads (thread mode), which would open more."""
    for name in ("outbox_sender", "event_runner"):
        app.extensions[name].stop()
    journal = app.extensions["click_journal"]
    if journal is not None:
        journal.close()  # its lines stored, its file deleted: no later app claims them
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@contextlib.contextmanager
def other_app(database_url: str, **overrides):
    app = create_app(app_config(database_url, **overrides))
    try:
        yield app
    finally:
        app.extensions["celery"].close()
        close(app)
