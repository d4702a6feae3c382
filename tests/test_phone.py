"""Signing in with a phone number and a one-time code: numbers from several countries, the
console and HTTP SMS backends, wrong / expired / reused codes, too many attempts, rate limits,
the same answer for registered and unregistered numbers, referral attribution on first use.

Codes are read where a developer reads them: the console backend's log line.
"""

import json
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from auth import phone
from core import outbox
from extensions import db
from models import OutboxMessage, PhoneCode, Referral, User, utcnow
from tests.helpers import (
    count,
    is_logged_in,
    location_path,
    read_form,
    set_active,
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
from tests.receiver import Receiver
from tests.server import free_port

INVALID = "This is not a valid phone number"
WRONG = "This code is not valid. Check the text message, or request a new code."
GENEROUS = "1000/minute"


# The console SMS backend's log lines carry the codes these tests type (conftest.sms_log).
pytestmark = pytest.mark.usefixtures("sms_log")


# --- reading the database ------------------------------------------------------------------


def user_with_phone(app, number):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.phone == number))
        if user is not None:
            db.session.expunge(user)
        return user


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+44 20 7946 0018", "US", "+442079460018"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("+49 30 901820", "US", "+4930901820"),
        ("(415) 555-0132", "US", "+14155550132"),
        ("415.555.0132", "US", "+14155550132"),
        ("+33 1 23 45 67 89", "US", "+33123456789"),
        ("+81 3-1234-5678", "US", "+81312345678"),
        ("+91 98765 43210", "US", "+919876543210"),
        ("+55 11 91234-5678", "US", "+5511912345678"),
        ("+61 2 9876 5432", "GB", "+61298765432"),
    ],
)
def test_numbers_are_stored_in_e164(raw, region, e164):
    assert phone.normalize_phone(raw, region) == e164


@pytest.mark.parametrize(
    "raw", ["", "   ", "hello", "12345", "+1 555 555 5555", "+44 20 7946 001", "+999 1234567"]
)
def test_invalid_numbers_are_refused(raw):
    with pytest.raises(phone.InvalidPhone, match=INVALID):
        phone.normalize_phone(raw, "US")


def test_a_national_number_is_read_in_the_default_region(app, client, sms_log):
    app.config["PHONE_DEFAULT_REGION"] = "GB"

    response = request_code(client, "020 7946 0018")

    assert response.status_code == 302
    assert [to for to, _ in texts(sms_log)] == ["+442079460018"]


def test_an_invalid_number_is_refused_on_the_form_and_nothing_is_sent(app, client, sms_log):
    response = request_code(client, "+1 555 555 5555", name="Zed")

    assert response.status_code == 400
    page = read_form(response)
    assert INVALID in page.field_errors["phone"][0]
    assert page.values["phone"] == "+1 555 555 5555"  # kept as typed
    assert page.values["name"] == "Zed"
    assert texts(sms_log) == []
    assert count(app, PhoneCode) == 0


def test_every_mistake_on_the_phone_form_is_shown_after_one_submit(app, client, sms_log):
    """docs/guarantees.md #33: number, name and referral code are all checked at once."""
    response = request_code(client, "12", name="Zed\x07", referral_code="NOSUCH99")

    assert response.status_code == 400
    errors = read_form(response).field_errors
    assert INVALID in errors["phone"][0]
    assert errors["name"] == ["Enter your name without control characters."]
    assert errors["referral_code"] == [
        "We don't know this referral code. Check it, or leave the field empty."
    ]
    assert texts(sms_log) == []
    assert count(app, PhoneCode) == 0


def test_a_code_that_cannot_be_one_is_refused_without_spending_a_try(app, client, sms_log):
    """docs/guarantees.md #33: letters or too few digits say what a code looks like."""
    request_code(client, NUMBER)
    code = last_code(sms_log)

    for typed in ("12a456", "12345"):
        response = enter_code(client, typed)
        assert response.status_code == 400
        assert read_form(response).field_errors["code"] == [
            "The code is the 6 digits of the text message."
        ]
    with app.app_context():
        assert db.session.scalar(select(PhoneCode.attempts)) == 0
    assert enter_code(client, f"{code[:3]} {code[3:]}").status_code == 302  # spaces are fine


