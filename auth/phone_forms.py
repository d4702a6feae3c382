"""Forms of phone sign-in (the number, then the one-time code) and of the profile page (add an
email and password, add a verified phone). The rules live in the services and are checked
field by field here (`rule`), so one submit reports every mistake (docs/guarantees.md #27,
#33); the services check again."""

import re

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from auth.forms import email_free, known_code
from auth.phone import CODE_DIGITS, normalize_phone
from auth.services import PASSWORD_MAX_LENGTH, check_password_policy, clean_name
from core.forms import rule

_CODE_SHAPE = re.compile(rf"\d{{{CODE_DIGITS}}}")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _code_shape(_form, field) -> None:
    # Not a guess: a code that cannot be one is refused before a try is spent on it.
    if not _CODE_SHAPE.fullmatch("".join(field.data.split())):
        raise ValidationError(f"The code is the {CODE_DIGITS} digits of the text message.")


class PhoneForm(FlaskForm):
    phone = StringField(
        "Phone number",
        validators=[DataRequired(), Length(max=40), rule(normalize_phone)],
        filters=[_strip],
    )
    name = StringField(
        "Your name (new here?)",
        validators=[Optional(), Length(max=100), rule(clean_name)],
        filters=[_strip],
    )
    referral_code = StringField(
        "Referral code (optional)",
        validators=[Optional(), Length(max=32), rule(known_code)],
        filters=[_strip],
    )
    submit = SubmitField("Text me a code")


class PhoneCodeForm(FlaskForm):
    code = StringField(
        "Code from the text message",
        validators=[DataRequired(), Length(max=12), _code_shape],
        filters=[_strip],
    )
    submit = SubmitField("Continue")


class AddPhoneForm(FlaskForm):
    phone = StringField(
        "Phone number",
        validators=[DataRequired(), Length(max=40), rule(normalize_phone)],
        filters=[_strip],
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
