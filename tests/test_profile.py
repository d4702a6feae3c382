"""The profile page: name and public name, leaving and rejoining the public leaderboard,
changing the password while signed in (docs/guarantees.md #27); a phone participant adds an
email and password, an email participant adds (or changes) a phone number they prove they
hold; taken ones are refused unchanged."""

import pytest
from sqlalchemy import select

from extensions import db
from models import User
from tests.factories import PASSWORD
from tests.helpers import (
    count,
    is_logged_in,
    location_path,
    log_in,
    read_form,
    take_outbox,
    text_of,
)
from tests.phone_sign_in import (
    NUMBER,
    OTHER_NUMBER,
    enter_code,
    last_code,
    phone_participant,
    request_code,
    sign_in,
    texts,
    wrong,
)

# The console SMS backend's log lines carry the codes these tests type (conftest.sms_log).
pytestmark = pytest.mark.usefixtures("sms_log")

TAKEN_PHONE = "This phone number belongs to another account."


@pytest.fixture
def config_overrides():
    # The numbers' sending limits are tested with phone sign-in; here one number gets a code
    # for the profile and then one to sign in, within the same minute.
    # The password notice is read from the locmem outbox; wrong current passwords run into
    # the account's failure budget after three.
    return {
        "PHONE_CODE_NUMBER_LIMITS": "1000/minute",
        "MAIL_BACKEND": "locmem",
        "LOGIN_FAILURE_LIMITS": "3/minute;5/hour",
    }


def token_of(client, path="/auth/profile") -> str:
    return read_form(client.get(path)).values["csrf_token"]


def add_email(client, email, password=PASSWORD):
    data = {"csrf_token": token_of(client), "email": email, "password": password}
    return client.post("/auth/profile/email", data=data)


def add_phone(client, number):
    data = {"csrf_token": token_of(client), "phone": number}
    return client.post("/auth/profile/phone", data=data)


def confirm_phone(client, code):
    token = token_of(client, "/auth/profile/phone/verify")
    return client.post("/auth/profile/phone/verify", data={"csrf_token": token, "code": code})


def account(app, user_id) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


@pytest.fixture
def alice(make_participant, client):
    person = make_participant("Alice Zimmer")
    assert log_in(client, person["email"]).status_code == 302
    return person


@pytest.fixture
def pat(app, client, sms_log):
    """A participant who signed up by phone, signed in in `client`."""
    assert sign_in(client, sms_log, name="Pat Phone").status_code == 302
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.phone == NUMBER))


def test_the_profile_needs_a_login(client):
    response = client.get("/auth/profile")
    assert response.status_code == 302
    assert location_path(response) == "/auth/login"


def test_the_profile_shows_name_email_and_phone(client, alice):
    page = text_of(client.get("/auth/profile"))
    assert 'href="/auth/profile"' in page  # the navigation links to it
    assert "Alice Zimmer" in page and alice["email"] in page
    assert "Add a phone number" in page
    assert "Add an email and password" not in page  # she has both already


# --- a phone participant adds an email and password -----------------------------------------


def test_a_phone_participant_adds_an_email_and_logs_in_with_it(app, client, pat):
    page = text_of(client.get("/auth/profile"))
    assert "Pat Phone" in page and "+1 415-555-0132" in page
    assert "Add an email and password" in page

    done = add_email(client, "Pat.Phone@Example.com")

    assert done.status_code == 302
    assert "Email and password saved" in text_of(client.get("/auth/profile"))
    saved = account(app, pat)
    assert (saved.email, saved.email_canonical) == (
        "pat.phone@example.com",
        "pat.phone@example.com",
    )
    other = app.test_client()
    assert log_in(other, "pat.phone@example.com").status_code == 302
    assert "Hi Pat Phone" in text_of(other.get("/referral/dashboard"))


def test_a_taken_email_is_refused_and_nothing_changes(app, client, make_participant, pat):
    make_participant("Alice Zimmer", email="alice@example.com")

    response = add_email(client, "ALICE@example.com")

    assert response.status_code == 409
    page = read_form(response)
    assert page.field_errors["email"] == ["This email is already registered. Log in instead."]
    assert page.values["email"] == "ALICE@example.com"
    saved = account(app, pat)
    assert (saved.email, saved.password_hash) == (None, None)
    assert log_in(app.test_client(), "alice@example.com").status_code == 302  # hers intact


