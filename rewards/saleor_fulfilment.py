"""Gift card rewards paid in Saleor, exactly once (docs/guarantees.md #39).

When a `gift_card` reward is approved and the Saleor app is installed, a saleor_fulfilments
row is written for it (one per reward: its primary key) and a job queued, both in the
approving transaction. The job asks Saleor for a gift card carrying the reward's id in its
metadata (an earlier attempt may have made one and died before recording it) and creates one
only when there is none; then, in the job's own transaction, the reward becomes `paid` with
Saleor's code and the beneficiary is mailed that code. A GraphQL error or a timeout is kept
on the row for staff and raised, so the outbox retries with backoff; the reward stays
`approved` until Saleor has issued the card.

A refund that takes back all of a paid gift card reward deactivates its card, if nobody has
spent from it yet (`deactivate_gift_card`).

Saleor's `giftCards(filter: {metadata: ...})` searches public metadata, so the reward id is
written to both the public and the private metadata of the card (it is not a secret).
"""

import logging
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import audit, money
from core.errors import DomainError
from core.jobs import enqueue, job
from extensions import db
from models import Reward, SaleorFulfilment, utcnow
from rewards import notifications, saleor_client, saleor_install
from rewards.saleor_queries import (
    CREATE_GIFT_CARD,
    DEACTIVATE_GIFT_CARD,
    FIND_GIFT_CARD,
    READ_GIFT_CARD,
    REWARD_METADATA_KEY,
)
from rewards.signals import rewards_paid

log = logging.getLogger(__name__)

GIFT_CARD_TAG = "referral"
_ERROR_LENGTH = 500


class NotInstalled(DomainError):
    status = 503
    code = "saleor_not_installed"
    message = "The Saleor app is not installed (or was uninstalled); no gift card can be issued."


class UnexpectedAnswer(saleor_client.SaleorCallFailed):
    message = "Saleor's answer did not contain a gift card."


# --- queueing -----------------------------------------------------------------------------


def on_rewards_approved(_sender, reward_ids: list[int], now: datetime) -> None:
    """Rewards approved: queue a gift card for each of them that is a gift card reward."""
    queue_gift_cards(reward_ids)


def queue_gift_cards(reward_ids: list[int] | None = None) -> int:
    """Write a fulfilment and queue its job for approved gift card rewards (of `reward_ids`,
    or all of them) that have none; nothing while the app is not installed. The InviteLoop
    code they carried is dropped: the code that works is the one Saleor issues."""
    if saleor_install.current_installation() is None:
        return 0
    query = select(Reward.id).where(
        Reward.kind == "gift_card",
        Reward.status == "approved",
        Reward.amount > 0,
        Reward.payout_id.is_(None),
        ~select(SaleorFulfilment.reward_id).where(SaleorFulfilment.reward_id == Reward.id).exists(),
    )
    if reward_ids is not None:
        query = query.where(Reward.id.in_(reward_ids))
    queued = 0
    for reward_id in db.session.scalars(query.order_by(Reward.id)).all():
        try:
            with db.session.begin_nested():
                db.session.add(SaleorFulfilment(reward_id=reward_id, attempts=0))
        except IntegrityError:
            continue  # queued at the same moment by another transaction
        # Synchronised: receivers after this one describe the reward from the session.
        db.session.execute(update(Reward).where(Reward.id == reward_id).values(coupon_code=None))
        enqueue(fulfil_gift_card, reward_id)
        queued += 1
    return queued


@job("saleor.queue_gift_cards")
def queue_due_gift_cards() -> int:
    """Beat's safety net: gift card rewards approved without the signal (issued already
    approved, or before the app was installed) are queued too."""
    queued = queue_gift_cards()
    db.session.commit()
    log.info("queued %d Saleor gift card(s)", queued)
    return queued


