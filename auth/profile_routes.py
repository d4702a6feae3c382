"""The signed-in participant's profile: name, email and phone; a phone participant adds an
email and password, anyone adds (or changes) a phone number they prove they hold."""

from flask import flash, redirect, render_template, session, url_for
from flask_login import current_user, login_required

from auth import phone, services, sessions
from auth.phone_forms import AddEmailForm, AddPhoneForm, PhoneCodeForm
from auth.phone_routes import code_ip_limit, code_number_limit, send_code, verify_limit
from core.forms import submit
from extensions import db
from models import User

# The Flask session key holding the number waiting for its code.
PENDING = "profile_phone"


class SamePhone(phone.InvalidPhone):
    code = "same_phone"
    message = "This is already your phone number."


def _render_profile(email_form=None, phone_form=None, status=200):
    return render_template(
        "auth/profile.html",
        email_form=email_form or AddEmailForm(formdata=None),
        phone_form=phone_form or AddPhoneForm(formdata=None),
        phone_number=phone.display_phone(current_user.phone) if current_user.phone else None,
    ), status


@login_required
def profile():
    return _render_profile()


@login_required
def add_email():
    form = AddEmailForm()
    submitted = submit(
        form, lambda: services.add_email_login(current_user, form.email.data, form.password.data)
    )
    if submitted.done:
        flash("Email and password saved: you can log in with them too.", "success")
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
        flash("Phone number saved: you can sign in with it.", "success")
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
    flash("You are signed out on every other device and browser.", "success")
    return redirect(url_for("auth.profile"))
