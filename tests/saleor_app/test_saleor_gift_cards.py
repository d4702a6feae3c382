"""Gift card and coupon rewards paid in Saleor, exactly once, against the local Saleor
stand-in (docs/guarantees.md #39)."""

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import outbox
from extensions import db
from models import OutboxMessage, Reward, SaleorFulfilment, utcnow
from rewards import ledger, services
from rewards.saleor_fulfilment import fulfil_reward, queue_due_rewards, waiting_rewards
from rewards.saleor_queries import REWARD_METADATA_KEY
from tests import factories
from tests.helpers import configure, log_in, take_outbox, text_of
from tests.saleor_standin import GiftCard

ORDER_ID = "T3JkZXI6Z2lmdC1jYXJkLW9yZGVy"


@pytest.fixture
def friend(make_participant):
    ann = make_participant("Ann Lee")
    bob = make_participant("Bob Baker", invited_by=ann["code"])
    return ann, bob


def confirm_order(client, shop, buyer_email: str, typename="OrderConfirmed"):
    now = utcnow().isoformat()
    payload = {
        "__typename": typename,
        "issuedAt": now,
        "order": {
            "id": ORDER_ID,
            "number": "7",
            "created": now,
            "checkoutId": None,
            "userEmail": buyer_email,
            "user": {"id": "VXNlcjo3", "email": buyer_email},
            "total": {"gross": {"amount": 30.0, "currency": "USD"}},
            "totalRefunded": {
                "amount": 30.0 if typename == "OrderFullyRefunded" else 0.0,
                "currency": "USD",
            },
            "metadata": [],
        },
    }
    body = json.dumps(payload).encode()
    headers = {
        "Saleor-Event": "order_fully_refunded" if "Refund" in typename else "order_confirmed",
        "Saleor-Signature": shop.sign(body),
        "Saleor-Api-Url": shop.api_url,
    }
    return client.post(
        "/webhooks/order-confirmed", data=body, headers=headers, content_type="application/json"
    )


def end_holds(app) -> None:
    """As the hold-release job does once the refund window is over."""
    with app.app_context():
        services.release_held_rewards(utcnow() + timedelta(days=30))
        db.session.commit()


def gift_card_reward(app, beneficiary_id: int, kind: str = "gift_card") -> Reward:
    with app.app_context():
        reward = db.session.scalar(
            select(Reward).where(Reward.beneficiary_id == beneficiary_id, Reward.kind == kind)
        )
        db.session.expunge(reward)
        return reward


def fulfilment(app, reward_id: int) -> SaleorFulfilment:
    with app.app_context():
        row = db.session.get(SaleorFulfilment, reward_id)
        db.session.expunge(row)
        return row


def retry_now(app) -> None:
    """Staff's "retry now" on every waiting job (their backoff would otherwise wait)."""
    with app.app_context():
        for message_id in db.session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.status == "pending")
        ).all():
            outbox.retry_now(message_id)
        db.session.commit()


def test_an_order_confirmed_twice_at_once_pays_one_gift_card(app, installed, friend):
    ann, bob = friend
    answers = []

    def deliver():
        answers.append(confirm_order(app.test_client(), installed, bob["email"]).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200]
    assert confirm_order(app.test_client(), installed, bob["email"]).status_code == 200
    take_outbox(app)
    end_holds(app)

    [card] = installed.gift_cards
    assert (card.balance, card.currency, card.user_email) == (10.0, "USD", ann["email"])
    assert card.tags == ["referral"] and card.is_active
    reward = gift_card_reward(app, ann["id"])
    assert card.private_metadata == {REWARD_METADATA_KEY: str(reward.id)}
    assert f"#{reward.id}" in card.note
    assert (reward.status, reward.coupon_code) == ("paid", card.code)
    assert reward.external_reference == f"saleor:{card.id}"
    to_ann = [message for message in take_outbox(app) if message.to == [ann["email"]]]
    [ready] = to_ann  # the approval and the code in one email, once the code works
    assert ready.subject == "Your $10.00 gift card is ready" and card.code in ready.body


def test_the_ledger_shows_the_saleor_code(app, installed, friend):
    ann, bob = friend
    confirm_order(app.test_client(), installed, bob["email"])
    end_holds(app)
    client = app.test_client()
    log_in(client, ann["email"])
    [card] = installed.gift_cards
    assert f'aria-label="Copy code {card.code}"' in text_of(client.get("/rewards/"))


