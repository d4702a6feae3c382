"""Sign in by phone: /auth/phone takes the number, /auth/phone/verify the code texted to it.

The answer to the first step never depends on whether the number has an account: every valid
request gets a code and the same page. The account is looked up (or created) only once the
code proves the person holds the number.
"""

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user

from auth import phone, services, sessions, sms
from auth.phone_forms import PhoneCodeForm, PhoneForm
from core import branding
from core.errors import DomainError
from core.forms import submit
from core.jobs import enqueue
from core.security import is_local_path
from extensions import db, limiter
from models import User
from referral import attribution
from referral import services as referral_services

# The Flask session key holding the number waiting for its code (and the signup details).
PENDING = "phone_sign_in"
# Scopes shared with the profile's "add a phone", so both spend one budget.
CODE_IP_SCOPE = "phone-code-ip"
CODE_NUMBER_SCOPE = "phone-code-number"
VERIFY_IP_SCOPE = "phone-verify-ip"


def number_key() -> str:
    """The rate-limit key of the number posted: normalised, so no spelling of it gets a
    budget of its own; text that is no number keys on itself."""
    raw = request.form.get("phone", "")
    try:
        return "phone:" + phone.normalize_phone(raw)
    except DomainError:
        return "phone-text:" + raw.strip()[:40]


def code_sent(response) -> bool:
    # Only a code actually sent counts against the number: a typo on the form does not.
    return response.status_code == 302


def code_ip_limit(view):
    return limiter.shared_limit(
        lambda: current_app.config["PHONE_CODE_IP_LIMITS"], scope=CODE_IP_SCOPE, methods=["POST"]
    )(view)


def code_number_limit(view):
    return limiter.shared_limit(
        lambda: current_app.config["PHONE_CODE_NUMBER_LIMITS"],
        scope=CODE_NUMBER_SCOPE,
        key_func=number_key,
        deduct_when=code_sent,
        methods=["POST"],
    )(view)


def verify_limit(view):
    return limiter.shared_limit(
        lambda: current_app.config["PHONE_VERIFY_LIMITS"], scope=VERIFY_IP_SCOPE, methods=["POST"]
    )(view)


def send_code(number: str, user_id: int | None = None) -> None:
    """Issue a code and queue its text in the same transaction (auth.sms.send_code_text):
    the outbox's sender texts it right after the commit, and tries again while the provider
    is down; the person waits on neither."""
    issued = phone.issue_code(number, user_id=user_id)
    enqueue(sms.send_code_text, issued.id, number, phone.code_message(issued.code))
    db.session.commit()


def _safe_next() -> str | None:
    target = request.args.get("next")
    return target if is_local_path(target) else None


@code_ip_limit
@code_number_limit
def phone_sign_in():
    if current_user.is_authenticated:
        return redirect(services.landing_url(current_user))
    form = PhoneForm()
    cookie = attribution.read_cookie()
    if request.method == "GET":
        form.referral_code.data = referral_services.signup_prefill(request.args.get("ref"), cookie)

    def ask_for_code() -> tuple[str, str | None]:
        number = phone.normalize_phone(form.phone.data)
        name = phone.check_signup_details(form.name.data, form.referral_code.data, cookie)
        send_code(number)
        return number, name

    submitted = submit(form, ask_for_code)
    if submitted.done:
        number, name = submitted.result
        session[PENDING] = {
            "phone": number,
            "name": name,
            "referral_code": form.referral_code.data or None,
        }
        return redirect(url_for("auth.verify_phone", next=_safe_next()))
    return render_template("auth/phone.html", form=form), submitted.status


@verify_limit
def verify_phone():
    if current_user.is_authenticated:
        return redirect(services.landing_url(current_user))
    pending = session.get(PENDING)
    if not pending:
        flash(_("Enter your phone number first; we will text you a code."), "info")
        return redirect(url_for("auth.phone_sign_in", next=_safe_next()))
    form = PhoneCodeForm()
    submitted = submit(form, lambda: _sign_in_with_code(pending, form.code.data))
    if submitted.done:
        user, created = submitted.result
        session.pop(PENDING, None)
        sessions.sign_in(user)
        if created:
            flash(
                _(
                    "Welcome to %(site)s! Your referral link is ready below.",
                    site=branding.current().name,
                ),
                "success",
            )
        return redirect(_safe_next() or services.landing_url(user))
    return render_template(
        "auth/phone_verify.html",
        form=form,
        pending=pending,
        number=phone.display_phone(pending["phone"]),
        next=_safe_next(),
    ), submitted.status


def _sign_in_with_code(pending: dict, typed: str) -> tuple[User, bool]:
    number = pending["phone"]
    code_id = phone.spend_attempt(number)
    db.session.commit()  # the guess counts, whatever happens next
    phone.redeem(code_id, typed)
    user, created = phone.sign_in(
        number,
        name=pending.get("name"),
        typed_code=pending.get("referral_code"),
        cookie=attribution.read_cookie(),
        device_id=attribution.visitor_id(),
        ip=get_remote_address(),
    )
    return user, created
