"""Day boundaries: the app stores UTC timestamps and filters by whole UTC days."""

from datetime import UTC, date, datetime, time


def midnight(day: date) -> datetime:
    """The first moment of `day` in UTC: a day's range is [midnight(day), midnight(day + 1))."""
    return datetime.combine(day, time.min, UTC)


def utc_today() -> date:
    return datetime.now(UTC).date()
