"""Accounts, sessions and forms (docs/guarantees.md #7): signup, login, logout, throttling.

Each test looks at what a person would notice: the status, the words on the page, and whether
an account (and its referral code) exists exactly once or not at all.
"""

import re

import pytest
from sqlalchemy import func, select, update

from extensions import db
from models import Referral, ReferralCode, User
from tests import factories
from tests.factories import PASSWORD
from tests.helpers import (
    count,
    csrf_token,
    is_logged_in,
    location_path,
    read_form,
    set_active,
    smallest_limit,
    text_of,
)

CODE_PATTERN = re.compile(r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{6,8}")
INVALID_CREDENTIALS = "Invalid email or password."
TOO_MANY = "Too many requests"
LOGOUT_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- reading pages ------------------------------------------------------------------------


# --- acting like a browser -----------------------------------------------------------------


def signup_with(client, ip="127.0.0.1", **fields):
    token = csrf_token(client, "/auth/signup")
    data = {"csrf_token": token, **fields}
    return client.post("/auth/signup", data=data, environ_base={"REMOTE_ADDR": ip})


def login_with(
    client, email, password=PASSWORD, ip="127.0.0.1", headers=None, query=None, **fields
):
    token = csrf_token(client, "/auth/login")
    data = {"csrf_token": token, "email": email, "password": password, **fields}
    return client.post(
        "/auth/login",
        data=data,
        query_string=query,
        environ_base={"REMOTE_ADDR": ip},
        headers=headers or {},
    )


def logout_token(client) -> str:
    """The token in the navbar's "Log out" form, as the browser would submit it."""
    match = LOGOUT_TOKEN.search(text_of(client.get("/referral/dashboard")))
    assert match, "no logout form on the dashboard"
    return match.group(1)


# --- reading the database ------------------------------------------------------------------


def user_row(app, email):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        if user is None:
            return None
        codes = db.session.scalars(
            select(ReferralCode.code).where(ReferralCode.user_id == user.id)
        ).all()
        return {"id": user.id, "name": user.name, "email": user.email, "codes": codes}


def assert_nothing_created(app, before_users=0, before_codes=0):
    assert count(app, User) == before_users
    assert count(app, ReferralCode) == before_codes
    assert count(app, Referral) == 0


# --- signup --------------------------------------------------------------------------------


def test_signup_logs_in_and_lands_on_dashboard(app, client, signup):
    response = signup(name="Bob Baker", email="Bob.Baker@Example.COM")

    assert response.status_code == 302
    assert location_path(response) == "/referral/dashboard"
    row = user_row(app, "bob.baker@example.com")
    assert row is not None
    assert row["name"] == "Bob Baker"
    assert count(app, User, func.lower(User.email) == "bob.baker@example.com") == 1
    assert len(row["codes"]) == 1
    assert CODE_PATTERN.fullmatch(row["codes"][0]), row["codes"]

    dashboard = client.get("/referral/dashboard")
    assert dashboard.status_code == 200
    page = text_of(dashboard)
    assert "Welcome to InviteLoop!" in page
    assert "Hi Bob Baker" in page
    assert row["codes"][0] in page


def test_signup_with_duplicate_email_in_other_case_is_refused(app, client, signup):
    assert signup(name="Bob Baker", email="bob@example.com").status_code == 302
    client.post("/auth/logout", data={"csrf_token": logout_token(client)})

    response = signup(name="Bobby Tables", email="BOB@Example.com")

    assert response.status_code == 409
    form = read_form(response)
    assert any("already registered" in error for error in form.field_errors.get("email", []))
    assert count(app, User) == 1
    assert count(app, ReferralCode) == 1
    assert user_row(app, "bob@example.com")["name"] == "Bob Baker"


@pytest.mark.parametrize("email", ["not-an-email", "bob@", "bob at example.com", "@example.com"])
def test_signup_with_invalid_email_is_refused(app, signup, email):
    response = signup(name="Bob Baker", email=email)

    assert response.status_code == 400
    errors = read_form(response).field_errors.get("email", [])
    assert any("not valid" in error for error in errors), errors
    assert_nothing_created(app)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Xk7!qz", "at least 8 characters"),
        ("password1", "most common passwords"),
        ("qwertyuiop", "most common passwords"),
        ("Password1", "most common passwords"),
    ],
)
def test_signup_with_weak_password_names_the_reason(app, signup, password, reason):
    response = signup(name="Bob Baker", email="bob@example.com", password=password)

    assert response.status_code == 400
    errors = read_form(response).field_errors.get("password", [])
    assert any(reason in error for error in errors), errors
    assert_nothing_created(app)