def test_a_saleor_error_leaves_the_reward_approved_then_it_is_paid_once(app, installed, friend):
    ann, bob = friend
    confirm_order(app.test_client(), installed, bob["email"])
    installed.fail = "error"
    end_holds(app)
    reward = gift_card_reward(app, ann["id"])
    assert (reward.status, reward.paid_at, installed.gift_cards) == ("approved", None, [])
    failed = fulfilment(app, reward.id)
    assert failed.attempts == 1 and "Internal error" in failed.last_error

    with app.app_context():
        admin = factories.staff("admin")
    staff = app.test_client()
    log_in(staff, admin["email"])
    assert "Internal error" in text_of(staff.get("/admin/integrations"))

    installed.fail = None
    retry_now(app)
    retry_now(app)  # a second retry finds the work done
    [card] = installed.gift_cards
    assert gift_card_reward(app, ann["id"]).coupon_code == card.code
    assert fulfilment(app, reward.id).saleor_id == card.id
    assert "Internal error" not in text_of(staff.get("/admin/integrations"))


def test_a_timeout_is_retried_like_an_error(app, installed, friend):
    ann, bob = friend
    app.config["SALEOR_TIMEOUT_SECONDS"] = 1
    installed.slow_seconds = 1.5
    confirm_order(app.test_client(), installed, bob["email"])
    installed.fail, installed.failing_operation = "timeout", "InviteLoopCreateGiftCard"
    end_holds(app)
    reward = gift_card_reward(app, ann["id"])
    assert reward.status == "approved"
    assert "timed out" in fulfilment(app, reward.id).last_error
    # Saleor finished the call InviteLoop gave up on: the card exists, unrecorded.
    installed.wait_until_idle()
    [card] = installed.gift_cards
    # Saleor answers again; the short limit did its part, and on a loaded machine even a
    # quick answer can take over a second.
    installed.fail = None
    app.config["SALEOR_TIMEOUT_SECONDS"] = 10
    retry_now(app)
    assert installed.gift_cards == [card]  # found by the reward id, not made again
    assert gift_card_reward(app, ann["id"]).coupon_code == card.code


