"""Which emails a participant gets: chosen on the profile page, or turned off with the one-click
link every such email carries (no sign-in needed: the link's signed token says whom and what).

A kind is on unless the participant has a row in `email_opt_outs` for it. Security mails
(password reset, password changed) are no kind here: they always go.
"""

from datetime import datetime

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from itsdangerous import BadSignature
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from core.mail import absolute_url, unsubscribe_signer
from core.templating import mask_email
from extensions import db
from models import EMAIL_KINDS, EmailOptOut, User, utcnow

# What each kind is, as the profile page and the unsubscribe page name it.
KIND_NAMES = {
    "friends": _l("Friends joining"),
    "rewards": _l("Reward updates"),
    "payouts": _l("Payouts"),
    "news": _l("News and offers"),
}
KIND_DETAILS = {
    "friends": _l("When a friend joins through your link, or their signup does not count."),
    "rewards": _l("When a reward of yours is approved."),
    "payouts": _l("When we receive your payout request, and when it is paid."),
    "news": _l("Now and then, news about the program and new ways to earn."),
}
_PURPOSE = "email-kind"


def wants(user: User, kind: str) -> bool:
    """Whether `user` still gets emails of `kind` (they did not turn it off)."""
    return db.session.get(EmailOptOut, (user.id, kind)) is None


def current_choices(user: User) -> dict[str, bool]:
    """Every kind, on or off, for the profile page."""
    off = set(db.session.scalars(select(EmailOptOut.kind).where(EmailOptOut.user_id == user.id)))
    return {kind: kind not in off for kind in EMAIL_KINDS}


def choice_rows(user: User) -> list[tuple[str, str, str, bool]]:
    """(kind, name, detail, on) for each kind: the profile's "Emails" section."""
    on = current_choices(user)
    return [(kind, KIND_NAMES[kind], KIND_DETAILS[kind], on[kind]) for kind in EMAIL_KINDS]


def choose(user: User, wanted: set[str], now: datetime) -> None:
    """Turn on exactly the kinds in `wanted` (unknown names are ignored)."""
    db.session.execute(
        delete(EmailOptOut).where(EmailOptOut.user_id == user.id, EmailOptOut.kind.in_(wanted))
    )
    for kind in EMAIL_KINDS:
        if kind not in wanted:
            turn_off(user.id, kind, now)


def turn_off(user_id: int, kind: str, now: datetime) -> None:
    """Stop emails of `kind` to the user; once is enough, also when two clicks race."""
    if db.session.get(EmailOptOut, (user_id, kind)) is not None:
        return
    try:
        with db.session.begin_nested():
            db.session.add(EmailOptOut(user_id=user_id, kind=kind, created_at=now))
    except IntegrityError:
        pass  # the same click, committed first by another request


def unsubscribe_token(user_id: int, kind: str) -> str:
    return unsubscribe_signer(_PURPOSE).dumps([user_id, kind])


def unsubscribe_url(user: User, kind: str) -> str | None:
    """The one-click link that turns `kind` off for `user` (None where no link can be made)."""
    return absolute_url("auth.unsubscribe", token=unsubscribe_token(user.id, kind))


def _read_token(token: str) -> tuple[int, str] | None:
    try:
        user_id, kind = unsubscribe_signer(_PURPOSE).loads(token)
    except (BadSignature, TypeError, ValueError):
        return None
    if not isinstance(user_id, int) or kind not in EMAIL_KINDS:
        return None
    return user_id, kind


# --- views (their URLs are listed in auth/routes.py) --------------------------------------


@login_required
def save_choices():
    """POST /auth/profile/emails: the checkboxes of the profile's "Emails" section."""
    wanted = {kind for kind in EMAIL_KINDS if request.form.get(kind) == "on"}
    choose(current_user, wanted, utcnow())
    db.session.commit()
    flash(_("Your email choices are saved."), "success")
    return redirect(url_for("auth.profile", _anchor="emails"))


def unsubscribe(token: str):
    """GET shows what the link turns off, with a button; POST turns it off. The POST needs
    no CSRF token (mail clients post RFC 8058's one-click form): the signed token is the
    proof, and all it can do is stop one kind of email to one person."""
    found = _read_token(token)
    if found is None:
        abort(404)
    user_id, kind = found
    user = db.session.get(User, user_id)
    address = mask_email(user.email) if user and user.deleted_at is None else None
    done = request.method == "POST"
    if done and user is not None:
        turn_off(user.id, kind, utcnow())
        db.session.commit()
    return render_template(
        "auth/unsubscribe.html",
        kind_name=KIND_NAMES[kind],
        kind_detail=KIND_DETAILS[kind],
        address=address,
        done=done,
    )
