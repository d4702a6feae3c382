from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    StringField,
    SubmitField,
)
from wtforms.validators import AnyOf, DataRequired, Length, Optional, ValidationError

from auth import password_change
from auth.services import (
    PASSWORD_MAX_LENGTH,
    check_login_free,
    check_password_policy,
    clean_name,
    hash_password,
    normalize_email,
)
from core.errors import DomainError
from core.forms import rule
from models import utcnow
from referral import services as referral_services


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def email_free(typed: str) -> None:
    # As before: signup says an address is registered (and offers to log in instead).
    check_login_free(normalize_email(typed), None)


def known_code(typed: str) -> None:
    referral_services.resolve_signup_code(typed, None, utcnow())


def _known_code_kept(form, field) -> None:
    """known_code's check, keeping the code it found (`field.found`): the signup in the same
    transaction uses it instead of looking it up again."""
    field.found = None

    def find(typed: str) -> None:
        inviter = referral_services.resolve_signup_code(typed, None, utcnow())
        field.found = inviter.code if inviter else None

    rule(find)(form, field)


class SignupForm(FlaskForm):
    # Length caps bound the input; the rules live in auth.services and are checked field by
    # field here (`rule`), so one submit reports every mistake; the services check again.
    name = StringField(
        _l("Your name"),
        validators=[DataRequired(), Length(max=100), rule(clean_name)],
        filters=[_strip],
    )
    email = EmailField(
        _l("Email"),
        validators=[DataRequired(), Length(max=254)],  # and `email_free`: see validate()
        filters=[_strip],
    )
    password = PasswordField(
        _l("Password"),
        validators=[
            DataRequired(),
            Length(max=PASSWORD_MAX_LENGTH),
            rule(check_password_policy),
        ],
    )
    referral_code = StringField(
        _l("Referral code (optional)"),
        validators=[Optional(), Length(max=32), _known_code_kept],
        filters=[_strip],
    )
    submit = SubmitField(_l("Create my account"))

    def validate(self, extra_validators=None) -> bool:
        # The password is hashed before any check reads the database, so the signup's one
        # transaction (those checks, then the writes) holds no connection, and on SQLite no
        # write lock, while the CPU works. A password the policy refuses is never hashed.
        self.password_hash = None
        try:
            check_password_policy(self.password.data or "")
        except DomainError:
            pass
        else:
            self.password_hash = hash_password(self.password.data)
        if super().validate(extra_validators):
            # Nothing to show yet: the account's INSERT says whether the address is taken
            # (its unique key decides, EmailTaken on this field), with no lookup before it.
            return True
        if not self.email.errors:  # the form comes back anyway: with every mistake on it
            try:
                rule(email_free)(self, self.email)
            except ValidationError as error:
                self.email.errors.append(str(error))
        return False


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)], filters=[_strip])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    remember = BooleanField(_l("Keep me signed in"))
    submit = SubmitField(_l("Log in"))


class ResetRequestForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)], filters=[_strip])
    submit = SubmitField(_l("Send me a reset link"))


class ResetPasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    submit = SubmitField(_l("Set my new password"))


class DeleteAccountForm(FlaskForm):
    """Deleting one's account: the password (or, without one, the code texted to the phone)
    and a ticked box. Which of the two is asked is decided by auth.account_data."""

    password = PasswordField(
        _l("Your current password"), validators=[Optional(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    code = StringField(
        _l("Code from the text message"), validators=[Optional(), Length(max=12)], filters=[_strip]
    )
    confirm = BooleanField(
        _l("I understand: my account is deleted for good and rewards not yet paid out are lost"),
        validators=[
            DataRequired(_l("Tick the box to confirm that you want your account deleted."))
        ],
    )
    submit = SubmitField(_l("Delete my account"))


class ProfileDetailsForm(FlaskForm):
    name = StringField(
        _l("Your name"),
        validators=[DataRequired(), Length(max=100), rule(clean_name)],
        filters=[_strip],
    )
    display_name = StringField(
        _l("Public name (optional)"),
        validators=[Optional(), Length(max=60), rule(clean_name)],
        filters=[_strip],
    )
    submit = SubmitField(_l("Save my details"))


class LeaderboardChoiceForm(FlaskForm):
    """Leave the public leaderboard, or rejoin it: the button says which."""

    show = HiddenField(validators=[AnyOf(["yes", "no"], message=_l("Choose to leave or rejoin."))])


class ChangePasswordForm(FlaskForm):
    """The current password proves it is the owner at the keyboard (auth.password_change
    checks it, counted like a login); the new one follows the signup rules. Both are checked
    in one submit."""

    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[
            DataRequired(),
            Length(max=PASSWORD_MAX_LENGTH),
            rule(check_password_policy),
        ],
    )
    submit = SubmitField(_l("Change my password"))

    def __init__(self, account, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account

    def validate_current_password(self, field) -> None:
        rule(lambda typed: password_change.check_current_password(self.account, typed))(self, field)

    def validate_new_password(self, field) -> None:
        if field.data and field.data == self.current_password.data:
            raise ValidationError(_("Choose a password different from your current one."))
