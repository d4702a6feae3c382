"""Claiming an inviter later: a participant who joined without a code enters one afterwards,
within the program's claim window. The new edge of the tree goes through the same fraud checks
as a signup, and never closes a loop."""

from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import exists, select
from sqlalchemy.orm import joinedload

from core.errors import DomainError
from extensions import db
from models import Program, Referral, ReferralCode, User
from referral import fraud, services
from referral.codes import normalize_code


class ClaimRefused(DomainError):
    status = 422
    field = "referral_code"


class AlreadyHasInviter(ClaimRefused):
    status = 409
    code = "already_has_inviter"
    message = _l("You already have an inviter; it can't be changed.")


class ClaimWindowClosed(ClaimRefused):
    code = "claim_window_closed"


class OwnCode(ClaimRefused):
    code = "own_code"
    message = _l("That's your own code. Enter the code of the person who invited you.")


class CodeDisabled(ClaimRefused):
    code = "code_disabled"
    message = _l("This code is no longer in use. Ask your inviter for their current code.")


class WouldCloseCycle(ClaimRefused):
    code = "would_close_cycle"
    message = _l(
        "This code belongs to someone who joined through you (directly or further down), so "
        "they can't be your inviter."
    )


class StaffNotReferred(ClaimRefused):
    code = "staff_account"
    message = _l("A staff account is never recorded as someone's referral.")


def claim_deadline(user: User, program: Program) -> datetime | None:
    """Until when `user` may name an inviter in `program`; None when the program allows no
    claims at all."""
    if program.claim_window_days <= 0:
        return None
    return user.created_at + timedelta(days=program.claim_window_days)


def has_referral(user: User) -> bool:
    """Any referral of theirs, even one held or refused: the first attribution stands."""
    return db.session.scalar(select(exists().where(Referral.referred_id == user.id)))


def open_claim_deadline(user: User, program: Program, now: datetime) -> datetime | None:
    """The deadline to show (for the default `program`) while `user` may still claim."""
    deadline = claim_deadline(user, program)
    if deadline is None or now >= deadline or has_referral(user):
        return None
    return deadline


def check_late_referral(user: User, program: Program, now: datetime) -> None:
    """An outside system names an inviter for someone who already has an account: allowed
    only where a claim would be, for a participant (never staff) inside the program's claim
    window. Someone already referred keeps their first inviter, as the event's outcome says."""
    if user.role != "member":
        raise StaffNotReferred()
    if has_referral(user):
        return
    deadline = claim_deadline(user, program)
    if deadline is None or now >= deadline:
        raise ClaimWindowClosed(
            _(
                "This account is past the program's window for naming an inviter, so the "
                "referral is not recorded."
            )
        )


def claim_inviter(user: User, typed_code: str | None, now: datetime) -> Referral:
    """Record the owner of `typed_code` as the inviter of `user`, who joined uninvited.
    Refused with nothing written: an unknown, own or disabled code, a code from their own
    subtree, after the window, or when they already have an inviter. The referral itself
    may still be held or refused by the fraud checks, like any other."""
    # Taken before reading anything, so a concurrent claim's edge is seen (fraud.lock_tree).
    fraud.lock_tree()
    if has_referral(user):
        raise AlreadyHasInviter()
    code = _find_code(typed_code)
    if code.user_id == user.id:
        raise OwnCode()
    if code.status != "active" or not code.owner.active or not code.program.is_running(now):
        raise CodeDisabled()
    deadline = claim_deadline(user, code.program)
    if deadline is None or now >= deadline:
        raise ClaimWindowClosed(_window_message(code.program))
    if fraud.closes_cycle(user.id, code.user_id):
        raise WouldCloseCycle()
    try:
        return services.attribute_signup(user, code, "claimed", now)
    except services.AlreadyReferred:
        raise AlreadyHasInviter() from None


def _find_code(typed_code: str | None) -> ReferralCode:
    spelled = normalize_code(typed_code)
    found = None
    if spelled is not None:
        found = db.session.scalar(
            select(ReferralCode)
            .options(joinedload(ReferralCode.owner), joinedload(ReferralCode.program))
            .where(ReferralCode.code == spelled)
        )
    if found is None:
        raise services.CodeNotFound(_("We don't know this referral code. Check it and try again."))
    return found


def _window_message(program: Program) -> str:
    if program.claim_window_days <= 0:
        return _("This program doesn't let you name an inviter after signing up.")
    return ngettext(
        "An inviter can only be named within %(num)d day of signing up, and that time has passed.",
        "An inviter can only be named within %(num)d days of signing up, and that time has passed.",
        program.claim_window_days,
    )