def test_a_taken_email_and_a_weak_password_are_reported_together(
    app, client, make_participant, pat
):
    make_participant("Alice Zimmer", email="alice@example.com")

    errors = read_form(add_email(client, "alice@example.com", password="password")).field_errors

    assert errors == {
        "email": ["This email is already registered. Log in instead."],
        "password": ["This is one of the most common passwords; choose another."],
    }
    assert account(app, pat).email is None


def test_a_weak_password_is_refused_and_nothing_changes(app, client, pat):
    response = add_email(client, "pat@example.com", password="password")

    assert response.status_code == 400
    assert read_form(response).field_errors["password"] == [
        "This is one of the most common passwords; choose another."
    ]
    saved = account(app, pat)
    assert (saved.email, saved.password_hash) == (None, None)


# --- an email participant adds a verified phone ---------------------------------------------


def test_an_email_participant_adds_a_phone_then_signs_in_with_it(app, client, alice, sms_log):
    sent = add_phone(client, "(415) 555-0132")
    assert sent.status_code == 302
    assert location_path(sent) == "/auth/profile/phone/verify"
    assert "+1 415-555-0132" in text_of(client.get("/auth/profile/phone/verify"))
    assert account(app, alice["id"]).phone is None  # not before the code comes back

    done = confirm_phone(client, last_code(sms_log))

    assert done.status_code == 302
    assert location_path(done) == "/auth/profile"
    assert "+1 415-555-0132" in text_of(client.get("/auth/profile"))
    assert account(app, alice["id"]).phone == NUMBER
    phone_browser = app.test_client()
    assert sign_in(phone_browser, sms_log).status_code == 302
    assert "Hi Alice Zimmer" in text_of(phone_browser.get("/referral/dashboard"))
    assert count(app, User) == 1


def test_the_profile_phone_forms_say_what_is_wrong_and_send_nothing(app, client, alice, sms_log):
    """docs/guarantees.md #33: the number is checked on the form, and a code that cannot be
    one is refused without spending a try."""
    refused = add_phone(client, "12")
    assert refused.status_code == 400
    assert "This is not a valid phone number" in read_form(refused).field_errors["phone"][0]
    assert texts(sms_log) == []

    add_phone(client, NUMBER)
    response = confirm_phone(client, "abcdef")
    assert read_form(response).field_errors["code"] == [
        "The code is the 6 digits of the text message."
    ]
    assert confirm_phone(client, last_code(sms_log)).status_code == 302
    assert account(app, alice["id"]).phone == NUMBER


def test_a_wrong_code_saves_no_phone(app, client, alice, sms_log):
    add_phone(client, NUMBER)

    response = confirm_phone(client, wrong(last_code(sms_log)))

    assert response.status_code == 400
    assert read_form(response).field_errors["code"] == [
        "This code is not valid. Check the text message, or request a new code."
    ]
    assert account(app, alice["id"]).phone is None


def test_a_number_of_another_account_is_refused_after_the_code(app, client, alice, sms_log):
    phone_participant(app, NUMBER, name="Pat Phone")

    sent = add_phone(client, NUMBER)
    assert sent.status_code == 302  # no hint before the code proves the number is hers
    response = confirm_phone(client, last_code(sms_log))

    assert response.status_code == 409
    assert read_form(response).alerts == [TAKEN_PHONE]
    assert account(app, alice["id"]).phone is None
    pat_browser = app.test_client()
    assert sign_in(pat_browser, sms_log).status_code == 302  # the number still signs in Pat
    assert "Hi Pat Phone" in text_of(pat_browser.get("/referral/dashboard"))


def test_a_participant_changes_their_number(app, client, pat, sms_log):
    add_phone(client, OTHER_NUMBER)
    assert confirm_phone(client, last_code(sms_log, OTHER_NUMBER)).status_code == 302
    assert account(app, pat).phone == OTHER_NUMBER


def test_their_own_number_again_is_refused(app, client, pat, sms_log):
    sent_before = len(texts(sms_log))
    response = add_phone(client, "+1 415 555 0132")
    assert response.status_code == 400
    assert read_form(response).field_errors["phone"] == ["This is already your phone number."]
    assert len(texts(sms_log)) == sent_before


