"""The plain click answered before Flask's request cycle without Redis (the embedded default):
the click goes straight to the database, and the link's limits are counted in Flask-Limiter's
in-memory windows, as the app counts them."""

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Click
from referral.click_shortcut import ClickShortcut
from tests.shortcuts import HandedOver, cookies_set, headers_but_per_request, the_app_alone

LIMIT = 3


@pytest.fixture
def config_overrides():
    return {"REFERRAL_LINK_LIMITS": f"{LIMIT}/minute;1000/hour"}


@pytest.fixture
def handed_over(app):
    spy = HandedOver(app, ClickShortcut)
    yield spy
    spy.restore()


def _stored(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Click.id)))


def test_a_plain_click_is_stored_and_answered_as_the_app_would(app, make_participant, handed_over):
    alice = make_participant()
    headers = {"User-Agent": "Browser/1.0"}

    by_the_app = the_app_alone(app, handed_over).get(f"/r/{alice['code']}", headers=headers)
    by_the_shortcut = app.test_client().get(f"/r/{alice['code']}", headers=headers)

    assert handed_over.count == 0
    assert by_the_shortcut.status_code == by_the_app.status_code == 302
    assert headers_but_per_request(by_the_shortcut) == headers_but_per_request(by_the_app)
    assert cookies_set(by_the_shortcut) == cookies_set(by_the_app)
    assert _stored(app) == 2  # written before the 302 left: no queue without Redis


def _browser(app, address: str):
    """A new browser (no cookies: a returning one carries its attribution, which the app
    looks up) at `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_the_limits_are_counted_in_the_apps_windows_and_the_app_answers_429(
    app, make_participant, handed_over
):
    alice = make_participant()
    path = f"/r/{alice['code']}"

    # The app counts the first visit, the shortcut the next ones, into the same window.
    by_the_app = the_app_alone(app, handed_over).get(
        path, environ_base={"REMOTE_ADDR": "10.77.0.1"}
    )
    assert by_the_app.status_code == 302
    for _ in range(LIMIT - 1):
        assert _browser(app, "10.77.0.1").get(path).status_code == 302
    assert handed_over.count == 0

    refused = _browser(app, "10.77.0.1").get(path)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Limit"] == str(LIMIT)
    assert "Retry-After" in refused.headers
    assert handed_over.count == 1
    assert _stored(app) == LIMIT  # the refused visit stored nothing

    # Someone else is not held back by this visitor's window.
    assert _browser(app, "10.77.0.2").get(path).status_code == 302
