"""Every email the product promises goes out once, through the outbox, read here by content:
a friend joined (also once staff clear a held referral), a reward approved (also early, by
staff), a payout requested and paid, a referral rejected (when the program says so). People
choose which of them they get, and every one carries a one-click unsubscribe link that works
without signing in and is honoured. docs/guarantees.md #31."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from extensions import db
from models import EmailOptOut, Payout, Referral, Reward, User, utcnow
from referral import lifecycle
from rewards import ledger, review
from rewards.tasks import release_held
from tests import factories
from tests.helpers import (
    accepted_purchase,
    configure,
    csrf_token,
    log_in,
    referral_of,
    take_outbox,
)

PUBLIC_URL = "https://refer.example.com"
UNSUBSCRIBE = re.compile(re.escape(PUBLIC_URL) + r"/auth/emails/unsubscribe/[A-Za-z0-9_.\-]+")
SHARED_IP = "203.0.113.7"  # a friend signing up from the referrer's address is held (same_ip)


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem", "PUBLIC_URL": PUBLIC_URL, "PAYOUT_MINIMUM": 500}


@pytest.fixture
def rita(make_participant):
    return make_participant("Rita Referrer", email="rita@example.com", ip=SHARED_IP)


@pytest.fixture
def manager(app):
    with app.app_context():
        return factories.staff("manager")


def staff_client(app, person: dict):
    client = app.test_client()
    assert log_in(client, person["email"]).status_code == 302
    return client


def participant_client(app, person: dict):
    return staff_client(app, person)


def held_friend(make_participant, referrer: dict, name: str) -> dict:
    email = f"{name.replace(' ', '.').lower()}@example.com"
    return make_participant(name, email=email, invited_by=referrer["code"], ip=SHARED_IP)


def decide_referral(client, referral_id: int, **fields):
    data = {"csrf_token": csrf_token(client, "/admin/review"), "ids": [str(referral_id)], **fields}
    return client.post("/admin/review/referrals/decide", data=data)


def act(client, path: str, **fields):
    return client.post(path, data={"csrf_token": csrf_token(client, path), **fields})


def only_mail_to(app, email: str):
    """The one email sent since the last look, which must be to `email`."""
    [message] = take_outbox(app)
    assert message.to == [email]
    return message


def unsubscribe_link(message) -> str:
    """The link in the body, which must be the one in the RFC 8058 headers."""
    [link] = UNSUBSCRIBE.findall(message.body)
    assert message.extra_headers["List-Unsubscribe"] == f"<{link}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return link


def rewards_of(app, user_id: int) -> list[Reward]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Reward).where(Reward.beneficiary_id == user_id).order_by(Reward.id)
            )
        )


# --- each promised email, once ----------------------------------------------------------------


def test_a_friend_held_for_review_is_announced_once_staff_approve(
    app, rita, make_participant, manager
):
    fred = held_friend(make_participant, rita, "Fred Friend")
    assert take_outbox(app) == []  # held: not counted, nobody told yet
    referral_id = referral_of(app, fred["id"]).id
    staff = staff_client(app, manager)

    assert decide_referral(staff, referral_id, approve="1").status_code == 302

    message = only_mail_to(app, "rita@example.com")
    assert message.subject == "A friend joined InviteLoop through you"
    assert "Fred F. (f***@example.com) just joined" in message.body
    assert f"{PUBLIC_URL}/referral/dashboard" in message.body
    unsubscribe_link(message)
    # Approving again changes nothing and mails nobody.
    decide_referral(staff, referral_id, approve="1")
    assert take_outbox(app) == []


def test_a_reward_approved_early_by_staff_is_announced_once(app, make_participant, manager):
    rita = make_participant("Rita Referrer", email="rita@example.com")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    take_outbox(app)
    accepted_purchase(app, fred["email"], "o1")
    assert take_outbox(app) == []  # on hold: nothing to announce yet
    reward = rewards_of(app, rita["id"])[0]
    staff = staff_client(app, manager)
    path = f"/admin/rewards/{reward.id}/approve?status=pending"

    assert act(staff, path, confirm="y").status_code == 302

    message = only_mail_to(app, "rita@example.com")
    assert message.subject == "Your reward of $10.00 is approved"
    assert "Your credit reward of $10.00 is approved: thanks to Fred F." in message.body
    assert f"{PUBLIC_URL}/rewards/" in message.body
    unsubscribe_link(message)
    # A second click, and the hold's end later, find nothing left to approve.
    assert act(staff, path, confirm="y").status_code == 409
    with app.app_context():
        release_held.run()
        db.session.commit()
    assert take_outbox(app) == []


def approved_credit(app, make_participant) -> tuple[dict, dict]:
    """Rita with $10.00 of approved credit from Fred's purchase; no mail left to read."""
    rita = make_participant("Rita Referrer", email="rita@example.com")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    accepted_purchase(app, fred["email"], "o1")
    with app.app_context():
        reward = db.session.get(Reward, rewards_of(app, rita["id"])[0].id)
        ledger.approve_reward_early(reward, utcnow())
        db.session.commit()
    take_outbox(app)
    return rita, fred


