"""Inviting friends by email from the dashboard: the program's offer and the sender's link,
once per address and program ever (a unique key), never to a member (and the sender cannot
tell who is one), limited per sender and day, and an invited address can stop every
invitation with one click. docs/guarantees.md #31."""

import base64
import re

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Invitation, InvitationSuppression, utcnow
from referral.services import default_program
from rewards import programs
from tests import factories
from tests.helpers import count, csrf_token, logged_in, take_outbox

PUBLIC_URL = "https://refer.example.com"
STOP = re.compile(re.escape(PUBLIC_URL) + r"/invitations/stop/[A-Za-z0-9_.\-]+")
SENT = "Thanks! Your invitation is on its way."


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem", "PUBLIC_URL": PUBLIC_URL, "INVITATION_LIMITS": "3/day"}


@pytest.fixture
def rita(make_participant):
    return make_participant("Rita Referrer", email="rita@example.com")


def invite(client, emails: str):
    token = csrf_token(client, "/referral/dashboard")
    return client.post("/referral/invite", data={"csrf_token": token, "emails": emails})


def flashed(client) -> str:
    return client.get("/referral/dashboard").get_data(as_text=True)


def stop_link(message) -> str:
    [link] = STOP.findall(message.body)
    payload = link.rpartition("/")[2].partition(".")[0]
    assert base64.urlsafe_b64decode(payload + "==").isdigit()  # an id, no address (logs)
    assert message.extra_headers["List-Unsubscribe"] == f"<{link}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return link.removeprefix(PUBLIC_URL)


def test_friends_get_the_offer_and_the_senders_link_once_each(app, rita):
    client = logged_in(app, rita)
    assert 'action="/referral/invite"' in flashed(client)  # the dashboard's card

    answer = invite(client, "ann@example.com,\nbea@example.org; Ann@Example.com")

    assert answer.status_code == 302
    assert SENT in flashed(client)
    messages = sorted(take_outbox(app), key=lambda message: message.to)
    assert [message.to for message in messages] == [["ann@example.com"], ["bea@example.org"]]
    for message in messages:
        assert message.subject == "Rita R. invites you to join InviteLoop"
        assert (
            "Rita R. invited you — get $5.00 credit on your first purchase of $20.00 or more."
            in message.body
        )
        assert f"{PUBLIC_URL}/r/{rita['code']}" in message.body
        stop_link(message)
    assert count(app, Invitation) == 2


def test_the_offer_follows_the_programs_rules(app, rita):
    with app.app_context():
        programs.update_program(
            default_program(), {"friend_reward_value": 750, "min_purchase_amount": 0}
        )
        db.session.commit()
    invite(logged_in(app, rita), "ann@example.com")
    [message] = take_outbox(app)
    assert "get $7.50 credit on your first purchase." in message.body


def test_an_address_is_invited_once_per_program_whoever_asks(app, rita, make_participant):
    invite(logged_in(app, rita), "ann.lee@gmail.com")
    assert len(take_outbox(app)) == 1
    gina = make_participant("Gina Guest", email="gina@example.com")
    client = logged_in(app, gina)

    # The same mailbox under other spellings: nobody is mailed twice, and Gina is told the
    # same as for a new address.
    answer = invite(client, "annlee+hi@gmail.com, Ann.Lee@googlemail.com")

    assert answer.status_code == 302 and SENT in flashed(client)
    assert take_outbox(app) == []
    assert count(app, Invitation) == 1
    with app.app_context():  # the database holds it, whatever the code above does
        db.session.add(
            Invitation(
                program_id=default_program().id,
                sender_id=gina["id"],
                email_canonical="annlee@gmail.com",
                created_at=utcnow(),
            )
        )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_members_are_never_invited_and_the_answer_does_not_say_who(app, rita, make_participant):
    make_participant("Fred Friend", email="fred@example.com")
    client = logged_in(app, rita)

    only_members = invite(client, "fred@example.com, rita@example.com")
    after_members = flashed(client)
    assert take_outbox(app) == [] and count(app, Invitation) == 0
    one_new = invite(client, "new.friend@example.com")
    after_new = flashed(client)

    assert [message.to for message in take_outbox(app)] == [["new.friend@example.com"]]
    assert only_members.status_code == one_new.status_code == 302
    assert SENT in after_members and SENT in after_new
    assert "already" not in after_members.split(SENT)[0][-200:]  # nothing said per address


