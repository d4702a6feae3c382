"""Filters and globals shared by every template."""

from datetime import datetime

from flask import Flask


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


def register_template_helpers(app: Flask) -> None:
    app.add_template_filter(mask_email, "mask_email")
    app.add_template_filter(format_date, "date")
    app.add_template_filter(format_datetime, "datetime")