def test_two_runs_of_one_rewards_job_at_once_make_one_card(app, installed, friend):
    """A sender's lease ran out while Saleor was slow: another sender runs the same job."""
    ann, bob = friend
    confirm_order(app.test_client(), installed, bob["email"])
    installed.fail = "error"
    end_holds(app)
    reward_id = gift_card_reward(app, ann["id"]).id
    installed.fail, installed.slow_seconds = "timeout", 0.3  # slow, within the time allowed
    failures = []

    def run_job():
        with app.app_context():
            try:
                fulfil_reward.run(reward_id)
                db.session.commit()
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                failures.append(error)

    threads = [threading.Thread(target=run_job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    [card] = installed.gift_cards
    assert gift_card_reward(app, ann["id"]).coupon_code == card.code


def test_a_card_made_by_an_attempt_that_died_is_found_not_made_again(app, installed, friend):
    ann, bob = friend
    confirm_order(app.test_client(), installed, bob["email"])
    installed.fail = "error"
    end_holds(app)
    reward = gift_card_reward(app, ann["id"])
    earlier = GiftCard(
        id="R2lmdENhcmQ6OTk=",
        code="EARL-IER0-0099",
        balance=10.0,
        currency="USD",
        user_email=ann["email"],
        tags=["referral"],
        note=None,
        metadata={REWARD_METADATA_KEY: str(reward.id)},
        private_metadata={REWARD_METADATA_KEY: str(reward.id)},
    )
    installed.gift_cards.append(earlier)
    installed.fail = None
    retry_now(app)
    assert installed.gift_cards == [earlier]
    assert gift_card_reward(app, ann["id"]).coupon_code == "EARL-IER0-0099"


def test_a_reward_cancelled_before_its_card_is_made_gets_none(app, installed, friend):
    ann, bob = friend
    confirm_order(app.test_client(), installed, bob["email"])
    installed.fail = "error"
    end_holds(app)
    reward = gift_card_reward(app, ann["id"])
    with app.app_context():
        ledger.cancel_reward(db.session.get(Reward, reward.id), "fraud", utcnow())
        db.session.commit()
    installed.fail = None
    retry_now(app)
    assert installed.gift_cards == []
    assert gift_card_reward(app, ann["id"]).status == "cancelled"
    with app.app_context():
        assert waiting_rewards() == []  # nothing left for staff to wait for


def test_rewards_approved_without_a_hold_are_queued_by_the_sweep(app, installed, friend):
    ann, bob = friend
    configure(app, hold_days=0)
    confirm_order(app.test_client(), installed, bob["email"])
    assert installed.gift_cards == []  # approved at once: no approval signal
    with app.app_context():
        assert queue_due_rewards.run() == 1
    again = app.test_cli_runner().invoke(args=["rewards", "saleor-queue"])
    assert "Queued 0 reward(s)" in again.output
    [card] = installed.gift_cards
    assert gift_card_reward(app, ann["id"]).coupon_code == card.code


def test_without_the_app_installed_gift_cards_stay_as_before(app, client, shop, friend):
    shop.reset()
    configure(app, referrer_reward_kind="gift_card")
    ann, bob = friend
    confirm_order(client, shop, bob["email"])
    end_holds(app)
    reward = gift_card_reward(app, ann["id"])
    assert reward.status == "approved" and reward.coupon_code.startswith("IL-")
    assert shop.gift_cards == [] and shop.log == []


# --- Refunds (docs/guarantees.md #39) -------------------------------------------------------


def refund_order(client, shop, buyer_email: str):
    return confirm_order(client, shop, buyer_email, typename="OrderFullyRefunded")


def test_a_refund_deactivates_the_unused_card_once(app, installed, friend):
    ann, bob = friend
    confirm_order(app.test_client(), installed, bob["email"])
    end_holds(app)
    [card] = installed.gift_cards
    assert refund_order(app.test_client(), installed, bob["email"]).status_code == 200
    assert refund_order(app.test_client(), installed, bob["email"]).status_code == 200
    assert not card.is_active
    assert installed.log.count("InviteLoopDeactivateGiftCard: ok") == 1
    reward = gift_card_reward(app, ann["id"])
    assert fulfilment(app, reward.id).deactivated_at is not None


def test_a_card_already_spent_from_stays_active(app, installed, friend):
    ann, bob = friend
    confirm_order(app.test_client(), installed, bob["email"])
    end_holds(app)
    [card] = installed.gift_cards
    card.spent = 4.0
    refund_order(app.test_client(), installed, bob["email"])
    assert card.is_active
    reward = gift_card_reward(app, ann["id"])
    assert "already used" in fulfilment(app, reward.id).last_error


def test_a_refund_before_the_card_is_issued_means_no_card(app, installed, friend):
    ann, bob = friend
    confirm_order(app.test_client(), installed, bob["email"])
    installed.fail = "error"
    end_holds(app)
    refund_order(app.test_client(), installed, bob["email"])
    installed.fail = None
    retry_now(app)
    assert installed.gift_cards == []
    reward = gift_card_reward(app, ann["id"])
    assert reward.status == "approved" and reward.paid_at is None
    assert "refunded before Saleor issued it" in fulfilment(app, reward.id).last_error


# --- Coupons as vouchers (docs/guarantees.md #39) ------------------------------------------

CHANNEL_ID = "Q2hhbm5lbDox"


def test_a_coupon_reward_becomes_one_single_use_voucher_with_its_code(app, installed, friend):
    ann, bob = friend
    app.config["SALEOR_CHANNEL_ID"] = CHANNEL_ID
    configure(app, referrer_reward_kind="coupon")
    confirm_order(app.test_client(), installed, bob["email"])
    reward = gift_card_reward(app, ann["id"], kind="coupon")
    take_outbox(app)
    installed.fail, installed.failing_operation = "error", "InviteLoopListVoucher"
    end_holds(app)  # the voucher is made, its price in the channel fails
    assert gift_card_reward(app, ann["id"], kind="coupon").status == "approved"
    installed.fail = None
    retry_now(app)

    [voucher] = installed.vouchers
    assert (voucher.code, voucher.single_use, voucher.usage_limit) == (reward.coupon_code, True, 1)
    assert (voucher.value_type, voucher.discounts) == ("FIXED", {CHANNEL_ID: 10.0})
    paid = gift_card_reward(app, ann["id"], kind="coupon")
    assert (paid.status, paid.coupon_code) == ("paid", reward.coupon_code)
    [ready] = [message for message in take_outbox(app) if message.to == [ann["email"]]]
    assert ready.subject == "Your $10.00 coupon is ready" and reward.coupon_code in ready.body


def test_without_a_channel_coupons_stay_inviteloops_own(app, installed, friend):
    ann, bob = friend
    configure(app, referrer_reward_kind="coupon")
    confirm_order(app.test_client(), installed, bob["email"])
    end_holds(app)
    assert installed.vouchers == []
    assert gift_card_reward(app, ann["id"], kind="coupon").status == "approved"
