"""The program form: rules typed the way people write them ("10.00", "12.5 %"), turned into
what the rewards engine stores (minor units, basis points)."""

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    Form,
    FormField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from config import LANGUAGES
from core import money
from core.money import CURRENCIES, exponent
from models import ATTRIBUTION_MODELS, PROGRAM_TEXT_FIELDS, REWARD_KINDS, TRIGGERS, Program
from referral import program_texts
from referral.offer import SHARE_PLACEHOLDERS, unknown_placeholders
from rewards.programs import InvalidRules

_WHOLE = _l("Type a whole number.")
KIND_NAMES = {
    "credit": _l("Credit"),
    "cash": _l("Cash"),
    "coupon": _l("Coupon"),
    "gift_card": _l("Gift card"),
    "points": _l("Points"),
}
TRIGGER_NAMES = {
    "signup": _l("signup"),
    "first_purchase": _l("first purchase"),
    "every_purchase": _l("every purchase"),
}
ATTRIBUTION_NAMES = {"first": _l("first touch"), "last": _l("last touch")}
LANGUAGE_NAMES = {"en": _l("English"), "ru": _l("Russian")}
_KINDS = [SelectChoice(kind, KIND_NAMES[kind]) for kind in REWARD_KINDS]
_BASES = [
    SelectChoice("fixed", _l("Fixed amount")),
    SelectChoice("percent", _l("Percent of the purchase")),
]
_MINUTES = "%Y-%m-%dT%H:%M"
NO_CAMPAIGN = 0


def _required_int(label: str, **kwargs) -> IntegerField:
    return IntegerField(label, validators=[InputRequired(_WHOLE)], **kwargs)


def _optional_int(label: str) -> IntegerField:
    return IntegerField(label, validators=[Optional()])


def parse_amount(text: str | None, currency: str, field: str, *, points: bool = False) -> int:
    """ "10.00" in USD -> 1000 minor units; whole points for a points reward."""
    decimals = 0 if points else exponent(currency)
    example = "250" if points else "10." + "0" * decimals if decimals else "10"
    try:
        return money.to_minor_units(text, decimals)
    except money.AmountNotANumber:
        message = _("Type an amount such as %(example)s.", example=example)
        raise InvalidRules(field, message) from None
    except money.AmountTooPrecise:
        if points:
            message = _("Type whole points, such as %(example)s.", example=example)
        else:
            message = _(
                "Type at most %(decimals)d decimals in %(currency)s, such as %(example)s.",
                decimals=decimals,
                currency=currency,
                example=example,
            )
        raise InvalidRules(field, message) from None
    except money.AmountTooLarge:
        raise InvalidRules(field, _("This amount is too large.")) from None


def parse_percent(text: str | None, field: str) -> int:
    """ "12.5" (percent) -> 1250 basis points."""
    try:
        percent = Decimal((text or "").strip().removesuffix("%").strip())
    except InvalidOperation:
        raise InvalidRules(field, _("Type a percent such as 10 or 12.5.")) from None
    if not percent.is_finite():
        raise InvalidRules(field, _("Type a percent such as 10 or 12.5."))
    points = percent.scaleb(2)
    if points != points.to_integral_value() or abs(points) > money.MAX_MINOR_UNITS:
        raise InvalidRules(field, _("Type a percent with at most 2 decimals, such as 12.5."))
    return int(points)


def shown_amount(amount: int | None, currency: str, *, points: bool = False) -> str:
    if amount is None:
        return ""
    return money.amount_text(amount, 0 if points else exponent(currency))


def shown_percent(basis_points: int | None) -> str:
    if basis_points is None:
        return ""
    return format(Decimal(basis_points).scaleb(-2).normalize(), "f")


def _at_most(field: str) -> Length:
    return Length(
        max=program_texts.MAX_LENGTH[field],
        message=_l("Keep it to %(max)d characters or fewer (it has %(length)d)."),
    )


