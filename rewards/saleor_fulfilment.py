"""Rewards paid in Saleor, exactly once (docs/guarantees.md #39): a `gift_card` reward as a
Saleor gift card, a `coupon` reward as a single-use Saleor voucher (when SALEOR_CHANNEL_ID
names the channel it is good in).

When such a reward is approved and the Saleor app is installed, a saleor_fulfilments row is
written for it (one per reward: its primary key) and a job queued, both in the approving
transaction. The job finds what an earlier attempt made in Saleor or creates it
(rewards/saleor_issuing.py); then, in the job's own transaction, the reward becomes `paid`
with Saleor's code and the beneficiary is mailed that code. A GraphQL error or a timeout is
kept on the row for staff and raised, so the outbox retries with backoff; the reward stays
`approved` until Saleor has issued it.

A refund that takes back all of a paid gift card reward deactivates its card, if nobody has
spent from it yet (`deactivate_gift_card`).
"""

import logging
from datetime import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from core import audit
from core.errors import DomainError
from core.jobs import enqueue, job
from extensions import db
from models import Program, Reward, SaleorFulfilment, utcnow
from rewards import notifications, rollout, saleor_install, saleor_issuing
from rewards.signals import rewards_paid

log = logging.getLogger(__name__)

_ERROR_LENGTH = 500


class NotInstalled(DomainError):
    status = 503
    code = "saleor_not_installed"
    message = _l("The Saleor app is not installed (or was uninstalled); nothing can be issued.")


# --- queueing -----------------------------------------------------------------------------


def on_rewards_approved(_sender, reward_ids: list[int], now: datetime) -> None:
    """Rewards approved: queue those Saleor pays."""
    queue_rewards(reward_ids)


def _unissued(kinds: tuple[str, ...]):
    """Approved rewards Saleor pays that have no fulfilment yet."""
    return select(Reward.id, Reward.kind, Reward.program_id, Reward.beneficiary_id).where(
        Reward.kind.in_(kinds),
        Reward.status == "approved",
        Reward.amount > 0,
        Reward.payout_id.is_(None),
        ~select(SaleorFulfilment.reward_id).where(SaleorFulfilment.reward_id == Reward.id).exists(),
    )


def queue_rewards(reward_ids: list[int] | None = None, *, by_staff: bool = False) -> int:
    """Write a fulfilment and queue its job for approved rewards Saleor pays (of
    `reward_ids`, or all of them) that have none; nothing while the app is not installed.
    Unless staff asked (`by_staff`), only those the program's rollout issues on their own
    (rewards/rollout.py). A gift card's InviteLoop code is dropped: the code that works is
    the one Saleor issues."""
    kinds = _kinds_paid_in_saleor()
    if not kinds:
        return 0
    query = _unissued(kinds)
    if reward_ids is not None:
        query = query.where(Reward.id.in_(reward_ids))
    queued = 0
    for reward_id, kind, program_id, beneficiary_id in db.session.execute(
        query.order_by(Reward.id)
    ).all():
        program = db.session.get(Program, program_id)
        if not by_staff and not rollout.pays_automatically(program, beneficiary_id):
            continue  # waits approved for staff's "Pay out"
        try:
            with db.session.begin_nested():
                db.session.add(SaleorFulfilment(reward_id=reward_id, attempts=0))
        except IntegrityError:
            continue  # queued at the same moment by another transaction
        if kind == "gift_card":  # synchronised: later receivers read the session
            db.session.execute(
                update(Reward).where(Reward.id == reward_id).values(coupon_code=None)
            )
        enqueue(fulfil_reward, reward_id)
        queued += 1
    return queued


def _kinds_paid_in_saleor() -> tuple[str, ...]:
    if saleor_install.current_installation() is None:
        return ()
    return ("gift_card", "coupon") if current_app.config["SALEOR_CHANNEL_ID"] else ("gift_card",)


@job("saleor.queue_rewards")
def queue_due_rewards() -> int:
    """Beat's safety net: rewards approved without the signal (issued already approved, or
    before the app was installed) are queued too."""
    queued = queue_rewards()
    db.session.commit()
    log.info("queued %d reward(s) for Saleor", queued)
    return queued


class NotWaiting(DomainError):
    status = 409
    code = "reward_not_waiting"
    message = _l("This reward is not waiting to be paid out in Saleor (paid, cancelled or queued).")


def pay_out(reward_id: int) -> None:
    """Staff's "Pay out": queue one waiting reward's gift card or voucher, audit-logged."""
    if not _kinds_paid_in_saleor():
        raise NotInstalled()
    if queue_rewards([reward_id], by_staff=True) != 1:
        raise NotWaiting()
    audit.record("reward.pay_out", "reward", reward_id, after={"queued_in": "saleor"})


