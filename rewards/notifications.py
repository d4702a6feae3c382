"""Emails to participants: composed here, inside the transaction that caused them, and sent by
a background job only once it commits (core.jobs.enqueue). Each is called from the one place
its event happens, right after the conditional UPDATE that made it happen, so a repeated
decision (which changes no row) mails nobody again:

    friend joined      on_referral_announced (counted at signup; after its commit, from the
                       outbox: referral/announcements.py), review.approve_referral (cleared
                       by staff)
    referral rejected  the same two places, when the program says so (notify_rejected)
    reward approved    services.approve_rewards (hold ended, staff approved early or cleared);
                       for a reward Saleor pays, instead:
    issued in shop     saleor_fulfilment (Saleor issued the gift card or voucher: its code)
    payout requested   ledger.request_payout
    payout paid        ledger.mark_payout_paid

Each goes only to a reachable participant who has not turned its kind off
(auth/email_choices.py), and carries that kind's one-click unsubscribe link in its body and
its List-Unsubscribe header. The friend is named by public name and masked address only.
Each is written in its recipient's language (core.i18n.writing_to), whoever's request or job
caused it: subject, body, amounts and dates.
"""

from datetime import datetime

from flask import render_template
from flask_babel import gettext as _
from flask_babel import pgettext

from auth import email_choices
from core import branding
from core.i18n import writing_to
from core.mail import absolute_url, queue_email
from core.money import format_amount
from core.templating import mask_email
from extensions import db
from models import Payout, Program, Referral, Reward, SaleorFulfilment, User
from referral.program_texts import program_text


def on_referral_announced(referral: Referral, now: datetime) -> None:
    """Tell the referrer about a referral just recorded: a friend joined, or (if the program
    says so) a signup that does not count."""
    if referral.counted:
        friend_joined(referral)
    elif referral.status == "rejected":
        referral_rejected(referral)


def friend_joined(referral: Referral) -> None:
    """Tell the referrer that a friend joined through them; only for a counted referral."""
    if not referral.counted:
        return
    friend = referral.referred
    with writing_to(referral.referrer):
        _mail(
            referral.referrer,
            "friends",
            _("A friend joined %(brand)s through you", brand=branding.current().name),
            "email/friend_joined.txt",
            program=db.session.get(Program, referral.program_id),
            friend_name=friend.public_name,
            friend_email=mask_email(friend.email) if friend.email else None,
            dashboard_url=absolute_url("referral.dashboard"),
        )


def referral_rejected(referral: Referral) -> None:
    """Tell the referrer that a friend's signup does not count, if the program says so. The
    reason stays with staff: it may name a fraud check."""
    program = db.session.get(Program, referral.program_id)
    if referral.status != "rejected" or not program.notify_rejected:
        return
    with writing_to(referral.referrer):
        _mail(
            referral.referrer,
            "friends",
            _("A friend's signup did not count"),
            "email/referral_rejected.txt",
            program=program,
            friend_name=referral.referred.public_name,
            program_name=program_text(program, "name"),
            dashboard_url=absolute_url("referral.dashboard"),
        )


def reward_approved(reward: Reward) -> None:
    """Tell the beneficiary that a reward has left its hold and is theirs. One Saleor issues
    next (rewards/saleor_fulfilment.py) is announced once issued, with its code, instead."""
    if reward.status != "approved" or reward.amount <= 0:
        return
    if db.session.get(SaleorFulfilment, reward.id) is not None:
        return
    friend = reward.referral.referred if reward.referral else None
    with writing_to(reward.beneficiary):
        amount = format_amount(reward.amount, reward.currency, reward.kind)
        _mail(
            reward.beneficiary,
            "rewards",
            _("Your reward of %(amount)s is approved", amount=amount),
            "email/reward_approved.txt",
            program=db.session.get(Program, reward.program_id),
            reward=reward,
            amount=amount,
            kind_name=kind_name(reward.kind),
            friend_name=friend.public_name if friend else None,
            ledger_url=absolute_url("rewards.ledger"),
        )


def issued_in_shop(reward: Reward) -> None:
    """Send the code of the gift card or voucher Saleor issued for a reward: it works now."""
    with writing_to(reward.beneficiary):
        amount = format_amount(reward.amount, reward.currency, reward.kind)
        _mail(
            reward.beneficiary,
            "rewards",
            _("Your %(amount)s %(kind)s is ready", amount=amount, kind=kind_name(reward.kind)),
            "email/issued_in_shop.txt",
            program=db.session.get(Program, reward.program_id),
            reward=reward,
            amount=amount,
            kind_name=kind_name(reward.kind),
            ledger_url=absolute_url("rewards.ledger"),
        )


def payout_requested(payout: Payout) -> None:
    """Confirm a payout request, with what happens next."""
    with writing_to(payout.user):
        amount = format_amount(payout.amount, payout.currency, payout.kind)
        _mail(
            payout.user,
            "payouts",
            _("We received your payout request for %(amount)s", amount=amount),
            "email/payout_requested.txt",
            payout=payout,
            amount=amount,
            kind_name=kind_name(payout.kind),
            ledger_url=absolute_url("rewards.ledger"),
        )


def payout_paid(payout: Payout) -> None:
    """Keep the request page's promise: "we will email you once it is paid"."""
    with writing_to(payout.user):
        amount = format_amount(payout.amount, payout.currency, payout.kind)
        _mail(
            payout.user,
            "payouts",
            _("Your payout of %(amount)s is paid", amount=amount),
            "email/payout_paid.txt",
            payout=payout,
            amount=amount,
            kind_name=kind_name(payout.kind),
            ledger_url=absolute_url("rewards.ledger"),
        )


def kind_name(kind: str) -> str:
    """A reward's or payout's kind in the words of the email's language: "gift card"."""
    names = {
        "credit": pgettext("reward kind", "credit"),
        "points": pgettext("reward kind", "points"),
        "coupon": pgettext("reward kind", "coupon"),
        "gift_card": pgettext("reward kind", "gift card"),
        "cash": pgettext("reward kind", "cash"),
    }
    return names.get(kind) or kind.replace("_", " ")


def _mail(
    user: User, kind: str, subject: str, template: str, program: Program | None = None, **context
) -> None:
    """Queue one email; `program`: the one it is about, whose admin-written introduction
    (in the recipient's language, referral/program_texts.py) opens the body."""
    if not _reachable(user) or not email_choices.wants(user, kind):
        return
    unsubscribe_url = email_choices.unsubscribe_url(user, kind)
    body = render_template(
        template,
        greeting_name=user.name,
        intro=program_text(program, "email_intro") if program else None,
        unsubscribe_url=unsubscribe_url,
        kind_name_of_email=str(email_choices.KIND_NAMES[kind]),
        **context,
    )
    queue_email(user.email, subject, body, unsubscribe_url)


def _reachable(user: User) -> bool:
    return bool(user.email) and user.active
