"""The analytics roll-up: per closed UTC day, what the analytics home would otherwise read
from millions of rows: new accounts; per program, new participants, clicks, the referrals by
what became of them, purchases and referred revenue, reward cost, and the click-to-signup and
signup-to-purchase times in buckets (admin/analytics/buckets.py).

Only closed days (before today, UTC) are rolled up, and only up to the watermark
(`analytics_rollup.complete_until`, exclusive); the page counts the days from the watermark on
from the rows themselves. A rolled-up day whose rows change later (a referral qualifies, a
reward is cancelled, a refund or a late click arrives) is marked stale by the database's own
triggers (migration 0021): the page counts a stale day from the rows, and every run of the job
recounts the stale days and unmarks them. So the page's figures are exact at any time. Staff
accounts are rolled up too and taken out by the page, so a change of role needs nothing here.
"""

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import delete, func, insert, literal, literal_column, select, text, union_all

from admin.analytics.buckets import bucket_sql
from admin.analytics.queries import (
    click_gaps,
    cost_entries,
    first_code,
    flagged,
    purchase_gaps,
    purchase_rows,
    referral_figures,
    runs,
)
from admin.analytics.sql import utc_date
from core.dates import midnight
from extensions import db
from models import (
    AnalyticsDaily,
    AnalyticsDailyAccounts,
    AnalyticsGapDay,
    AnalyticsPurchaseDay,
    AnalyticsReferralDay,
    AnalyticsRewardDay,
    AnalyticsRollup,
    AnalyticsStaleDay,
    Click,
    Conversion,
    Program,
    Referral,
    ReferralCode,
    Reward,
    User,
    utcnow,
)

# Every table the roll-up writes, per day.
DAY_TABLES = (
    AnalyticsDaily,
    AnalyticsDailyAccounts,
    AnalyticsReferralDay,
    AnalyticsPurchaseDay,
    AnalyticsRewardDay,
    AnalyticsGapDay,
)

# A run that computed this many days analyses the roll-up's tables afterwards.
ANALYSE_AFTER_DAYS = 28
# Days per INSERT ... SELECT: a few statements for years of history, each a bounded one.
BATCH_DAYS = 92
# Runs take turns (PostgreSQL; SQLite writers already do): any fixed number of our own.
_LOCK_KEY = 0x1A7A1F7C5


def watermark() -> date | None:
    """Every day before this one is rolled up (None: none is)."""
    return db.session.scalar(select(AnalyticsRollup.complete_until))


def stale_days(before: date) -> tuple[date, ...]:
    """The stale days before `before`, in order (the page counts them from the rows)."""
    query = select(AnalyticsStaleDay.day).distinct().where(AnalyticsStaleDay.day < before)
    return tuple(db.session.scalars(query.order_by(AnalyticsStaleDay.day)))


def rollup_analytics(
    until: date,
    rebuild: bool = False,
    progress: Callable[[date, date], None] | None = None,
) -> int:
    """Roll up the days before `until` that are not yet (every day with `rebuild`, which
    first empties the roll-up), and recount the stale ones; today and later days never are.
    Returns how many days were computed. Flushes; the caller commits."""
    until = min(until, utcnow().date())
    _take_turns()
    done = None if rebuild else watermark()
    if rebuild:
        for table in (*DAY_TABLES, AnalyticsStaleDay):
            db.session.execute(delete(table))
    days = recount_stale(done) if done is not None else 0
    first = done if done is not None else _first_day()
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
    if days >= ANALYSE_AFTER_DAYS:
        _analyse()
    return days


def _analyse() -> None:
    """Tell the planner how big the roll-up has grown (a first run fills years at once; before
    autovacuum gets to it, the planner would take each table for a handful of rows)."""
    for table in DAY_TABLES:
        db.session.execute(text(f"ANALYZE {table.__tablename__}"))


def recount_stale(before: date) -> int:
    """Recount the stale days before `before` (the watermark). Returns how many there were."""
    stale = stale_days(before)
    for first, until in runs(list(stale)):
        _rollup_days(first, until)
    return len(stale)


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
    table (two for the buckets)."""
    start, end = midnight(first), midnight(until)
    # The marks go first: a change committed meanwhile is either seen by the statements below
    # or marks its day again.
    db.session.execute(
        delete(AnalyticsStaleDay).where(
            AnalyticsStaleDay.day >= first, AnalyticsStaleDay.day < until
        )
    )
    for table in DAY_TABLES:
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
    between = [Referral.created_at >= start, Referral.created_at < end]
    made = utc_date(Referral.created_at)
    referrals = (
        select(made, Referral.program_id, *referral_figures(flagged()))
        .join(Program, Program.id == Referral.program_id)
        .where(*between)
        .group_by(made, Referral.program_id)
    )
    db.session.execute(
        insert(AnalyticsReferralDay).from_select(
            ["day", "program_id", "signups", "qualified", "rewarded", "flagged"], referrals
        )
    )
    bought = purchase_rows([Conversion.occurred_at >= start, Conversion.occurred_at < end])
    purchases = select(
        bought.c.day,
        bought.c.program_id,
        bought.c.currency,
        func.sum(bought.c.purchases),
        func.sum(bought.c.referred),
        func.sum(bought.c.amount),
    ).group_by(bought.c.day, bought.c.program_id, bought.c.currency)
    db.session.execute(
        insert(AnalyticsPurchaseDay).from_select(
            ["day", "program_id", "currency", "purchases", "referred", "referred_net"], purchases
        )
    )
    entered = utc_date(Reward.created_at)
    costs = (
        select(entered, Reward.program_id, Reward.currency, func.sum(Reward.amount))
        .where(*cost_entries([Reward.created_at >= start, Reward.created_at < end]))
        .group_by(entered, Reward.program_id, Reward.currency)
    )
    db.session.execute(
        insert(AnalyticsRewardDay).from_select(["day", "program_id", "currency", "cost"], costs)
    )
    for measure, gaps in (
        ("click_to_signup", click_gaps(between)),
        (
            "signup_to_purchase",
            purchase_gaps([Referral.first_purchase_at >= start, Referral.first_purchase_at < end]),
        ),
    ):
        db.session.execute(
            insert(AnalyticsGapDay).from_select(
                ["day", "program_id", "measure", "bucket", "referrals"],
                _bucket_counts(measure, gaps),
            )
        )


def _bucket_counts(measure: str, gaps):
    """Per day, program and bucket, from a select of (day, program_id, seconds)."""
    once = gaps.cte(f"{measure}_gaps").prefix_with("MATERIALIZED")
    bucketed = select(once.c.day, once.c.program_id, bucket_sql().label("bucket")).subquery()
    return select(
        bucketed.c.day,
        bucketed.c.program_id,
        literal(measure),
        bucketed.c.bucket,
        func.count(),
    ).group_by(bucketed.c.day, bucketed.c.program_id, bucketed.c.bucket)


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