class ProgramTextsForm(Form):
    """A program's texts in one language; an empty one falls back to the default language's
    (referral/program_texts.py), and the optional ones then to the text made from the rules."""

    name = StringField(_l("Name"), validators=[_at_most("name")])
    description = TextAreaField(_l("Description"), validators=[_at_most("description")])
    headline = StringField(_l("Offer headline"), validators=[_at_most("headline")])
    share_text = TextAreaField(
        _l("Share text (the link is added after it)"), validators=[_at_most("share_text")]
    )
    usage_text = TextAreaField(_l("How to use a reward"), validators=[_at_most("usage_text")])
    email_intro = TextAreaField(
        _l("Introduction at the top of the program's emails"),
        validators=[_at_most("email_intro")],
    )

    def validate_share_text(self, field) -> None:
        unknown = unknown_placeholders(field.data)
        if unknown:
            raise ValidationError(
                _(
                    "{%(name)s} is not a placeholder; use %(placeholders)s.",
                    name=unknown[0],
                    placeholders=", ".join("{" + name + "}" for name in SHARE_PLACEHOLDERS),
                )
            )


class ProgramForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    description = TextAreaField(_l("Description"), validators=[Length(max=2000)])
    campaign_id = SelectField(_l("Campaign (referral channel)"), coerce=int, default=NO_CAMPAIGN)
    starts_at = DateTimeLocalField(_l("Starts (UTC)"), format=_MINUTES, validators=[Optional()])
    ends_at = DateTimeLocalField(
        _l("Ends (UTC, empty: never)"), format=_MINUTES, validators=[Optional()]
    )
    trigger_event = SelectField(
        _l("Pays on"), choices=[SelectChoice(t, TRIGGER_NAMES[t]) for t in TRIGGERS]
    )
    currency = SelectField(
        _l("Currency"),
        validate_choice=False,  # the validator below words the refusal
        validators=[DataRequired(_l("Choose a currency from the list."))],
    )
    min_purchase_amount = StringField(_l("Minimum purchase"), default="0")
    eligible_channels = StringField(_l("Only in channels"))
    eligible_countries = StringField(_l("Only to countries"))
    eligible_categories = StringField(_l("Only products in categories"))
    referrer_reward_kind = SelectField(_l("Referrer's reward"), choices=_KINDS)
    referrer_reward_basis = SelectField(_l("Referrer's reward is"), choices=_BASES)
    referrer_reward_value = StringField(_l("Referrer's amount, or percent"))
    friend_reward_kind = SelectField(
        _l("Friend's reward"), choices=[SelectChoice("", _l("None")), *_KINDS]
    )
    friend_reward_basis = SelectField(_l("Friend's reward is"), choices=_BASES)
    friend_reward_value = StringField(_l("Friend's amount, or percent"))
    max_depth = _required_int(_l("Levels in the tree"))
    level_shares = StringField(_l("Shares for level 2, 3, … (percent)"))
    milestone_every = _optional_int(_l("Milestone every N qualified referrals"))
    milestone_amount = StringField(_l("Milestone bonus"))
    cap_per_day = _optional_int(_l("Cap per referrer per day"))
    cap_per_month = _optional_int(_l("Cap per referrer per month"))
    cap_total = _optional_int(_l("Cap for the whole program"))
    hold_days = _required_int(_l("Hold (refund window), days"))
    reward_expiry_days = _optional_int(_l("Rewards expire after, days"))
    attribution_window_days = _required_int(_l("Attribution window, days"))
    claim_window_days = _required_int(_l("Claim window, days"))
    attribution_model = SelectField(
        _l("Attribution"),
        choices=[SelectChoice(model, ATTRIBUTION_NAMES[model]) for model in ATTRIBUTION_MODELS],
    )
    landing_url = StringField(
        _l("Landing URL"),
        validators=[
            Optional(),
            Length(max=500),
            Regexp(r"^(https?://|/)", message=_l("Start with https://, http:// or /.")),
        ],
    )
    review_score = _required_int(_l("Hold for review at risk score"))
    reject_score = _required_int(_l("Refuse at risk score"))
    max_signups_per_ip_per_day = _required_int(_l("Signups per IP per day"))
    max_signups_per_code_per_hour = _required_int(_l("Signups per code per hour"))
    min_seconds_click_to_purchase = _required_int(_l("Seconds from click to purchase, at least"))
    excluded_email_domains = StringField(_l("Excluded email domains"))
    share_text = TextAreaField(_l("Share text (the link is added after it)"))
    reward_usage_text = TextAreaField(_l("How to use a reward"))
    fulfilment_mode = SelectField(
        _l("Gift cards and vouchers are issued in Saleor"),
        choices=[
            SelectChoice("automatic", _l("automatically, once approved")),
            SelectChoice("limited", _l("automatically for some participants only")),
            SelectChoice("manual", _l("only when staff press “Pay out”")),
        ],
    )
    fulfilment_percent = _required_int(_l("Limited: share of participants, percent"))
    fulfilment_allowlist = StringField(_l("Limited: always for these participants (emails)"))
    notify_rejected = BooleanField(_l("Email the referrer when a friend's signup does not count"))
    submit = SubmitField(_l("Save"))

    def __init__(self, campaigns, *args, kept_currency: str | None = None, **kwargs):
        """`kept_currency`: the edited program's own currency, offered (and accepted) even if
        it has left the ISO list, so saving other changes never forces a new currency."""
        super().__init__(*args, **kwargs)
        self.campaign_id.choices = [SelectChoice(NO_CAMPAIGN, _("— none —"))] + [
            SelectChoice(campaign.id, campaign.name) for campaign in campaigns
        ]
        offered = list(CURRENCIES)
        if kept_currency and kept_currency not in CURRENCIES:
            offered.insert(0, kept_currency)
        self.currency.choices = offered

    def validate_currency(self, field) -> None:
        if field.data not in self.currency.choices:
            raise ValidationError(
                _("Choose a currency from the list (ISO 4217 codes such as USD or EUR).")
            )

    @staticmethod
    def data_of(program: Program) -> dict:
        """A stored program as the form shows it: amounts as "10.00", percents as "12.5"."""
        data = {name: getattr(program, name) for name in _PLAIN_FIELDS}
        data["campaign_id"] = program.campaign_id or NO_CAMPAIGN
        data["friend_reward_kind"] = program.friend_reward_kind or ""
        data["friend_reward_basis"] = program.friend_reward_basis or "fixed"
        data["min_purchase_amount"] = shown_amount(program.min_purchase_amount, program.currency)
        data["milestone_amount"] = shown_amount(
            program.milestone_amount,
            program.currency,
            points=program.referrer_reward_kind == "points",
        )
        for who in ("referrer", "friend"):
            data[f"{who}_reward_value"] = _shown_value(program, who)
        data["level_shares"] = ", ".join(str(share) for share in program.level_shares or [])
        data["excluded_email_domains"] = ", ".join(program.excluded_email_domains or [])
        for name in (*_FILTER_FIELDS, "fulfilment_allowlist"):
            data[name] = ", ".join(getattr(program, name))
        for name in _TEXT_FIELDS:
            data[name] = getattr(program, name) or ""
        for name in ("starts_at", "ends_at"):
            moment = getattr(program, name)
            data[name] = moment.astimezone(UTC).replace(tzinfo=None) if moment else None
        for language in LANGUAGES:
            data[f"texts_{language}"] = {
                field: program_texts.written_text(program, field, language) or ""
                for field in PROGRAM_TEXT_FIELDS
            }
        return data

    def text_values(self) -> dict[tuple[str, str], str | None]:
        """The texts kept in program_texts, by (language, field): every text of the other
        languages, the headline and email intro of the default one (its name, description,
        share and usage texts are among the rules)."""
        return {
            (language, field): self.texts_of(language)[field].data
            for language in LANGUAGES
            for field in PROGRAM_TEXT_FIELDS
            if program_texts.stored_in_rows(language, field)
        }

    def texts_of(self, language: str) -> Form:
        """The section of one language (its `name` field too: the FormField's is its own)."""
        return getattr(self, f"texts_{language}").form

    def rule_values(self, current: Program | None = None) -> dict:
        """The rules as `rewards.programs` takes them (`current`: the program edited);
        InvalidRules names a bad field."""
        values = {name: getattr(self, name).data for name in _PLAIN_FIELDS}
        values["description"] = values["description"] or ""
        values["name"] = values["name"].strip()
        values["landing_url"] = (values["landing_url"] or "").strip() or None
        currency = values["currency"] = self.currency.data
        values["campaign_id"] = self.campaign_id.data or None
        values["min_purchase_amount"] = parse_amount(
            self.min_purchase_amount.data, currency, "min_purchase_amount"
        )
        values |= self._reward("referrer", currency) | self._reward("friend", currency)
        values |= self._milestone(currency)
        values["level_shares"] = _whole_numbers(self.level_shares.data, "level_shares")
        domains = (self.excluded_email_domains.data or "").replace(",", " ").split()
        values["excluded_email_domains"] = [domain.lower() for domain in domains]
        for name, case in _FILTER_FIELDS.items():
            typed = (getattr(self, name).data or "").replace(",", " ").split()
            values[name] = sorted({case(value) for value in typed})
        allowed = (self.fulfilment_allowlist.data or "").replace(",", " ").split()
        values["fulfilment_allowlist"] = sorted({email.lower() for email in allowed})
        for name in _TEXT_FIELDS:  # empty: made from the rules
            values[name] = " ".join((getattr(self, name).data or "").split()) or None
        values |= self._dates(current)
        return values

    def _reward(self, who: str, currency: str) -> dict:
        kind = getattr(self, f"{who}_reward_kind").data or None
        if kind is None:
            return {f"{who}_reward_{part}": None for part in ("kind", "basis", "value")}
        basis = getattr(self, f"{who}_reward_basis").data
        text, field = getattr(self, f"{who}_reward_value").data, f"{who}_reward_value"
        if not (text or "").strip():
            value = None  # the rules say what is missing
        elif basis == "percent":
            value = parse_percent(text, field)
        else:
            value = parse_amount(text, currency, field, points=kind == "points")
        return {f"{who}_reward_kind": kind, f"{who}_reward_basis": basis, field: value}

    def _milestone(self, currency: str) -> dict:
        text = (self.milestone_amount.data or "").strip()
        points = self.referrer_reward_kind.data == "points"
        amount = parse_amount(text, currency, "milestone_amount", points=points) if text else None
        return {"milestone_every": self.milestone_every.data, "milestone_amount": amount}

    def _dates(self, current: Program | None) -> dict:
        """Start and end as typed. The form shows them to the minute, so a value equal to
        the stored one at that precision is left alone; an empty start is unchanged (a new
        program starts now), an empty end means no end."""
        dates = {}
        for name in ("starts_at", "ends_at"):
            typed, stored = _utc(getattr(self, name).data), getattr(current, name, None)
            if stored is not None and typed == stored.replace(second=0, microsecond=0):
                continue
            if typed is not None or name == "ends_at":
                dates[name] = typed
        return dates