def waiting_gift_cards() -> list[SaleorFulfilment]:
    """Gift cards not issued yet for rewards still approved, with their last error, for the
    staff panel (a reward cancelled meanwhile is not waiting for anything)."""
    return list(
        db.session.scalars(
            select(SaleorFulfilment)
            .join(SaleorFulfilment.reward)
            .where(SaleorFulfilment.fulfilled_at.is_(None), Reward.status == "approved")
            .order_by(SaleorFulfilment.reward_id)
            .limit(100)
        )
    )


# --- the job ------------------------------------------------------------------------------


@job("saleor.fulfil_gift_card")
def fulfil_gift_card(reward_id: int) -> None:
    """Issue the reward's gift card in Saleor, unless it was issued already."""
    fulfilment = db.session.scalar(
        select(SaleorFulfilment)
        .where(SaleorFulfilment.reward_id == reward_id)
        .with_for_update()  # two runs of one reward (a lease ran out) take turns
        .execution_options(populate_existing=True)
    )
    if fulfilment is None or fulfilment.fulfilled_at is not None:
        return
    reward = db.session.get(Reward, reward_id, populate_existing=True)
    if reward.status != "approved":
        log.info("reward %s is %s: no gift card issued", reward_id, reward.status)
        return
    if _reversed(reward_id):
        fulfilment.last_error = "Its purchase was refunded before the card was issued: none was."
        return
    try:
        connection = saleor_install.connection()
        if connection is None:
            raise NotInstalled()
        card = _existing_card(connection, reward_id) or _new_card(connection, reward)
    except DomainError as error:
        _record_failure(reward_id, error)
        raise
    _mark_issued(fulfilment, reward, card, utcnow())


def _reversed(reward_id: int) -> bool:
    return (
        db.session.scalar(select(Reward.id).where(Reward.reverses_id == reward_id).limit(1))
        is not None
    )


def _existing_card(connection, reward_id: int) -> dict | None:
    variables = {"filter": {"metadata": [{"key": REWARD_METADATA_KEY, "value": str(reward_id)}]}}
    data = saleor_client.execute(connection.api_url, connection.token, FIND_GIFT_CARD, variables)
    edges = ((data.get("giftCards") or {}).get("edges")) or []
    cards = [edge["node"] for edge in edges if isinstance(edge, dict) and edge.get("node")]
    return _checked(cards[0]) if cards else None


def _new_card(connection, reward: Reward) -> dict:
    tag = [{"key": REWARD_METADATA_KEY, "value": str(reward.id)}]
    variables = {
        "input": {
            "balance": {"amount": _decimal_amount(reward), "currency": reward.currency},
            "userEmail": reward.beneficiary.email,
            "addTags": [GIFT_CARD_TAG],
            "note": f"InviteLoop referral reward #{reward.id}",
            "isActive": True,
            "metadata": tag,
            "privateMetadata": tag,
        }
    }
    data = saleor_client.execute(connection.api_url, connection.token, CREATE_GIFT_CARD, variables)
    result = data.get("giftCardCreate") or {}
    _raise_refusal(result.get("errors"), "Saleor refused the gift card")
    return _checked(result.get("giftCard"))


def _raise_refusal(errors, what: str) -> None:
    """A mutation's own `errors` list, when not empty, as SaleorCallFailed."""
    if errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        raise saleor_client.SaleorCallFailed(f"{what}: {first.get('message') or first.get('code')}")


def _decimal_amount(reward: Reward) -> float:
    # Exact for every amount a 32-bit count of minor units can hold (at most 15 digits).
    return float(Decimal(reward.amount).scaleb(-money.exponent(reward.currency)))


def _checked(card) -> dict:
    if (
        not isinstance(card, dict)
        or not isinstance(card.get("id"), str)
        or not isinstance(card.get("code"), str)
        or not 0 < len(card["code"]) <= 40
    ):
        raise UnexpectedAnswer()
    return card


