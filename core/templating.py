"""Filters and globals shared by every template."""

from datetime import datetime

from flask import Flask

from core import branding


def mask_email(email: str | None) -> str:
    """ "alice@example.com" -> "a***@example.com": enough to recognise, not to harvest."""
    if not email or "@" not in email:
        return "—"
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


def format_date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "—"


def format_datetime(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


_DURATION_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def format_duration(seconds: float | None) -> str:
    """A span of time in its two largest units, rounded to the second: 1,000,080 s ->
    "11 d 13 h", 930 s -> "15 min 30 s", 7200 s -> "2 h", 30 s -> "30 s"."""
    if seconds is None:
        return "—"
    left = int(abs(seconds) + 0.5)  # half up: a median may end in .5
    parts = []
    for unit, size in _DURATION_UNITS:
        count, left = divmod(left, size)
        if count or parts:
            parts.append((count, unit))
        if len(parts) == 2:
            break
    shown = " ".join(f"{count:,} {unit}" for count, unit in parts if count) or "0 s"
    return f"−{shown}" if seconds < 0 and shown != "0 s" else shown


# The fraud checks' reason codes (referral/fraud.py) as staff read them: one place, so every
# screen words a code the same way. The stored code stays in the data and the CSV exports.
REASON_LABELS = {
    "same_person": "The referrer's own account",
    "same_device": "Same browser as the referrer",
    "same_mailbox": "An alias of the referrer's email",
    "same_ip": "Same IP address as the referrer",
    "same_network": "Same network as the referrer",
    "ip_velocity": "Many signups from one IP address",
    "code_velocity": "Many signups with one code",
    "cycle": "Would close a loop in the tree",
    "excluded_domain": "Email domain excluded by the program",
    "disposable_email": "Throwaway email address",
    "fast_purchase": "Purchase seconds after the click",
    "self_referral": "The referrer's own account",
}


def reason_label(code: str | None) -> str:
    """ "same_ip" -> "Same IP address as the referrer"; an unknown code in plain words."""
    if not code:
        return "—"
    return REASON_LABELS.get(code) or code.replace("_", " ").capitalize()


def register_template_helpers(app: Flask) -> None:
    # Every template, emails rendered by a worker too, names the installation's brand.
    app.context_processor(lambda: {"brand": branding.current()})
    app.add_template_filter(mask_email, "mask_email")
    app.add_template_filter(format_date, "date")
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(reason_label, "reason_label")
