"""Day boundaries: the app stores UTC timestamps and filters by whole UTC days."""

from datetime import UTC, date, datetime, time


def midnight(day: date) -> datetime:
    """The first moment of `day` in UTC: a day's range is [midnight(day), midnight(day + 1))."""
    return datetime.combine(day, time.min, UTC)


def utc_today() -> date:
    return datetime.now(UTC).date()


# The times an event may carry: any later arithmetic (holds, windows) stays within datetime's
# range, and a year-1 or year-9999 time is refused rather than overflowing on the way to UTC.
EARLIEST_EVENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_EVENT = datetime(2100, 1, 1, tzinfo=UTC)
PLAUSIBLE_RANGE = "1970-01-01 and 2100-01-01 (UTC)"


# Days a filter may name: any record's, with room; beyond, date arithmetic would overflow.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(2100, 12, 31)


def plausible_utc(moment: datetime) -> datetime | None:
    """An aware `moment` in UTC when it lies in [EARLIEST_EVENT, LATEST_EVENT), else None."""
    try:
        in_utc = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before the year 1 in UTC
        return None
    return in_utc if EARLIEST_EVENT <= in_utc < LATEST_EVENT else None
