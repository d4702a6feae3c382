"""Signed events racing each other against a real gunicorn, on SQLite and on PostgreSQL.

docs/guarantees.md #2: the same purchase delivered 50 times at once gives every sender a 2xx
and exactly one set of rewards, run after run. Also two orders of one friend at once (a
first-purchase program pays once), a purchase racing its own refund, and two referrers'
codes arriving at once for one customer (the first attribution stands, #5).
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Conversion, Referral, Reward, User
from tests import factories
from tests.events_api import events_server, purchase, refund, send_all_at_once
from tests.intensity import repetitions
from tests.server import shared_servers

pytestmark = [pytest.mark.server, pytest.mark.slow]

SENDERS = 50
ROUNDS = repetitions(full=20, quick=4)
LIVE = ("review", "pending", "approved", "paid", "redeemed")


@pytest.fixture(scope="module")
def servers():
    """One events server per database for the module: each round starts from its own rows."""
    with shared_servers() as servers:
        yield servers


def invite_friends(app, count: int) -> tuple[dict, list[dict]]:
    """Rita and `count` friends she invited, each friend on a network of their own."""
    with app.app_context():
        rita = factories.participant("Rita Referrer")
        friends = [
            factories.participant(f"Friend Number{index:02d}", invited_by=rita["code"])
            for index in range(count)
        ]
    return rita, friends


def rewards_of_order(app, order: str) -> list[tuple]:
    """(beneficiary, role, level, amount, status) of every entry the order's purchase earned."""
    with app.app_context():
        rows = db.session.execute(
            select(Reward.beneficiary_id, Reward.role, Reward.level, Reward.amount, Reward.status)
            .join(Conversion, Conversion.id == Reward.conversion_id)
            .where(Conversion.order_id == order, Conversion.kind == "purchase")
            .order_by(Reward.role.desc())
        )
        return [tuple(row) for row in rows]


def conversions_of(app, external_id: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).where(Conversion.external_id == external_id))


def referral_status(app, friend: dict) -> str:
    with app.app_context():
        return db.session.scalar(
            select(Referral.status).where(Referral.referred_id == friend["id"])
        )


def referral_count(app, user: dict) -> int:
    with app.app_context():
        return db.session.scalar(select(User.referral_count).where(User.id == user["id"]))


def test_one_purchase_fifty_times_at_once_pays_once_every_round(app, database_url, servers):
    rita, friends = invite_friends(app, ROUNDS)
    base_url = servers.base_url(database_url, start=events_server)
    with ThreadPoolExecutor(SENDERS) as pool:
        for round_number, friend in enumerate(friends):
            order = f"order-race-{round_number}"
            answers = send_all_at_once(pool, base_url, [purchase(friend["email"], order)] * SENDERS)

            where = f"round {round_number}"
            assert [status for status, _ in answers] == [200] * SENDERS, where
            outcomes = sorted(answer["outcome"] for _, answer in answers)
            assert outcomes == ["accepted"] + ["duplicate"] * (SENDERS - 1), where
            assert conversions_of(app, f"evt-{order}") == 1, where
            assert rewards_of_order(app, order) == [
                (rita["id"], "referrer", 1, 1000, "pending"),
                (friend["id"], "referee", 1, 500, "pending"),
            ], where
            assert referral_status(app, friend) == "qualified", where

    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Reward)) == 2 * ROUNDS
        assert db.session.scalar(select(func.count()).select_from(Conversion)) == ROUNDS
    # Counted once, at signup; a purchase (however often delivered) does not move it.
    assert referral_count(app, rita) == ROUNDS


def test_two_orders_of_one_friend_at_once_pay_a_first_purchase_program_once(
    app, database_url, servers
):
    rounds = repetitions(full=10, quick=3)
    rita, friends = invite_friends(app, rounds)
    base_url = servers.base_url(database_url, start=events_server)
    with ThreadPoolExecutor(2) as pool:
        for round_number, friend in enumerate(friends):
            orders = [f"order-{round_number}-a", f"order-{round_number}-b"]
            events = [purchase(friend["email"], order) for order in orders]
            answers = send_all_at_once(pool, base_url, events)

            where = f"round {round_number}: {answers}"
            assert [status for status, _ in answers] == [200, 200], where
            outcomes = sorted((answer["outcome"], answer["reason"]) for _, answer in answers)
            assert outcomes == [("accepted", None), ("ignored", "already_rewarded")], where
            paid = rewards_of_order(app, orders[0]) + rewards_of_order(app, orders[1])
            assert sorted(paid) == sorted(
                [
                    (rita["id"], "referrer", 1, 1000, "pending"),
                    (friend["id"], "referee", 1, 500, "pending"),
                ]
            ), where


def test_a_purchase_racing_its_refund_never_leaves_a_live_reward(app, database_url, servers):
    rounds = repetitions(full=20, quick=4)
    _rita, friends = invite_friends(app, rounds)
    base_url = servers.base_url(database_url, start=events_server)
    with ThreadPoolExecutor(2) as pool:
        for round_number, friend in enumerate(friends):
            order = f"order-refunded-{round_number}"
            answers = send_all_at_once(
                pool, base_url, [purchase(friend["email"], order), refund(order)]
            )

            where = f"round {round_number}: {answers}"
            assert [status for status, _ in answers] == [200, 200], where
            # Either the refund came first (the purchase then earns nothing) or it cancelled
            # what the purchase earned; never a reward still alive for a refunded order.
            statuses = [status for *_, status in rewards_of_order(app, order)]
            assert not set(statuses) & set(LIVE), where
            assert statuses in ([], ["cancelled", "cancelled"]), where
            assert referral_status(app, friend) == "pending", where


def test_two_codes_for_one_customer_at_once_leave_one_referral(app, database_url, servers):
    """A known customer nobody referred buys twice at once, each order carrying another
    referrer's code: the first attribution stands, and it pays once."""
    rounds = repetitions(full=10, quick=3)
    with app.app_context():
        rita, sam = factories.participant("Rita Referrer"), factories.participant("Sam Sharer")
        customers = [factories.participant(f"Nina Number{n:02d}") for n in range(rounds)]
    base_url = servers.base_url(database_url, start=events_server)
    with ThreadPoolExecutor(2) as pool:
        for round_number, customer in enumerate(customers):
            orders = [f"order-{round_number}-rita", f"order-{round_number}-sam"]
            events = [
                purchase(customer["email"], order, ref_code=code)
                for order, code in zip(orders, (rita["code"], sam["code"]), strict=True)
            ]
            answers = send_all_at_once(pool, base_url, events)

            where = f"round {round_number}: {answers}"
            assert [status for status, _ in answers] == [200, 200], where
            outcomes = sorted((answer["outcome"], answer["reason"]) for _, answer in answers)
            assert outcomes == [("accepted", None), ("ignored", "already_rewarded")], where
            with app.app_context():
                referrers = db.session.scalars(
                    select(Referral.referrer_id).where(Referral.referred_id == customer["id"])
                ).all()
            assert len(referrers) == 1 and referrers[0] in (rita["id"], sam["id"]), where
            paid = rewards_of_order(app, orders[0]) + rewards_of_order(app, orders[1])
            assert sorted(paid) == sorted(
                [
                    (referrers[0], "referrer", 1, 1000, "pending"),
                    (customer["id"], "referee", 1, 500, "pending"),
                ]
            ), where
