"""Forms of the integrations screens: API keys, webhook endpoints, confirmations."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import BooleanField, SelectChoice, SelectMultipleField, StringField, SubmitField
from wtforms.validators import URL, DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from core.api_keys import SCOPES
from models import WEBHOOK_EVENTS

EVENT_DESCRIPTIONS = {
    "referral.created": _l("a friend signed up through a code (any status)"),
    "referral.qualified": _l("a referral met the program's condition"),
    "reward.approved": _l("a reward became payable"),
    "reward.paid": _l("a reward was paid out"),
}
# What each API key scope allows (core/api_keys.SCOPES), in the reader's language.
SCOPE_DESCRIPTIONS = {
    "events:write": _l("send conversion events"),
    "codes:issue": _l("issue referral codes for shop customers"),
    "referrals:write": _l("record referrals of externally created signups"),
}


class CodeLabel:
    """A choice named by its code, which stays as it is in every language (translate="no"),
    and what it means, in the reader's language."""

    def __init__(self, code: str, meaning):
        self.code, self.meaning = code, meaning

    def __str__(self) -> str:
        return f"{self.code} — {self.meaning}"

    def __html__(self) -> str:
        return Markup('<span translate="no">%s</span> — %s') % (self.code, str(self.meaning))


class CheckboxesField(SelectMultipleField):
    """A list of checkboxes, one per choice."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ApiKeyForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[DataRequired(_l("Name the system that will use the key.")), Length(max=100)],
    )
    scopes = CheckboxesField(
        _l("Scopes"),
        choices=[
            SelectChoice(scope, CodeLabel(scope, SCOPE_DESCRIPTIONS.get(scope, meaning)))
            for scope, meaning in SCOPES.items()
        ],
        validators=[DataRequired(_l("Choose at least one scope."))],
    )
    submit = SubmitField(_l("Create API key"))


class EndpointForm(FlaskForm):
    url = StringField(
        "URL",
        validators=[
            DataRequired(_l("Give the URL that receives the events.")),
            Length(max=500),
            URL(require_tld=False, message=_l("This is not a URL.")),
        ],
    )
    description = StringField(_l("Description"), validators=[Optional(), Length(max=200)])
    events = CheckboxesField(
        _l("Events"),
        choices=[
            SelectChoice(event, CodeLabel(event, EVENT_DESCRIPTIONS[event]))
            for event in WEBHOOK_EVENTS
        ],
        validators=[DataRequired(_l("Choose at least one event."))],
    )
    active = BooleanField(_l("Active (deliver events to this endpoint)"), default=True)
    submit = SubmitField(_l("Save endpoint"))


class ConfirmForm(FlaskForm):
    """A destructive action: the box must be ticked (works without JavaScript)."""

    confirm = BooleanField(
        _l("Yes, I understand this cannot be undone"),
        validators=[DataRequired(_l("Tick the box to confirm."))],
    )
    submit = SubmitField(_l("Confirm"))


class ActionForm(FlaskForm):
    """A one-button action (enable, disable, redeliver): only the CSRF token."""

    submit = SubmitField(_l("Go"))