def test_codes_for_adding_and_for_signing_in_do_not_mix(app, client, alice, sms_log):
    add_phone(client, NUMBER)
    profile_code = last_code(sms_log)
    stranger = app.test_client()
    request_code(stranger, NUMBER)
    sign_in_code = last_code(sms_log)
    if profile_code == sign_in_code:  # one chance in a million
        pytest.skip("both codes drawn the same")

    assert enter_code(stranger, profile_code).status_code == 400
    assert confirm_phone(client, sign_in_code).status_code == 400
    assert not is_logged_in(stranger)
    assert account(app, alice["id"]).phone is None


# --- signing out everywhere else ------------------------------------------------------------


def test_signing_out_everywhere_else_keeps_only_this_browser(app, client, alice):
    elsewhere = app.test_client()
    assert log_in(elsewhere, alice["email"], remember="y").status_code == 302
    remembered = elsewhere.get_cookie("remember_token")
    assert remembered is not None

    response = client.post("/auth/profile/sessions", data={"csrf_token": token_of(client)})

    assert response.status_code == 302
    assert "signed out on every other device" in text_of(client.get("/auth/profile"))
    assert is_logged_in(client)
    assert not is_logged_in(elsewhere)  # its session and its remember-me cookie are void
    cookie_only = app.test_client()
    cookie_only.set_cookie("remember_token", remembered.value)
    assert not is_logged_in(cookie_only)


def test_signing_out_everywhere_needs_a_csrf_token(app, client, alice):
    elsewhere = app.test_client()
    assert log_in(elsewhere, alice["email"]).status_code == 302

    assert client.post("/auth/profile/sessions").status_code == 400

    assert is_logged_in(elsewhere)


def test_the_profile_offers_the_data_download_and_deletion(client, alice):
    page = text_of(client.get("/auth/profile"))
    assert "Your data" in page
    assert 'href="/auth/profile/data"' in page and 'href="/auth/profile/delete"' in page
    confirm = text_of(client.get("/auth/profile/delete"))
    # The rule for money is stated before anyone confirms (docs/guarantees.md #23).
    assert "Rewards not yet paid out" in confirm and "payout request" in confirm


# --- name, public name and the leaderboard (docs/guarantees.md #27) -------------------------


def change_details(client, **fields):
    return client.post("/auth/profile/details", data={"csrf_token": token_of(client), **fields})


def choose_board(client, show):
    return client.post(
        "/auth/profile/leaderboard", data={"csrf_token": token_of(client), "show": show}
    )


def board_names(client, period="all") -> list[str]:
    rows = client.get(f"/api/v1/leaderboard?period={period}").json["rows"]
    return [row["display_name"] for row in rows]


def test_a_participant_changes_name_and_public_name(app, client, alice, make_participant):
    make_participant("Friend One", invited_by=alice["code"])
    assert board_names(client) == ["Alice Z."]  # cached now

    response = change_details(client, name="  Alice   Zimmermann ", display_name="Ally")
    assert location_path(response) == "/auth/profile"
    page = text_of(client.get("/auth/profile"))
    assert "The leaderboard shows you as Ally." in page
    assert account(app, alice["id"]).name == "Alice Zimmermann"
    assert board_names(client) == ["Ally"]  # the cached page made way

    change_details(client, name="Alice Zimmermann", display_name="")
    assert account(app, alice["id"]).display_name is None
    assert board_names(client) == ["Alice Z."]  # back to the rule: first name and initial


def test_bad_details_are_all_reported_and_nothing_changes(app, client, alice):
    response = change_details(client, name="", display_name="x" * 61)
    assert response.status_code == 400
    errors = read_form(response).field_errors
    assert errors["name"] == ["This field is required."]
    assert errors["display_name"] == ["Field cannot be longer than 60 characters."]
    response = change_details(client, name="Alice\x07Bell", display_name="Bad\x00")
    assert response.status_code == 400
    user = account(app, alice["id"])
    assert (user.name, user.display_name) == ("Alice Zimmer", None)


