"""A submitted signup form becomes a signed-in participant: one call shared by the site's
signup page and the shop's widget, so both attribute and check a signup the same way."""

from flask_limiter.util import get_remote_address

from auth import services, sessions
from auth.forms import SignupForm
from core.i18n import current_language
from extensions import db
from referral import attribution


def register_from(form: SignupForm, cookie):
    """The participant the form describes, referred by its typed code or the link's `cookie`,
    with the session row of this browser's sign-in: all in the form's one transaction, which
    the caller commits before `sessions.complete_sign_in`."""
    participant = services.register_participant(
        name=form.name.data,
        email=form.email.data,
        password=form.password.data,
        password_hash=form.password_hash,  # hashed before the transaction began
        typed_code=form.referral_code.data,
        checked_code=getattr(form.referral_code, "found", None),
        cookie=cookie,
        device_id=attribution.visitor_id(),
        ip=get_remote_address(),
        locale=current_language(),  # the language the signup page was shown in
    )
    sessions.open_session(participant, remember=False, new_account=True)
    # Written now and then kept out of the commit's expiry: signing the browser in after the
    # commit reads the account as written instead of loading it again.
    db.session.flush()
    db.session.expunge(participant)
    return participant
