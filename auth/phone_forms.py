"""Forms of phone sign-in (the number, then the one-time code) and of the profile page (add an
email and password, add a verified phone). The rules live in the services and are checked
field by field here (`rule`), so one submit reports every mistake (docs/guarantees.md #27,
#33); the services check again."""

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
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
        raise ValidationError(
            _("The code is the %(digits)d digits of the text message.", digits=CODE_DIGITS)
        )


class PhoneForm(FlaskForm):
    phone = StringField(
        _l("Phone number"),
        validators=[DataRequired(), Length(max=40), rule(normalize_phone)],
        filters=[_strip],
    )
    name = StringField(
        _l("Your name (new here?)"),
        validators=[Optional(), Length(max=100), rule(clean_name)],
        filters=[_strip],
    )
    referral_code = StringField(
        _l("Referral code (optional)"),
        validators=[Optional(), Length(max=32), rule(known_code)],
        filters=[_strip],
    )
    submit = SubmitField(_l("Text me a code"))


class PhoneCodeForm(FlaskForm):
    code = StringField(
        _l("Code from the text message"),
        validators=[DataRequired(), Length(max=12), _code_shape],
        filters=[_strip],
    )
    submit = SubmitField(_l("Continue"))


class AddPhoneForm(FlaskForm):
    phone = StringField(
        _l("Phone number"),
        validators=[DataRequired(), Length(max=40), rule(normalize_phone)],
        filters=[_strip],
    )
    submit = SubmitField(_l("Text me a code"))


class AddEmailForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[DataRequired(), Length(max=254), rule(email_free)],
        filters=[_strip],
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH), rule(check_password_policy)],
    )
    submit = SubmitField(_l("Add email and password"))
