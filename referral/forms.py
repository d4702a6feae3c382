from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class ClaimForm(FlaskForm):
    # The length cap bounds the input; which codes exist is for referral.claims to say.
    referral_code = StringField(
        _l("Your inviter's referral code"),
        validators=[DataRequired(message=_l("Enter your inviter's code.")), Length(max=32)],
        filters=[_strip],
    )
    submit = SubmitField(_l("Name my inviter"))


class InviteForm(FlaskForm):
    # Up to referral.invitations.MAX_ADDRESSES addresses; the cap on length bounds the input.
    emails = TextAreaField(
        _l("Your friends' email addresses"),
        validators=[
            DataRequired(message=_l("Enter at least one email address.")),
            Length(max=2000),
        ],
        filters=[_strip],
    )
    submit = SubmitField(_l("Send invitations"))