def _mark_issued(fulfilment: SaleorFulfilment, reward: Reward, card: dict, now) -> None:
    """In the job's transaction (committed with the outbox row's "sent" mark): the reward
    paid with Saleor's code, the fulfilment done, the beneficiary told."""
    changed = db.session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.status == "approved")
        .values(
            status="paid",
            paid_at=now,
            coupon_code=card["code"],
            external_reference=f"saleor:{card['id']}"[:200],
            updated_at=now,
        ),
        execution_options={"synchronize_session": False},
    ).rowcount
    fulfilment.saleor_id = card["id"]
    fulfilment.fulfilled_at = now
    fulfilment.last_error = None
    if not changed:  # cancelled while Saleor worked: the card exists, staff see it here
        fulfilment.last_error = "The reward changed while its gift card was issued."
        return
    db.session.refresh(reward)
    rewards_paid.send(None, reward_ids=[reward.id], now=now)
    after = {"status": "paid", "reference": reward.external_reference}
    audit.record(
        "reward.pay",
        "reward",
        reward.id,
        before={"status": "approved"},
        after=after,
        system="saleor.fulfil_gift_card",
    )
    notifications.gift_card_issued(reward)


def _record_failure(reward_id: int, error: DomainError) -> None:
    """Keep the error for staff, committed now: the outbox rolls the job back, then retries."""
    db.session.rollback()
    db.session.execute(
        update(SaleorFulfilment)
        .where(SaleorFulfilment.reward_id == reward_id)
        .values(
            attempts=SaleorFulfilment.attempts + 1,
            last_error=f"{utcnow():%Y-%m-%d %H:%M} UTC: {error.message}"[:_ERROR_LENGTH],
        ),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


# --- taking a card back -------------------------------------------------------------------


def on_rewards_reversed(_sender, reward_ids: list[int], now: datetime) -> None:
    """A refund took back all of these rewards: queue the deactivation of their cards."""
    issued = db.session.scalars(
        select(SaleorFulfilment.reward_id).where(
            SaleorFulfilment.reward_id.in_(reward_ids),
            SaleorFulfilment.saleor_id.is_not(None),
            SaleorFulfilment.deactivated_at.is_(None),
        )
    ).all()
    for reward_id in issued:
        enqueue(deactivate_gift_card, reward_id)


@job("saleor.deactivate_gift_card")
def deactivate_gift_card(reward_id: int) -> None:
    """Deactivate a refunded reward's card in Saleor if nothing was spent from it; a card
    already used stays as it is (the reversing entry in the ledger records what is owed)."""
    fulfilment = db.session.get(SaleorFulfilment, reward_id, populate_existing=True)
    if fulfilment is None or fulfilment.saleor_id is None or fulfilment.deactivated_at:
        return
    try:
        connection = saleor_install.connection()
        if connection is None:
            raise NotInstalled()
        card = _read_card(connection, fulfilment.saleor_id)
        spent = card is not None and card.get("isActive") and not _unused(card)
        if card is not None and card.get("isActive") and not spent:
            _deactivate(connection, fulfilment.saleor_id)
    except DomainError as error:
        _record_failure(reward_id, error)
        raise
    if spent:
        fulfilment.last_error = "Refunded, but the card was already used: left active."
    else:  # deactivated now, or already inactive or deleted in Saleor
        fulfilment.deactivated_at = utcnow()


def _read_card(connection, card_id: str) -> dict | None:
    data = saleor_client.execute(
        connection.api_url, connection.token, READ_GIFT_CARD, {"id": card_id}
    )
    card = data.get("giftCard")
    return card if isinstance(card, dict) else None  # deleted in Saleor: nothing to do


def _unused(card: dict) -> bool:
    initial = (card.get("initialBalance") or {}).get("amount")
    current = (card.get("currentBalance") or {}).get("amount")
    return card.get("lastUsedOn") is None and initial is not None and current == initial


def _deactivate(connection, card_id: str) -> None:
    data = saleor_client.execute(
        connection.api_url, connection.token, DEACTIVATE_GIFT_CARD, {"id": card_id}
    )
    errors = (data.get("giftCardDeactivate") or {}).get("errors")
    _raise_refusal(errors, "Saleor refused to deactivate the gift card")
