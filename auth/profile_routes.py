"""The signed-in participant's profile: name and public name, a place on the public
leaderboard (leave it, rejoin it), the password (auth/password_change.py), email and phone; a
phone participant adds an email and password, anyone adds (or changes) a phone number they
prove they hold; and their data: download it all, or delete the account
(auth/account_data.py)."""

from flask import Response, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required

from auth import account_data, password_change, phone, services, sessions
from auth.forms import (
    ChangePasswordForm,
    DeleteAccountForm,
    LeaderboardChoiceForm,
    ProfileDetailsForm,
)
from auth.phone_forms import AddEmailForm, AddPhoneForm, PhoneCodeForm
from auth.phone_routes import (
    CODE_NUMBER_SCOPE,
    code_ip_limit,
    code_number_limit,
    code_sent,
    send_code,
    verify_limit,
)
from core.forms import submit
from extensions import db, limiter
from models import User, utcnow
from referral import leaderboard

# The Flask session key holding the number waiting for its code.
PENDING = "profile_phone"


class SamePhone(phone.InvalidPhone):
    code = "same_phone"
    message = _l("This is already your phone number.")


# Per account: each wrong current password also counts against the login failure budget.
CHANGE_PASSWORD_RATE = "10/minute;30/hour"  # noqa: S105 (a rate, not a secret)


def _render_profile(
    details_form=None, password_form=None, email_form=None, phone_form=None, status=200
):
    user = current_user
    return render_template(
        "auth/profile.html",
        details_form=details_form
        or ProfileDetailsForm(formdata=None, name=user.name, display_name=user.display_name),
        board_form=LeaderboardChoiceForm(
            formdata=None, show="no" if user.on_leaderboard else "yes"
        ),
        password_form=password_form or ChangePasswordForm(user, formdata=None),
        email_form=email_form or AddEmailForm(formdata=None),
        phone_form=phone_form or AddPhoneForm(formdata=None),
        phone_number=phone.display_phone(user.phone) if user.phone else None,
    ), status


@login_required
def profile():
    return _render_profile()


@login_required
def change_details():
    form = ProfileDetailsForm()

    def save() -> None:
        current_user.name = services.clean_name(form.name.data)
        public = form.display_name.data
        current_user.display_name = services.clean_name(public) if public else None

    submitted = submit(form, save)
    if submitted.done:
        leaderboard.invalidate()  # cached pages show names
        flash(
            _("Saved. The leaderboard shows you as %(name)s.", name=current_user.public_name),
            "success",
        )
        return redirect(url_for("auth.profile"))
    return _render_profile(details_form=form, status=submitted.status)


@login_required
def choose_leaderboard():
    form = LeaderboardChoiceForm()

    def save() -> bool:
        current_user.on_leaderboard = form.show.data == "yes"
        return current_user.on_leaderboard

    submitted = submit(form, save)
    if not submitted.done:
        flash(_("Choose to leave or rejoin the leaderboard."), "danger")
        return redirect(url_for("auth.profile"))
    leaderboard.invalidate()
    if submitted.result:
        flash(_("You are back on the public leaderboard."), "success")
    else:
        flash(
            _("You left the public leaderboard: nobody sees your name or count there."),
            "success",
        )
    return redirect(url_for("auth.profile"))


def _account_key() -> str:
    if current_user.is_authenticated:
        return f"account:{current_user.id}"
    return get_remote_address()


@login_required
@limiter.limit(CHANGE_PASSWORD_RATE, key_func=_account_key, methods=["POST"])
def change_password():
    user = current_user
    form = ChangePasswordForm(user)
    submitted = submit(
        form,
        lambda: password_change.change_password(
            user, form.current_password.data, form.new_password.data
        ),
    )
    if not submitted.done:
        return _render_profile(password_form=form, status=submitted.status)
    sessions.sign_in(db.session.get(User, user.id))  # this browser, under the new version
    flash(
        _("Password changed. Every other device is signed out, and we emailed you a notice."),
        "success",
    )
    return redirect(url_for("auth.profile"))


@login_required
def add_email():
    form = AddEmailForm()
    submitted = submit(
        form, lambda: services.add_email_login(current_user, form.email.data, form.password.data)
    )
    if submitted.done:
        flash(_("Email and password saved: you can log in with them too."), "success")
        return redirect(url_for("auth.profile"))
    return _render_profile(email_form=form, status=submitted.status)