# A section of texts per language, after every rule (the page shows the default language's
# first).
for _language in LANGUAGES:
    setattr(
        ProgramForm,
        f"texts_{_language}",
        FormField(ProgramTextsForm, label=LANGUAGE_NAMES[_language]),
    )


class NewProgramForm(ProgramForm):
    slug = StringField(
        _l("Short name (for the CLI and exports)"),
        validators=[DataRequired(), Length(max=60)],
    )
    submit = SubmitField(_l("Create program"))


class EditProgramForm(ProgramForm):
    preview = SubmitField(_l("Preview the last 30 days"))


_PLAIN_FIELDS = (
    "name",
    "description",
    "trigger_event",
    "currency",
    "referrer_reward_kind",
    "max_depth",
    "cap_per_day",
    "cap_per_month",
    "cap_total",
    "hold_days",
    "reward_expiry_days",
    "attribution_window_days",
    "claim_window_days",
    "attribution_model",
    "landing_url",
    "review_score",
    "reject_score",
    "max_signups_per_ip_per_day",
    "max_signups_per_code_per_hour",
    "min_seconds_click_to_purchase",
    "referrer_reward_basis",
    "milestone_every",
    "notify_rejected",
    "fulfilment_mode",
    "fulfilment_percent",
)


# The eligibility filters (rewards/eligibility.py), with the case each value is stored in.
_FILTER_FIELDS = {
    "eligible_channels": str.lower,
    "eligible_countries": str.upper,
    "eligible_categories": str.lower,
}


# What participants read; referral/offer.py makes both from the rules when they are empty.
_TEXT_FIELDS = ("share_text", "reward_usage_text")


def _shown_value(program: Program, who: str) -> str:
    value = getattr(program, f"{who}_reward_value")
    if getattr(program, f"{who}_reward_basis") == "percent":
        return shown_percent(value)
    points = getattr(program, f"{who}_reward_kind") == "points"
    return shown_amount(value, program.currency, points=points)


def _whole_numbers(text: str | None, field: str) -> list[int]:
    items = [item.strip().removesuffix("%").strip() for item in (text or "").split(",")]
    try:
        return [int(item) for item in items if item]
    except ValueError:
        raise InvalidRules(
            field, _("Type whole percents separated by commas, such as 50, 20.")
        ) from None


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment else None
