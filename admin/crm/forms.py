"""The CRM's forms. Amounts are typed as people write them ("12.50") and turned into
exact integer minor units of the form's currency; never through a float."""

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, SelectChoice, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from admin.crm.services import EDITABLE_LEAD_STATUSES
from admin.crm.uploads import ACCEPT, ALLOWED_LABEL
from admin.operations.labels import WORDS
from core import money
from core.money import CURRENCIES, exponent
from models import CAMPAIGN_CHANNELS

_AMOUNT = re.compile(r"^\d+(\.\d+)?$")
NONE = 0  # the "no campaign" / "no service" choice of an optional select


def to_minor_units(text: str, currency: str) -> int:
    """ "12.50" USD -> 1250, "500" JPY -> 500; refuses what would need rounding."""
    cleaned = (text or "").strip()
    if not _AMOUNT.match(cleaned):
        raise ValueError(_("Enter an amount in digits with a dot for decimals, e.g. 12.50."))
    places = exponent(currency)
    try:
        return money.to_minor_units(cleaned, places)
    except money.AmountNotANumber:
        raise ValueError(_("Enter an amount such as 12.50.")) from None
    except money.AmountTooPrecise:
        raise ValueError(
            ngettext(
                "%(currency)s amounts have at most %(num)d decimal place.",
                "%(currency)s amounts have at most %(num)d decimal places.",
                places,
                currency=currency,
            )
        ) from None
    except money.AmountTooLarge:
        raise ValueError(_("This amount is too large.")) from None


def choices(pairs, none_label: str | None = None) -> list[SelectChoice]:
    """(value, label) pairs as a select's options, with a "none" option first if named."""
    options = [SelectChoice(value, label) for value, label in pairs]
    return [SelectChoice(NONE, none_label), *options] if none_label else options


_CHANNELS = choices((channel, WORDS["channel"][channel]) for channel in CAMPAIGN_CHANNELS)
_LEAD_STATUSES = choices(
    (status, WORDS["lead_status_title"][status]) for status in EDITABLE_LEAD_STATUSES
)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _upper(value):
    return value.strip().upper() if isinstance(value, str) else value


_CURRENCY_REFUSED = _l("Choose a currency from the list (ISO 4217 codes such as USD or EUR).")


def _currency_field(default: str = "USD") -> SelectField:
    return SelectField(
        _l("Currency"),
        default=default,
        filters=[_upper],
        validate_choice=False,  # AmountForm.validate_currency words the refusal
        validators=[DataRequired(_CURRENCY_REFUSED)],
        render_kw={"translate": "no"},  # ISO 4217 codes, the same in every language
    )


class AmountForm(FlaskForm):
    """A form with amount fields in one currency; `minor_units(field)` after validation.
    The currency is picked from the ISO 4217 list; a record's own currency (the form's data
    when made) stays offered even if it left the list, so an edit never changes it unasked."""

    currency = _currency_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kept = self.currency.object_data
        offered = list(CURRENCIES)
        if kept and kept not in CURRENCIES:
            offered.insert(0, kept)
        self.currency.choices = offered

    def validate_currency(self, field) -> None:
        if field.data not in self.currency.choices:
            raise ValidationError(_CURRENCY_REFUSED)

    def minor_units(self, field) -> int:
        return to_minor_units(field.data, self.currency.data or "USD")

    def _check_amount(self, field) -> None:
        try:
            self.minor_units(field)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class ServiceForm(AmountForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=120)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=5000)])
    price = StringField(_l("Price"), filters=[_strip], validators=[DataRequired()])
    currency = _currency_field()
    submit = SubmitField(_l("Save service"))

    def validate_price(self, field):
        self._check_amount(field)


class CampaignForm(AmountForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=120)])
    service_id = SelectField(_l("Service"), coerce=int, default=NONE)
    channel = SelectField(_l("Channel"), choices=_CHANNELS)
    budget = StringField(_l("Budget"), filters=[_strip], default="0", validators=[DataRequired()])
    currency = _currency_field()
    starts_on = DateField(_l("Starts on"), validators=[DataRequired()])
    ends_on = DateField(_l("Ends on"), validators=[Optional()])
    submit = SubmitField(_l("Save campaign"))

    def validate_budget(self, field):
        self._check_amount(field)

    def validate_ends_on(self, field):
        if field.data and self.starts_on.data and field.data < self.starts_on.data:
            raise ValidationError(_("The end date cannot be before the start date."))


class LeadForm(FlaskForm):
    full_name = StringField(
        _l("Full name"), filters=[_strip], validators=[DataRequired(), Length(max=120)]
    )
    phone = StringField(_l("Phone"), filters=[_strip], validators=[Optional(), Length(max=30)])
    email = StringField(_l("Email"), filters=[_strip], validators=[Optional(), Length(max=254)])
    campaign_id = SelectField(_l("Campaign"), coerce=int, default=NONE)
    status = SelectField(_l("Status"), choices=_LEAD_STATUSES, default="potential")
    submit = SubmitField(_l("Save lead"))

    def validate_email(self, field):
        if not field.data and not self.phone.data:
            raise ValidationError(_("Give a phone number or an email address (or both)."))


class ConvertLeadForm(FlaskForm):
    contract_id = SelectField(_l("Contract"), coerce=int)
    submit = SubmitField(_l("Make active client"))


class ContractForm(AmountForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=200)])
    service_id = SelectField(_l("Service"), coerce=int)
    signed_on = DateField(_l("Signed on"), validators=[DataRequired()])
    valid_from = DateField(_l("Valid from"), validators=[DataRequired()])
    valid_until = DateField(_l("Valid until"), validators=[DataRequired()])
    amount = StringField(_l("Amount"), filters=[_strip], validators=[DataRequired()])
    currency = _currency_field()
    document = FileField(
        _l("Signed document"),
        validators=[FileRequired(_l("Choose the signed document to upload."))],
        render_kw={"accept": ACCEPT},
        description=ALLOWED_LABEL,
    )
    submit = SubmitField(_l("Upload contract"))

    def validate_amount(self, field):
        self._check_amount(field)

    def validate_valid_until(self, field):
        if field.data and self.valid_from.data and field.data < self.valid_from.data:
            raise ValidationError(_("The contract cannot end before it starts."))


def optional_choice(value: int) -> int | None:
    return None if value == NONE else value