def test_bad_addresses_are_all_named_at_once_and_nothing_is_sent(app, rita):
    client = logged_in(app, rita)

    answer = invite(client, "ann@example.com, not-an-email, bob@")

    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert "These are not email addresses: not-an-email, bob@." in page
    assert "ann@example.com, not-an-email, bob@</textarea>" in page  # what was typed is kept
    six = ", ".join(f"friend{n}@example.com" for n in range(6))
    assert "Enter at most 5 addresses at a time." in invite(client, six).text
    assert "Enter at least one email address." in invite(client, " ").text
    assert take_outbox(app) == [] and count(app, Invitation) == 0


def test_each_sender_has_a_daily_limit_and_a_refused_form_does_not_use_it(
    app, rita, make_participant
):
    client = logged_in(app, rita)
    assert invite(client, "not-an-email").status_code == 400
    for n in range(3):
        assert invite(client, f"friend{n}@example.com").status_code == 302
    assert invite(client, "friend9@example.com").status_code == 429
    assert count(app, Invitation) == 3
    # Another sender has a limit of their own.
    gina = make_participant("Gina Guest", email="gina@example.com")
    assert invite(logged_in(app, gina), "friend9@example.com").status_code == 302


def test_an_invited_address_stops_every_invitation_with_one_click(app, rita, make_participant):
    invite(logged_in(app, rita), "ann@example.com, bea@example.com")
    by_address = {message.to[0]: message for message in take_outbox(app)}
    path = stop_link(by_address["ann@example.com"])
    browser = app.test_client()

    asked = browser.get(path)
    assert asked.status_code == 200 and "Stop invitations to a***@example.com?" in asked.text
    assert count(app, InvitationSuppression) == 0
    done = browser.post(path, data={"List-Unsubscribe": "One-Click"})  # as a mail client posts
    assert done.status_code == 200 and "We won't send invitations to a***@example.com" in done.text
    assert browser.post(path).status_code == 200  # twice is fine

    # A new default program: the address could be invited again, but asked not to be.
    with app.app_context():
        spring = programs.create_program("spring", {"name": "Spring"}, "USD")
        programs.make_default(spring)
        db.session.commit()
    gina = make_participant("Gina Guest", email="gina@example.com")
    invite(logged_in(app, gina), "ANN+spring@example.com, bea@example.com")
    assert [message.to for message in take_outbox(app)] == [["bea@example.com"]]
    with app.app_context():
        assert list(db.session.scalars(select(InvitationSuppression.email_canonical))) == [
            "ann@example.com"
        ]


def test_a_forged_stop_link_is_refused_and_changes_nothing(app, rita):
    invite(logged_in(app, rita), "ann@example.com")
    [message] = take_outbox(app)
    path = stop_link(message)
    browser = app.test_client()
    for bad in (path[:-2], "/invitations/stop/MQ.forged", "/invitations/stop/nonsense"):
        assert browser.post(bad).status_code == 404
    assert count(app, InvitationSuppression) == 0


def test_deleting_an_account_forgets_the_invitations_to_its_address(app, rita, make_participant):
    invite(logged_in(app, rita), "ann@example.com, bea@example.com")
    ann = make_participant("Ann Archer", email="ann@example.com")
    client = logged_in(app, ann)
    token = csrf_token(client, "/auth/profile/delete")
    data = {"csrf_token": token, "password": factories.PASSWORD, "confirm": "y"}
    assert client.post("/auth/profile/delete", data=data).status_code == 302

    with app.app_context():
        left = list(db.session.scalars(select(Invitation.email_canonical)))
    assert left == ["bea@example.com"]
