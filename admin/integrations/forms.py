"""Forms of the integrations screens: API keys, webhook endpoints, confirmations."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectMultipleField, StringField, SubmitField
from wtforms.validators import URL, DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from core.api_keys import SCOPES
from models import WEBHOOK_EVENTS

EVENT_DESCRIPTIONS = {
    "referral.created": "a friend signed up through a code (any status)",
    "referral.qualified": "a referral met the program's condition",
    "reward.approved": "a reward became payable",
    "reward.paid": "a reward was paid out",
}


class CheckboxesField(SelectMultipleField):
    """A list of checkboxes, one per choice."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ApiKeyForm(FlaskForm):
    name = StringField(
        "Name", validators=[DataRequired("Name the system that will use the key."), Length(max=100)]
    )
    scopes = CheckboxesField(
        "Scopes",
        choices=[SelectChoice(scope, f"{scope} — {what}") for scope, what in SCOPES.items()],
        validators=[DataRequired("Choose at least one scope.")],
    )
    submit = SubmitField("Create API key")


class EndpointForm(FlaskForm):
    url = StringField(
        "URL",
        validators=[
            DataRequired("Give the URL that receives the events."),
            Length(max=500),
            URL(require_tld=False, message="This is not a URL."),
        ],
    )
    description = StringField("Description", validators=[Optional(), Length(max=200)])
    events = CheckboxesField(
        "Events",
        choices=[
            SelectChoice(event, f"{event} — {EVENT_DESCRIPTIONS[event]}")
            for event in WEBHOOK_EVENTS
        ],
        validators=[DataRequired("Choose at least one event.")],
    )
    active = BooleanField("Active (deliver events to this endpoint)", default=True)
    submit = SubmitField("Save endpoint")


class ConfirmForm(FlaskForm):
    """A destructive action: the box must be ticked (works without JavaScript)."""

    confirm = BooleanField(
        "Yes, I understand this cannot be undone",
        validators=[DataRequired("Tick the box to confirm.")],
    )
    submit = SubmitField("Confirm")


class ActionForm(FlaskForm):
    """A one-button action (enable, disable, redeliver): only the CSRF token."""

    submit = SubmitField("Go")