def test_a_payout_request_is_confirmed_and_its_payment_announced_once(
    app, make_participant, manager
):
    rita, _ = approved_credit(app, make_participant)
    client = participant_client(app, rita)
    form = {"csrf_token": csrf_token(client, "/rewards/"), "kind": "credit", "currency": "USD"}

    assert client.post("/rewards/payouts", data=form).status_code == 302
    assert "We will email you once it is paid." in client.get("/rewards/").text
    requested = only_mail_to(app, "rita@example.com")
    with app.app_context():
        payout_id = db.session.scalar(select(Payout.id).where(Payout.user_id == rita["id"]))
    assert requested.subject == "We received your payout request for $10.00"
    assert f"pay out $10.00 of credit (request #{payout_id}" in requested.body
    assert "We will let you know once it is paid." in requested.body
    unsubscribe_link(requested)
    assert client.post("/rewards/payouts", data=form).status_code == 409  # already open
    assert take_outbox(app) == []

    staff = staff_client(app, manager)
    path = f"/admin/payouts/{payout_id}/pay"
    assert act(staff, path, confirm="y", reference="wire 7").status_code == 302
    paid = only_mail_to(app, "rita@example.com")
    assert paid.subject == "Your payout of $10.00 is paid"
    assert f"(request #{payout_id}) was paid on" in paid.body
    assert "Payment reference: wire 7." in paid.body
    assert act(staff, path, confirm="y", reference="wire 8").status_code == 409
    assert take_outbox(app) == []


def test_a_rejected_referral_is_mailed_only_when_the_program_says_so(
    app, rita, make_participant, manager
):
    staff = staff_client(app, manager)
    fred = held_friend(make_participant, rita, "Fred Friend")
    decide_referral(
        staff,
        referral_of(app, fred["id"]).id,
        reject="1",
        reason="one household",
        confirm_reject="y",
    )
    assert referral_of(app, fred["id"]).status == "rejected"
    assert take_outbox(app) == []  # off by default

    configure(app, notify_rejected=True)
    gina = held_friend(make_participant, rita, "Gina Guest")
    referral_id = referral_of(app, gina["id"]).id
    decide_referral(staff, referral_id, reject="1", reason="one household", confirm_reject="y")
    message = only_mail_to(app, "rita@example.com")
    assert message.subject == "A friend's signup did not count"
    assert "Gina G. signed up through your invitation" in message.body
    assert "household" not in message.body and "same" not in message.body  # no reason given
    unsubscribe_link(message)
    decide_referral(staff, referral_id, reject="1", reason="again", confirm_reject="y")
    assert take_outbox(app) == []


def test_a_signup_the_fraud_checks_reject_is_mailed_when_the_program_says_so(
    app, rita, make_participant
):
    configure(app, notify_rejected=True, reject_score=50)  # same_ip now refuses outright
    held_friend(make_participant, rita, "Fred Friend")
    message = only_mail_to(app, "rita@example.com")
    assert message.subject == "A friend's signup did not count"


# --- choices on the profile -------------------------------------------------------------------


