"""A participant's referral counter is kept by the database (migration 0023): whichever code
writes a referral, a plain SQL statement included, the counter gains one exactly when a
referral enters a counted status, and never loses one, so it is never below the counted
referrals of any range (what the analytics top ten relies on)."""

from datetime import timedelta

from sqlalchemy import insert, select, update

from extensions import db
from models import Referral, ReferralCode, User, utcnow
from referral.services import attribute_signup
from tests import factories


def _counter(user_id: int) -> tuple[int, object]:
    db.session.expire_all()
    user = db.session.get(User, user_id)
    return user.referral_count, user.last_referral_at


def test_any_writer_counts_a_referral_as_it_enters_a_counted_status(app):
    now = utcnow().replace(microsecond=0)
    with app.app_context():
        alice = factories.participant("Alice Zimmer")
        friends = [factories.participant(f"Friend Number{n}")["id"] for n in range(4)]
        code = db.session.scalar(select(ReferralCode).where(ReferralCode.user_id == alice["id"]))
        base = {
            "program_id": code.program_id,
            "code_id": code.id,
            "referrer_id": alice["id"],
            "source": "link",
            "risk_score": 0,
            "risk_reasons": [],
        }
        moments = [now - timedelta(hours=3), now - timedelta(hours=5), now - timedelta(hours=1)]
        rows = [
            {**base, "referred_id": friends[0], "status": "pending", "at": moments[0]},
            {**base, "referred_id": friends[1], "status": "pending", "at": moments[1]},
            {**base, "referred_id": friends[2], "status": "review", "at": moments[2]},
            {**base, "referred_id": friends[3], "status": "rejected", "at": moments[2]},
        ]
        for row in rows:  # one bulk statement, written out of time order
            at = row.pop("at")
            row.update(
                created_at=at, updated_at=at, reason="test" if row["status"] == "rejected" else None
            )
        db.session.execute(insert(Referral), rows)
        db.session.commit()
        # Held and refused ones wait; the latest counted one is the last referral's time.
        assert _counter(alice["id"]) == (2, moments[0])

        def move(friend_id, status, at):
            db.session.execute(
                update(Referral)
                .where(Referral.referred_id == friend_id)
                .values(status=status, updated_at=at)
            )
            db.session.commit()

        move(friends[2], "approved", now)  # a reviewer cleared it: it counts from now
        assert _counter(alice["id"]) == (3, now)
        move(friends[0], "qualified", now + timedelta(minutes=1))  # counted already
        move(friends[2], "qualified", now + timedelta(minutes=2))
        assert _counter(alice["id"]) == (3, now)
        db.session.execute(Referral.__table__.delete().where(Referral.referred_id == friends[1]))
        db.session.commit()
        assert _counter(alice["id"]) == (3, now)  # never below: a removed one stays counted


def test_the_referrers_copy_in_the_same_transaction_shows_the_new_count(app):
    with app.app_context():
        alice = factories.participant("Alice Zimmer")
        holder = db.session.get(User, alice["id"])
        assert holder.referral_count == 0
        code = db.session.scalar(select(ReferralCode).where(ReferralCode.user_id == alice["id"]))
        friend = User(name="Bob Baker", email="bob@example.com", email_canonical="bob@example.com")
        db.session.add(friend)
        db.session.flush()
        attribute_signup(friend, code, "link", utcnow(), new_participant=True)
        # Before the commit: the trigger counted it, and the session reads it again.
        assert holder.referral_count == 1
        db.session.commit()
        assert _counter(alice["id"])[0] == 1
