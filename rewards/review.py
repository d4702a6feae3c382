"""Staff decisions on what the fraud checks held: a referral in review, or the rewards a
purchase's own checks held. Each decision is a conditional UPDATE (for the referral's
status, referral.lifecycle's), so two staff deciding the same item at once change it once.
"""

from datetime import datetime

from sqlalchemy import Select, select, update

from core import audit
from extensions import db
from models import Conversion, Referral, Reward
from referral import lifecycle
from referral import services as referral_services
from rewards import notifications
from rewards import services as rewards_services


def approve_referral(referral: Referral, now: datetime, reason: str | None = None) -> None:
    """Staff cleared a held referral: it counts from now on (the referrer hears of the
    friend now), and its held rewards start (or, if their hold is over, finish) the normal
    hold. `reason` goes to the audit log."""
    status = lifecycle.approve(referral, now)
    notifications.friend_joined(referral)
    if referral.referred.referred_by_id is None:
        referral.referred.referred_by_id = referral.referrer_id
    referral_services.referral_counted(referral.referrer_id)
    released = _release_reviewed(referral, now)
    after = {"status": status, "reason": _clean_reason(reason, None), "rewards": released}
    audit.record(
        "referral.approve", "referral", referral.id, before={"status": "review"}, after=after
    )


def reject_referral(referral: Referral, reason: str, now: datetime) -> None:
    """Staff refused a held referral: it never counts, and its held rewards are rejected."""
    reason = _clean_reason(reason, "rejected_by_staff")
    lifecycle.reject(referral, reason, now)
    notifications.referral_rejected(referral)
    rejected = db.session.scalars(
        update(Reward)
        .where(Reward.referral_id == referral.id, Reward.status == "review")
        .values(status="rejected", reason=reason, updated_at=now)
        .returning(Reward.id),
        execution_options={"synchronize_session": False},
    ).all()
    after = {"status": "rejected", "reason": reason, "rewards": {"rejected": sorted(rejected)}}
    audit.record(
        "referral.reject", "referral", referral.id, before={"status": "review"}, after=after
    )


def _clean_reason(reason: str | None, default: str | None) -> str | None:
    """A reason fits the 40 characters the ledger keeps."""
    return (reason or "").strip()[:40] or default


def _release_reviewed(referral: Referral, now: datetime) -> dict[str, list[int]]:
    """Held rewards start their hold; those whose hold is already over go on through the one
    approval path (referral marked rewarded, beneficiaries told)."""
    released = db.session.execute(
        update(Reward)
        .where(Reward.referral_id == referral.id, Reward.status == "review")
        .values(status="pending", updated_at=now)
        .returning(Reward.id, Reward.available_at),
        execution_options={"synchronize_session": False},
    ).all()
    due = [reward_id for reward_id, available_at in released if available_at <= now]
    approved = rewards_services.approve_rewards(due, now) if due else []
    pending = [reward_id for reward_id, _ in released if reward_id not in approved]
    return {"approved": sorted(approved), "pending": sorted(pending)}


def decided_with(conversion: Conversion) -> Select:
    """The ids of the conversions whose held rewards are decided with `conversion`: itself
    and, for a purchase, its order's refunds (a partial refund of a held purchase restates
    the held rewards under the refund; they stay one item of the review queue)."""
    ids = select(Conversion.id).where(Conversion.id == conversion.id)
    if conversion.kind != "purchase" or not conversion.order_id:
        return ids
    return ids.union(_refunds_of_order(conversion.source, conversion.order_id))


def _refunds_of_order(source: str, order_id: str) -> Select:
    return select(Conversion.id).where(
        Conversion.source == source, Conversion.order_id == order_id, Conversion.kind == "refund"
    )


def decide_held_rewards(conversion: Conversion, approve: bool, reason: str, now: datetime) -> int:
    """Staff's decision on rewards a conversion's own fraud checks held (the referral itself
    was fine), with those its order's refunds restated (`decided_with`): approved ones
    continue through the hold, rejected ones keep the reason.
    Only rows still held change, so of two decisions at once the second changes nothing."""
    held = (Reward.conversion_id.in_(decided_with(conversion)), Reward.status == "review")
    reason = _clean_reason(reason, None if approve else "rejected_by_staff")
    values = {"status": "pending" if approve else "rejected", "updated_at": now}
    if not approve:
        values["reason"] = reason
    changed = db.session.scalars(
        update(Reward).where(*held).values(**values).returning(Reward.id),
        execution_options={"synchronize_session": False},
    ).all()
    if changed:
        after = {"ids": sorted(changed), "status": values["status"], "reason": reason}
        action = "conversion.approve_held" if approve else "conversion.reject_held"
        audit.record(action, "conversion", conversion.id, before={"status": "review"}, after=after)
    return len(changed)
