"""The referrals list's filters: a GET form (no CSRF: it changes nothing). Every field is
checked at once, so a page with two bad filters names both."""

from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import Length

from admin.analytics.forms import DayField, IdSelectField
from models import REFERRAL_SOURCES, REFERRAL_STATUSES

SEARCH_MAX_LENGTH = 100

# Each status as staff read it in the filter and the table: (label, what it means now).
STATUS_WORDS = {
    "pending": ("Joined", "Counted; waiting for a qualifying purchase."),
    "review": ("Under review", "Held by the fraud checks until staff decide; not counted yet."),
    "approved": ("Approved after review", "Counted; waiting for a qualifying purchase."),
    "qualified": ("Qualified", "Rewards written; on hold until the refund window ends."),
    "rewarded": ("Rewarded", "The referrer's reward was approved."),
    "rejected": ("Rejected", "Never counted and earns nothing."),
}
SOURCE_WORDS = {
    "link": "Referral link",
    "code": "Code typed at signup",
    "claimed": "Inviter named after signup",
    "api": "Partner API",
}
assert set(STATUS_WORDS) == set(REFERRAL_STATUSES)
assert set(SOURCE_WORDS) == set(REFERRAL_SOURCES)


class ReferralFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(
        "Search: referrer's or friend's name or email, or the code",
        validators=[Length(max=SEARCH_MAX_LENGTH, message="Search for at most 100 characters.")],
        filters=[lambda text: (text or "").strip()],
    )
    status = SelectField(
        "Status",
        default="",
        choices=[
            SelectChoice("", "Any status"),
            *[SelectChoice(key, words[0]) for key, words in STATUS_WORDS.items()],
        ],
    )
    source = SelectField(
        "Came through",
        default="",
        choices=[
            SelectChoice("", "Any way in"),
            *[SelectChoice(key, words) for key, words in SOURCE_WORDS.items()],
        ],
    )
    program = IdSelectField("Program")
    campaign = IdSelectField("Campaign")
    since = DayField("Joined from (UTC)")
    until = DayField("to (UTC, inclusive)")

    def fill_choices(self, programs, campaigns) -> None:
        self.program.choices = [SelectChoice("", "All programs")] + [
            SelectChoice(str(i), n) for i, n in programs
        ]
        self.campaign.choices = [SelectChoice("", "All campaigns")] + [
            SelectChoice(str(i), n) for i, n in campaigns
        ]