def test_reshown_form_keeps_name_and_email_but_not_password(app, signup):
    secret = "Zq7!kfp"  # too short, so the form comes back
    response = signup(name="Bob Baker", email="bob@example.com", password=secret)

    assert response.status_code == 400
    form = read_form(response)
    assert form.values["name"] == "Bob Baker"
    assert form.values["email"] == "bob@example.com"
    assert not form.values["password"]
    assert secret not in text_of(response)
    assert_nothing_created(app)


LONG_PASSPHRASE = ("correct horse ✓ bätterý stäple 🐴 日本語のパスワード " * 10)[:300]


def test_long_unicode_passphrase_is_accepted_and_verified_exactly(app, client, signup):
    assert len(LONG_PASSPHRASE) == 300
    response = signup(name="Bob Baker", email="bob@example.com", password=LONG_PASSPHRASE)
    assert response.status_code == 302
    client.post("/auth/logout", data={"csrf_token": logout_token(client)})
    assert not is_logged_in(client)

    changed = LONG_PASSPHRASE[:-1] + ("x" if LONG_PASSPHRASE[-1] != "x" else "y")
    for wrong in (changed, "X" + LONG_PASSPHRASE[1:], LONG_PASSPHRASE[:-1], LONG_PASSPHRASE[:72]):
        refused = login_with(client, "bob@example.com", wrong)
        assert refused.status_code == 401
        assert INVALID_CREDENTIALS in read_form(refused).alerts
        assert not is_logged_in(client)

    accepted = login_with(client, "bob@example.com", LONG_PASSPHRASE)
    assert accepted.status_code == 302
    assert is_logged_in(client)


def test_email_dns_check_is_off_by_default(app, signup, monkeypatch):
    import dns.resolver
    import email_validator.deliverability

    def no_dns(*args, **kwargs):
        raise AssertionError("signup looked the domain up in DNS")

    monkeypatch.setattr(email_validator.deliverability, "validate_email_deliverability", no_dns)
    monkeypatch.setattr(dns.resolver.Resolver, "resolve", no_dns)
    assert app.config["EMAIL_CHECK_DNS"] is False

    response = signup(name="Dana Doe", email="dana@example.com")

    assert response.status_code == 302
    assert count(app, User, User.email == "dana@example.com") == 1


# --- names ---------------------------------------------------------------------------------


def test_html_in_name_is_stored_but_shown_escaped(app, client, signup):
    response = signup(name="<b>Bob</b>", email="bob@example.com")
    assert response.status_code == 302
    assert user_row(app, "bob@example.com")["name"] == "<b>Bob</b>"

    page = text_of(client.get("/referral/dashboard"))
    assert "<b>Bob</b>" not in page
    assert "Hi &lt;b&gt;Bob&lt;/b&gt;" in page


@pytest.mark.parametrize(
    "name",
    ["Bob\x07Baker", "Bob\x1b[31mBaker", "Bob\u202eBaker"],  # NUL: test_bad_input.py
    ids=["bell", "ansi-escape", "rtl-override"],
)
def test_name_with_control_characters_is_refused(app, signup, name):
    response = signup(name=name, email="bob@example.com")

    assert response.status_code == 400
    errors = read_form(response).field_errors.get("name", [])
    assert any("control characters" in error for error in errors), errors
    assert_nothing_created(app)


def test_oversized_name_is_refused(app, signup):
    response = signup(name="B" * 101, email="bob@example.com")

    assert response.status_code == 400
    assert read_form(response).field_errors.get("name")
    assert_nothing_created(app)


# --- typed referral codes ------------------------------------------------------------------


