from flask import (
    Blueprint,
    after_this_request,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required

from auth import email_choices, phone_routes, profile_routes, reset, services, sessions, throttle
from auth import signup as signup_form
from auth.forms import LoginForm, ResetPasswordForm, ResetRequestForm, SignupForm
from core import branding
from core.errors import DomainError
from core.forms import show_domain_error, submit
from core.security import is_local_path
from extensions import csrf, limiter
from models import utcnow
from referral import attribution, offer
from referral import services as referral_services

bp = Blueprint("auth", __name__, url_prefix="/auth")
# Sign-in by phone and the profile page keep their views in modules of their own; their URLs
# are listed here, so this module shows every URL under /auth.
_BOTH = ["GET", "POST"]
bp.add_url_rule("/phone", view_func=phone_routes.phone_sign_in, methods=_BOTH)
bp.add_url_rule("/phone/verify", view_func=phone_routes.verify_phone, methods=_BOTH)
bp.add_url_rule("/profile", view_func=profile_routes.profile, methods=["GET"])
bp.add_url_rule("/profile/details", view_func=profile_routes.change_details, methods=["POST"])
bp.add_url_rule(
    "/profile/leaderboard", view_func=profile_routes.choose_leaderboard, methods=["POST"]
)
bp.add_url_rule("/profile/password", view_func=profile_routes.change_password, methods=["POST"])
bp.add_url_rule("/profile/email", view_func=profile_routes.add_email, methods=["POST"])
bp.add_url_rule("/profile/phone", view_func=profile_routes.add_phone, methods=["POST"])
bp.add_url_rule(
    "/profile/phone/verify", view_func=profile_routes.verify_profile_phone, methods=_BOTH
)
bp.add_url_rule("/profile/sessions", view_func=profile_routes.end_other_sessions, methods=["POST"])
bp.add_url_rule("/profile/data", view_func=profile_routes.download_data, methods=["GET"])
bp.add_url_rule("/profile/delete", view_func=profile_routes.delete_account, methods=_BOTH)
bp.add_url_rule("/profile/delete/code", view_func=profile_routes.send_delete_code, methods=["POST"])
bp.add_url_rule("/profile/emails", view_func=email_choices.save_choices, methods=["POST"])
bp.add_url_rule(
    "/emails/unsubscribe/<token>",
    endpoint="unsubscribe",
    view_func=csrf.exempt(email_choices.unsubscribe),
    methods=_BOTH,
)
bp.add_app_template_global(email_choices.choice_rows, "email_choice_rows")


def _login_account_key() -> str:
    # Per account *and* address: an attacker hammering one account from one place is
    # stopped early. Failures per account from every address: auth/throttle.py.
    return f"{request.form.get('email', '').strip().lower()}|{get_remote_address()}"


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SIGNUP_LIMITS"], methods=["POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(services.landing_url(current_user))
    form = SignupForm()
    cookie = attribution.read_cookie()
    if request.method == "GET":
        form.referral_code.data = referral_services.signup_prefill(request.args.get("ref"), cookie)
    submitted = submit(form, lambda: signup_form.register_from(form, cookie))
    if submitted.done:
        sessions.complete_sign_in(submitted.result)  # its session row came with the signup
        flash(
            _(
                "Welcome to %(site)s! Your referral link is ready below.",
                site=branding.current().name,
            ),
            "success",
        )
        return redirect(url_for("referral.dashboard"))
    invitation = offer.signup_invitation(form.referral_code.data, utcnow())
    return render_template("auth/signup.html", form=form, invitation=invitation), submitted.status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMITS"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_ACCOUNT_LIMITS"],
    key_func=_login_account_key,
    methods=["POST"],
)
def login():
    if current_user.is_authenticated:
        return redirect(services.landing_url(current_user))
    form = LoginForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        try:
            with throttle.password_attempt(form.email.data):
                user = services.authenticate(form.email.data, form.password.data)
        except throttle.AccountThrottled as error:
            status = show_domain_error(form, error)
            headers["Retry-After"] = str(error.retry_after)
        except DomainError as error:
            status = show_domain_error(form, error)
        else:
            sessions.sign_in(user, remember=form.remember.data)
            target = request.args.get("next")
            return redirect(target if is_local_path(target) else services.landing_url(user))
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status, headers


def _reset_email_key() -> str:
    # Per mailbox: "+tags" and Gmail dots spell one inbox, so they share one budget.
    return services.canonical_email(request.form.get("email", "").strip())


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PASSWORD_RESET_IP_LIMITS"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["PASSWORD_RESET_EMAIL_LIMITS"],
    key_func=_reset_email_key,
    methods=["POST"],
)
def request_reset():
    form = ResetRequestForm()
    submitted = submit(form, lambda: reset.request_reset(form.email.data))
    if submitted.done:
        # The same page whether or not an account uses the address.
        return render_template("auth/reset_request.html", form=None)
    return render_template("auth/reset_request.html", form=form), submitted.status


def _keep_token_private(response):
    # The token is in the path: no Referer with it to other sites (same-origin still sends
    # one, which Flask-WTF's CSRF check needs over HTTPS), and no copy in shared caches.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _invalid_reset_link(error: DomainError):
    return render_template("auth/reset_password.html", form=None, message=error.message), 400


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token):
    after_this_request(_keep_token_private)
    try:
        account = reset.verify_token(token)
    except reset.InvalidResetToken as error:
        return _invalid_reset_link(error)
    form = ResetPasswordForm()
    try:
        submitted = submit(
            form,
            lambda: reset.reset_password(token, form.password.data),
            reraise=(reset.InvalidResetToken,),
        )
    except reset.InvalidResetToken as error:  # used or changed since the check above
        return _invalid_reset_link(error)
    if submitted.done:
        # Every session, this browser's too, ended with the commit; the user reloads with
        # its new session version, so this browser alone is signed in again.
        sessions.sign_in(submitted.result)
        throttle.forget_failures(submitted.result.email)
        flash(_("Your password is changed, and every other session is signed out."), "success")
        return redirect(services.landing_url(submitted.result))
    return render_template("auth/reset_password.html", form=form, account=account), submitted.status


@bp.post("/logout")
@login_required
def logout():
    # CSRFProtect has already refused a POST without a valid token.
    sessions.sign_out()
    flash(_("You are logged out."), "info")
    return redirect(url_for("referral.landing"))
