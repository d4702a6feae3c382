"""Logging out ends that sign-in on the server, and signing in gets a new CSRF token
(docs/guarantees.md #11): a copy of the session cookie or of the remember-me cookie taken
before logout no longer signs anyone in; the account's other sign-ins carry on."""

from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update

from extensions import db
from models import UserSession, utcnow
from tests.factories import PASSWORD
from tests.helpers import CSRF_FIELD, csrf_token, is_logged_in, log_in, text_of
from tests.server import running_server


@pytest.fixture
def alice(make_participant):
    return make_participant("Alice Zimmer")


def log_out(client, token=None):
    return client.post("/auth/logout", data={"csrf_token": token or csrf_token(client, "/")})


def with_cookies(app, **cookies):
    """A browser holding nothing but these cookies (an attacker's copy, say)."""
    browser = app.test_client()
    for name, value in cookies.items():
        browser.set_cookie(name, value)
    return browser


def session_rows(app) -> int:
    with app.app_context():
        return db.session.query(UserSession).count()


def test_a_copied_session_cookie_stops_working_at_logout(app, client, alice):
    assert log_in(client, alice["email"]).status_code == 302
    copied = client.get_cookie("session").value
    assert is_logged_in(with_cookies(app, session=copied))  # the copy works while signed in

    assert log_out(client).status_code == 302

    assert not is_logged_in(client)
    assert not is_logged_in(with_cookies(app, session=copied))


def test_a_copied_remember_me_cookie_stops_working_at_logout(app, client, alice):
    assert log_in(client, alice["email"], remember="y").status_code == 302
    remembered = client.get_cookie("remember_token").value
    assert is_logged_in(with_cookies(app, remember_token=remembered))

    assert log_out(client).status_code == 302

    assert not is_logged_in(with_cookies(app, remember_token=remembered))


def test_a_browser_back_from_its_remember_me_cookie_can_log_out_for_good(app, client, alice):
    assert log_in(client, alice["email"], remember="y").status_code == 302
    remembered = client.get_cookie("remember_token").value
    returning = with_cookies(app, remember_token=remembered)
    assert is_logged_in(returning)
    session_from_cookie = returning.get_cookie("session").value

    assert log_out(returning).status_code == 302

    assert not is_logged_in(client)  # the same sign-in, ended from the other copy
    assert not is_logged_in(with_cookies(app, remember_token=remembered))
    assert not is_logged_in(with_cookies(app, session=session_from_cookie))


def test_logging_out_one_browser_leaves_the_others_signed_in(app, client, alice):
    phone = app.test_client()
    laptop = app.test_client()
    assert log_in(client, alice["email"]).status_code == 302
    assert log_in(phone, alice["email"], remember="y").status_code == 302
    assert log_in(laptop, alice["email"]).status_code == 302
    phone_cookie = phone.get_cookie("remember_token").value

    assert log_out(client).status_code == 302

    assert not is_logged_in(client)
    assert is_logged_in(phone)
    assert is_logged_in(laptop)
    assert is_logged_in(with_cookies(app, remember_token=phone_cookie))
    assert session_rows(app) == 2  # the ended sign-in's row is gone, not just marked


def test_signing_out_everywhere_still_ends_every_sign_in(app, client, alice):
    other = app.test_client()
    assert log_in(other, alice["email"], remember="y").status_code == 302
    remembered = other.get_cookie("remember_token").value
    assert log_in(client, alice["email"]).status_code == 302
    page = client.get("/auth/profile")
    token = CSRF_FIELD.search(text_of(page)).group(1)

    assert client.post("/auth/profile/sessions", data={"csrf_token": token}).status_code == 302

    assert is_logged_in(client)
    assert not is_logged_in(other)
    assert not is_logged_in(with_cookies(app, remember_token=remembered))
    assert session_rows(app) == 1  # only this browser's new sign-in


