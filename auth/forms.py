from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional

from auth.services import (
    PASSWORD_MAX_LENGTH,
    check_login_free,
    check_password_policy,
    clean_name,
    normalize_email,
)
from core.forms import rule
from models import utcnow
from referral import services as referral_services


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _email_free(typed: str) -> None:
    # As before: signup says an address is registered (and offers to log in instead).
    check_login_free(normalize_email(typed), None)


def _known_code(typed: str) -> None:
    referral_services.resolve_signup_code(typed, None, utcnow())


class SignupForm(FlaskForm):
    # Length caps bound the input; the rules live in auth.services and are checked field by
    # field here (`rule`), so one submit reports every mistake; the services check again.
    name = StringField(
        "Your name",
        validators=[DataRequired(), Length(max=100), rule(clean_name)],
        filters=[_strip],
    )
    email = EmailField(
        "Email",
        validators=[DataRequired(), Length(max=254), rule(_email_free)],
        filters=[_strip],
    )
    password = PasswordField(
        "Password",
        validators=[
            DataRequired(),
            Length(max=PASSWORD_MAX_LENGTH),
            rule(check_password_policy),
        ],
    )
    referral_code = StringField(
        "Referral code (optional)",
        validators=[Optional(), Length(max=32), rule(_known_code)],
        filters=[_strip],
    )
    submit = SubmitField("Create my account")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)], filters=[_strip])
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    remember = BooleanField("Keep me signed in")
    submit = SubmitField("Log in")


class ResetRequestForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)], filters=[_strip])
    submit = SubmitField("Send me a reset link")


class ResetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password", validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    submit = SubmitField("Set my new password")


class DeleteAccountForm(FlaskForm):
    """Deleting one's account: the password (or, without one, the code texted to the phone)
    and a ticked box. Which of the two is asked is decided by auth.account_data."""

    password = PasswordField(
        "Your current password", validators=[Optional(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    code = StringField(
        "Code from the text message", validators=[Optional(), Length(max=12)], filters=[_strip]
    )
    confirm = BooleanField(
        "I understand: my account is deleted for good and rewards not yet paid out are lost",
        validators=[DataRequired("Tick the box to confirm that you want your account deleted.")],
    )
    submit = SubmitField("Delete my account")
