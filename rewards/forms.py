from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField
from wtforms.validators import DataRequired, Length, Regexp


class PayoutForm(FlaskForm):
    """One balance's "request a payout" button; which balance rides in hidden fields."""

    kind = HiddenField(validators=[DataRequired(), Length(max=10)])
    currency = HiddenField(validators=[DataRequired(), Regexp(r"^[A-Z]{3}$")])
    submit = SubmitField(_l("Request payout"))
