"""Password reset (issue 5, docs/guarantees.md #8): the same answer for every address, a link from
the configured public URL that works once for 30 minutes, and a reset that ends every other
session and tells the owner.

Links are read from the emails the app sends (Flask-Mailman's locmem outbox), as a person
would click them.
"""

import base64
import hashlib
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import JSON, String, Text, select, update

from auth import reset
from auth.services import end_all_sessions, hash_password
from extensions import db
from models import User, utcnow
from tests.apps import TEST_SECRET
from tests.factories import PASSWORD
from tests.helpers import (
    CSRF_FIELD,
    csrf_token,
    is_logged_in,
    log_in,
    reset_link_path,
    set_active,
    smallest_limit,
    take_outbox,
)

PUBLIC_URL = "https://refer.example.com"
SENT = "If an account uses that address, we've sent a link to reset its password."
INVALID_LINK = "This reset link is invalid or has expired. Ask for a new one."
TOO_MANY = "Too many requests"
NEW_PASSWORD = "a brand new passphrase for alice"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/auth/reset/[A-Za-z0-9_.\-]+")


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem", "PUBLIC_URL": PUBLIC_URL}


@pytest.fixture
def alice(make_participant):
    return make_participant("Alice Zimmer")


# --- acting like a browser -----------------------------------------------------------------


def ask_for_reset(client, email, ip="127.0.0.1"):
    token = csrf_token(client, "/auth/reset")
    return client.post(
        "/auth/reset", data={"csrf_token": token, "email": email}, environ_base={"REMOTE_ADDR": ip}
    )


def choose_password(client, path, password=NEW_PASSWORD):
    page = client.get(path)
    assert page.status_code == 200, page.text
    token = CSRF_FIELD.search(page.text).group(1)
    return client.post(path, data={"csrf_token": token, "password": password})


def can_log_in(app, email, password) -> bool:
    response = log_in(app.test_client(), email, password)
    assert response.status_code in (302, 401)
    return response.status_code == 302


# --- reading the mail and the database -----------------------------------------------------


def link_for(app, client, email) -> str:
    assert ask_for_reset(client, email).status_code == 200
    return reset_link_path(app, email, PUBLIC_URL)


def session_version(app, user_id) -> int:
    with app.app_context():
        return db.session.get(User, user_id).session_version


def every_stored_text(app) -> str:
    """All text of every row of every table, to show what is (not) kept."""
    chunks = []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if columns:
                for row in db.session.execute(select(*columns)):
                    chunks.extend(str(value) for value in row if value is not None)
    return "\n".join(chunks)


# --- asking for a link ---------------------------------------------------------------------


def test_login_page_offers_a_reset(app, client):
    page = client.get("/auth/login")
    assert 'href="/auth/reset">Forgot your password?' in page.text
    form = client.get("/auth/reset")
    assert form.status_code == 200
    assert 'name="email"' in form.text


def test_unknown_email_gets_the_same_answer_and_no_mail(app, alice, make_participant):
    gone = make_participant("Gina Gone")
    set_active(app, gone["id"], False)

    known = ask_for_reset(app.test_client(), alice["email"])
    [message] = take_outbox(app)
    assert message.to == [alice["email"]]
    unknown = ask_for_reset(app.test_client(), "nobody@example.com")
    deactivated = ask_for_reset(app.test_client(), gone["email"])

    assert known.status_code == unknown.status_code == deactivated.status_code == 200
    assert SENT in known.text
    # Each browser's own CSRF token (the language switcher's forms) is all that differs.
    assert _without_csrf(known.text) == _without_csrf(unknown.text)
    assert _without_csrf(known.text) == _without_csrf(deactivated.text)
    assert take_outbox(app) == []


def _without_csrf(page: str) -> str:
    return CSRF_FIELD.sub('name="csrf_token" value=""', page)


def test_an_address_that_does_not_parse_is_a_form_error(app, client, alice):
    response = ask_for_reset(client, "alice at example")

    assert response.status_code == 400
    assert "This email address is not valid" in response.text
    assert 'value="alice at example"' in response.text  # kept for correcting
    assert SENT not in response.text
    assert take_outbox(app) == []


def test_the_email_links_to_the_public_url_and_says_how_long(app, client, alice):
    assert ask_for_reset(client, alice["email"].upper()).status_code == 200

    [message] = take_outbox(app)
    assert message.to == [alice["email"]]
    [link] = LINK.findall(message.body)
    assert link.startswith(f"{PUBLIC_URL}/auth/reset/")
    assert "works for 30 minutes, and only once" in message.body
    assert "If you didn't ask, ignore this email" in message.body


