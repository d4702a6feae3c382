"""A referral's story as its referrer reads it, step by step: link opened, joined, under
review, qualifying purchase, reward on hold until a date, approved, paid or cancelled.

Read from the referral and the referrer's own ledger entries for it; fraud signals are told
in words safe to show a participant (the staff panel has the itemised checks)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import select

from core.money import format_amount
from core.templating import format_date
from extensions import db
from models import Program, Referral, Reward, User
from referral.offer import offer_of

DONE, NOW, NEXT, STOPPED = "done", "now", "next", "stopped"

_JOINED_BY = {
    "link": _l("Joined through your link"),
    "code": _l("Joined with your code"),
    "claimed": _l("Named you as their inviter"),
    "api": _l("Joined through the shop with your code"),
}

# The fraud checks' reasons in words a participant may read: what happened, never how the
# checks work in detail.
_SAME_PLACE = _l(
    "It came from the same network or device as your own account (for example two"
    " browsers on one computer)."
)
_UNUSUAL = _l("Our automatic checks found something unusual about this signup.")
_SAFE_REASONS = {
    "same_device": _SAME_PLACE,
    "same_ip": _SAME_PLACE,
    "same_network": _SAME_PLACE,
    "same_person": _l("It looks like your own account."),
    "same_mailbox": _l("It looks like your own account."),
    "self_referral": _l("It looks like your own account."),
    "ip_velocity": _l("Many signups came from one place at the same time."),
    "code_velocity": _l("Many signups used your code within a short time."),
    "excluded_domain": _l("The program does not accept this email domain."),
    "disposable_email": _l("It used a throwaway email address."),
    "cycle": _l("This person is already part of the network that invited you."),
    "fast_purchase": _l("The purchase came seconds after the link was opened."),
    "rejected_by_staff": _l("Our team declined it after review."),
}

_CANCELLED = {
    "refunded": _l("The order was refunded, so the reward was cancelled."),
    "partial_refund": _l("Part of the order was refunded, so the reward was restated."),
    "rejected_by_staff": _l("Our team declined it after review."),
    "expired": _l("It was not used before it expired."),
}


_QUALIFIED_UNPAID = _l(
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
    return str(_SAFE_REASONS.get(code or "", _UNUSUAL))


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
    friend = referral.referred.name.split()[0] if referral.referred.name else _("Your friend")
    story = []
    if referral.clicked_at:
        story.append(Step(DONE, _("Opened your link"), when=referral.clicked_at))
    joined = str(_JOINED_BY.get(referral.source, _("Joined")))
    story.append(Step(DONE, joined, when=referral.created_at))
    if referral.status == "rejected":
        return [*story, Step(STOPPED, _("Not counted"), safe_reason(referral.reason))]
    if referral.status == "review":
        story.append(_review_step(referral, friend, review_days, now))
    elif referral.status == "approved":
        story.append(
            Step(
                DONE,
                _("Approved after review"),
                _("%(name)s counts as your referral.", name=friend),
            )
        )
    story += _reward_steps(rewards, program)
    if referral.status in ("qualified", "rewarded") and not rewards:
        story.append(Step(DONE, _("Qualified"), str(_QUALIFIED_UNPAID)))
    story += _what_comes_next(referral, rewards, program, friend)
    return story


def _review_step(referral: Referral, friend: str, review_days: int, now: datetime) -> Step:
    decided_by = referral.created_at + timedelta(days=review_days)
    if decided_by > now:
        wait = ngettext(
            "Someone on our team checks every such signup, usually within %(num)d day;"
            " expect an answer by %(date)s.",
            "Someone on our team checks every such signup, usually within %(num)d days;"
            " expect an answer by %(date)s.",
            review_days,
            date=format_date(decided_by),
        )
    else:
        wait = ngettext(
            "Someone on our team checks every such signup, usually within %(num)d day;"
            " expect an answer soon.",
            "Someone on our team checks every such signup, usually within %(num)d days;"
            " expect an answer soon.",
            review_days,
        )
    outcome = _(
        "If it is approved, %(name)s counts as your referral and earns you rewards as usual;"
        " if not, it does not count.",
        name=friend,
    )
    return Step(NOW, _("Under review"), f"{safe_reason(referral.reason)} {wait} {outcome}")


def _reward_steps(rewards: list[Reward], program: Program) -> list[Step]:
    by_signup = program.trigger_event == "signup"
    story = []
    for reward in rewards:
        amount = format_amount(abs(reward.amount), reward.currency, reward.kind)
        if reward.reverses_id:
            reason = _CANCELLED.get(reward.reason)
            story.append(
                Step(
                    STOPPED,
                    _("%(amount)s taken back", amount=amount),
                    str(reason) if reason else None,
                )
            )
            continue
        if reward.role == "bonus":
            title = _("Milestone bonus of %(amount)s", amount=amount)
        elif by_signup:
            title = _("Signup counted: you earned %(amount)s", amount=amount)
        else:
            title = _("Qualifying purchase: you earned %(amount)s", amount=amount)
        story.append(Step(DONE, title, when=reward.created_at))
        story += _entry_status(reward)
    return story


def _entry_status(reward: Reward) -> list[Step]:
    status = reward.status
    if status == "review":
        return [Step(NOW, _("Reward held for review"), _("It is released once the review ends."))]
    if status == "pending":
        return [
            Step(
                NOW,
                _("Reward on hold until %(date)s", date=format_date(reward.available_at)),
                _("We wait in case the order is returned; then it is yours."),
            )
        ]
    if status == "approved":
        return [Step(DONE, _("Reward approved"), _("It is in your rewards."), reward.available_at)]
    if status == "paid":
        return [Step(DONE, _("Reward approved")), Step(DONE, _("Paid out"), when=reward.paid_at)]
    if status == "redeemed":
        return [Step(DONE, _("Reward approved")), Step(DONE, _("Used"), when=reward.updated_at)]
    reason = str(_CANCELLED.get(reward.reason or "", safe_reason(reward.reason)))
    title = {"expired": _("Expired"), "rejected": _("Declined")}.get(status, _("Cancelled"))
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
        return [] if earned else [Step(NEXT, _("Qualifying purchase"), offer.next_step(friend))]
    if program.trigger_event == "every_purchase":
        return [Step(NEXT, _("More purchases"), offer.next_step(friend))]
    if live or referral.status in ("qualified", "rewarded"):
        return []
    title = _("Another qualifying purchase") if earned else _("Qualifying purchase")
    return [Step(NOW, title, offer.next_step(friend))]
