"""What a recorded referral sets off after its commit (referral/announcements.py,
docs/guarantees.md #52): the referrer's email, the CRM lead and the `referral.created`
webhook come from one outbox row, and describe the referral as it was recorded."""

import pytest
from sqlalchemy import func, select

from core import outbox
from extensions import db
from models import Lead, OutboxMessage, Referral, User, utcnow
from rewards import review
from tests.helpers import csrf_token


@pytest.fixture
def config_overrides():
    # The outbox's rows wait for a worker, as in production, so a test can act in between.
    return {"OUTBOX_DELIVERY": "celery", "CELERY_ALWAYS_EAGER": False}


def _sign_up(client, email, code):
    data = {
        "csrf_token": csrf_token(client, "/auth/signup"),
        "name": "Bob Baker",
        "email": email,
        "password": "correct horse battery staple",
        "referral_code": code,
    }
    assert client.post("/auth/signup", data=data).status_code == 302


def _emails_to(address: str) -> int:
    sent = db.session.scalars(select(OutboxMessage.args).where(OutboxMessage.job.like("%email%")))
    return sum(1 for args in sent if args and args[0] == address)


def _run_the_outbox() -> None:
    while outbox.drain():
        pass


def test_a_held_referral_approved_before_its_announcement_mails_the_referrer_once(
    app, client, make_participant
):
    alice = make_participant("Alice Zimmer")
    # A throwaway mailbox scores the review threshold: the referral is held.
    _sign_up(client, "bob@mailinator.com", alice["code"])
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.status == "review"
        # Staff clear it before the worker got to the announcement.
        review.approve_referral(referral, utcnow())
        db.session.commit()
        _run_the_outbox()
        # One "friend joined" email (the approval's), not a second from the announcement
        # reading today's status; the lead still comes from the announcement.
        assert _emails_to(alice["email"]) == 1
        bob = db.session.scalar(select(User).where(User.email == "bob@mailinator.com"))
        assert db.session.scalar(select(Lead.id).where(Lead.participant_id == bob.id))


def test_a_counted_referral_is_announced_once_however_often_the_worker_looks(
    app, client, make_participant
):
    alice = make_participant("Alice Zimmer")
    _sign_up(client, "bob@example.com", alice["code"])
    with app.app_context():
        _run_the_outbox()
        _run_the_outbox()
        assert _emails_to(alice["email"]) == 1
        assert db.session.scalar(select(func.count()).select_from(Lead)) == 1
        announcements = select(func.count()).where(OutboxMessage.job == "referral.announce")
        assert db.session.scalar(announcements) == 1
