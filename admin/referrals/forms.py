"""The referrals list's filters: a GET form (no CSRF: it changes nothing). Every field is
checked at once, so a page with two bad filters names both."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import Length

from admin.analytics.forms import DayField, IdSelectField
from models import REFERRAL_SOURCES, REFERRAL_STATUSES

SEARCH_MAX_LENGTH = 100

# Each status as staff read it in the filter and the table: (label, what it means now).
STATUS_WORDS = {
    "pending": (_l("Joined"), _l("Counted; waiting for a qualifying purchase.")),
    "review": (
        _l("Under review"),
        _l("Held by the fraud checks until staff decide; not counted yet."),
    ),
    "approved": (_l("Approved after review"), _l("Counted; waiting for a qualifying purchase.")),
    "qualified": (_l("Qualified"), _l("Rewards written; on hold until the refund window ends.")),
    "rewarded": (_l("Rewarded"), _l("The referrer's reward was approved.")),
    "rejected": (_l("Rejected"), _l("Never counted and earns nothing.")),
}
SOURCE_WORDS = {
    "link": _l("Referral link"),
    "code": _l("Code typed at signup"),
    "claimed": _l("Inviter named after signup"),
    "api": _l("Partner API"),
}
assert set(STATUS_WORDS) == set(REFERRAL_STATUSES)
assert set(SOURCE_WORDS) == set(REFERRAL_SOURCES)


class ReferralFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(
        _l("Search: referrer's or friend's name or email, or the code"),
        validators=[
            Length(max=SEARCH_MAX_LENGTH, message=_l("Search for at most 100 characters."))
        ],
        filters=[lambda text: (text or "").strip()],
    )
    status = SelectField(
        _l("Status"),
        default="",
        choices=[
            SelectChoice("", _l("Any status")),
            *[SelectChoice(key, words[0]) for key, words in STATUS_WORDS.items()],
        ],
    )
    source = SelectField(
        _l("Came through"),
        default="",
        choices=[
            SelectChoice("", _l("Any way in")),
            *[SelectChoice(key, words) for key, words in SOURCE_WORDS.items()],
        ],
    )
    program = IdSelectField(_l("Program"))
    campaign = IdSelectField(_l("Campaign"))
    since = DayField(_l("Joined from (UTC)"))
    until = DayField(_l("to (UTC, inclusive)"))

    def fill_choices(self, programs, campaigns) -> None:
        self.program.choices = [SelectChoice("", _l("All programs"))] + [
            SelectChoice(str(i), n) for i, n in programs
        ]
        self.campaign.choices = [SelectChoice("", _l("All campaigns"))] + [
            SelectChoice(str(i), n) for i, n in campaigns
        ]
