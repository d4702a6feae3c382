"""The analytics home's filters: a GET form (no CSRF: it changes nothing)."""

from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField

from core.dates import utc_today

DEFAULT_DAYS = 30


def default_start() -> date:
    return utc_today() - timedelta(days=DEFAULT_DAYS - 1)


class DayField(DateField):
    """A UTC date as YYYY-MM-DD; left empty, it keeps its default."""

    def process_formdata(self, valuelist):
        text = (valuelist[0] if valuelist else "").strip()
        if not text:
            return
        try:
            self.data = date.fromisoformat(text)
        except ValueError:
            self.data = None
            raise ValueError(_l("Enter the date as YYYY-MM-DD, e.g. 2026-11-21.")) from None


def _as_id(value) -> int | None:
    return int(value) if value not in (None, "") else None


class IdSelectField(SelectField):
    """A choice of record by id; empty means "all". Whether the id exists is the service's
    question (it answers with a clear message)."""

    def __init__(self, label, **kwargs):
        super().__init__(label, coerce=_as_id, validate_choice=False, **kwargs)

    def process_formdata(self, valuelist):
        text = (valuelist[0] if valuelist else "").strip()
        if not text:
            self.data = None
        elif text.isdigit() and len(text) < 10:
            self.data = int(text)
        else:
            self.data = None
            raise ValueError(_l("Choose one of the listed entries."))

    def process_data(self, value):
        self.data = value


class AnalyticsFilterForm(FlaskForm):
    class Meta:
        csrf = False

    start = DayField(_l("From (UTC)"), default=default_start)
    end = DayField(_l("To (UTC, inclusive)"), default=utc_today)
    program = IdSelectField(_l("Program"))
    campaign = IdSelectField(_l("Campaign"))

    def fill_choices(self, programs, campaigns) -> None:
        self.program.choices = [("", _l("All programs"))] + [(str(i), n) for i, n in programs]
        self.campaign.choices = [("", _l("All campaigns"))] + [(str(i), n) for i, n in campaigns]
