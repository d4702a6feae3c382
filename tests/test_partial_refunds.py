"""Issue 12, row 9: a partial refund takes back only what the refunded part earned.

A refund of 50 of a 5000 order used to cancel the whole referrer and friend reward. Now
(docs/guarantees.md #14): percent rewards shrink to the kept share of the order, fixed rewards
stand until what is kept falls below the program's minimum purchase; refunds in several parts
add up (Stripe and Saleor report a running total), the same refund twice changes nothing, and
after approval or payout each refund's shrink is one reversing entry, however many refunds
follow (issue 12 row 9's second part), never more than was granted. Every source goes
through the same intake; the participant's balance is the sum of the entries.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Program, Reward, User, utcnow
from referral.services import default_program
from rewards import ledger
from rewards.conversions import record_event
from rewards.events import EventIn
from rewards.services import release_held_rewards
from rewards.stripe_webhooks import stripe_event
from tests import factories
from tests.events_api import events_server, send_all_at_once

ORDER = "order-5000"


@pytest.fixture
def pair(app):
    """A referrer and a friend they invited, both committed."""
    with app.app_context():
        referrer = factories.participant("Rhea Referrer")
        friend = factories.participant("Finn Friend", invited_by=referrer["code"])
    return referrer, friend


def _percent_program(referrer_bp: int = 1000, friend_bp: int = 500) -> None:
    program = db.session.get(Program, default_program().id)
    program.referrer_reward_basis, program.referrer_reward_value = "percent", referrer_bp
    program.friend_reward_basis, program.friend_reward_value = "percent", friend_bp
    db.session.commit()


def _buy(friend: dict, amount: int = 5000, source: str = "api", order: str = ORDER):
    outcome = factories.purchase(friend["email"], order, amount, source=source)
    db.session.commit()
    assert outcome.outcome == "accepted", outcome
    return outcome


def _refund(event_id: str, amount: int | None, source: str = "api", order: str = ORDER, now=None):
    outcome = record_event(
        EventIn(
            source=source,
            kind="refund",
            external_id=event_id,
            order_id=order,
            amount=amount,
            currency="USD",
        ),
        now=now,
    )
    db.session.commit()
    return outcome


def _balance(person: dict) -> int:
    """What counts for them: every live entry, reversals included."""
    return db.session.scalar(
        select(func.coalesce(func.sum(Reward.amount), 0)).where(
            Reward.beneficiary_id == person["id"],
            Reward.status.in_(("review", "pending", "approved", "paid", "redeemed")),
        )
    )


def _live(person: dict) -> list[tuple[int, str]]:
    return sorted(
        db.session.execute(
            select(Reward.amount, Reward.status).where(
                Reward.beneficiary_id == person["id"],
                Reward.status.in_(("review", "pending", "approved", "paid", "redeemed")),
            )
        ).all()
    )


def test_fixed_rewards_stand_until_the_kept_order_falls_below_the_minimum(app, pair):
    referrer, friend = pair
    with app.app_context():
        program = default_program()
        assert (program.referrer_reward_basis, program.min_purchase_amount) == ("fixed", 2000)
        _buy(friend)
        assert (_balance(referrer), _balance(friend)) == (1000, 500)

        # 50 of 5000: the old failure cancelled both rewards.
        assert _refund("r-1", 50).reason == "rewards_stand"
        assert _live(referrer) == [(1000, "pending")]
        assert _live(friend) == [(500, "pending")]

        # Parts add up: 50 + 2950 keeps 2000, still the minimum.
        _refund("r-2", 2950)
        assert (_balance(referrer), _balance(friend)) == (1000, 500)

        # One more cent and the order no longer qualifies: everything is taken back.
        assert _refund("r-3", 1).outcome == "accepted"
        assert (_balance(referrer), _balance(friend)) == (0, 0)
        cancelled = db.session.scalars(
            select(Reward.reason).where(Reward.status == "cancelled")
        ).all()
        assert cancelled == ["refunded", "refunded"]


def test_percent_rewards_shrink_in_proportion_and_a_repeat_changes_nothing(app, pair):
    referrer, friend = pair
    with app.app_context():
        _percent_program()
        _buy(friend)
        assert (_balance(referrer), _balance(friend)) == (500, 250)

        assert _refund("r-1", 50).reason == "partial_refund"
        # 10 % and 5 % of the kept 4950, rounded down.
        assert _live(referrer) == [(495, "pending")]
        assert _live(friend) == [(247, "pending")]

        # The same refund delivered again is a duplicate and writes nothing.
        entries = db.session.scalar(select(func.count()).select_from(Reward))
        assert _refund("r-1", 50).outcome == "duplicate"
        assert db.session.scalar(select(func.count()).select_from(Reward)) == entries

        # A second part: 50 + 950 = 1000 refunded, 4000 kept.
        _refund("r-2", 950)
        assert _live(referrer) == [(400, "pending")]
        assert _live(friend) == [(200, "pending")]

        # The rest: nothing left, nothing live.
        _refund("r-3", 4000)
        assert (_balance(referrer), _balance(friend)) == (0, 0)


def test_after_approval_a_partial_refund_writes_one_reversing_entry(app, pair):
    referrer, friend = pair
    with app.app_context():
        _percent_program()
        _buy(friend)
        release_held_rewards(utcnow() + timedelta(days=15))
        db.session.commit()
        assert _live(referrer) == [(500, "approved")]

        _refund("r-1", 1000, now=utcnow() + timedelta(days=16))
        assert _live(referrer) == [(-100, "approved"), (500, "approved")]
        assert _live(friend) == [(-50, "approved"), (250, "approved")]
        reversal = db.session.scalar(select(Reward).where(Reward.amount == -100))
        assert reversal.reverses_id is not None
        assert reversal.reason == "partial_refund"


def test_stripe_reports_a_running_total_and_each_new_total_counts_once(app, pair):
    referrer, friend = pair
    with app.app_context():
        _percent_program()
        _buy(friend, source="stripe", order="pi_1")
        # Stripe's charge.refunded carries amount_refunded: 1000, then 3000 in all.
        _refund("ch_1:1000", 1000, source="stripe", order="pi_1")
        assert _balance(referrer) == 400
        _refund("ch_1:3000", 3000, source="stripe", order="pi_1")
        assert _balance(referrer) == 200
        assert _balance(friend) == 100
        # An older total arriving late gives nothing back.
        _refund("ch_1:1000-late", 1000, source="stripe", order="pi_1")
        assert (_balance(referrer), _balance(friend)) == (200, 100)


def test_stripe_and_saleor_name_each_partial_refund_by_its_running_total():
    charge = {
        "id": "ch_9",
        "object": "charge",
        "amount": 5000,
        "amount_refunded": 1000,
        "refunded": False,
        "currency": "usd",
        "payment_intent": "pi_9",
    }
    partial = stripe_event({"type": "charge.refunded", "data": {"object": charge}})
    assert (partial.external_id, partial.amount, partial.order_id) == ("ch_9:1000", 1000, "pi_9")
    full = stripe_event(
        {
            "type": "charge.refunded",
            "data": {"object": {**charge, "amount_refunded": 5000, "refunded": True}},
        }
    )
    assert (full.external_id, full.amount) == ("ch_9", 5000)


def _approve_all() -> None:
    release_held_rewards(utcnow() + timedelta(days=15))
    db.session.commit()


def _reversals(person: dict) -> list[tuple[int, str]]:
    """(amount, reason) of the reversing entries in their ledger, oldest first."""
    return list(
        db.session.execute(
            select(Reward.amount, Reward.reason)
            .where(Reward.beneficiary_id == person["id"], Reward.reverses_id.is_not(None))
            .order_by(Reward.id)
        )
    )


def test_after_approval_every_later_partial_refund_takes_back_its_own_share(app, pair):
    referrer, friend = pair
    with app.app_context():
        _percent_program()
        _buy(friend)
        _approve_all()
        later = utcnow() + timedelta(days=16)

        # The second take-back used to be refused as take_back_incomplete.
        assert _refund("r-1", 1000, now=later).reason == "partial_refund"
        assert _refund("r-2", 1000, now=later).reason == "partial_refund"
        assert _reversals(referrer) == [(-100, "partial_refund"), (-100, "partial_refund")]
        assert _reversals(friend) == [(-50, "partial_refund"), (-50, "partial_refund")]
        assert (_balance(referrer), _balance(friend)) == (300, 150)

        # Each refund event counts once: the same one again is a duplicate.
        assert _refund("r-2", 1000, now=later).outcome == "duplicate"
        assert _balance(referrer) == 300

        # The rest of the order takes back what is left, and not a cent more.
        assert _refund("r-3", 3000, now=later).reason is None
        assert _reversals(referrer)[-1] == (-300, "refunded")
        assert (_balance(referrer), _balance(friend)) == (0, 0)
        # More refunded than was ordered: nothing is left to take back.
        assert _refund("r-4", 500, now=later).outcome == "accepted"
        assert (_balance(referrer), _balance(friend)) == (0, 0)
        assert len(_reversals(referrer)) == 3


def test_a_paid_out_reward_is_reversed_part_by_part_and_the_balance_owes_the_rest(app, pair):
    referrer, friend = pair
    with app.app_context():
        _percent_program()
        _buy(friend)
        _approve_all()
        reward = db.session.scalar(select(Reward).where(Reward.beneficiary_id == referrer["id"]))
        ledger.mark_reward_paid(reward, "gift card", utcnow())
        db.session.commit()

        later = utcnow() + timedelta(days=16)
        _refund("r-1", 1000, now=later)
        _refund("r-2", 2000, now=later)
        assert _live(referrer) == [(-200, "approved"), (-100, "approved"), (500, "paid")]
        # Paid out before the refunds: what they take back is owed from the next earnings,
        # so the available balance is the one figure that goes below zero.
        (balance,) = ledger.balances(db.session.get(User, referrer["id"]))
        assert (balance.available, balance.paid) == (-300, 500)


def test_a_fixed_reward_after_approval_is_reversed_once_when_the_order_falls_below_minimum(
    app, pair
):
    referrer, friend = pair
    with app.app_context():
        _buy(friend)
        _approve_all()
        later = utcnow() + timedelta(days=16)
        assert _refund("r-1", 1000, now=later).reason == "rewards_stand"
        assert _refund("r-2", 2000, now=later).reason == "rewards_stand"
        assert _reversals(referrer) == []

        _refund("r-3", 1, now=later)  # 1999 kept: below the 2000 minimum
        assert _reversals(referrer) == [(-1000, "refunded")]
        assert _reversals(friend) == [(-500, "refunded")]
        _refund("r-4", 999, now=later)
        assert _reversals(referrer) == [(-1000, "refunded")]
        assert (_balance(referrer), _balance(friend)) == (0, 0)


def test_a_restated_entry_approved_later_is_taken_back_from_by_the_next_refund(app, pair):
    referrer, friend = pair
    with app.app_context():
        _percent_program()
        _buy(friend)
        _refund("r-1", 1000)  # on hold: 500 cancelled, 400 restated
        assert _live(referrer) == [(400, "pending")]
        _approve_all()

        later = utcnow() + timedelta(days=16)
        _refund("r-2", 1000, now=later)
        _refund("r-3", 1000, now=later)
        assert _live(referrer) == [(-100, "approved"), (-100, "approved"), (400, "approved")]
        assert _balance(referrer) == 200  # 10 % of the 2000 kept


def test_after_approval_each_new_stripe_running_total_reverses_its_own_difference(app, pair):
    referrer, friend = pair
    with app.app_context():
        _percent_program()
        _buy(friend, source="stripe", order="pi_2")
        _approve_all()
        later = utcnow() + timedelta(days=16)
        _refund("ch_2:1000", 1000, source="stripe", order="pi_2", now=later)
        _refund("ch_2:3000", 3000, source="stripe", order="pi_2", now=later)
        _refund("ch_2:1000-late", 1000, source="stripe", order="pi_2", now=later)
        assert _reversals(referrer) == [(-100, "partial_refund"), (-200, "partial_refund")]
        assert (_balance(referrer), _balance(friend)) == (200, 100)


def test_an_order_of_two_purchases_is_taken_back_in_full_by_its_next_refund(app, pair):
    """One row per refund and beneficiary: when no single entry has enough left, a refund
    takes back what one entry holds, says so for staff, and the next refund takes the rest."""
    referrer, friend = pair
    with app.app_context():
        _percent_program()
        program = db.session.get(Program, default_program().id)
        program.trigger_event = "every_purchase"
        db.session.commit()
        factories.purchase(friend["email"], ORDER, 2500, external_id="part-a")
        factories.purchase(friend["email"], ORDER, 2500, external_id="part-b")
        db.session.commit()
        _approve_all()
        assert _live(referrer) == [(250, "approved"), (250, "approved")]

        later = utcnow() + timedelta(days=16)
        # 2800 of 5000 refunded: 220 of 500 may stay, 280 must go; one entry holds 250.
        assert _refund("r-1", 2800, now=later).reason == "take_back_incomplete"
        assert _balance(referrer) == 250
        assert _refund("r-2", 1, now=later).reason == "partial_refund"
        assert _balance(referrer) == 219  # 10 % of the 2199 kept
        assert sorted(amount for amount, _ in _reversals(referrer)) == [-250, -31]


@pytest.mark.server
def test_two_partial_refunds_of_an_approved_order_at_once_take_back_both_shares(app, database_url):
    rounds = 5
    with app.app_context():
        _percent_program()
        referrer = factories.participant("Rhea Referrer")
        friends = [
            factories.participant(f"Finn Friend{index}", invited_by=referrer["code"])
            for index in range(rounds)
        ]
        for index, friend in enumerate(friends):
            _buy(friend, order=f"order-{index}")
        _approve_all()
        assert _balance(referrer) == 500 * rounds

    with events_server(database_url) as base_url, ThreadPoolExecutor(2) as pool:
        for index in range(rounds):
            order = f"order-{index}"
            parts = [
                {"type": "refund", "id": f"{order}-part-{n}", "order_id": order, "amount": amount}
                for n, amount in ((1, 1000), (2, 2000))
            ]
            answers = send_all_at_once(pool, base_url, parts)
            assert [status for status, _ in answers] == [200, 200], answers
            assert sorted(answer["reason"] for _, answer in answers) == [
                "partial_refund",
                "partial_refund",
            ], answers

    with app.app_context():
        for friend in friends:
            # 3000 of 5000 refunded: 10 % and 5 % of the 2000 kept, in two reversing entries.
            assert _balance(friend) == 100
            assert sorted(amount for amount, _ in _reversals(friend)) == [-100, -50]
        assert _balance(referrer) == 200 * rounds
        assert len(_reversals(referrer)) == 2 * rounds
