"""The ledger's rules: what a qualifying event pays, to whom, and how entries move on.

Every entry is written in the caller's transaction; the unique constraints on rewards make
issuance exactly-once even when the same event is processed twice at the same moment.
"""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from core import audit
from extensions import db
from models import (
    LIVE_REWARD_STATUSES,
    Conversion,
    Program,
    Referral,
    Reward,
    User,
)
from referral import lifecycle
from referral.codes import ALPHABET
from rewards import eligibility, notifications
from rewards.signals import rewards_approved, rewards_reversed

_COUPON_LENGTH = 12
_BATCH = 500


@dataclass(frozen=True)
class Grant:
    """What a conversion earned: the entries written and, if something was left out, why."""

    rewards: list[Reward]
    note: str | None = None


def reward_value(basis: str, value: int, purchase_amount: int | None) -> int:
    """A fixed amount, or `value` basis points of the purchase (rounded down)."""
    if basis == "fixed":
        return value
    return (purchase_amount or 0) * value // 10_000


def grant_rewards(
    conversion: Conversion,
    referral: Referral,
    program: Program,
    *,
    held: bool,
    now: datetime,
    referrer: User | None = None,
) -> Grant:
    """Write the referrer's, the friend's, the network's and any milestone reward for one
    qualifying conversion. `held` writes them for review instead of the normal hold.
    `referrer`: the referral's referrer when the caller has them at hand."""
    status, available_at, expires_at = _timing(program, held, now)
    entry = _entry_factory(conversion, referral, program, status, available_at, expires_at)
    rewards, note = [], None
    qualifying = eligibility.qualifying_amount(conversion)
    referrer_amount = reward_value(
        program.referrer_reward_basis, program.referrer_reward_value, qualifying
    )
    if referrer is None:
        referrer = db.session.get(User, referral.referrer_id)
    # A deleted account earns nothing more: its owner asked to be forgotten and forfeited
    # what was unpaid (auth.account_data).
    referrer_deleted = referrer.deleted_at is not None
    if referrer_deleted:
        note = "referrer_deleted"
    elif referrer_amount > 0:
        note = _cap_reached(program, referral.referrer_id, now)
        if note is None:
            rewards.append(entry(referral.referrer_id, "referrer", 1, referrer_amount))
            rewards += _network_rewards(program, referral.referrer_id, referrer_amount, entry)
    if program.friend_reward_kind:
        friend_amount = reward_value(
            program.friend_reward_basis, program.friend_reward_value, qualifying
        )
        if friend_amount > 0:
            rewards.append(
                entry(referral.referred_id, "referee", 1, friend_amount, program.friend_reward_kind)
            )
    _insert(rewards)
    bonus = [] if referrer_deleted else _milestone_reward(program, referral, entry)
    return Grant(rewards + bonus, note)


def _timing(program: Program, held: bool, now: datetime):
    available_at = now + timedelta(days=program.hold_days)
    status = "review" if held else ("pending" if program.hold_days else "approved")
    expires_at = None
    if program.reward_expiry_days:
        expires_at = available_at + timedelta(days=program.reward_expiry_days)
    return status, available_at, expires_at


def _entry_factory(conversion, referral, program, status, available_at, expires_at):
    def entry(beneficiary_id, role, level, amount, kind=None, milestone=None) -> Reward:
        kind = kind or program.referrer_reward_kind
        return Reward(
            program_id=program.id,
            conversion_id=conversion.id,
            referral_id=referral.id,
            beneficiary_id=beneficiary_id,
            role=role,
            level=level,
            milestone=milestone,
            kind=kind,
            amount=amount,
            currency=program.currency,
            status=status,
            coupon_code=_coupon_code() if kind in ("coupon", "gift_card") else None,
            available_at=available_at,
            expires_at=expires_at,
            created_at=conversion.created_at,
            updated_at=conversion.created_at,
        )

    return entry


def _coupon_code() -> str:
    """Unguessable: 12 characters of a 31-letter alphabet is about 59 bits."""
    return "IL-" + "".join(secrets.choice(ALPHABET) for _ in range(_COUPON_LENGTH))


