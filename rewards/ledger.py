"""The participant's ledger: entries, balances summed from them, and payout requests.

Balances are never stored: every figure is a SUM over the participant's Reward rows, so it
always equals the entries shown. A payout claims rows by setting `payout_id`; its amount is
the sum of exactly the rows it claimed (reversing entries included, so they net out).
"""

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from core import audit
from core.errors import DomainError
from core.money import format_amount
from extensions import db
from models import (
    BALANCE_STATUSES,
    COUNTED_STATUSES,
    PAYABLE_KINDS,
    Payout,
    Program,
    Referral,
    Reward,
    User,
)
from rewards import notifications, services
from rewards.signals import rewards_paid
from rewards.words import REWARD_STATUS_WORDS

HELD_STATUSES = ("pending", "review")
REFERENCE_MAX_LENGTH = 200


class NotPayable(DomainError):
    code = "not_payable"
    message = _l("Only cash and credit rewards can be paid out.")


class BelowPayoutMinimum(DomainError):
    code = "below_payout_minimum"


class PayoutAlreadyRequested(DomainError):
    status = 409
    code = "payout_already_requested"
    message = _l(
        "You already have a payout request open for this balance. "
        "You can ask again once it has been paid."
    )


class PayoutNotOpen(DomainError):
    status = 409
    code = "payout_not_open"
    message = _l("This payout request is no longer open: it was already paid or cancelled.")


class PayoutChanged(DomainError):
    status = 409
    code = "payout_changed"
    message = _l(
        "The rewards in this payout request changed after it was made. "
        "Cancel it; the participant can then request the current balance."
    )


class InvalidPayoutReference(DomainError):
    code = "invalid_reference"
    field = "reference"
    message = _l(
        "The payment reference can be at most %(most)s characters.", most=REFERENCE_MAX_LENGTH
    )


@dataclass(frozen=True)
class Balance:
    """One kind and currency of a participant's rewards, in minor units."""

    kind: str
    currency: str
    available: int  # approved and not in a payout request
    on_hold: int  # pending (hold window) or held for review
    requested: int  # approved and claimed by an open payout request
    paid: int

    @property
    def payable(self) -> bool:
        return self.kind in PAYABLE_KINDS

    def as_json(self) -> dict:
        return {
            "kind": self.kind,
            "currency": self.currency,
            "available": self.available,
            "on_hold": self.on_hold,
            "requested": self.requested,
            "paid": self.paid,
            # What a payout request would claim now; null where the kind is not paid out.
            "payable": self.available if self.payable else None,
        }


def ledger_page(user: User, page: int, per_page: int):
    """The participant's entries, newest first, a page at a time."""
    query = (
        select(Reward)
        .options(joinedload(Reward.referral).joinedload(Referral.referred))
        .where(Reward.beneficiary_id == user.id)
        .order_by(Reward.created_at.desc(), Reward.id.desc())
    )
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def programs_rewarding(user: User) -> list[Program]:
    """The programs whose rewards the participant holds (for how to use each)."""
    return list(
        db.session.scalars(
            select(Program)
            .where(
                Program.id.in_(
                    select(Reward.program_id).where(
                        Reward.beneficiary_id == user.id,
                        Reward.amount > 0,
                        Reward.status.in_(BALANCE_STATUSES),
                    )
                )
            )
            .order_by(Program.id)
        )
    )


def inviting_program(user: User) -> Program | None:
    """The program of the referral that brought the participant in, while it counts."""
    return db.session.scalar(
        select(Program)
        .join(Referral, Referral.program_id == Program.id)
        .where(Referral.referred_id == user.id, Referral.status.in_(COUNTED_STATUSES))
    )


def _sum_where(condition):
    return func.sum(case((condition, Reward.amount), else_=0))


def balances(user: User) -> list[Balance]:
    """Per kind and currency, summed by the database from the participant's entries."""
    approved = Reward.status == "approved"
    rows = db.session.execute(
        select(
            Reward.kind,
            Reward.currency,
            _sum_where(and_(approved, Reward.payout_id.is_(None))),
            _sum_where(Reward.status.in_(HELD_STATUSES)),
            _sum_where(and_(approved, Reward.payout_id.is_not(None))),
            _sum_where(Reward.status == "paid"),
        )
        .where(Reward.beneficiary_id == user.id, Reward.status.in_(BALANCE_STATUSES))
        .group_by(Reward.kind, Reward.currency)
        .order_by(Reward.kind, Reward.currency)
    )
    return [
        Balance(kind, currency, int(available), int(held), int(requested), int(paid))
        for kind, currency, available, held, requested, paid in rows
    ]


