"""A referral's story as its referrer reads it, step by step: link opened, joined, under
review, qualifying purchase, reward on hold until a date, approved, paid or cancelled.

Read from the referral and the referrer's own ledger entries for it; fraud signals are told
in words safe to show a participant (the staff panel has the itemised checks)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from core.money import format_amount
from core.templating import format_date
from extensions import db
from models import Program, Referral, Reward, User
from referral.offer import offer_of

DONE, NOW, NEXT, STOPPED = "done", "now", "next", "stopped"

_JOINED_BY = {
    "link": "Joined through your link",
    "code": "Joined with your code",
    "claimed": "Named you as their inviter",
    "api": "Joined through the shop with your code",
}

# The fraud checks' reasons in words a participant may read: what happened, never how the
# checks work in detail.
_SAME_PLACE = (
    "It came from the same network or device as your own account (for example two"
    " browsers on one computer)."
)
_UNUSUAL = "Our automatic checks found something unusual about this signup."
_SAFE_REASONS = {
    "same_device": _SAME_PLACE,
    "same_ip": _SAME_PLACE,
    "same_network": _SAME_PLACE,
    "same_person": "It looks like your own account.",
    "same_mailbox": "It looks like your own account.",
    "self_referral": "It looks like your own account.",
    "ip_velocity": "Many signups came from one place at the same time.",
    "code_velocity": "Many signups used your code within a short time.",
    "excluded_domain": "The program does not accept this email domain.",
    "disposable_email": "It used a throwaway email address.",
    "cycle": "This person is already part of the network that invited you.",
    "fast_purchase": "The purchase came seconds after the link was opened.",
    "rejected_by_staff": "Our team declined it after review.",
}

_CANCELLED = {
    "refunded": "The order was refunded, so the reward was cancelled.",
    "partial_refund": "Part of the order was refunded, so the reward was restated.",
    "rejected_by_staff": "Our team declined it after review.",
    "expired": "It was not used before it expired.",
}


_QUALIFIED_UNPAID = (
    "It counts for you, but earned no reward this time (for example, a limit on rewards was"
    " reached)."
)


@dataclass(frozen=True)
class Step:
    state: str  # DONE, NOW (what it waits for), NEXT (to come), STOPPED (it ended here)
    title: str
    detail: str | None = None
    when: datetime | None = None


def safe_reason(code: str | None) -> str:
    return _SAFE_REASONS.get(code or "", _UNUSUAL)


def timelines(
    referrer: User, referrals: list[Referral], review_days: int, now: datetime
) -> dict[int, list[Step]]:
    """Each referral's steps, by referral id, with the referrer's entries read in one query."""
    entries: dict[int, list[Reward]] = {}
    if referrals:
        rows = db.session.scalars(
            select(Reward)
            .where(
                Reward.referral_id.in_([referral.id for referral in referrals]),
                Reward.beneficiary_id == referrer.id,
                Reward.role.in_(("referrer", "bonus")),
                Reward.level == 1,
            )
            .order_by(Reward.created_at, Reward.id)
        )
        for reward in rows:
            entries.setdefault(reward.referral_id, []).append(reward)
    return {
        referral.id: steps(referral, entries.get(referral.id, []), review_days, now)
        for referral in referrals
    }


def steps(referral: Referral, rewards: list[Reward], review_days: int, now: datetime) -> list:
    program = db.session.get(Program, referral.program_id)
    friend = referral.referred.name.split()[0] if referral.referred.name else "Your friend"
    story = []
    if referral.clicked_at:
        story.append(Step(DONE, "Opened your link", when=referral.clicked_at))
    story.append(Step(DONE, _JOINED_BY.get(referral.source, "Joined"), when=referral.created_at))
    if referral.status == "rejected":
        return [*story, Step(STOPPED, "Not counted", safe_reason(referral.reason))]
    if referral.status == "review":
        story.append(_review_step(referral, friend, review_days, now))
    elif referral.status == "approved":
        story.append(Step(DONE, "Approved after review", f"{friend} counts as your referral."))
    story += _reward_steps(rewards, program)
    if referral.status in ("qualified", "rewarded") and not rewards:
        story.append(Step(DONE, "Qualified", _QUALIFIED_UNPAID))
    story += _what_comes_next(referral, rewards, program, friend)
    return story


def _review_step(referral: Referral, friend: str, review_days: int, now: datetime) -> Step:
    decided_by = referral.created_at + timedelta(days=review_days)
    when = f"by {format_date(decided_by)}" if decided_by > now else "soon"
    return Step(
        NOW,
        "Under review",
        f"{safe_reason(referral.reason)} Someone on our team checks every such signup, usually"
        f" within {review_days} day{'' if review_days == 1 else 's'}; expect an answer {when}."
        f" If it is approved, {friend} counts as your referral and earns you rewards as usual;"
        " if not, it does not count.",
    )


def _reward_steps(rewards: list[Reward], program: Program) -> list[Step]:
    earned_by = "Signup counted" if program.trigger_event == "signup" else "Qualifying purchase"
    story = []
    for reward in rewards:
        amount = format_amount(abs(reward.amount), reward.currency, reward.kind)
        if reward.reverses_id:
            story.append(Step(STOPPED, f"{amount} taken back", _CANCELLED.get(reward.reason)))
            continue
        if reward.role == "bonus":
            story.append(Step(DONE, f"Milestone bonus of {amount}", when=reward.created_at))
        else:
            story.append(Step(DONE, f"{earned_by}: you earned {amount}", when=reward.created_at))
        story += _entry_status(reward)
    return story


def _entry_status(reward: Reward) -> list[Step]:
    status = reward.status
    if status == "review":
        return [Step(NOW, "Reward held for review", "It is released once the review ends.")]
    if status == "pending":
        return [
            Step(
                NOW,
                f"Reward on hold until {format_date(reward.available_at)}",
                "We wait in case the order is returned; then it is yours.",
            )
        ]
    if status == "approved":
        return [Step(DONE, "Reward approved", "It is in your rewards.", reward.available_at)]
    if status == "paid":
        return [Step(DONE, "Reward approved"), Step(DONE, "Paid out", when=reward.paid_at)]
    if status == "redeemed":
        return [Step(DONE, "Reward approved"), Step(DONE, "Used", when=reward.updated_at)]
    reason = _CANCELLED.get(reward.reason or "", safe_reason(reward.reason))
    title = {"expired": "Expired", "rejected": "Declined"}.get(status, "Cancelled")
    return [Step(STOPPED, title, reason, reward.updated_at)]


def _what_comes_next(
    referral: Referral, rewards: list[Reward], program: Program, friend: str
) -> list[Step]:
    """The step still to come: a purchase to make (again), or nothing."""
    offer = offer_of(program)
    if offer.pays_on_signup:
        return []
    earned = [r for r in rewards if r.role == "referrer" and r.amount > 0 and not r.reverses_id]
    live = [r for r in earned if r.status not in ("cancelled", "rejected")]
    if referral.status == "review":
        return [] if earned else [Step(NEXT, "Qualifying purchase", offer.next_step(friend))]
    if program.trigger_event == "every_purchase":
        return [Step(NEXT, "More purchases", offer.next_step(friend))]
    if live or referral.status in ("qualified", "rewarded"):
        return []
    title = "Another qualifying purchase" if earned else "Qualifying purchase"
    return [Step(NOW, title, offer.next_step(friend))]