# --- using the link ------------------------------------------------------------------------


def test_the_link_sets_the_password_signs_in_and_tells_the_owner(app, client, alice):
    path = link_for(app, client, alice["email"])

    page = client.get(path)
    assert page.status_code == 200
    assert "a***@example.com" in page.text
    # The token is in the path: it must not travel to other sites, nor be cached.
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert page.headers["Cache-Control"] == "no-store"

    done = choose_password(client, path)

    assert done.status_code == 302
    assert urlsplit(done.headers["Location"]).path == "/referral/dashboard"
    dashboard = client.get("/referral/dashboard")
    assert dashboard.status_code == 200
    assert "Your password is changed" in dashboard.text
    assert not can_log_in(app, alice["email"], PASSWORD)
    assert can_log_in(app, alice["email"], NEW_PASSWORD)
    [message] = take_outbox(app)
    assert message.to == [alice["email"]]
    assert message.subject == "Your InviteLoop password was changed"
    assert "If it wasn't you" in message.body
    assert f"{PUBLIC_URL}/auth/reset\n" in message.body
    assert "UTC" in message.body


def test_a_used_link_is_refused(app, client, alice):
    path = link_for(app, client, alice["email"])
    assert choose_password(client, path).status_code == 302
    take_outbox(app)

    again = client.get(path)
    assert again.status_code == 400
    assert INVALID_LINK in again.text
    assert 'href="/auth/reset"' in again.text
    # A POST (say, a form kept open in another tab) changes nothing either.
    token = csrf_token(client, "/auth/reset")
    reused = client.post(path, data={"csrf_token": token, "password": "yet another passphrase"})
    assert reused.status_code == 400
    assert INVALID_LINK in reused.text
    assert can_log_in(app, alice["email"], NEW_PASSWORD)
    assert take_outbox(app) == []


@pytest.mark.parametrize(("minutes", "works"), [(29, True), (31, False)])
def test_a_link_works_for_30_minutes(app, client, alice, minutes, works):
    with app.test_request_context():
        reset.request_reset(alice["email"], now=utcnow() - timedelta(minutes=minutes))
        db.session.commit()
    path = reset_link_path(app, alice["email"], PUBLIC_URL)

    page = client.get(path)

    if works:
        assert page.status_code == 200
        assert choose_password(client, path).status_code == 302
        assert can_log_in(app, alice["email"], NEW_PASSWORD)
    else:
        assert page.status_code == 400
        assert INVALID_LINK in page.text
        token = csrf_token(client, "/auth/reset")
        refused = client.post(path, data={"csrf_token": token, "password": NEW_PASSWORD})
        assert refused.status_code == 400
        assert can_log_in(app, alice["email"], PASSWORD)


def _with_payload(token: str, payload: bytes) -> str:
    """The token with its payload replaced and its signature kept."""
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return ".".join([encoded, *token.split(".")[1:]])


def _signed(salt: str, payload) -> str:
    """A token signed with the app's real key, as only the app itself could make."""
    signer = URLSafeTimedSerializer(
        TEST_SECRET, salt=salt, signer_kwargs={"digest_method": hashlib.sha256}
    )
    return signer.dumps(payload)


def _refused(client, path) -> bool:
    page = client.get(path)
    token = csrf_token(client, "/auth/reset")
    posted = client.post(path, data={"csrf_token": token, "password": NEW_PASSWORD})
    return page.status_code == posted.status_code == 400 and INVALID_LINK in posted.text