def test_unknown_typed_referral_code_refuses_the_signup(app, signup):
    response = signup(name="Bob Baker", email="bob@example.com", referral_code="ZZZZZZ")

    assert 400 <= response.status_code < 500
    form = read_form(response)
    errors = form.field_errors.get("referral_code", [])
    assert any("don't know this referral code" in error for error in errors), errors
    assert form.values["referral_code"] == "ZZZZZZ"
    assert_nothing_created(app)


def test_disabled_typed_referral_code_refuses_the_signup(app, signup, make_participant):
    alice = make_participant("Alice Zimmer")
    with app.app_context():
        db.session.execute(
            update(ReferralCode).where(ReferralCode.code == alice["code"]).values(status="disabled")
        )
        db.session.commit()

    response = signup(name="Bob Baker", email="bob@example.com", referral_code=alice["code"])

    assert 400 <= response.status_code < 500
    errors = read_form(response).field_errors.get("referral_code", [])
    assert any("don't know this referral code" in error for error in errors), errors
    assert_nothing_created(app, before_users=1, before_codes=1)


def test_code_of_deactivated_inviter_refuses_the_signup(app, signup, make_participant):
    alice = make_participant("Alice Zimmer")
    set_active(app, alice["id"], False)

    response = signup(name="Bob Baker", email="bob@example.com", referral_code=alice["code"])

    assert 400 <= response.status_code < 500
    assert read_form(response).field_errors.get("referral_code")
    assert_nothing_created(app, before_users=1, before_codes=1)


@pytest.mark.parametrize(
    "typed", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "<script>"]
)
def test_malformed_referral_code_is_not_reflected_as_markup(app, signup, typed):
    response = signup(name="Bob Baker", email="bob@example.com", referral_code=typed)

    assert 400 <= response.status_code < 500
    page = text_of(response)
    assert typed not in page
    assert "<img src=x" not in page
    form = read_form(response)
    assert form.values["referral_code"] == typed  # shown back as text inside the value
    assert form.field_errors.get("referral_code")
    assert_nothing_created(app)


# --- CSRF and methods ----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "not-a-real-token"], ids=["missing", "forged"])
def test_signup_without_valid_csrf_token_is_refused(app, client, token):
    client.get("/auth/signup")  # a session exists, as it would in a browser
    data = {"name": "Bob Baker", "email": "bob@example.com", "password": PASSWORD}
    if token:
        data["csrf_token"] = token

    response = client.post("/auth/signup", data=data)

    assert response.status_code == 400
    assert "Bad request" in text_of(response)
    assert_nothing_created(app)
    assert not is_logged_in(client)


@pytest.mark.parametrize("token", [None, "not-a-real-token"], ids=["missing", "forged"])
def test_login_without_valid_csrf_token_is_refused(app, client, make_participant, token):
    alice = make_participant("Alice Zimmer")
    client.get("/auth/login")
    data = {"email": alice["email"], "password": PASSWORD}
    if token:
        data["csrf_token"] = token

    response = client.post("/auth/login", data=data)

    assert response.status_code == 400
    assert "Bad request" in text_of(response)
    assert not is_logged_in(client)


@pytest.mark.parametrize("token", [None, "not-a-real-token"], ids=["missing", "forged"])
def test_logout_without_valid_csrf_token_is_refused(app, client, signup, token):
    assert signup().status_code == 302
    data = {"csrf_token": token} if token else {}

    response = client.post("/auth/logout", data=data)

    assert response.status_code == 400
    assert is_logged_in(client)


def test_logout_by_get_is_not_allowed(app, client, signup):
    assert signup().status_code == 302

    response = client.get("/auth/logout")

    assert response.status_code == 405
    assert "POST" in response.headers.get("Allow", "")
    assert is_logged_in(client)


# --- login ---------------------------------------------------------------------------------


def test_wrong_password_and_unknown_email_look_the_same(app, client, make_participant):
    alice = make_participant("Alice Zimmer")

    wrong_password = login_with(client, alice["email"], "not the right password")
    unknown_email = login_with(client, "nobody@example.com", "not the right password")

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert read_form(wrong_password).alerts == read_form(unknown_email).alerts
    assert read_form(wrong_password).alerts == [INVALID_CREDENTIALS]
    assert read_form(wrong_password).field_errors == read_form(unknown_email).field_errors
    assert not is_logged_in(client)