def open_payouts(user: User) -> dict[tuple[str, str], Payout]:
    """The participant's payout requests not yet paid, by (kind, currency)."""
    payouts = db.session.scalars(
        select(Payout).where(Payout.user_id == user.id, Payout.status == "requested")
    )
    return {(payout.kind, payout.currency): payout for payout in payouts}


def _claimable(user_id: int, kind: str, currency: str):
    return (
        Reward.beneficiary_id == user_id,
        Reward.kind == kind,
        Reward.currency == currency,
        Reward.status == "approved",
        Reward.payout_id.is_(None),
    )


def _below_minimum(available: int, currency: str, kind: str) -> BelowPayoutMinimum:
    minimum = current_app.config["PAYOUT_MINIMUM"]
    return BelowPayoutMinimum(
        _(
            "A payout needs at least %(minimum)s of available %(kind)s; you have %(available)s.",
            minimum=format_amount(minimum, currency),
            kind=_KIND_WORDS.get(kind, kind),
            available=format_amount(available, currency),
        )
    )


def request_payout(user: User, kind: str, currency: str, now: datetime) -> Payout:
    """Ask for the available balance of one payable kind and currency to be paid out."""
    if kind not in PAYABLE_KINDS:
        raise NotPayable()
    available = db.session.scalar(
        select(func.coalesce(func.sum(Reward.amount), 0)).where(
            *_claimable(user.id, kind, currency)
        )
    )
    # Looked up after the sum: a request that claimed the rows first is then seen here, so
    # the racer loses with "already requested" rather than an empty balance.
    if (kind, currency) in open_payouts(user):
        raise PayoutAlreadyRequested()
    if available < current_app.config["PAYOUT_MINIMUM"]:
        raise _below_minimum(available, currency, kind)
    payout = Payout(user_id=user.id, kind=kind, currency=currency, amount=available, created_at=now)
    try:
        # One savepoint: a refusal below leaves neither the payout nor any claimed row.
        with db.session.begin_nested():
            db.session.add(payout)
            db.session.flush()
            _claim_rewards(payout)
    except IntegrityError:
        # uq_payouts_one_open: a request made at the same moment committed first.
        raise PayoutAlreadyRequested() from None
    notifications.payout_requested(payout)
    return payout


def _claim_rewards(payout: Payout) -> None:
    db.session.execute(
        update(Reward)
        .where(*_claimable(payout.user_id, payout.kind, payout.currency))
        .values(payout_id=payout.id),
        execution_options={"synchronize_session": "fetch"},
    )
    # Rows released or approved since the sum above change what was claimed; the payout
    # is worth exactly what it holds.
    claimed = _payout_total(payout.id, "approved")
    if claimed < current_app.config["PAYOUT_MINIMUM"]:
        raise _below_minimum(claimed, payout.currency, payout.kind)
    payout.amount = claimed
    db.session.flush()


def _payout_total(payout_id: int, status: str) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(Reward.amount), 0)).where(
            Reward.payout_id == payout_id, Reward.status == status
        )
    )


