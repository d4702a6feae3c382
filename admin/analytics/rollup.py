"""The analytics roll-up: per closed UTC day, the counts the analytics home would otherwise
read from millions of rows (new accounts; per program, new participants and clicks).

Only closed days (before today, UTC) are rolled up, and only up to the watermark
(`analytics_rollup.complete_until`, exclusive); the page counts the days from the watermark on
from the rows themselves, so its figures are exact at any time. The counted rows are written
once and never changed (join times, code issue times, clicks); staff accounts are rolled up
too and taken out by the page, so a change of role needs nothing here. A row that arrives
later for a day already rolled up (a backdated import, the demo seed) is counted only after a
rebuild (`flask admin rollup-analytics --rebuild`).
"""

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import delete, func, insert, literal_column, select, union_all

from admin.analytics.queries import first_code
from admin.analytics.sql import utc_date
from core.dates import midnight
from extensions import db
from models import (
    AnalyticsDaily,
    AnalyticsDailyAccounts,
    AnalyticsRollup,
    Click,
    ReferralCode,
    User,
    utcnow,
)

# Days per INSERT ... SELECT: a few statements for years of history, each a bounded one.
BATCH_DAYS = 92
# Runs take turns (PostgreSQL; SQLite writers already do): any fixed number of our own.
_LOCK_KEY = 0x1A7A1F7C5


def watermark() -> date | None:
    """Every day before this one is rolled up (None: none is)."""
    return db.session.scalar(select(AnalyticsRollup.complete_until))


def rollup_analytics(
    until: date,
    rebuild: bool = False,
    progress: Callable[[date, date], None] | None = None,
) -> int:
    """Roll up the days before `until` that are not yet (every day with `rebuild`, which
    first empties the roll-up); today and later days never are. Returns how many days were
    computed. Flushes; the caller commits."""
    until = min(until, utcnow().date())
    _take_turns()
    done = None if rebuild else watermark()
    if rebuild:
        db.session.execute(delete(AnalyticsDaily))
        db.session.execute(delete(AnalyticsDailyAccounts))
    first = done if done is not None else _first_day()
    days = 0
    if first is not None and first < until:
        for batch_start in _batches(first, until):
            batch_end = min(batch_start + timedelta(days=BATCH_DAYS), until)
            _rollup_days(batch_start, batch_end)
            days += (batch_end - batch_start).days
            if progress:
                progress(batch_end, until)
    if done is None or until > done:
        _set_watermark(until)
    db.session.flush()
    return days


def _take_turns() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))


def _first_day() -> date | None:
    """The first day anything the roll-up counts happened (None: an empty database)."""
    firsts = [
        db.session.scalar(select(func.min(column)))
        for column in (User.created_at, ReferralCode.created_at, Click.created_at)
    ]
    known = [moment for moment in firsts if moment is not None]
    return min(known).date() if known else None


def _batches(first: date, until: date):
    day = first
    while day < until:
        yield day
        day += timedelta(days=BATCH_DAYS)


def _rollup_days(first: date, until: date) -> None:
    """(Re)compute the days [first, until): their rows deleted, then one grouped INSERT per
    table."""
    start, end = midnight(first), midnight(until)
    for table in (AnalyticsDaily, AnalyticsDailyAccounts):
        db.session.execute(delete(table).where(table.day >= first, table.day < until))
    joined = utc_date(User.created_at)
    accounts = (
        select(joined, func.count())
        .where(User.created_at >= start, User.created_at < end)
        .group_by(joined)
    )
    db.session.execute(
        insert(AnalyticsDailyAccounts).from_select(["day", "new_accounts"], accounts)
    )
    db.session.execute(
        insert(AnalyticsDaily).from_select(
            ["day", "program_id", "new_participants", "clicks"], _program_days(start, end)
        )
    )


def _program_days(start, end):
    """Per day and program: accounts given their first code of the program, and clicks."""
    issued = utc_date(ReferralCode.created_at)
    participants = (
        select(
            issued.label("day"),
            ReferralCode.program_id,
            func.count().label("new_participants"),
            literal_column("0").label("clicks"),
        )
        .where(ReferralCode.created_at >= start, ReferralCode.created_at < end, first_code(None))
        .group_by(issued, ReferralCode.program_id)
    )
    clicked = utc_date(Click.created_at)
    clicks = (
        select(clicked, ReferralCode.program_id, literal_column("0"), func.count())
        .join(ReferralCode, ReferralCode.id == Click.code_id)
        .where(Click.created_at >= start, Click.created_at < end)
        .group_by(clicked, ReferralCode.program_id)
    )
    rows = union_all(participants, clicks).subquery()
    return select(
        rows.c.day,
        rows.c.program_id,
        func.sum(rows.c.new_participants),
        func.sum(rows.c.clicks),
    ).group_by(rows.c.day, rows.c.program_id)


def _set_watermark(until: date) -> None:
    state = db.session.get(AnalyticsRollup, 1)
    if state is None:
        db.session.add(AnalyticsRollup(id=1, complete_until=until))
    else:
        state.complete_until, state.refreshed_at = until, utcnow()