def test_login_email_is_case_insensitive(app, client, make_participant):
    alice = make_participant("Alice Zimmer")

    response = login_with(client, alice["email"].upper())

    assert response.status_code == 302
    assert is_logged_in(client)


def test_login_success_follows_local_next(app, client, make_participant):
    alice = make_participant("Alice Zimmer")

    response = login_with(client, alice["email"], query={"next": "/referral/leaderboard"})

    assert response.status_code == 302
    assert response.headers["Location"] in (
        "/referral/leaderboard",
        "http://inviteloop.test/referral/leaderboard",
    )
    assert is_logged_in(client)


def test_login_page_reached_from_dashboard_returns_there(app, client, make_participant):
    alice = make_participant("Alice Zimmer")
    bounced = client.get("/referral/dashboard")
    assert bounced.status_code == 302
    login_page = bounced.headers["Location"]

    token = csrf_token(client, login_page)
    response = client.post(
        login_page, data={"csrf_token": token, "email": alice["email"], "password": PASSWORD}
    )

    assert response.status_code == 302
    assert location_path(response) == "/referral/dashboard"


@pytest.mark.parametrize("role", ["operator", "marketer", "manager", "admin"])
def test_staff_land_in_the_panel_unless_next_says_otherwise(app, client, role):
    """docs/guarantees.md #29: any staff role lands on /admin/ after signing in."""
    with app.app_context():
        person = factories.staff(role)

    response = login_with(client, person["email"])

    assert response.status_code == 302 and location_path(response) == "/admin/"
    assert client.get("/admin/").status_code == 200
    # Already signed in: the login page sends them to the panel too.
    assert location_path(client.get("/auth/login")) == "/admin/"
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    elsewhere = login_with(client, person["email"], query={"next": "/referral/leaderboard"})
    assert location_path(elsewhere) == "/referral/leaderboard"


def test_participants_still_land_on_their_dashboard(app, client, make_participant):
    alice = make_participant("Alice Zimmer")
    assert location_path(login_with(client, alice["email"])) == "/referral/dashboard"
    assert location_path(client.get("/auth/login")) == "/referral/dashboard"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "///evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
    ],
)
def test_login_ignores_off_site_next(app, client, make_participant, target):
    alice = make_participant("Alice Zimmer")

    response = login_with(client, alice["email"], query={"next": target})

    assert response.status_code == 302
    assert location_path(response) == "/referral/dashboard"
    assert "evil" not in response.headers["Location"]
    assert is_logged_in(client)


def _set_cookie_names(response) -> list[str]:
    return [header.split("=", 1)[0] for header in response.headers.getlist("Set-Cookie")]


def test_remember_me_sets_a_lasting_cookie(app, client, make_participant):
    alice = make_participant("Alice Zimmer")

    forgetful = login_with(app.test_client(), alice["email"])
    assert forgetful.status_code == 302
    assert "remember_token" not in _set_cookie_names(forgetful)

    response = login_with(client, alice["email"], remember="y")

    assert response.status_code == 302
    assert "remember_token" in _set_cookie_names(response)
    cookie = client.get_cookie("remember_token")
    assert cookie is not None and cookie.expires is not None

    # A browser restarted with only the remember cookie is still signed in.
    returning = app.test_client()
    returning.set_cookie("remember_token", cookie.value)
    assert is_logged_in(returning)


def test_logout_ends_the_session(app, client, make_participant):
    alice = make_participant("Alice Zimmer")
    assert login_with(client, alice["email"], remember="y").status_code == 302
    assert is_logged_in(client)

    response = client.post("/auth/logout", data={"csrf_token": logout_token(client)})

    assert response.status_code == 302
    assert location_path(response) == "/"
    assert "You are logged out." in text_of(client.get("/"))
    assert not is_logged_in(client)  # neither the session nor the remember cookie survive


def test_deactivated_user_loses_access_and_cannot_log_in(app, client, make_participant):
    alice = make_participant("Alice Zimmer")
    assert login_with(client, alice["email"], remember="y").status_code == 302
    assert is_logged_in(client)

    set_active(app, alice["id"], False)

    assert not is_logged_in(client)
    response = login_with(client, alice["email"])
    assert response.status_code == 401
    assert read_form(response).alerts == [INVALID_CREDENTIALS]
    assert not is_logged_in(client)