def test_the_profile_lists_every_kind_on_and_saves_the_choices(app, make_participant):
    rita = make_participant("Rita Referrer", email="rita@example.com")
    client = participant_client(app, rita)
    page = client.get("/auth/profile").text
    for kind in ("friends", "rewards", "payouts", "news"):
        assert re.search(rf'name="{kind}" id="email-{kind}"[^>]*checked', page)
    assert "Emails about your password and sign-ins always come." in page

    token = csrf_token(client, "/auth/profile")
    saved = client.post("/auth/profile/emails", data={"csrf_token": token, "payouts": "on"})
    assert saved.status_code == 302
    page = client.get("/auth/profile").text
    assert "Your email choices are saved." in page
    assert re.search(r'name="payouts" id="email-payouts"[^>]*checked', page)
    assert not re.search(r'name="friends" id="email-friends"[^>]*checked', page)
    # Without the form's token, nothing changes.
    assert client.post("/auth/profile/emails", data={"friends": "on"}).status_code == 400
    with app.app_context():
        off = set(db.session.scalars(select(EmailOptOut.kind)))
    assert off == {"friends", "rewards", "news"}


def test_turned_off_kinds_are_not_sent_and_the_others_and_security_mail_are(app, make_participant):
    rita = make_participant("Rita Referrer", email="rita@example.com")
    client = participant_client(app, rita)
    token = csrf_token(client, "/auth/profile")
    client.post("/auth/profile/emails", data={"csrf_token": token, "payouts": "on"})

    fred = make_participant("Fred Friend", invited_by=rita["code"])  # no "friend joined"
    accepted_purchase(app, fred["email"], "o1")
    with app.app_context():
        ledger.approve_reward_early(
            db.session.get(Reward, rewards_of(app, rita["id"])[0].id), utcnow()
        )
        db.session.commit()
    assert take_outbox(app) == []  # neither the friend nor the reward

    form = {"csrf_token": csrf_token(client, "/rewards/"), "kind": "credit", "currency": "USD"}
    client.post("/rewards/payouts", data=form)
    assert only_mail_to(app, "rita@example.com").subject.startswith("We received your payout")

    token = csrf_token(client, "/auth/profile")
    client.post("/auth/profile/emails", data={"csrf_token": token})  # everything off
    with app.app_context():  # paid by staff: no email, and the request page promised none
        ledger.mark_payout_paid(db.session.scalars(select(Payout)).one(), None, utcnow())
        db.session.commit()
    assert take_outbox(app) == []
    anonymous = app.test_client()
    reset = csrf_token(anonymous, "/auth/reset")
    anonymous.post("/auth/reset", data={"csrf_token": reset, "email": "rita@example.com"})
    message = only_mail_to(app, "rita@example.com")
    assert message.subject == "Reset your InviteLoop password"
    assert "List-Unsubscribe" not in message.extra_headers


# --- one-click unsubscribe ------------------------------------------------------------------


def friend_joined_mail(app, make_participant, rita: dict, name: str):
    make_participant(name, invited_by=rita["code"])
    return only_mail_to(app, rita["email"])


def test_the_unsubscribe_link_asks_first_then_stops_that_kind_only(app, make_participant):
    rita = make_participant("Rita Referrer", email="rita@example.com")
    link = unsubscribe_link(friend_joined_mail(app, make_participant, rita, "Fred Friend"))
    path = link.removeprefix(PUBLIC_URL)
    browser = app.test_client()  # not signed in

    asked = browser.get(path)
    assert asked.status_code == 200
    assert "Stop emails about “Friends joining”?" in asked.text
    assert "r***@example.com" in asked.text and "rita@example.com" not in asked.text
    with app.app_context():
        assert db.session.scalar(select(EmailOptOut.kind)) is None  # a GET changes nothing

    done = browser.post(path)  # the page's button: no CSRF token needed, the link is the proof
    assert done.status_code == 200 and "You're unsubscribed" in done.text
    assert browser.post(path).status_code == 200  # twice is fine
    make_participant("Gina Guest", invited_by=rita["code"])
    assert take_outbox(app) == []
    with app.app_context():
        assert list(db.session.scalars(select(EmailOptOut.kind))) == ["friends"]


def test_a_mail_clients_one_click_post_unsubscribes(app, make_participant):
    rita = make_participant("Rita Referrer", email="rita@example.com")
    link = unsubscribe_link(friend_joined_mail(app, make_participant, rita, "Fred Friend"))

    answer = app.test_client().post(
        link.removeprefix(PUBLIC_URL),
        data={"List-Unsubscribe": "One-Click"},
        content_type="application/x-www-form-urlencoded",
    )

    assert answer.status_code == 200
    make_participant("Gina Guest", invited_by=rita["code"])
    assert take_outbox(app) == []


