"""Invite friends by email from the dashboard: up to five addresses at a time, each mailed the
program's offer and the sender's link, once per program ever (a unique key on the program and
the mailbox, `invitations`), never to a member, never to an address that asked to get no more
invitations (`invitation_suppressions`, filled by the one-click link in every invitation).

The sender always gets the same answer, whatever became of each address: saying "already a
member" about one address would tell anyone with an account who else has one. So members,
addresses invited before (by anyone) and suppressed addresses are skipped silently, and the
answer says that such addresses are skipped, without saying which.
"""

import re
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from itsdangerous import BadSignature
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from core import branding
from core.errors import DomainError
from core.forms import submit
from core.i18n import current_language, writing_to
from core.mail import absolute_url, canonical_email, queue_email, unsubscribe_signer
from core.templating import mask_email
from extensions import db, limiter
from models import Invitation, InvitationSuppression, Program, User, utcnow
from referral import services
from referral.forms import InviteForm
from referral.offer import offer_of

MAX_ADDRESSES = 5
_SEPARATORS = re.compile(r"[\s,;]+")
_PURPOSE = "invitations"


class InvalidAddresses(DomainError):
    code = "invalid_addresses"
    field = "emails"


class NoActiveCode(DomainError):
    code = "no_active_code"
    message = _l("You have no active referral link at the moment, so there is nothing to send.")


def parse_addresses(text: str) -> list[str]:
    """The distinct addresses typed (one per mailbox), checked all at once: every bad one is
    named in one message."""
    typed = [item for item in _SEPARATORS.split(text or "") if item]
    if not typed:
        raise InvalidAddresses(_("Enter at least one email address."))
    addresses, bad, seen = [], [], set()
    for item in typed:
        try:
            address = validate_email(item, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            bad.append(item)
            continue
        if canonical_email(address) not in seen:
            seen.add(canonical_email(address))
            addresses.append(address)
    problems = []
    if bad:
        problems.append(
            _("These are not email addresses: %(addresses)s.", addresses=", ".join(bad))
        )
    if len(addresses) > MAX_ADDRESSES:
        problems.append(_("Enter at most %(num)d addresses at a time.", num=MAX_ADDRESSES))
    if problems:
        raise InvalidAddresses(" ".join(problems))
    return addresses


def invite(sender: User, program: Program, text: str, now: datetime) -> int:
    """Mail each new address the program's invitation with the sender's link; returns how
    many were mailed (for the tests and the log; the sender is not told, see above)."""
    addresses = parse_addresses(text)
    code = services.active_code(sender, program)
    if code is None:
        raise NoActiveCode()
    link = services.referral_link(code.code)
    mailed = 0
    for address in addresses:
        canonical = canonical_email(address)
        if _is_member(address, canonical) or _suppressed(canonical):
            continue
        invitation = Invitation(
            program_id=program.id, sender_id=sender.id, email_canonical=canonical, created_at=now
        )
        try:
            with db.session.begin_nested():
                db.session.add(invitation)
        except IntegrityError:
            continue  # invited to this program before (uq_invitations_program_address)
        _mail(address, invitation, sender, program, link)
        mailed += 1
    return mailed


def _is_member(address: str, canonical: str) -> bool:
    found = db.session.scalar(
        select(User.id).where(or_(User.email == address, User.email_canonical == canonical))
    )
    return found is not None


def _suppressed(canonical: str) -> bool:
    return db.session.get(InvitationSuppression, canonical) is not None


def _mail(address: str, invitation: Invitation, sender: User, program: Program, link: str):
    """A stranger has no language of their own here: the invitation is in the inviter's."""
    unsubscribe_url = absolute_url("referral.stop_invitations", token=stop_token(invitation.id))
    with writing_to(None, current_language()):
        body = render_template(
            "email/invitation.txt",
            sender_name=sender.public_name,
            offer_sentence=offer_of(program).invitation(sender.public_name),
            link=link,
            unsubscribe_url=unsubscribe_url,
        )
        subject = _(
            "%(name)s invites you to join %(brand)s",
            name=sender.public_name,
            brand=branding.current().name,
        )
    queue_email(address, subject, body, unsubscribe_url)


def stop_token(invitation_id: int) -> str:
    """The signed token of an invitation's one-click stop link. It names the invitation, not
    the address: links end up in logs."""
    return unsubscribe_signer(_PURPOSE).dumps(invitation_id)


def stop_invitations_to(canonical: str, now: datetime) -> None:
    """Never invite this mailbox again; once is enough, also when two clicks race."""
    if _suppressed(canonical):
        return
    try:
        with db.session.begin_nested():
            db.session.add(InvitationSuppression(email_canonical=canonical, created_at=now))
    except IntegrityError:
        pass  # the same click, committed first by another request


# --- views (their URLs are listed in referral/routes.py) ----------------------------------


def dashboard_form() -> InviteForm:
    """The empty form the dashboard's card shows."""
    return InviteForm(formdata=None)


def _invitation_limits() -> str:
    return current_app.config["INVITATION_LIMITS"]


def _sender_key() -> str:
    return f"invitations:{current_user.id}"


@login_required
@limiter.limit(
    _invitation_limits,
    key_func=_sender_key,
    methods=["POST"],
    deduct_when=lambda response: response.status_code == 302,  # only forms that were sent
)
def send_invitations():
    """GET the form on a page of its own (where a refused form is shown again with its
    messages); the dashboard's copy posts here."""
    form = InviteForm()
    submitted = submit(
        form, lambda: invite(current_user, services.default_program(), form.emails.data, utcnow())
    )
    if submitted.done:
        flash(
            _(
                "Thanks! Your invitation is on its way. Addresses that already have an account, "
                "were invited before or asked us not to send invitations get no email (we don't "
                "say which, so nobody learns who is a member)."
            ),
            "success",
        )
        return redirect(url_for("referral.dashboard"))
    return render_template(
        "referral/invite.html", form=form, max_addresses=MAX_ADDRESSES
    ), submitted.status


def stop_invitations(token: str):
    """GET asks, POST stops every invitation to the address the signed token's invitation
    went to; the POST needs no CSRF token (RFC 8058 one-click: the signed token is the
    proof, and all it can do is stop invitations to that one address)."""
    try:
        invitation_id = unsubscribe_signer(_PURPOSE).loads(token)
    except BadSignature:
        abort(404)
    if not isinstance(invitation_id, int):
        abort(404)
    canonical = db.session.scalar(
        select(Invitation.email_canonical).where(Invitation.id == invitation_id)
    )
    if canonical is None:
        abort(404)  # its program was deleted, and the row with it
    done = request.method == "POST"
    if done:
        stop_invitations_to(canonical, utcnow())
        db.session.commit()
    return render_template(
        "referral/invitations_unsubscribe.html", address=mask_email(canonical), done=done
    )