# --- the happy path --------------------------------------------------------------------------


def test_first_sign_in_creates_the_participant_with_their_code(app, client, sms_log):
    sent = request_code(client, "(415) 555-0132", name="Zoe Quinn")
    assert sent.status_code == 302
    assert location_path(sent) == "/auth/phone/verify"
    [(to, code)] = texts(sms_log)
    assert to == NUMBER
    verify_page = text_of(client.get("/auth/phone/verify"))
    assert "+1 415-555-0132" in verify_page

    done = enter_code(client, code)

    assert done.status_code == 302
    assert location_path(done) == "/referral/dashboard"
    user = user_with_phone(app, NUMBER)
    assert (user.name, user.email, user.password_hash) == ("Zoe Quinn", None, None)
    dashboard = client.get("/referral/dashboard")
    assert "Hi Zoe Quinn" in text_of(dashboard)
    assert "Your referral link is ready" in text_of(dashboard)
    with app.app_context():
        stored = db.session.scalar(select(PhoneCode))
        assert stored.code_hash != code and code not in stored.code_hash
        assert len(stored.code_hash) == 64
        assert stored.used_at is not None


def test_a_new_participant_without_a_name_gets_a_default_one(app, client, sms_log):
    assert sign_in(client, sms_log).status_code == 302
    assert user_with_phone(app, NUMBER).name == phone.DEFAULT_NAME


def test_a_returning_number_signs_in_to_the_same_account(app, client, sms_log):
    pat = phone_participant(app, name="Pat Phone")

    done = sign_in(client, sms_log, "415 555 0132", name="Someone Else")

    assert done.status_code == 302
    assert "Hi Pat Phone" in text_of(client.get("/referral/dashboard"))
    assert count(app, User) == 1
    assert user_with_phone(app, NUMBER).id == pat


def test_a_safe_next_is_followed_and_an_unsafe_one_ignored(app, sms_log):
    browser = app.test_client()
    request_code(browser, NUMBER, query={"next": "/rewards/"})
    done = enter_code(browser, last_code(sms_log), query={"next": "/rewards/"})
    assert location_path(done) == "/rewards/"

    other = app.test_client()
    request_code(other, OTHER_NUMBER, query={"next": "https://evil.example/"})
    done = enter_code(other, last_code(sms_log, OTHER_NUMBER), query={"next": "//evil.example"})
    assert location_path(done) == "/referral/dashboard"


def test_the_verify_page_without_a_pending_number_sends_back_to_the_first_step(client):
    response = client.get("/auth/phone/verify")
    assert response.status_code == 302
    assert location_path(response) == "/auth/phone"


def test_login_and_signup_pages_link_to_phone_sign_in(client):
    for path in ("/auth/login", "/auth/signup"):
        assert 'href="/auth/phone' in text_of(client.get(path))


# --- codes that do not work ------------------------------------------------------------------


def test_a_wrong_code_is_refused_and_counted(app, client, sms_log):
    request_code(client, NUMBER)
    code = last_code(sms_log)

    response = enter_code(client, wrong(code))

    assert response.status_code == 400
    assert read_form(response).field_errors["code"] == [WRONG]
    assert not is_logged_in(client)
    assert count(app, User) == 0
    with app.app_context():
        assert db.session.scalar(select(PhoneCode.attempts)) == 1
    assert enter_code(client, code).status_code == 302  # the right one still works


def test_an_expired_code_is_refused(app, client, sms_log):
    request_code(client, NUMBER)
    long_ago = utcnow() - timedelta(minutes=6)
    with app.app_context():
        db.session.execute(
            update(PhoneCode).values(created_at=long_ago, expires_at=long_ago + phone.CODE_TTL)
        )
        db.session.commit()

    response = enter_code(client, last_code(sms_log))

    assert response.status_code == 400
    assert read_form(response).field_errors["code"] == [
        "This code has expired. Request a new code."
    ]
    assert not is_logged_in(client)
    assert count(app, User) == 0


