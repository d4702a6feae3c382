"""The widget a shop frames on its own pages (docs/guarantees.md #42): a signed-in
participant's link, offer, share buttons and numbers, or sign-up and sign-in forms for a
visitor. Its pages live under /embed/, so they keep a session of their own (core/embedding.py)
and CSRF tokens work inside the frame; only the shops of EMBED_ALLOWED_ORIGINS may frame them.
"""

from flask import Blueprint, current_app, make_response, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user

from auth import services, sessions, throttle
from auth import signup as signup_form
from auth.forms import LoginForm, SignupForm
from core.embedding import frame_policy
from core.errors import DomainError
from core.forms import show_domain_error, submit
from core.security import framed_csp
from extensions import limiter
from models import utcnow
from referral import attribution, offer, sharing
from referral import services as referral_services
from referral.embed import EMBED_VERSION, allowed_origins

widget_bp = Blueprint("widget", __name__, url_prefix=f"/embed/{EMBED_VERSION}/widget")


def _framable(body: str, status: int = 200):
    """The page, which only the allowed shops may frame; nobody may when there are none."""
    response = make_response(body, status)
    response.headers["Content-Security-Policy"] = framed_csp(frame_policy(allowed_origins()))
    response.headers["Cache-Control"] = "no-store"
    return response


def _login_account_key() -> str:
    return f"{request.form.get('login-email', '').strip().lower()}|{get_remote_address()}"


def _participant_view():
    program = referral_services.default_program()
    code = referral_services.active_code(current_user, program)
    link = referral_services.referral_link(code.code) if code else None
    program_offer = offer.offer_of(program)
    running = program.is_running(utcnow())
    share_text, share_subject = program_offer.share_words(running)
    return render_template(
        "embed/widget.html",
        link=link,
        offer=program_offer,
        running=running,
        shares=sharing.share_links(link, share_text, share_subject) if link else [],
        stats=referral_services.participant_stats(current_user),
    )


def _visitor_view(signup: SignupForm, login: LoginForm, ref: str | None, status: int = 200):
    if not signup.is_submitted():
        signup.referral_code.data = referral_services.signup_prefill(ref, attribution.read_cookie())
    program = referral_services.default_program()
    return _framable(
        render_template(
            "embed/widget.html",
            signup=signup,
            login=login,
            offer=offer.offer_of(program),
            running=program.is_running(utcnow()),
        ),
        status,
    )


@widget_bp.get("")
def show():
    if current_user.is_authenticated:
        return _framable(_participant_view())
    ref = request.args.get("ref")
    return _visitor_view(SignupForm(prefix="signup"), LoginForm(prefix="login"), ref)


@widget_bp.post("/signup")
@limiter.limit(lambda: current_app.config["SIGNUP_LIMITS"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("widget.show"))
    form = SignupForm(prefix="signup")
    submitted = submit(form, lambda: signup_form.register_from(form, attribution.read_cookie()))
    if submitted.done:
        sessions.complete_sign_in(submitted.result)  # its session row came with the signup
        return redirect(url_for("widget.show"))
    return _visitor_view(form, LoginForm(prefix="login"), None, submitted.status)


@widget_bp.post("/login")
@limiter.limit(lambda: current_app.config["LOGIN_LIMITS"])
@limiter.limit(lambda: current_app.config["LOGIN_ACCOUNT_LIMITS"], key_func=_login_account_key)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("widget.show"))
    form = LoginForm(prefix="login")
    status, retry_after = 400, None
    if form.validate_on_submit():
        try:
            with throttle.password_attempt(form.email.data):
                user = services.authenticate(form.email.data, form.password.data)
        except throttle.AccountThrottled as error:
            status, retry_after = show_domain_error(form, error), error.retry_after
        except DomainError as error:
            status = show_domain_error(form, error)
        else:
            sessions.sign_in(user)  # the frame's own session; never "remember me" in a frame
            return redirect(url_for("widget.show"))
    response = _visitor_view(SignupForm(prefix="signup"), form, None, status)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@widget_bp.post("/logout")
def logout():
    # CSRFProtect has already refused a POST without the frame's token.
    if current_user.is_authenticated:
        sessions.sign_out()
    return redirect(url_for("widget.show"))