def test_a_link_for_one_account_cannot_change_another(app, client, alice, make_participant):
    bob = make_participant("Bob Baker")
    token = link_for(app, client, alice["email"]).rsplit("/", 1)[1]
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert payload.startswith(f"[{alice['id']},".encode())

    # Bob's id in Alice's token: the signature no longer matches.
    swapped = payload.replace(f"[{alice['id']},".encode(), f"[{bob['id']},".encode(), 1)
    assert _refused(client, f"/auth/reset/{_with_payload(token, swapped)}")
    # Even validly signed, Alice's fingerprint does not open Bob's account.
    [_, version, fingerprint] = URLSafeTimedSerializer(
        TEST_SECRET, salt="password-reset", signer_kwargs={"digest_method": hashlib.sha256}
    ).loads(token)
    assert _refused(client, f"/auth/reset/{_signed('password-reset', [bob['id'], 0, fingerprint])}")
    # A value signed for another feature (the attribution cookie's salt) is no reset link.
    assert _refused(
        client,
        f"/auth/reset/{_signed('referral-attribution', [alice['id'], version, fingerprint])}",
    )

    assert can_log_in(app, bob["email"], PASSWORD)
    assert can_log_in(app, alice["email"], PASSWORD)
    assert take_outbox(app) == []


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_a_tampered_link_is_refused(app, client, alice, where):
    path = link_for(app, client, alice["email"])
    # Inside each part, where every character carries six bits (the last may carry fewer).
    token = path.rsplit("/", 1)[1]
    position = 1 if where == "payload" else len(token) - 3
    flipped = "B" if token[position] != "B" else "C"
    tampered = token[:position] + flipped + token[position + 1 :]

    assert _refused(client, f"/auth/reset/{tampered}")
    assert can_log_in(app, alice["email"], PASSWORD)
    # The genuine link still works: nothing was used up.
    assert choose_password(client, path).status_code == 302


@pytest.mark.parametrize("changed", ["password", "email"])
def test_a_link_stops_working_once_the_credentials_changed_another_way(app, client, alice, changed):
    path = link_for(app, client, alice["email"])
    with app.app_context():
        values = (
            {"password_hash": hash_password("changed from the profile page")}
            if changed == "password"
            else {"email": "alice.new@example.com", "email_canonical": "alice.new@example.com"}
        )
        db.session.execute(update(User).where(User.id == alice["id"]).values(**values))
        db.session.commit()

    assert _refused(client, path)
    if changed == "password":
        assert can_log_in(app, alice["email"], "changed from the profile page")
    else:  # a link sent to the old address does not open the account any more
        assert can_log_in(app, "alice.new@example.com", PASSWORD)


def test_signing_out_everywhere_voids_pending_links(app, client, alice):
    path = link_for(app, client, alice["email"])
    with app.app_context():
        end_all_sessions(db.session.get(User, alice["id"]))
        db.session.commit()

    assert _refused(client, path)
    assert can_log_in(app, alice["email"], PASSWORD)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "Use at least 8 characters."),
        ("password", "This is one of the most common passwords; choose another."),
    ],
)
def test_a_weak_new_password_is_refused_with_the_reason(app, client, alice, password, reason):
    path = link_for(app, client, alice["email"])
    version = session_version(app, alice["id"])

    response = choose_password(client, path, password)

    assert response.status_code == 400
    assert reason in response.text
    assert 'name="password"' in response.text  # the form again, to try another
    assert not is_logged_in(client)
    assert can_log_in(app, alice["email"], PASSWORD)
    assert session_version(app, alice["id"]) == version
    assert take_outbox(app) == []
    # The link was not used up by the refusal.
    assert choose_password(client, path).status_code == 302


def test_a_reset_signs_out_every_other_session(app, client, alice):
    elsewhere = app.test_client()
    assert log_in(elsewhere, alice["email"]).status_code == 302
    remembered = app.test_client()
    assert log_in(remembered, alice["email"], remember="y").status_code == 302
    cookie = remembered.get_cookie("remember_token")
    only_cookie = app.test_client()  # a browser restarted with only the remember-me cookie
    only_cookie.set_cookie("remember_token", cookie.value)
    assert is_logged_in(elsewhere) and is_logged_in(remembered) and is_logged_in(only_cookie)

    path = link_for(app, client, alice["email"])
    assert choose_password(client, path).status_code == 302

    assert not is_logged_in(elsewhere)
    assert not is_logged_in(remembered)
    assert not is_logged_in(only_cookie)
    assert is_logged_in(client)  # the browser that reset the password
    assert "Alice Zimmer" in client.get("/referral/dashboard").text


def test_of_two_uses_of_one_link_exactly_one_succeeds(app, client, alice):
    path = link_for(app, client, alice["email"])
    token = path.rsplit("/", 1)[1]

    with app.app_context():
        reset.reset_password(token, "the first new passphrase")
        db.session.commit()
    with app.app_context(), pytest.raises(reset.InvalidResetToken):
        reset.reset_password(token, "the second new passphrase")

    assert can_log_in(app, alice["email"], "the first new passphrase")
    assert not can_log_in(app, alice["email"], "the second new passphrase")
    assert [message.subject for message in take_outbox(app)] == [
        "Your InviteLoop password was changed"
    ]