def test_a_forged_or_altered_unsubscribe_link_is_refused_and_changes_nothing(app, make_participant):
    rita = make_participant("Rita Referrer", email="rita@example.com")
    path = unsubscribe_link(friend_joined_mail(app, make_participant, rita, "Fred Friend"))
    path = path.removeprefix(PUBLIC_URL)
    payload, _, signature = path.rpartition("/")[2].partition(".")
    browser = app.test_client()
    for bad in (f"{payload}.{signature[::-1]}", "W1sicmV3YXJkcyJdXQ.abc", "nonsense"):
        assert browser.post(f"/auth/emails/unsubscribe/{bad}").status_code == 404
        assert browser.get(f"/auth/emails/unsubscribe/{bad}").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(EmailOptOut.kind)) is None


def test_the_data_download_lists_the_choices_and_the_invitations_sent(app, make_participant):
    rita = make_participant("Rita Referrer", email="rita@example.com")
    client = participant_client(app, rita)
    token = csrf_token(client, "/auth/profile")
    client.post(
        "/auth/profile/emails",
        data={"csrf_token": token, "friends": "on", "rewards": "on", "payouts": "on"},
    )
    token = csrf_token(client, "/referral/dashboard")
    client.post("/referral/invite", data={"csrf_token": token, "emails": "ann@example.com"})

    data = client.get("/auth/profile/data").get_json(force=True)

    assert data["emails_turned_off"] == ["news"]
    assert [entry["to"] for entry in data["invitations_sent"]] == ["a***@example.com"]


def at_once(app, action, errors) -> list[str]:
    """Run `action(now)` in two threads that start together, each in its own transaction;
    "done" or "refused" (one of `errors`) each."""
    barrier = threading.Barrier(2, timeout=10)

    def run(_) -> str:
        with app.app_context():
            prepared = action()
            barrier.wait()
            try:
                prepared()
                db.session.commit()
                return "done"
            except errors:
                db.session.rollback()
                return "refused"

    with ThreadPoolExecutor(max_workers=2) as pool:
        return sorted(pool.map(run, range(2)))


# PostgreSQL only: SQLite's transactions begin IMMEDIATE, so two clicks cannot overlap.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_staff_paying_one_payout_at_once_send_one_email(app, make_participant):
    rita, _ = approved_credit(app, make_participant)
    with app.app_context():
        payout_id = ledger.request_payout(
            db.session.get(User, rita["id"]), "credit", "USD", utcnow()
        ).id
        db.session.commit()
    take_outbox(app)

    def pay():
        payout = db.session.get(Payout, payout_id)
        return lambda: ledger.mark_payout_paid(payout, "wire 7", utcnow())

    assert at_once(app, pay, ledger.PayoutNotOpen) == ["done", "refused"]
    assert only_mail_to(app, "rita@example.com").subject == "Your payout of $10.00 is paid"


# PostgreSQL only: SQLite's transactions begin IMMEDIATE, so two clicks cannot overlap.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_staff_clearing_one_held_referral_at_once_send_one_email(app, rita, make_participant):
    fred = held_friend(make_participant, rita, "Fred Friend")
    referral_id = referral_of(app, fred["id"]).id

    def approve():
        referral = db.session.get(Referral, referral_id)
        return lambda: review.approve_referral(referral, utcnow())

    assert at_once(app, approve, lifecycle.NotUnderReview) == ["done", "refused"]
    message = only_mail_to(app, "rita@example.com")
    assert message.subject == "A friend joined InviteLoop through you"


def test_with_payout_emails_off_the_request_page_promises_no_email(app, make_participant):
    rita, _ = approved_credit(app, make_participant)
    client = participant_client(app, rita)
    token = csrf_token(client, "/auth/profile")
    client.post("/auth/profile/emails", data={"csrf_token": token, "rewards": "on"})
    form = {"csrf_token": csrf_token(client, "/rewards/"), "kind": "credit", "currency": "USD"}

    assert client.post("/rewards/payouts", data=form).status_code == 302

    page = client.get("/rewards/").text
    assert "Payout of $10.00 requested. Your ledger shows when it is paid." in page
    assert take_outbox(app) == []