def test_leaving_and_rejoining_the_leaderboard(app, client, alice, make_participant):
    bob = make_participant("Bob Young")
    make_participant("Friend One", invited_by=alice["code"])
    make_participant("Friend Two", invited_by=alice["code"])
    make_participant("Friend Three", invited_by=bob["code"])
    assert board_names(client) == ["Alice Z.", "Bob Y."]

    assert location_path(choose_board(client, "no")) == "/auth/profile"
    assert "You left the public leaderboard" in text_of(client.get("/auth/profile"))
    for period in ("all", "month", "week"):
        rows = client.get(f"/api/v1/leaderboard?period={period}").json["rows"]
        assert rows == [{"rank": 1, "display_name": "Bob Y.", "referrals": 1}], period
    board = text_of(client.get("/referral/leaderboard"))
    assert "Alice Z." not in board and "You have left the public board" in board
    # Her referrals still count where she sees them.
    assert account(app, alice["id"]).referral_count == 2

    choose_board(client, "yes")
    assert "You are back on the public leaderboard" in text_of(client.get("/auth/profile"))
    assert board_names(client) == ["Alice Z.", "Bob Y."]
    assert "You are <strong>#1</strong> with 2 referrals" in text_of(
        client.get("/referral/leaderboard")
    )


def test_a_forged_leaderboard_choice_changes_nothing(app, client, alice):
    assert choose_board(client, "maybe").status_code == 302
    assert account(app, alice["id"]).on_leaderboard is True
    assert client.post("/auth/profile/leaderboard", data={"show": "no"}).status_code == 400
    assert account(app, alice["id"]).on_leaderboard is True


# --- changing the password while signed in (docs/guarantees.md #27) ------------------------

NEW_PASSWORD = "a brand new passphrase 42"


def change_password(client, current, new):
    data = {"csrf_token": token_of(client), "current_password": current, "new_password": new}
    return client.post("/auth/profile/password", data=data)


def test_changing_the_password_signs_out_other_devices_and_tells_the_owner(app, client, alice):
    elsewhere = app.test_client()
    assert log_in(elsewhere, alice["email"], remember="y").status_code == 302
    take_outbox(app)

    response = change_password(client, PASSWORD, NEW_PASSWORD)

    assert location_path(response) == "/auth/profile"
    assert "Password changed." in text_of(client.get("/auth/profile"))
    assert is_logged_in(client)  # this browser stays signed in
    assert not is_logged_in(elsewhere)
    [notice] = take_outbox(app)
    assert notice.to == [alice["email"]]
    assert notice.subject == "Your InviteLoop password was changed"
    assert "from your profile, by someone who typed the current password" in notice.body
    assert "/auth/reset" in notice.body
    assert log_in(app.test_client(), alice["email"], NEW_PASSWORD).status_code == 302
    assert log_in(app.test_client(), alice["email"], PASSWORD).status_code != 302


def test_a_wrong_current_and_a_weak_new_password_are_both_reported(app, client, alice):
    before = account(app, alice["id"]).password_hash
    take_outbox(app)

    response = change_password(client, "not my password", "password")

    assert response.status_code == 403  # the first refusal's own status
    errors = read_form(response).field_errors
    assert errors["current_password"] == ["This is not your current password."]
    assert errors["new_password"] == ["This is one of the most common passwords; choose another."]
    same = read_form(change_password(client, PASSWORD, PASSWORD)).field_errors
    assert same == {"new_password": ["Choose a password different from your current one."]}
    assert account(app, alice["id"]).password_hash == before
    assert take_outbox(app) == []
    assert is_logged_in(client)


def test_wrong_current_passwords_count_like_failed_logins(app, client, alice):
    # Three wrong guesses are allowed a minute (config_overrides), then the account waits.
    for _ in range(3):
        assert change_password(client, "not my password", NEW_PASSWORD).status_code == 403
    response = change_password(client, PASSWORD, NEW_PASSWORD)  # even the right one, now
    assert response.status_code == 429
    assert "Too many wrong passwords" in read_form(response).field_errors["current_password"][0]
    assert log_in(app.test_client(), alice["email"]).status_code == 429


def test_a_phone_participant_without_a_password_is_not_offered_the_change(client, pat):
    page = text_of(client.get("/auth/profile"))
    assert "Change your password" not in page
    assert change_password(client, "", NEW_PASSWORD).status_code == 400