def awaiting_staff(limit: int = 100) -> list[Reward]:
    """Approved rewards Saleor pays that the rollout left for staff, oldest first."""
    kinds = _kinds_paid_in_saleor()
    if not kinds:
        return []
    ids = select(_unissued(kinds).subquery().c.id)
    return list(
        db.session.scalars(
            select(Reward).where(Reward.id.in_(ids)).order_by(Reward.id).limit(limit)
        )
    )


def awaiting_staff_among(reward_ids: list[int]) -> set[int]:
    """Which of these rewards wait for staff to pay them out in Saleor (for a page of them)."""
    kinds = _kinds_paid_in_saleor()
    if not kinds or not reward_ids:
        return set()
    unissued = _unissued(kinds).subquery()
    return set(db.session.scalars(select(unissued.c.id).where(unissued.c.id.in_(reward_ids))))


def state_counts() -> dict[str, int]:
    """How many Saleor rewards are in each state, for the staff panel."""
    kinds = _kinds_paid_in_saleor() or ("gift_card", "coupon")
    unissued = select(func.count()).select_from(_unissued(kinds).subquery())
    open_rows = (
        select(func.count())
        .select_from(SaleorFulfilment)
        .join(SaleorFulfilment.reward)
        .where(SaleorFulfilment.fulfilled_at.is_(None), Reward.status == "approved")
    )
    issued = select(func.count()).where(SaleorFulfilment.fulfilled_at.is_not(None))
    return {
        "waiting for staff": db.session.scalar(unissued) or 0,
        "being issued": db.session.scalar(open_rows.where(SaleorFulfilment.last_error.is_(None))),
        "failing, retried": db.session.scalar(
            open_rows.where(SaleorFulfilment.last_error.is_not(None))
        ),
        "issued": db.session.scalar(issued),
        "used": db.session.scalar(
            select(func.count()).where(SaleorFulfilment.used_at.is_not(None))
        ),
        "deactivated": db.session.scalar(
            select(func.count()).where(SaleorFulfilment.deactivated_at.is_not(None))
        ),
    }


def waiting_rewards() -> list[SaleorFulfilment]:
    """Rewards still approved that Saleor has not issued yet, with their last error, for the
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


@job("saleor.fulfil_reward")
def fulfil_reward(reward_id: int) -> None:
    """Issue the reward's gift card or voucher in Saleor, unless it was issued already."""
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
        log.info("reward %s is %s: nothing issued in Saleor", reward_id, reward.status)
        return
    if _reversed(reward_id):
        fulfilment.last_error = "Its purchase was refunded before Saleor issued it: nothing was."
        return
    try:
        issued = _issue(reward)
    except DomainError as error:
        _record_failure(reward_id, error)
        raise
    _mark_issued(fulfilment, reward, issued, utcnow())


def _issue(reward: Reward) -> saleor_issuing.Issued:
    connection = saleor_install.connection()
    if connection is None:
        raise NotInstalled()
    if reward.kind == "coupon":
        channel_id = current_app.config["SALEOR_CHANNEL_ID"]
        if not channel_id:
            raise NotInstalled("SALEOR_CHANNEL_ID is not set: no voucher can be issued.")
        return saleor_issuing.voucher(connection, reward, channel_id)
    return saleor_issuing.gift_card(connection, reward)


def _reversed(reward_id: int) -> bool:
    found = select(Reward.id).where(Reward.reverses_id == reward_id).limit(1)
    return db.session.scalar(found) is not None


def _mark_issued(fulfilment, reward: Reward, issued: saleor_issuing.Issued, now) -> None:
    """In the job's transaction (committed with the outbox row's "sent" mark): the reward
    paid with Saleor's code, the fulfilment done, the beneficiary told."""
    changed = db.session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.status == "approved")
        .values(
            status="paid",
            paid_at=now,
            coupon_code=issued.code,
            external_reference=f"saleor:{issued.saleor_id}"[:200],
            updated_at=now,
        ),
        execution_options={"synchronize_session": False},
    ).rowcount
    fulfilment.saleor_id = issued.saleor_id
    fulfilment.fulfilled_at = now
    fulfilment.last_error = None
    if not changed:  # cancelled while Saleor worked: what it made is recorded here for staff
        fulfilment.last_error = "The reward changed while Saleor issued it."
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
        system="saleor.fulfil_reward",
    )
    notifications.issued_in_shop(reward)


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
        select(SaleorFulfilment.reward_id)
        .join(SaleorFulfilment.reward)
        .where(
            SaleorFulfilment.reward_id.in_(reward_ids),
            Reward.kind == "gift_card",
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
        inactive = saleor_issuing.deactivate_if_unused(connection, fulfilment.saleor_id)
    except DomainError as error:
        _record_failure(reward_id, error)
        raise
    if inactive:
        fulfilment.deactivated_at = utcnow()
    else:
        fulfilment.last_error = "Refunded, but the card was already used: left active."