# PostgreSQL only: SQLite takes the write lock at BEGIN, so the two uses cannot overlap there.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_use_that_lost_the_race_changes_nothing(app, client, alice):
    """The slower of two uses read the account before the faster one committed: only the
    conditional UPDATE stands between it and a second change."""
    token = link_for(app, client, alice["email"]).rsplit("/", 1)[1]

    with app.app_context():
        slower = reset.verify_token(token)  # read, still valid, kept in this session
        with app.app_context():  # another request, another session
            reset.reset_password(token, "the faster new passphrase")
            db.session.commit()
        assert slower.session_version == 0  # what the slower one still believes
        with pytest.raises(reset.InvalidResetToken):
            reset.reset_password(token, "the slower new passphrase")
        db.session.rollback()

    assert can_log_in(app, alice["email"], "the faster new passphrase")
    assert session_version(app, alice["id"]) == 1


def test_an_account_without_a_password_can_set_one(app, client):
    with app.app_context():
        db.session.add(
            User(name="Pat Phone", email="pat@example.com", email_canonical="pat@example.com")
        )
        db.session.commit()
    assert ask_for_reset(client, "pat@example.com").status_code == 200
    [message] = take_outbox(app)
    assert "no password yet" in message.body
    path = urlsplit(LINK.search(message.body).group(0)).path

    assert choose_password(client, path).status_code == 302

    assert can_log_in(app, "pat@example.com", NEW_PASSWORD)
    assert _refused(app.test_client(), path)


# --- what is kept and said -----------------------------------------------------------------


def test_the_token_is_neither_stored_nor_logged(app, client, alice, caplog):
    caplog.set_level("DEBUG")
    path = link_for(app, client, alice["email"])
    token = path.rsplit("/", 1)[1]
    signature = token.rsplit(".", 1)[1]

    assert token not in every_stored_text(app) and signature not in every_stored_text(app)
    assert choose_password(client, path).status_code == 302
    assert signature not in every_stored_text(app)
    assert signature not in caplog.text
    assert f"password reset for user {alice['id']}" in caplog.text


def test_the_link_works_over_https_with_a_same_origin_referrer(app, alice):
    browser = app.test_client()
    site = "https://localhost"
    path = link_for(app, browser, alice["email"])
    page = browser.get(path, base_url=site)
    assert page.headers["Referrer-Policy"] == "same-origin"
    token = CSRF_FIELD.search(page.text).group(1)

    # Over HTTPS Flask-WTF wants a same-origin Referer: "no-referrer" would break the form.
    done = browser.post(
        path,
        base_url=site,
        data={"csrf_token": token, "password": NEW_PASSWORD},
        headers={"Referer": f"{site}{path}"},
    )

    assert done.status_code == 302
    assert can_log_in(app, alice["email"], NEW_PASSWORD)


# --- throttling ----------------------------------------------------------------------------


def test_requests_for_one_address_are_throttled(app, alice):
    allowed = smallest_limit(app.config["PASSWORD_RESET_EMAIL_LIMITS"])
    for number in range(allowed):
        response = ask_for_reset(app.test_client(), alice["email"], ip=f"198.51.100.{number + 1}")
        assert response.status_code == 200
    assert len(take_outbox(app)) == allowed

    local, domain = alice["email"].split("@")
    for spelling in (alice["email"], alice["email"].upper(), f"{local}+again@{domain}"):
        blocked = ask_for_reset(app.test_client(), spelling, ip="203.0.113.9")
        assert blocked.status_code == 429
        assert TOO_MANY in blocked.text
    assert take_outbox(app) == []
    # Another address from the same place is still served.
    assert ask_for_reset(app.test_client(), "bob@example.com", ip="203.0.113.9").status_code == 200


@pytest.mark.parametrize(
    "config_overrides",
    [{"MAIL_BACKEND": "locmem", "PUBLIC_URL": PUBLIC_URL, "PASSWORD_RESET_IP_LIMITS": "3/minute"}],
    ids=["3-per-min"],
)
def test_requests_from_one_address_are_throttled(app, alice):
    attacker = "198.51.100.66"
    for number in range(3):
        response = ask_for_reset(app.test_client(), f"victim{number}@example.com", ip=attacker)
        assert response.status_code == 200

    blocked = ask_for_reset(app.test_client(), alice["email"], ip=attacker)

    assert blocked.status_code == 429
    assert TOO_MANY in blocked.text
    assert take_outbox(app) == []
    assert ask_for_reset(app.test_client(), alice["email"], ip="203.0.113.7").status_code == 200
    assert len(take_outbox(app)) == 1