def _insert(rewards: list[Reward]) -> None:
    db.session.add_all(rewards)
    db.session.flush()


def _network_rewards(program: Program, referrer_id: int, level_one: int, entry) -> list[Reward]:
    """Shares of the level-1 reward for the referrer's own inviters, up the tree."""
    rewards = []
    seen = {referrer_id}
    current = referrer_id
    for level, share in enumerate(program.level_shares or [], start=2):
        if level > program.max_depth:
            break
        inviter = db.session.scalar(
            select(User.referred_by_id).where(User.id == current, User.active)
        )
        if inviter is None or inviter in seen:  # the top of the tree, or a loop
            break
        seen.add(inviter)
        amount = level_one * share // 100
        if amount > 0:
            rewards.append(entry(inviter, "referrer", level, amount))
        current = inviter
    return rewards


def _cap_reached(program: Program, referrer_id: int, now: datetime) -> str | None:
    """Whether the referrer's reward would pass a cap. The referrer's row (and for the
    program total, the program's) is locked first, so concurrent grants count in turn."""
    if not (program.cap_per_day or program.cap_per_month or program.cap_total):
        return None
    db.session.execute(select(User.id).where(User.id == referrer_id).with_for_update())
    if program.cap_total:
        db.session.execute(select(Program.id).where(Program.id == program.id).with_for_update())
        if _referrer_rewards(program, None, None) >= program.cap_total:
            return "program_cap_reached"
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if program.cap_per_day and (
        _referrer_rewards(program, referrer_id, day_start) >= program.cap_per_day
    ):
        return "daily_cap_reached"
    month_start = day_start.replace(day=1)
    if program.cap_per_month and (
        _referrer_rewards(program, referrer_id, month_start) >= program.cap_per_month
    ):
        return "monthly_cap_reached"
    return None


def _referrer_rewards(program: Program, referrer_id: int | None, since: datetime | None) -> int:
    query = select(func.count()).where(
        Reward.program_id == program.id,
        Reward.role == "referrer",
        Reward.level == 1,
        Reward.amount > 0,
        Reward.status.in_(LIVE_REWARD_STATUSES),
    )
    if referrer_id is not None:
        query = query.where(Reward.beneficiary_id == referrer_id)
    if since is not None:
        query = query.where(Reward.created_at >= since)
    return db.session.scalar(query)


def _milestone_reward(program: Program, referral: Referral, entry) -> list[Reward]:
    """Every `milestone_every`-th qualified referral pays the referrer a bonus, once: the
    partial unique index on (program, beneficiary, milestone) refuses a second one."""
    if not program.milestone_every:
        return []
    qualified = db.session.scalar(
        select(func.count()).where(
            Referral.program_id == program.id,
            Referral.referrer_id == referral.referrer_id,
            Referral.status.in_(("qualified", "rewarded")),
        )
    )
    if qualified == 0 or qualified % program.milestone_every:
        return []
    bonus = entry(
        referral.referrer_id,
        "bonus",
        1,
        program.milestone_amount,
        milestone=qualified // program.milestone_every,
    )
    try:
        with db.session.begin_nested():
            db.session.add(bonus)
    except IntegrityError:
        return []  # another conversion already paid this milestone
    return [bonus]


def reward_key(reward: Reward) -> tuple:
    """What one order pays one beneficiary for one place in the program."""
    return (reward.beneficiary_id, reward.role, reward.level, reward.milestone)


def rewards_of(conversion_ids: list[int]) -> list[Reward]:
    """Every entry these conversions wrote (reversals too), locked for this transaction."""
    return db.session.scalars(
        select(Reward)
        .where(Reward.conversion_id.in_(conversion_ids))
        .order_by(Reward.id)
        .with_for_update()
    ).all()


_ON_HOLD = ("review", "pending")
_TAKEN = ("approved", "paid", "redeemed")