@login_required
@code_ip_limit
@code_number_limit
def add_phone():
    form = AddPhoneForm()

    def ask_for_code() -> str:
        number = phone.normalize_phone(form.phone.data)
        if number == current_user.phone:
            raise SamePhone()
        send_code(number, user_id=current_user.id)
        return number

    submitted = submit(form, ask_for_code)
    if submitted.done:
        session[PENDING] = submitted.result
        return redirect(url_for("auth.verify_profile_phone"))
    return _render_profile(phone_form=form, status=submitted.status)


@login_required
@verify_limit
def verify_profile_phone():
    number = session.get(PENDING)
    if not number:
        return redirect(url_for("auth.profile"))
    form = PhoneCodeForm()

    def confirm_number() -> None:
        code_id = phone.spend_attempt(number, user_id=current_user.id)
        db.session.commit()  # the guess counts, whatever happens next
        phone.redeem(code_id, form.code.data)
        phone.attach_phone(current_user, number)

    submitted = submit(form, confirm_number)
    if submitted.done:
        session.pop(PENDING, None)
        flash(_("Phone number saved: you can sign in with it."), "success")
        return redirect(url_for("auth.profile"))
    return render_template(
        "auth/profile_phone_verify.html", form=form, number=phone.display_phone(number)
    ), submitted.status


@login_required
def end_other_sessions():
    # CSRFProtect has already refused a POST without a valid token.
    user_id = current_user.id
    services.end_all_sessions(current_user)
    db.session.commit()
    sessions.sign_in(db.session.get(User, user_id))  # this browser, under the new version
    flash(_("You are signed out on every other device and browser."), "success")
    return redirect(url_for("auth.profile"))


# --- your data: download it, delete the account ----------------------------------------------

# Per account (the limiter runs before the login check, so a visitor keys on the address).
# A download reads every table about the person; deleting checks a password.
EXPORT_LIMITS = "5/minute;20/hour"
DELETE_LIMITS = "10/minute;30/hour"


def _own_number_key() -> str:
    # The phone-number budget shared with sign-in and "add a phone": this account's number.
    number = getattr(current_user, "phone", None) if current_user.is_authenticated else None
    return f"phone:{number}" if number else get_remote_address()


@login_required
@limiter.limit(EXPORT_LIMITS, key_func=_account_key)
def download_data():
    now = utcnow()
    body = account_data.to_json(account_data.export(current_user, now))
    db.session.rollback()  # read only: no lock stays open while the file goes out
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": (
                f'attachment; filename="inviteloop-data-{now.date().isoformat()}.json"'
            ),
            # Nobody's personal data in a shared or browser cache.
            "Cache-Control": "no-store",
        },
    )


def _render_delete(form: DeleteAccountForm, status: int = 200):
    user = current_user
    return render_template(
        "auth/profile_delete.html",
        form=form,
        uses_password=account_data.uses_password(user),
        phone_number=phone.display_phone(user.phone) if user.phone else None,
        is_staff=user.role != "member",
    ), status


@login_required
@limiter.limit(DELETE_LIMITS, key_func=_account_key, methods=["POST"])
def delete_account():
    form = DeleteAccountForm()
    user = current_user

    def confirm_and_delete() -> None:
        if account_data.uses_password(user):
            account_data.check_password(user, form.password.data)
        elif user.phone:
            account_data.check_phone_code(user, form.code.data)
        else:
            raise account_data.CannotConfirm()
        account_data.delete_account(user.id, actor=user)

    submitted = submit(form, confirm_and_delete)
    if not submitted.done:
        return _render_delete(form, submitted.status)
    sessions.sign_out()
    flash(
        _("Your account is deleted. Your referral link no longer works and you are signed out."),
        "success",
    )
    return redirect(url_for("referral.landing"))


@login_required
@code_ip_limit
@limiter.shared_limit(
    lambda: current_app.config["PHONE_CODE_NUMBER_LIMITS"],
    scope=CODE_NUMBER_SCOPE,
    key_func=_own_number_key,
    deduct_when=code_sent,
    methods=["POST"],
)
def send_delete_code():
    # CSRFProtect has already refused a POST without a valid token.
    if current_user.phone is None or account_data.uses_password(current_user):
        return redirect(url_for("auth.delete_account"))
    send_code(current_user.phone, user_id=current_user.id)
    flash(_("We texted you a code. Enter it below to delete your account."), "info")
    return redirect(url_for("auth.delete_account"))
