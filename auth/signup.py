"""A submitted signup form becomes a participant: one call shared by the site's signup page and
the shop's widget, so both attribute and check a signup the same way."""

from flask_limiter.util import get_remote_address

from auth import services
from auth.forms import SignupForm
from core.i18n import current_language
from referral import attribution


def register_from(form: SignupForm, cookie):
    """The participant the form describes, referred by its typed code or the link's `cookie`."""
    participant = services.register_participant(
        name=form.name.data,
        email=form.email.data,
        password=form.password.data,
        typed_code=form.referral_code.data,
        cookie=cookie,
        device_id=attribution.visitor_id(),
        ip=get_remote_address(),
    )
    participant.locale = current_language()  # the language the signup page was shown in
    return participant
