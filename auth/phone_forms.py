"""Forms of phone sign-in (the number, then the one-time code) and of the profile page (add an
email and password, add a verified phone). The rules live in the services; these bound the
input, and the profile's email form checks both fields in one submit."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional

from auth.forms import email_free
from auth.services import PASSWORD_MAX_LENGTH, check_password_policy
from core.forms import rule


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class PhoneForm(FlaskForm):
    phone = StringField(
        "Phone number", validators=[DataRequired(), Length(max=40)], filters=[_strip]
    )
    name = StringField(
        "Your name (new here?)", validators=[Optional(), Length(max=100)], filters=[_strip]
    )
    referral_code = StringField(
        "Referral code (optional)", validators=[Optional(), Length(max=32)], filters=[_strip]
    )
    submit = SubmitField("Text me a code")


class PhoneCodeForm(FlaskForm):
    code = StringField(
        "Code from the text message",
        validators=[DataRequired(), Length(max=12)],
        filters=[_strip],
    )
    submit = SubmitField("Continue")


class AddPhoneForm(FlaskForm):
    phone = StringField(
        "Phone number", validators=[DataRequired(), Length(max=40)], filters=[_strip]
    )
    submit = SubmitField("Text me a code")


class AddEmailForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[DataRequired(), Length(max=254), rule(email_free)],
        filters=[_strip],
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH), rule(check_password_policy)],
    )
    submit = SubmitField("Add email and password")