def test_an_expired_sign_in_is_signed_out_and_pruned(app, client, runner, alice):
    assert log_in(client, alice["email"], remember="y").status_code == 302
    remembered = client.get_cookie("remember_token").value
    with app.app_context():
        past = utcnow() - timedelta(days=400)
        db.session.execute(
            update(UserSession).values(created_at=past, expires_at=past + timedelta(days=365))
        )
        db.session.commit()

    assert not is_logged_in(client)
    assert not is_logged_in(with_cookies(app, remember_token=remembered))

    result = runner.invoke(args=["auth", "prune-sessions"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1 expired session(s)." in result.output
    assert session_rows(app) == 0


def test_the_daily_job_prunes_only_expired_sign_ins(app, client, alice, make_participant):
    bob = make_participant("Bob Baker")
    assert log_in(client, alice["email"]).status_code == 302
    assert log_in(app.test_client(), bob["email"]).status_code == 302
    with app.app_context():
        past = utcnow() - timedelta(days=40)
        db.session.execute(
            update(UserSession)
            .where(UserSession.user_id == alice["id"])
            .values(created_at=past, expires_at=past + timedelta(days=31))
        )
        db.session.commit()
        # What beat sends each day, run by this app's Celery (inline without a broker).
        celery = app.extensions["celery"]
        daily = celery.conf.beat_schedule["prune-sessions"]
        assert daily["schedule"] == 86400
        celery.tasks[daily["task"]].delay().get(timeout=10)
    with app.app_context():
        assert db.session.scalar(select(UserSession.user_id)) == bob["id"]
    assert session_rows(app) == 1


def test_a_cookie_from_before_session_keys_signs_nobody_in(app, alice):
    # What a browser signed in before the upgrade holds: "<id>:<version>" with no key.
    browser = app.test_client()
    with browser.session_transaction() as session:
        session["_user_id"] = f"{alice['id']}:0"
        session["_fresh"] = True

    assert not is_logged_in(browser)


def test_the_csrf_token_changes_at_login(app, client, alice):
    before = csrf_token(client, "/auth/login")
    with client.session_transaction() as session:
        raw_before = session["csrf_token"]

    assert log_in(client, alice["email"]).status_code == 302

    with client.session_transaction() as session:
        assert session.get("csrf_token") != raw_before
    after = csrf_token(client, "/auth/profile")
    with client.session_transaction() as session:
        assert session["csrf_token"] != raw_before
    # A token someone saw (or planted) before the login is refused afterwards.
    refused = log_out(client, token=before)
    assert refused.status_code == 400
    assert is_logged_in(client)
    assert log_out(client, token=after).status_code == 302


@pytest.mark.server
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_logout_ends_the_copied_cookies_on_a_real_server(app, database_url, alice):
    with running_server(database_url) as base_url:
        browser = requests.Session()
        page = browser.get(f"{base_url}/auth/login", timeout=10)
        token = CSRF_FIELD.search(page.text).group(1)
        response = browser.post(
            f"{base_url}/auth/login",
            data={"csrf_token": token, "email": alice["email"], "password": PASSWORD,
                  "remember": "y"},
            allow_redirects=False,
            timeout=10,
        )  # fmt: skip
        assert response.status_code == 302
        copied = browser.cookies.get_dict()
        assert {"session", "remember_token"} <= copied.keys()

        dashboard = browser.get(f"{base_url}/referral/dashboard", timeout=10)
        token = CSRF_FIELD.search(dashboard.text).group(1)
        assert browser.post(
            f"{base_url}/auth/logout", data={"csrf_token": token}, allow_redirects=False,
            timeout=10,
        ).status_code == 302  # fmt: skip

        for name in ("session", "remember_token"):
            replay = requests.get(
                f"{base_url}/referral/dashboard",
                cookies={name: copied[name]},
                allow_redirects=False,
                timeout=10,
            )
            assert replay.status_code == 302, name
            assert "/auth/login" in replay.headers["Location"], name