def test_a_code_works_once(app, client, sms_log):
    request_code(client, NUMBER)
    code = last_code(sms_log)
    # A second browser waiting for the same number (say, the session cookie was copied).
    replay = app.test_client()
    replay.set_cookie("session", client.get_cookie("session").value)

    assert enter_code(client, code).status_code == 302
    response = enter_code(replay, code)

    assert response.status_code == 400
    assert read_form(response).field_errors["code"] == [
        "This code has already been used. Request a new code."
    ]
    assert not is_logged_in(replay)


@pytest.mark.parametrize(
    "config_overrides", [{"PHONE_CODE_NUMBER_LIMITS": GENEROUS}], ids=["generous"]
)
def test_the_sixth_try_is_refused_even_with_the_right_code(app, client, sms_log):
    request_code(client, NUMBER)
    code = last_code(sms_log)
    for _ in range(phone.MAX_ATTEMPTS):
        assert enter_code(client, wrong(code)).status_code == 400

    response = enter_code(client, code)

    assert response.status_code == 429
    assert read_form(response).field_errors["code"] == [
        "Too many wrong tries for this code. Request a new code."
    ]
    assert not is_logged_in(client)
    # A new code starts afresh.
    request_code(client, NUMBER)
    assert enter_code(client, last_code(sms_log)).status_code == 302


@pytest.mark.parametrize(
    "config_overrides", [{"PHONE_CODE_NUMBER_LIMITS": GENEROUS}], ids=["generous"]
)
def test_a_new_code_replaces_the_one_before(app, client, sms_log):
    request_code(client, NUMBER)
    first = last_code(sms_log)
    request_code(client, NUMBER)
    second = last_code(sms_log)

    if first != second:  # one chance in a million that they are the same
        assert enter_code(client, first).status_code == 400
    assert enter_code(client, second).status_code == 302
    assert count(app, PhoneCode) == 1


# PostgreSQL only: SQLite takes the write lock at BEGIN, so the two uses cannot overlap there.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_verifications_of_one_code_cannot_both_pass(app):
    """The used mark is a conditional UPDATE: the second redemption, though it read and
    compared the code before the first one committed, finds the code used."""
    with app.app_context():
        issued = phone.issue_code(NUMBER)
        db.session.commit()
        code_id = phone.spend_attempt(NUMBER)
        db.session.commit()
    results = []
    barrier = threading.Barrier(2)

    def redeem():
        with app.app_context():
            try:
                db.session.get(PhoneCode, code_id)  # both have read the row...
                barrier.wait(timeout=10)
                phone.redeem(code_id, issued.code)  # ...before either marks it used
                db.session.commit()
                results.append("in")
            except phone.CodeUsed:
                db.session.rollback()
                results.append("used")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == ["in", "used"]


def test_a_deactivated_account_cannot_sign_in(app, client, sms_log):
    pat = phone_participant(app)
    set_active(app, pat, False)

    response = sign_in(client, sms_log)

    assert response.status_code == 400
    assert read_form(response).field_errors["code"] == [WRONG]
    assert not is_logged_in(client)


# --- what the first step reveals -----------------------------------------------------------


def _verify_page_without_secrets(client, number_shown) -> str:
    page = text_of(client.get("/auth/phone/verify"))
    page = re.sub(r'name="csrf_token"[^>]*value="[^"]+"', "", page)
    page = re.sub(r'value="[^"]*"', "", page)
    return page.replace(number_shown, "<number>")


def test_registered_and_unregistered_numbers_get_the_same_answer(app, sms_log):
    phone_participant(app, NUMBER)
    registered, unregistered = app.test_client(), app.test_client()

    first = request_code(registered, NUMBER, name="Ann")
    second = request_code(unregistered, OTHER_NUMBER, name="Ann")

    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert text_of(first) == text_of(second)
    assert _verify_page_without_secrets(registered, "+1 415-555-0132") == (
        _verify_page_without_secrets(unregistered, "+1 415-555-0199")
    )
    assert [to for to, _ in texts(sms_log)] == [NUMBER, OTHER_NUMBER]


# --- rate limits ---------------------------------------------------------------------------


