from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user

from auth import services
from auth.forms import LoginForm, SignupForm
from core.errors import DomainError
from core.forms import show_domain_error
from core.security import is_local_path
from extensions import db, limiter
from referral import attribution
from referral import services as referral_services

bp = Blueprint("auth", __name__, url_prefix="/auth")


def _login_account_key() -> str:
    # Per account *and* address: an attacker hammering one account from one place is
    # stopped without locking the real owner out from theirs.
    return f"{request.form.get('email', '').strip().lower()}|{get_remote_address()}"


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SIGNUP_LIMITS"], methods=["POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("referral.dashboard"))
    form = SignupForm()
    cookie = attribution.read_cookie()
    if request.method == "GET":
        form.referral_code.data = referral_services.signup_prefill(request.args.get("ref"), cookie)
    status = 200
    if form.validate_on_submit():
        try:
            user = services.register_participant(
                name=form.name.data,
                email=form.email.data,
                password=form.password.data,
                typed_code=form.referral_code.data,
                cookie=cookie,
                device_id=attribution.visitor_id(),
                ip=get_remote_address(),
            )
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            status = show_domain_error(form, error)
        else:
            login_user(user)
            flash("Welcome to InviteLoop! Your referral link is ready below.", "success")
            return redirect(url_for("referral.dashboard"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/signup.html", form=form), status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMITS"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_ACCOUNT_LIMITS"],
    key_func=_login_account_key,
    methods=["POST"],
)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("referral.dashboard"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data, form.password.data)
        except DomainError as error:
            status = show_domain_error(form, error)
        else:
            login_user(user, remember=form.remember.data)
            target = request.args.get("next")
            return redirect(target if is_local_path(target) else url_for("referral.dashboard"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    # CSRFProtect has already refused a POST without a valid token.
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("referral.landing"))