def take_back(entries: list[Reward], amount: int, refund: Conversion, now: datetime) -> bool:
    """Take `amount` back from one beneficiary's entries for one order (a `reward_key`'s
    entries, reversals included), writing at most one new row under `refund`:
    entries still on hold are cancelled, and what they held beyond `amount` is written again
    as one entry on the same hold; what is still missing is reversed from the approved or paid
    entry with the most left after its earlier reversals (each refund may reverse an entry
    once, `uq_rewards_reversal`), never more than is left of it. False when what is left of
    one entry does not cover it (an order whose several purchases each earned a part); the
    rest is then taken back by the order's next refund, and the caller reports it for staff."""
    on_hold = [reward for reward in entries if reward.amount > 0 and reward.status in _ON_HOLD]
    held = sum(reward.amount for reward in on_hold)
    was_pending = any(reward.status == "pending" for reward in on_hold)
    for reward in on_hold:
        _cancel_refunded(reward, refund, now)
    if held >= amount:
        if held > amount:
            _restate(on_hold, held - amount, "pending" if was_pending else "review", refund, now)
        return True
    missing = amount - held
    left = _left_to_reverse(entries)
    if not left:
        return False
    reward, remaining = max(left, key=lambda pair: (pair[1], -pair[0].id))
    taken = min(missing, remaining)
    return _reverse(reward, taken, remaining, refund, now) is not None and taken == missing


def _left_to_reverse(entries: list[Reward]) -> list[tuple[Reward, int]]:
    """Each approved or paid entry with what its reversing entries have not yet taken back."""
    left = {
        reward.id: reward.amount
        for reward in entries
        if reward.amount > 0 and reward.status in _TAKEN
    }
    for reward in entries:
        if reward.reverses_id in left:
            left[reward.reverses_id] += reward.amount  # a reversal is negative
    by_id = {reward.id: reward for reward in entries}
    return [(by_id[reward_id], value) for reward_id, value in left.items() if value > 0]


def _entry_under(refund: Conversion, source: Reward, now: datetime, **fields) -> Reward:
    """A new ledger entry written by `refund` in the place of `source`: same program,
    referral, beneficiary, role, level, kind and currency; `fields` say the rest."""
    return Reward(
        program_id=source.program_id,
        conversion_id=refund.id,
        referral_id=source.referral_id,
        beneficiary_id=source.beneficiary_id,
        role=source.role,
        level=source.level,
        kind=source.kind,
        currency=source.currency,
        created_at=now,
        updated_at=now,
        **fields,
    )


def _restate(taken_back: list[Reward], amount: int, status: str, refund: Conversion, now):
    """The one entry that replaces the cancelled `taken_back` with the smaller `amount`, on
    their hold. Written under the refund, so one refund restates once (`uq_rewards_issuance`)."""
    first = taken_back[0]
    expiries = [reward.expires_at for reward in taken_back if reward.expires_at is not None]
    restated = _entry_under(
        refund,
        first,
        now,
        amount=amount,
        status=status,
        reason="partial_refund",
        coupon_code=_coupon_code() if first.kind in ("coupon", "gift_card") else None,
        available_at=max(reward.available_at for reward in taken_back),
        expires_at=max(expiries) if expiries else None,
    )
    db.session.add(restated)
    db.session.flush()
    after = {
        "amount": amount,
        "status": status,
        "replaces": [reward.id for reward in taken_back],
        "refund_id": refund.id,
    }
    audit.record(
        "reward.restate", "reward", restated.id, after=after, system=f"refund via {refund.source}"
    )
    return restated


def cancel_or_reverse(reward: Reward, refund: Conversion, now: datetime) -> Reward | None:
    """Take back a reward whose purchase was refunded: an entry still on hold is cancelled;
    one already approved or paid gets one reversing entry of all of it. Returns the reversing
    entry, if one was written."""
    if reward.status in _ON_HOLD:
        _cancel_refunded(reward, refund, now)
        return None
    if reward.status not in _TAKEN:
        return None
    return _reverse(reward, reward.amount, reward.amount, refund, now)


def _cancel_refunded(reward: Reward, refund: Conversion, now: datetime) -> None:
    before = {"status": reward.status}
    reward.status, reward.reason, reward.updated_at = "cancelled", "refunded", now
    after = {"status": "cancelled", "reason": "refunded", "refund_id": refund.id}
    audit.record(
        "reward.cancel",
        "reward",
        reward.id,
        before=before,
        after=after,
        system=f"refund via {refund.source}",
    )