def test_codes_to_one_number_are_limited_whatever_the_spelling_or_address(app, sms_log):
    assert request_code(app.test_client(), NUMBER, ip="198.51.100.1").status_code == 302

    again = request_code(app.test_client(), "+1 (415) 555-0132", ip="198.51.100.2")

    assert again.status_code == 429
    assert "Too many requests" in text_of(again)
    assert len(texts(sms_log)) == 1
    # Another number is not held back.
    assert request_code(app.test_client(), OTHER_NUMBER, ip="198.51.100.2").status_code == 302


def test_a_form_mistake_does_not_spend_the_numbers_budget(app, client, sms_log):
    refused = request_code(client, NUMBER, referral_code="NOSUCH")
    assert refused.status_code == 422
    assert read_form(refused).field_errors["referral_code"] == [
        "We don't know this referral code. Check it, or leave the field empty."
    ]
    assert texts(sms_log) == []

    assert request_code(client, NUMBER, referral_code="").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"PHONE_CODE_IP_LIMITS": "3/minute"}], ids=["3"])
def test_codes_from_one_address_are_limited(app, sms_log):
    ip = "198.51.100.9"
    numbers = ["+14155550101", "+14155550102", "+14155550103"]
    for number in numbers:
        assert request_code(app.test_client(), number, ip=ip).status_code == 302

    blocked = request_code(app.test_client(), "+14155550104", ip=ip)

    assert blocked.status_code == 429
    assert [to for to, _ in texts(sms_log)] == numbers
    assert request_code(app.test_client(), "+14155550104", ip="203.0.113.5").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"PHONE_VERIFY_LIMITS": "3/minute"}], ids=["3"])
def test_code_entries_from_one_address_are_limited(app, client, sms_log):
    request_code(client, NUMBER)
    code = last_code(sms_log)
    for _ in range(3):
        assert enter_code(client, wrong(code), ip="198.51.100.7").status_code == 400

    blocked = enter_code(client, code, ip="198.51.100.7")

    assert blocked.status_code == 429
    assert "Too many requests" in text_of(blocked)
    assert not is_logged_in(client)


# --- referrals through phone signup --------------------------------------------------------


def _referral_of_phone(app, number):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.phone == number))
        referral = db.session.scalar(select(Referral).where(Referral.referred_id == user.id))
        if referral is not None:
            db.session.expunge(referral)
        return referral


def test_a_link_click_then_phone_signup_credits_the_referrer(app, make_participant, sms_log):
    alice = make_participant("Alice Zimmer")
    visitor = app.test_client()
    assert visitor.get(f"/r/{alice['code']}").status_code == 302
    # The form comes with the code the cookie carries; the visitor leaves it as it is.
    form = read_form(visitor.get("/auth/phone"))
    assert form.values["referral_code"] == alice["code"]

    done = sign_in(visitor, sms_log, name="Bob Baker", referral_code=alice["code"])

    assert done.status_code == 302
    referral = _referral_of_phone(app, NUMBER)
    assert (referral.referrer_id, referral.source, referral.status) == (
        alice["id"],
        "link",
        "pending",
    )
    assert referral.clicked_at is not None


def test_the_cookie_alone_credits_the_referrer(app, make_participant, sms_log):
    alice = make_participant("Alice Zimmer")
    visitor = app.test_client()
    visitor.get(f"/r/{alice['code']}")

    assert sign_in(visitor, sms_log, referral_code="").status_code == 302

    referral = _referral_of_phone(app, NUMBER)
    assert (referral.referrer_id, referral.source) == (alice["id"], "link")


def test_a_typed_code_credits_the_referrer(app, client, make_participant, sms_log):
    alice = make_participant("Alice Zimmer")

    assert sign_in(client, sms_log, referral_code=alice["code"].lower()).status_code == 302

    referral = _referral_of_phone(app, NUMBER)
    assert (referral.referrer_id, referral.source) == (alice["id"], "code")
    with app.app_context():
        assert db.session.get(User, alice["id"]).referral_count == 1


def test_a_returning_number_is_not_referred_again(app, client, make_participant, sms_log):
    phone_participant(app, NUMBER)
    alice = make_participant("Alice Zimmer")

    assert sign_in(client, sms_log, referral_code=alice["code"]).status_code == 302

    assert count(app, Referral) == 0