# --- throttling ----------------------------------------------------------------------------


def test_failed_logins_for_one_account_are_throttled_per_address(app, client, make_participant):
    alice = make_participant("Alice Zimmer")
    allowed = smallest_limit(app.config["LOGIN_ACCOUNT_LIMITS"])
    attacker = "198.51.100.66"

    for _ in range(allowed):
        failed = login_with(client, alice["email"], "guess guess guess", ip=attacker)
        assert failed.status_code == 401

    blocked = login_with(client, alice["email"], "guess guess guess", ip=attacker)
    assert blocked.status_code == 429
    assert TOO_MANY in text_of(blocked)
    # Changing the spelling of the email or claiming another address does not help.
    spelled = login_with(client, alice["email"].upper(), "guess again", ip=attacker)
    assert spelled.status_code == 429
    forged = login_with(
        client, alice["email"], PASSWORD, ip=attacker, headers={"X-Forwarded-For": "192.0.2.99"}
    )
    assert forged.status_code == 429
    assert not is_logged_in(client)

    owner = app.test_client()
    response = login_with(owner, alice["email"], PASSWORD, ip="203.0.113.7")
    assert response.status_code == 302
    assert is_logged_in(owner)


@pytest.mark.parametrize("config_overrides", [{"LOGIN_LIMITS": "3/minute"}], ids=["3-per-min"])
def test_failed_logins_from_one_address_are_throttled(app, client, make_participant):
    alice = make_participant("Alice Zimmer")
    attacker = "198.51.100.66"

    for number in range(3):
        failed = login_with(client, f"victim{number}@example.com", "guess guess", ip=attacker)
        assert failed.status_code == 401

    blocked = login_with(client, alice["email"], PASSWORD, ip=attacker)
    assert blocked.status_code == 429
    assert TOO_MANY in text_of(blocked)
    assert not is_logged_in(client)

    owner = app.test_client()
    assert login_with(owner, alice["email"], PASSWORD, ip="203.0.113.7").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_LIMITS": "3/minute"}], ids=["3-per-min"])
def test_signup_flood_is_throttled(app):
    ip = "198.51.100.23"
    for number in range(3):
        browser = app.test_client()
        response = signup_with(
            browser,
            ip=ip,
            name=f"Bot Number{number}",
            email=f"bot{number}@example.com",
            password=PASSWORD,
        )
        assert response.status_code == 302

    response = signup_with(
        app.test_client(), ip=ip, name="Bot Four", email="bot4@example.com", password=PASSWORD
    )

    assert response.status_code == 429
    assert TOO_MANY in text_of(response)
    assert count(app, User) == 3
    assert count(app, User, User.email == "bot4@example.com") == 0

    other = signup_with(
        app.test_client(),
        ip="203.0.113.7",
        name="Real Person",
        email="real@example.com",
        password=PASSWORD,
    )
    assert other.status_code == 302


def test_signup_reports_every_mistake_in_one_submit(app, make_participant, signup):
    # The three mistakes that took three submits (issue 13): a weak password, a code nobody
    # has and a registered email, plus an empty name. The taken email is said, as it always
    # was on this page (it offers to log in instead); nothing else about the account shows.
    make_participant("Bob Baker", email="bob@example.com")
    response = signup(
        name="", email="bob@example.com", password="password", referral_code="NOPE1234"
    )

    assert response.status_code == 400
    errors = read_form(response).field_errors
    assert errors["name"] == ["This field is required."]
    assert errors["email"] == ["This email is already registered. Log in instead."]
    assert errors["password"] == ["This is one of the most common passwords; choose another."]
    assert errors["referral_code"] == [
        "We don't know this referral code. Check it, or leave the field empty."
    ]
    assert count(app, User) == 1


def test_signup_with_only_an_unknown_code_keeps_its_own_status(app, signup):
    response = signup(name="Bob Baker", referral_code="NOPE1234")
    assert response.status_code == 422
    assert list(read_form(response).field_errors) == ["referral_code"]
    assert_nothing_created(app)
