"""Emails to participants: composed here, inside the transaction that caused them, and sent by
a background job only once it commits (core.jobs.enqueue).

The friend is named by public name and masked address only, never by the full address.
"""

from flask import render_template

from core.jobs import enqueue
from core.mail import absolute_url, send_email
from core.money import format_amount
from core.templating import mask_email
from models import Referral, Reward, User


def friend_joined(referral: Referral) -> None:
    """Tell the referrer that a friend joined through them; only for a counted referral."""
    referrer = referral.referrer
    if not referral.counted or not _reachable(referrer):
        return
    friend = referral.referred
    body = render_template(
        "email/friend_joined.txt",
        greeting_name=referrer.name,
        friend_name=friend.public_name,
        friend_email=mask_email(friend.email) if friend.email else None,
        dashboard_url=absolute_url("referral.dashboard"),
    )
    enqueue(send_email, referrer.email, "A friend joined InviteLoop through you", body)


def reward_approved(reward: Reward) -> None:
    """Tell the beneficiary that a reward has left its hold and is theirs."""
    beneficiary = reward.beneficiary
    if reward.status != "approved" or reward.amount <= 0 or not _reachable(beneficiary):
        return
    amount = format_amount(reward.amount, reward.currency, reward.kind)
    friend = reward.referral.referred if reward.referral else None
    body = render_template(
        "email/reward_approved.txt",
        greeting_name=beneficiary.name,
        reward=reward,
        amount=amount,
        kind_name=reward.kind.replace("_", " "),
        friend_name=friend.public_name if friend else None,
        ledger_url=absolute_url("rewards.ledger"),
    )
    enqueue(send_email, beneficiary.email, f"Your reward of {amount} is approved", body)


def _reachable(user: User) -> bool:
    return bool(user.email) and user.active
