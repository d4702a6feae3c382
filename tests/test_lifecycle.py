"""The referral's life (referral/lifecycle.py): the table of allowed status changes, the
refusal of any other change, and each real path through the services that use it."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from extensions import db
from models import REFERRAL_STATUSES, Referral, User, utcnow
from referral import lifecycle
from rewards import review, services
from rewards.conversions import record_event
from rewards.events import EventIn

SAME_IP = "203.0.113.7"  # a friend on the referrer's address is held for review


def test_the_table_covers_exactly_the_statuses_the_database_allows():
    assert set(lifecycle.ALLOWED) == set(REFERRAL_STATUSES)
    for followers in lifecycle.ALLOWED.values():
        assert followers <= set(REFERRAL_STATUSES)
    assert set(lifecycle.START.values()) <= set(REFERRAL_STATUSES)


def test_every_status_is_reachable_from_a_start_and_only_two_are_final():
    reached, frontier = set(), set(lifecycle.START.values())
    while frontier:
        status = frontier.pop()
        reached.add(status)
        frontier |= lifecycle.ALLOWED[status] - reached
    assert reached == set(REFERRAL_STATUSES)
    final = {status for status, followers in lifecycle.ALLOWED.items() if not followers}
    assert final == {"rewarded", "rejected"}


def referral_of(app, user_id: int) -> Referral:
    with app.app_context():
        return db.session.scalar(select(Referral).where(Referral.referred_id == user_id))


def counter_of(app, user_id: int) -> int:
    with app.app_context():
        return db.session.get(User, user_id).referral_count


def record(app, kind: str, email: str, order: str, now=None):
    """A purchase (25.00, enough for the default program) or the refund of `order`."""
    amount = {"purchase": 2500, "refund": None}[kind]
    with app.app_context():
        outcome = record_event(
            EventIn(
                source="api",
                kind=kind,
                external_id=f"evt-{kind}-{order}",
                order_id=order,
                customer_email=email,
                amount=amount,
                currency="USD" if amount else None,
            ),
            now=now,
        )
        db.session.commit()
        return outcome


def release_held(app, days: int) -> int:
    with app.app_context():
        released = services.release_held_rewards(utcnow() + timedelta(days=days))
        db.session.commit()
        return released


@pytest.fixture
def pair(make_participant):
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    return rita, fred


@pytest.fixture
def held_pair(make_participant):
    rita = make_participant("Rita Referrer", ip=SAME_IP)
    fred = make_participant("Fred Friend", invited_by=rita["code"], ip=SAME_IP)
    return rita, fred


def decide(app, user_id: int, approve: bool) -> None:
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.referred_id == user_id))
        if approve:
            review.approve_referral(referral, utcnow())
        else:
            review.reject_referral(referral, "looks like one person", utcnow())
        db.session.commit()


@contextmanager
def statements_sent():
    """The SQL sent to the database inside the block."""
    statements = []

    def note(connection, cursor, statement, *_):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


@pytest.mark.parametrize(
    ("leaving", "to"),
    [("pending", "rewarded"), ("rejected", "qualified"), ("rewarded", "pending")],
)
def test_a_change_not_in_the_table_is_refused_before_any_query(app, pair, leaving, to):
    before = referral_of(app, pair[1]["id"])
    refused = pytest.raises(lifecycle.TransitionNotAllowed)
    with app.app_context(), statements_sent() as statements, refused:
        lifecycle.move([before.id], (leaving,), to, utcnow())
    assert statements == []
    after = referral_of(app, pair[1]["id"])
    assert (after.status, after.updated_at) == (before.status, before.updated_at)


def test_a_change_moves_only_rows_in_the_statuses_it_leaves(app, pair):
    referral = referral_of(app, pair[1]["id"])
    assert referral.status == "pending"
    with app.app_context():
        assert lifecycle.move([referral.id], ("qualified",), "rewarded", utcnow()) == 0
        db.session.commit()
    assert referral_of(app, pair[1]["id"]).status == "pending"


def test_pending_qualifies_on_purchase_and_is_rewarded_when_the_hold_ends(app, pair):
    rita, fred = pair
    assert referral_of(app, fred["id"]).status == "pending"
    assert record(app, "purchase", fred["email"], "o1").outcome == "accepted"
    assert referral_of(app, fred["id"]).status == "qualified"
    assert release_held(app, days=15) == 2
    assert referral_of(app, fred["id"]).status == "rewarded"
    assert counter_of(app, rita["id"]) == 1


def test_a_refund_inside_the_hold_reopens_the_referral_and_a_new_purchase_qualifies_it(app, pair):
    _, fred = pair
    record(app, "purchase", fred["email"], "o1")
    assert record(app, "refund", fred["email"], "o1").outcome == "accepted"
    assert referral_of(app, fred["id"]).status == "pending"
    record(app, "purchase", fred["email"], "o2")
    assert referral_of(app, fred["id"]).status == "qualified"


def test_review_approved_before_any_purchase_then_qualified_by_one(app, held_pair):
    rita, fred = held_pair
    assert referral_of(app, fred["id"]).status == "review"
    decide(app, fred["id"], approve=True)
    assert referral_of(app, fred["id"]).status == "approved"
    assert counter_of(app, rita["id"]) == 1
    record(app, "purchase", fred["email"], "o1")
    assert referral_of(app, fred["id"]).status == "qualified"


def test_review_with_held_rewards_approved_is_qualified_and_counted_once(app, held_pair):
    rita, fred = held_pair
    assert record(app, "purchase", fred["email"], "o1").reason == "held_for_review"
    assert referral_of(app, fred["id"]).status == "review"
    decide(app, fred["id"], approve=True)
    assert referral_of(app, fred["id"]).status == "qualified"
    with pytest.raises(lifecycle.NotUnderReview):
        decide(app, fred["id"], approve=True)
    assert counter_of(app, rita["id"]) == 1


def test_review_rejected_stays_rejected(app, held_pair):
    rita, fred = held_pair
    decide(app, fred["id"], approve=False)
    rejected = referral_of(app, fred["id"])
    assert (rejected.status, rejected.reason) == ("rejected", "looks like one person")
    assert record(app, "purchase", fred["email"], "o1").outcome == "rejected"
    assert referral_of(app, fred["id"]).status == "rejected"
    assert counter_of(app, rita["id"]) == 0


def test_a_self_referral_starts_rejected_and_a_purchase_leaves_it_there(app, make_participant):
    alice = make_participant("Alice Zimmer", email="alice.zimmer@gmail.com")
    again = make_participant(
        "Alice Again", email="alicezimmer+promo@googlemail.com", invited_by=alice["code"]
    )
    assert referral_of(app, again["id"]).status == "rejected"
    assert record(app, "purchase", again["email"], "o1").outcome == "rejected"
    assert referral_of(app, again["id"]).status == "rejected"