def _clean_reference(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > REFERENCE_MAX_LENGTH:
        raise InvalidPayoutReference()
    return text or None


def _close_payout(payout: Payout, **values) -> None:
    """Move an open request to its final status, once, even with two staff clicking."""
    closed = db.session.execute(
        update(Payout).where(Payout.id == payout.id, Payout.status == "requested").values(**values),
        execution_options={"synchronize_session": "fetch"},
    )
    if closed.rowcount != 1:
        raise PayoutNotOpen()


def mark_payout_paid(payout: Payout, reference: str | None, now: datetime) -> Payout:
    """Staff paid the request: it and every entry it claimed become paid."""
    reference = _clean_reference(reference)
    if payout.status != "requested":
        raise PayoutNotOpen()
    if _payout_total(payout.id, "approved") != payout.amount:
        raise PayoutChanged()
    _close_payout(payout, status="paid", paid_at=now, reference=reference)
    paid = db.session.scalars(
        update(Reward)
        .where(Reward.payout_id == payout.id, Reward.status == "approved")
        .values(status="paid", paid_at=now, updated_at=now)
        .returning(Reward.id),
        execution_options={"synchronize_session": "fetch"},
    ).all()
    db.session.flush()
    rewards_paid.send(None, reward_ids=list(paid), now=now)
    notifications.payout_paid(payout)
    after = {"status": "paid", "reference": reference, "reward_ids": sorted(paid)}
    audit.record("payout.pay", "payout", payout.id, before={"status": "requested"}, after=after)
    return payout


def cancel_payout(payout: Payout, reason: str) -> Payout:
    """Staff will not pay the request: its entries are available again. The reason is kept
    in the payout's `reference`, where a paid request keeps its payment reference."""
    reason = _clean_reference(reason)
    _close_payout(payout, status="cancelled", reference=reason)
    released = db.session.scalars(
        update(Reward)
        .where(Reward.payout_id == payout.id, Reward.status == "approved")
        .values(payout_id=None)
        .returning(Reward.id),
        execution_options={"synchronize_session": "fetch"},
    ).all()
    db.session.flush()
    after = {"status": "cancelled", "reason": reason, "released_reward_ids": sorted(released)}
    audit.record("payout.cancel", "payout", payout.id, before={"status": "requested"}, after=after)
    return payout


# --- staff actions on single entries ---------------------------------------------------------
# Each is one conditional UPDATE on the status staff saw: of two clicks at once, one changes
# the row and the other is refused with what happened meanwhile.

CANCELLABLE_STATUSES = ("pending", "approved", "review")
_ONLY = {
    "approve": _l("Only a reward on hold (pending) can be approved early. This one is %(status)s."),
    "pay": _l("Only an approved reward can be marked paid. This one is %(status)s."),
    "cancel": _l("Only a reward not yet paid can be cancelled. This one is %(status)s."),
}
# The reward kinds a payout is asked for (PAYABLE_KINDS), as a sentence names them.
_KIND_WORDS = {"cash": _l("cash"), "credit": _l("credit")}


class RewardNotChanged(DomainError):
    status = 409
    code = "reward_not_changed"
    message = _l("This reward changed meanwhile; nothing was done.")


def approve_reward_early(reward: Reward, now: datetime) -> None:
    """Staff override: approve a pending reward before its hold (refund window) ends."""
    if reward.status != "pending" or not services.approve_rewards([reward.id], now):
        raise _refusal(reward, "approve")
    after = {"status": "approved", "hold_ended_early": reward.available_at > now}
    audit.record("reward.approve", "reward", reward.id, before={"status": "pending"}, after=after)
    db.session.refresh(reward)


def cancel_reward(reward: Reward, reason: str, now: datetime) -> None:
    """Staff take back an entry not yet paid; a paid one needs a reversing entry instead."""
    seen = reward.status
    reason = (reason or "").strip()[:40] or "cancelled_by_staff"
    changed = _change(
        reward,
        (Reward.status == seen, Reward.status.in_(CANCELLABLE_STATUSES)),
        status="cancelled",
        reason=reason,
        updated_at=now,
    )
    if not changed:
        raise _refusal(reward, "cancel")
    after = {"status": "cancelled", "reason": reason}
    audit.record("reward.cancel", "reward", reward.id, before={"status": seen}, after=after)


def mark_reward_paid(reward: Reward, reference: str | None, now: datetime) -> None:
    """Staff paid an approved entry outside a payout request (say, a gift card sent by hand)."""
    reference = _clean_reference(reference)
    changed = _change(
        reward,
        (Reward.status == "approved",),
        status="paid",
        paid_at=now,
        external_reference=reference or reward.external_reference,
        updated_at=now,
    )
    if not changed:
        raise _refusal(reward, "pay")
    rewards_paid.send(None, reward_ids=[reward.id], now=now)
    after = {"status": "paid", "reference": reference}
    audit.record("reward.pay", "reward", reward.id, before={"status": "approved"}, after=after)


def _change(reward: Reward, conditions: tuple, **values) -> bool:
    """Only a positive entry outside any payout request is staff's to change by hand."""
    changed = db.session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.payout_id.is_(None), Reward.amount > 0, *conditions)
        .values(**values),
        execution_options={"synchronize_session": False},
    ).rowcount
    db.session.refresh(reward)
    return changed == 1


def _refusal(reward: Reward, action: str) -> RewardNotChanged:
    """Why `action` did not apply, from the entry as it is now."""
    db.session.refresh(reward)
    status = reward.status
    if reward.amount < 0:
        return RewardNotChanged(_("A reversing entry cannot be changed by hand."))
    if reward.payout_id is not None and status == "approved":
        return RewardNotChanged(
            _(
                "This reward is part of payout request #%(id)s; "
                "pay or cancel that request on the payouts screen instead.",
                id=reward.payout_id,
            )
        )
    if action == "cancel" and status in ("paid", "redeemed"):
        return RewardNotChanged(
            _(
                "This reward is already %(status)s and cannot be cancelled. Record a refund of "
                "its purchase instead: that writes a reversing entry.",
                status=_status_words(status),
            )
        )
    if status == "review":
        return RewardNotChanged(_("This reward waits in the review queue; decide it there."))
    if status in ("cancelled", "rejected", "expired"):
        return RewardNotChanged(
            _(
                "This reward is already %(status)s (%(reason)s).",
                status=_status_words(status),
                reason=reward.reason,
            )
        )
    return RewardNotChanged(str(_ONLY[action]) % {"status": _status_words(status)})


def _status_words(status: str) -> str:
    return str(REWARD_STATUS_WORDS.get(status, status))
