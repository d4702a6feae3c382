"""Forms of the operations screens. Lengths bound the input; the rules live in the services."""

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from admin.operations import purchases
from core.forms import rule
from core.money import CURRENCIES
from models import utcnow

REASON_MAX = 40  # what the ledger keeps (Referral.reason, Reward.reason)
REFERENCE_MAX = 200


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class DecisionForm(FlaskForm):
    """Approve or reject held items: several ticked in the queue, or one on its own page."""

    ids = SelectMultipleField(_l("Selected"), coerce=int, validate_choice=False)
    reason = StringField(
        _l("Reason"),
        validators=[Optional(), Length(max=REASON_MAX)],
        filters=[_strip],
        description=_l("Kept with the decision; required to reject."),
    )
    confirm_reject = BooleanField(_l("Yes, reject: the rewards of rejected items are lost"))
    approve = SubmitField(_l("Approve"))
    reject = SubmitField(_l("Reject"))

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not self.ids.data:
            self.form_errors.append(_l("Select at least one item."))
            valid = False
        if not (self.approve.data or self.reject.data):
            self.form_errors.append(_l("Choose Approve or Reject."))
            valid = False
        if self.reject.data and not self.reason.data:
            self.reason.errors = [*self.reason.errors, _l("Say why you reject.")]
            valid = False
        if self.reject.data and not self.confirm_reject.data:
            self.confirm_reject.errors = [*self.confirm_reject.errors, _l("Tick to confirm.")]
            valid = False
        return valid


class ConfirmedForm(FlaskForm):
    """An action that cannot be undone from the panel: it needs the box ticked."""

    confirm = BooleanField(
        _l("I confirm"), validators=[InputRequired(message=_l("Tick the box to confirm."))]
    )
    submit = SubmitField(_l("Confirm"))


class ApproveRewardForm(ConfirmedForm):
    confirm = BooleanField(
        _l("Approve now, although the refund window is still open"),
        validators=[InputRequired(message=_l("Tick the box to confirm."))],
    )


class CancelForm(ConfirmedForm):
    reason = StringField(
        _l("Reason"), validators=[DataRequired(), Length(max=REASON_MAX)], filters=[_strip]
    )


class CancelPayoutForm(ConfirmedForm):
    reason = StringField(
        _l("Reason (the participant can ask again)"),
        validators=[DataRequired(), Length(max=REFERENCE_MAX)],
        filters=[_strip],
    )


class PayForm(ConfirmedForm):
    reference = StringField(
        _l("Payment reference (optional)"),
        validators=[Optional(), Length(max=REFERENCE_MAX)],
        filters=[_strip],
        description=_l("A bank transfer id, a gift card number: whatever finds the payment again."),
    )


class ManualPurchaseForm(FlaskForm):
    """Every field is checked in one submit (the service's own checks, as field rules), so
    staff see all that is wrong at once; the service checks again when it records."""

    email = EmailField(
        _l("Participant's email"),
        validators=[DataRequired(), Length(max=254), rule(purchases.find_participant)],
        filters=[_strip],
    )
    order_id = StringField(
        _l("Order id"), validators=[DataRequired(), Length(max=200)], filters=[_strip]
    )
    amount = StringField(
        _l("Amount"), validators=[DataRequired(), Length(max=20)], filters=[_strip]
    )
    currency = SelectField(
        _l("Currency"),
        choices=CURRENCIES,
        default=lambda: current_app.config["DEFAULT_CURRENCY"],
        validate_choice=False,  # the rule words the refusal
        validators=[DataRequired(), rule(purchases.check_currency)],
        render_kw={"translate": "no"},  # ISO 4217 codes, the same in every language
    )
    occurred_on = DateField(
        _l("Purchase date"),
        default=lambda: utcnow().date(),
        validators=[DataRequired(), rule(lambda day: purchases.purchase_moment(day, utcnow()))],
    )
    submit = SubmitField(_l("Record purchase"))

    def validate_amount(self, field) -> None:
        # Its decimals depend on the currency; with no valid currency (only a forged request
        # sends one off the list) the currency's own error is enough.
        if self.currency.data in CURRENCIES:
            rule(lambda text: purchases.parse_amount(text, self.currency.data))(self, field)