def _reverse(
    reward: Reward, amount: int, remaining: int, refund: Conversion, now: datetime
) -> Reward | None:
    """One reversing entry of `amount` from `reward`, of which earlier reversals left
    `remaining`: "refunded" when it takes back all that is left, else "partial_refund"."""
    reversal = _entry_under(
        refund,
        reward,
        now,
        amount=-amount,
        status="approved",
        reason="refunded" if amount == remaining else "partial_refund",
        reverses_id=reward.id,
        available_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(reversal)
    except IntegrityError:
        return None  # this refund reversed the entry already (`uq_rewards_reversal`)
    after = {"reversal_id": reversal.id, "amount": reversal.amount, "refund_id": refund.id}
    audit.record(
        "reward.reverse", "reward", reward.id, after=after, system=f"refund via {refund.source}"
    )
    if amount == remaining:
        rewards_reversed.send(None, reward_ids=[reward.id], now=now)
    return reversal


def release_held_rewards(now: datetime) -> int:
    """Approve every pending reward whose hold has ended, and mark its referral rewarded.
    Only rows still pending change, so two workers running at once release each row once."""
    released = 0
    while True:
        ids = db.session.scalars(
            select(Reward.id)
            .where(Reward.status == "pending", Reward.available_at <= now)
            .order_by(Reward.id)
            .limit(_BATCH)
        ).all()
        if not ids:
            return released
        approved = approve_rewards(ids, now)
        _audit_batch("rewards.release", approved, "pending", "approved", "rewards.release_held")
        released += len(approved)
        if len(ids) < _BATCH:
            return released


def approve_rewards(ids: list[int], now: datetime) -> list[int]:
    """Approve those of `ids` still pending (a conditional UPDATE: of two callers at once,
    one changes each row), mark their referrals rewarded and tell the beneficiaries.
    Returns the ids this call approved."""
    approved = db.session.scalars(
        update(Reward)
        .where(Reward.id.in_(ids), Reward.status == "pending")
        .values(status="approved", updated_at=now)
        .returning(Reward.id),
        execution_options={"synchronize_session": False},
    ).all()
    if not approved:
        return []
    _mark_referrals_rewarded(approved, now)
    rewards_approved.send(None, reward_ids=list(approved), now=now)
    # populate_existing: a caller may hold these rows from before the UPDATE (staff's early
    # approval does); read as they are now, or the email would see them still pending.
    for reward in db.session.scalars(
        select(Reward)
        .options(
            joinedload(Reward.beneficiary),
            joinedload(Reward.referral).joinedload(Referral.referred),
        )
        .where(Reward.id.in_(approved))
        .execution_options(populate_existing=True)
    ):
        notifications.reward_approved(reward)
    return list(approved)


def _audit_batch(action: str, ids, before: str, after: str, job: str, **extra) -> None:
    """One audit entry for a set of rewards a job or a decision moved together."""
    if ids:
        after_values = {"ids": sorted(ids), "status": after, **extra}
        audit.record(
            action, "reward", None, before={"status": before}, after=after_values, system=job
        )


def _mark_referrals_rewarded(reward_ids: list[int], now: datetime) -> None:
    if not reward_ids:
        return
    referral_ids = select(Reward.referral_id).where(
        Reward.id.in_(reward_ids), Reward.role == "referrer", Reward.level == 1
    )
    lifecycle.mark_rewarded(referral_ids, now)


def expire_rewards(now: datetime) -> int:
    """Expire approved, unclaimed rewards past their expiry date."""
    expired = db.session.scalars(
        update(Reward)
        .where(
            Reward.status == "approved",
            Reward.expires_at.is_not(None),
            Reward.expires_at <= now,
            Reward.payout_id.is_(None),
            Reward.amount > 0,
        )
        .values(status="expired", reason="expired", updated_at=now)
        .returning(Reward.id),
        execution_options={"synchronize_session": False},
    ).all()
    _audit_batch("rewards.expire", expired, "approved", "expired", "rewards.expire")
    return len(expired)