# --- the HTTP backend ----------------------------------------------------------------------


class Provider(Receiver):
    """An SMS provider's API on 127.0.0.1: keeps each request, answers the scripted status."""

    def __init__(self, status=202, delay=0.0):
        super().__init__(status=status, delay=delay, path="/v1/messages")

    @property
    def messages(self) -> list[tuple[dict, dict]]:
        return [(headers, json.loads(body)) for headers, body in self.requests]


def use_provider(app, url, token="sms-token-123", timeout=5):
    app.config.update(
        SMS_BACKEND="http", SMS_HTTP_URL=url, SMS_HTTP_TOKEN=token, SMS_HTTP_TIMEOUT_SECONDS=timeout
    )


def test_the_http_backend_posts_json_with_the_bearer_token(app, client, sms_log):
    with Provider() as provider:
        use_provider(app, provider.url)
        sent = request_code(client, "+44 20 7946 0018")

    assert sent.status_code == 302
    [(headers, body)] = provider.messages
    assert headers["Authorization"] == "Bearer sms-token-123"
    assert headers["Content-Type"] == "application/json"
    assert body["to"] == "+442079460018"
    code = re.search(r"\b(\d{6})\b", body["body"]).group(1)
    assert texts(sms_log) == []  # nothing logged with the code
    assert enter_code(client, code).status_code == 302


def test_the_http_backend_without_a_token_sends_no_authorization(app, client):
    with Provider() as provider:
        use_provider(app, provider.url, token=None)
        assert request_code(client, NUMBER).status_code == 302
    [(headers, _)] = provider.requests
    assert "Authorization" not in headers


def code_texts(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.job == "auth.send_code_text")
        ).all()
        db.session.expunge_all()
        return rows


@pytest.mark.parametrize("answer", [500, 401, 302], ids=["500", "401", "redirect"])
def test_a_provider_refusing_delays_the_text_it_does_not_lose_it(app, client, answer):
    """The person goes on to the code page at once; the text is kept in the outbox and tried
    again while the code can be used (docs/guarantees.md no. 20)."""
    with Provider(status=answer) as provider:
        use_provider(app, provider.url)
        response = request_code(client, NUMBER, name="Ann")
        assert len(provider.requests) == 1
    assert response.status_code == 302
    assert location_path(response) == "/auth/phone/verify"
    [waiting] = code_texts(app)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert "SmsUnavailable" in waiting.last_error
    with Provider() as provider:  # the provider answers again: the next attempt gets through
        use_provider(app, provider.url)
        with app.app_context():
            assert outbox.retry_now(waiting.id)
            db.session.commit()
        [(_, body)] = provider.messages
    code = re.search(r"\b(\d{6})\b", body["body"]).group(1)
    assert enter_code(client, code).status_code == 302
    [sent] = code_texts(app)
    # Once sent, the code's text is not kept: only the code's id.
    assert (sent.status, sent.args) == ("sent", [waiting.args[0]])


def test_an_unreachable_or_slow_provider_holds_up_no_request_and_an_unusable_code_is_not_sent(
    app, client
):
    use_provider(app, f"http://127.0.0.1:{free_port()}/v1/messages")
    assert request_code(client, NUMBER).status_code == 302
    with Provider(delay=2) as provider:
        use_provider(app, provider.url, timeout=1)
        assert request_code(client, OTHER_NUMBER).status_code == 302
    first, replaced = code_texts(app)
    assert "SmsUnavailable" in first.last_error and "SmsUnavailable" in replaced.last_error
    # A code replaced by a newer one (or used, or expired) is not worth a text any more.
    with app.app_context():
        db.session.execute(delete(PhoneCode).where(PhoneCode.phone == OTHER_NUMBER))
        db.session.commit()
    with Provider() as provider:
        use_provider(app, provider.url)
        with app.app_context():
            assert outbox.retry_now(first.id) and outbox.retry_now(replaced.id)
            db.session.commit()
        assert [body["to"] for _, body in provider.messages] == [NUMBER]
    assert {row.status for row in code_texts(app)} == {"sent"}
