"""Filters and globals shared by every template. Dates, times, numbers and spans of time are
written for the current language (core/i18n.py): English keeps the ISO dates it always
showed, another language its own way (Babel's CLDR data), e.g. 06.12.2026 in Russian."""

import os
from datetime import UTC, date, datetime

from babel import dates as babel_dates
from babel import numbers as babel_numbers
from flask import Flask
from flask_babel import lazy_gettext as _l
from flask_babel import pgettext
from jinja2 import FileSystemBytecodeCache

from core import branding
from core.i18n import current_locale


def mask_email(email: str | None) -> str:
    """ "alice@example.com" -> "a***@example.com": enough to recognise, not to harvest."""
    if not email or "@" not in email:
        return "—"
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


# The date pattern of each language that does not use its CLDR short date.
_DATE_PATTERNS = {"en": "yyyy-MM-dd"}


def _date_pattern() -> str:
    locale = current_locale()
    return (
        _DATE_PATTERNS.get(locale.language) or babel_dates.get_date_format("short", locale).pattern
    )


def format_date(value: date | datetime | None) -> str:
    """2026-12-06 in English, 06.12.2026 in Russian; the UTC day of a datetime."""
    if not value:
        return "—"
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
    return babel_dates.format_date(value, _date_pattern(), locale=current_locale())


def format_datetime(value: datetime | None) -> str:
    """2026-12-06 14:05 UTC in English, 06.12.2026 14:05 UTC in Russian."""
    if not value:
        return "—"
    value = value.astimezone(UTC) if value.tzinfo else value
    time = babel_dates.format_time(value, "HH:mm", tzinfo=UTC, locale=current_locale())
    return f"{format_date(value)} {time} UTC"


def format_number(value: int | float | None) -> str:
    """1,234 in English, 1 234 in Russian (a no-break space)."""
    if value is None:
        return "—"
    return babel_numbers.format_decimal(value, locale=current_locale())


def format_ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in words: "3 days ago", "3 дня назад" (the largest unit, rounded)."""
    if not value:
        return "—"
    now = now or datetime.now(UTC)
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return babel_dates.format_timedelta(
        moment - now, add_direction=True, threshold=0.85, locale=current_locale()
    )


def _duration_units() -> tuple[tuple[str, int], ...]:
    return (
        (pgettext("duration", "d"), 86400),
        (pgettext("duration", "h"), 3600),
        (pgettext("duration", "min"), 60),
        (pgettext("duration", "s"), 1),
    )


def format_duration(seconds: float | None) -> str:
    """A span of time in its two largest units, rounded to the second: 1,000,080 s ->
    "11 d 13 h", 930 s -> "15 min 30 s", 7200 s -> "2 h", 30 s -> "30 s"."""
    if seconds is None:
        return "—"
    left = int(abs(seconds) + 0.5)  # half up: a median may end in .5
    parts = []
    units = _duration_units()
    nothing = f"0 {units[-1][0]}"
    for unit, size in units:
        count, left = divmod(left, size)
        if count or parts:
            parts.append((count, unit))
        if len(parts) == 2:
            break
    shown = " ".join(f"{format_number(count)} {unit}" for count, unit in parts if count) or nothing
    return f"−{shown}" if seconds < 0 and shown != nothing else shown


# The fraud checks' reason codes (referral/fraud.py) as staff read them: one place, so every
# screen words a code the same way. The stored code stays in the data and the CSV exports.
REASON_LABELS = {
    "same_person": _l("The referrer's own account"),
    "same_device": _l("Same browser as the referrer"),
    "same_mailbox": _l("An alias of the referrer's email"),
    "same_ip": _l("Same IP address as the referrer"),
    "same_network": _l("Same network as the referrer"),
    "ip_velocity": _l("Many signups from one IP address"),
    "code_velocity": _l("Many signups with one code"),
    "cycle": _l("Would close a loop in the tree"),
    "excluded_domain": _l("Email domain excluded by the program"),
    "disposable_email": _l("Throwaway email address"),
    "fast_purchase": _l("Purchase seconds after the click"),
    "self_referral": _l("The referrer's own account"),
}


def reason_label(code: str | None) -> str:
    """ "same_ip" -> "Same IP address as the referrer"; an unknown code in plain words."""
    if not code:
        return "—"
    return str(REASON_LABELS.get(code) or code.replace("_", " ").capitalize())


def register_template_cache(app: Flask) -> None:
    """Compiled templates kept in TEMPLATE_CACHE_DIR for every process. Jinja keys each by
    the template's name, file and a checksum of its source (a changed template is compiled
    again) and writes a file whole before it is read."""
    folder = app.config["TEMPLATE_CACHE_DIR"]
    if folder:
        os.makedirs(folder, exist_ok=True)
        app.jinja_env.bytecode_cache = FileSystemBytecodeCache(folder)


def register_template_helpers(app: Flask) -> None:
    # Every template, emails rendered by a worker too, names the installation's brand.
    app.context_processor(lambda: {"brand": branding.current()})
    app.add_template_filter(mask_email, "mask_email")
    app.add_template_filter(format_date, "date")
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(format_ago, "ago")
    app.add_template_filter(format_number, "number")
    app.add_template_filter(reason_label, "reason_label")
