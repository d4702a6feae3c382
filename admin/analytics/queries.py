"""The SQL behind the analytics home, one aggregate per figure.

A `Scope` is a half-open UTC time range [start, end) and the programs in view (None: all).
Every figure reads its closed days from the roll-up (admin/analytics/rollup.py: a few rows per
day and program) and counts from the rows themselves only what the roll-up cannot answer yet:
the days from its watermark on (today's partial day) and the stale days (changed after they
were rolled up, until the job recounts them). The live part reads the `ix_*_analytics`
indexes, which hold every column it needs.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import aliased

from admin.analytics.buckets import bucket_sql
from admin.analytics.sql import date_label, day_label, seconds_between, utc_date, utc_day
from core.dates import midnight
from extensions import db
from models import (
    COST_STATUSES,
    COUNTED_STATUSES,
    ROLES,
    AnalyticsDaily,
    AnalyticsDailyAccounts,
    AnalyticsGapDay,
    AnalyticsPurchaseDay,
    AnalyticsReferralDay,
    AnalyticsRewardDay,
    Click,
    Conversion,
    Program,
    Referral,
    ReferralCode,
    Reward,
    User,
)

QUALIFIED = ("qualified", "rewarded")
# Held for review, refused, or cleared by staff (still "approved" until a purchase qualifies
# it); a referral cleared and then qualified is caught by its recorded risk score.
FLAGGED_STATUSES = ("review", "rejected", "approved")
EARNING_ROLES = ("referrer", "bonus")
TOP_REFERRERS = 10
# The walk for the top referrers: its first batch, and how far down the board it goes.
WALK_FIRST = 20
WALK_MOST = 5_000
MEMBERS = ("member",)
STAFF = tuple(role for role in ROLES if role != "member")

Span = tuple[datetime | None, datetime]  # [since, until); None: from the first row


def runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days, each [first, day after the last)."""
    found: list[tuple[date, date]] = []
    for day in days:
        if found and found[-1][1] == day:
            found[-1] = (found[-1][0], day + timedelta(days=1))
        else:
            found.append((day, day + timedelta(days=1)))
    return found


def _spans(days: list[date]) -> list[Span]:
    return [(midnight(first), midnight(until)) for first, until in runs(days)]


@dataclass(frozen=True)
class Scope:
    start: datetime
    end: datetime  # exclusive
    first_day: date
    day_count: int
    programs: list[int] | None  # None: every program
    # Days before this one are read from the roll-up (None: none are); never after the range.
    rolled_until: date | None = None
    # The stale days before rolled_until, of any range (sorted): counted from the rows.
    stale: tuple[date, ...] = ()

    @property
    def rolls(self) -> bool:
        """Whether any day of the range is read from the roll-up."""
        return self.rolled_until is not None and self.rolled_until > self.first_day

    @property
    def stale_here(self) -> list[date]:
        return [day for day in self.stale if day >= self.first_day] if self.rolls else []

    def rolled(self, table) -> list:
        """Where a roll-up table's rows are the range's rolled-up, not stale, days in view."""
        where = [table.day >= self.first_day, table.day < self.rolled_until]
        if self.stale_here:
            where.append(table.day.not_in(self.stale_here))
        return where + _in_scope(table.program_id, self)

    @property
    def live_spans(self) -> list[Span]:
        """The parts of the range counted from the rows: its stale days and the days from the
        watermark on."""
        if not self.rolls:
            return [(self.start, self.end)]
        spans = _spans(self.stale_here)
        split = midnight(self.rolled_until)
        if split < self.end:
            spans.append((split, self.end))
        return spans

    @property
    def participants_rolled_until(self) -> date | None:
        """The roll-up counts each program's participants apart: a person holding codes of
        two of a campaign's programs would count twice, so several programs are counted live."""
        if self.programs is not None and len(self.programs) != 1:
            return None
        return self.rolled_until


def _in_scope(column, scope: Scope) -> list:
    return [] if scope.programs is None else [column.in_(scope.programs)]


def _between(column, scope: Scope) -> list:
    return [column >= scope.start, column < scope.end]


def _within(column, spans: list[Span]) -> ColumnElement:
    """`column` in any of the spans (none: nothing is)."""
    parts = [
        and_(column < until, *([] if since is None else [column >= since]))
        for since, until in spans
    ]
    return or_(*parts) if parts else false()


def _sum(*columns) -> list:
    return [func.coalesce(func.sum(column), 0) for column in columns]


# --- the figures --------------------------------------------------------------------------


def clicks(scope: Scope) -> int:
    """The range's clicks: the rolled-up days' sums, then the other days' rows."""
    rolled = 0
    if scope.rolls:
        rolled = db.session.scalar(
            select(*_sum(AnalyticsDaily.clicks)).where(*scope.rolled(AnalyticsDaily))
        )
    query = (
        select(func.count()).select_from(Click).where(_within(Click.created_at, scope.live_spans))
    )
    if scope.programs is not None:
        codes = select(ReferralCode.id).where(ReferralCode.program_id.in_(scope.programs))
        query = query.where(Click.code_id.in_(codes))
    return rolled + (db.session.scalar(query) if scope.live_spans else 0)


def flagged() -> ColumnElement:
    """A referral held, refused or cleared by staff, or risky by its program's review score."""
    return or_(Referral.status.in_(FLAGGED_STATUSES), Referral.risk_score >= Program.review_score)


def referral_figures(is_flagged: ColumnElement) -> list:
    """(signups, qualified, rewarded, flagged) of a select of referrals joined to programs."""
    return [
        func.count(),
        func.count().filter(Referral.status.in_(QUALIFIED)),
        func.count().filter(Referral.status == "rewarded"),
        func.count().filter(is_flagged),
    ]


def referral_counts(scope: Scope) -> tuple[int, int, int, int]:
    """(referred signups, qualified, rewarded, flagged) among the range's referrals."""
    totals = [0, 0, 0, 0]
    if scope.rolls:
        table = AnalyticsReferralDay
        columns = (table.signups, table.qualified, table.rewarded, table.flagged)
        row = db.session.execute(select(*_sum(*columns)).where(*scope.rolled(table))).one()
        totals = [int(value) for value in row]
    if scope.live_spans:
        live = (
            select(*referral_figures(flagged()))
            .select_from(Referral)
            .join(Program, Program.id == Referral.program_id)
            .where(
                _within(Referral.created_at, scope.live_spans),
                *_in_scope(Referral.program_id, scope),
            )
        )
        row = db.session.execute(live).one()
        totals = [total + value for total, value in zip(totals, row, strict=True)]
    return tuple(totals)


def purchase_rows(where: list):
    """Accepted purchases (of a program) matching `where`, one row each, and a row per refund
    of a referred one whenever it came (a refund without an amount gives back the whole
    order): day, program_id, currency, purchases, referred, amount (referred revenue)."""
    bought = [
        Conversion.kind == "purchase",
        Conversion.outcome == "accepted",
        Conversion.program_id.is_not(None),
        *where,
    ]
    referred = Conversion.referral_id.is_not(None)
    day = utc_date(Conversion.occurred_at).label("day")
    gross = select(
        day,
        Conversion.program_id.label("program_id"),
        Conversion.currency.label("currency"),
        literal_column("1").label("purchases"),
        case((referred, 1), else_=0).label("referred"),
        case((referred, func.coalesce(Conversion.amount, 0)), else_=0).label("amount"),
    ).where(*bought)
    refund = aliased(Conversion)
    refunds = (
        select(
            day,
            Conversion.program_id,
            Conversion.currency,
            literal_column("0"),
            literal_column("0"),
            -func.coalesce(refund.amount, Conversion.amount, 0),
        )
        .join(
            refund,
            and_(
                refund.source == Conversion.source,
                refund.order_id == Conversion.order_id,
                refund.kind == "refund",
                refund.outcome == "accepted",
            ),
        )
        .where(*bought, referred)
    )
    return union_all(gross, refunds).subquery("purchase_rows")


def net_revenue(scope: Scope) -> dict[str, int]:
    """Referred purchases of the range, less refunds of those same orders whenever they came,
    per currency (a currency shows when the range had a referred purchase in it)."""
    found: dict[str, list[int]] = {}

    def add(rows) -> None:
        for currency, referred, amount in rows:
            entry = found.setdefault(currency, [0, 0])
            entry[0] += referred
            entry[1] += amount

    if scope.rolls:
        table = AnalyticsPurchaseDay
        add(
            db.session.execute(
                select(table.currency, *_sum(table.referred, table.referred_net))
                .where(*scope.rolled(table))
                .group_by(table.currency)
            )
        )
    if scope.live_spans:
        rows = purchase_rows(
            [
                _within(Conversion.occurred_at, scope.live_spans),
                *_in_scope(Conversion.program_id, scope),
            ]
        )
        add(
            db.session.execute(
                select(rows.c.currency, *_sum(rows.c.referred, rows.c.amount)).group_by(
                    rows.c.currency
                )
            )
        )
    return {currency: int(net) for currency, (referred, net) in sorted(found.items()) if referred}


def cost_entries(where: list) -> list:
    """Reward entries that cost money (points left out), matching `where`."""
    return [*where, Reward.status.in_(COST_STATUSES), Reward.kind != "points"]


def _cost_entries(scope: Scope) -> list:
    return cost_entries([*_between(Reward.created_at, scope), *_in_scope(Reward.program_id, scope)])


def reward_cost(scope: Scope) -> dict[str, int]:
    """Per currency."""
    totals: dict[str, int] = {}
    queries = []
    if scope.rolls:
        table = AnalyticsRewardDay
        queries.append(
            select(table.currency, func.sum(table.cost))
            .where(*scope.rolled(table))
            .group_by(table.currency)
        )
    if scope.live_spans:
        live = [_within(Reward.created_at, scope.live_spans), *_in_scope(Reward.program_id, scope)]
        queries.append(
            select(Reward.currency, func.sum(Reward.amount))
            .where(*cost_entries(live))
            .group_by(Reward.currency)
        )
    for query in queries:
        for currency, amount in db.session.execute(query):
            totals[currency] = totals.get(currency, 0) + int(amount)
    return dict(sorted(totals.items()))


# --- the times: click to signup, signup to first purchase, counted in buckets ---------------


def click_gaps(where: list) -> Select:
    """(day of the signup, program_id, seconds from the click) of the referrals matching
    `where` that know when their link was clicked."""
    return select(
        utc_date(Referral.created_at).label("day"),
        Referral.program_id.label("program_id"),
        cast(seconds_between(Referral.created_at, Referral.clicked_at), BigInteger).label(
            "seconds"
        ),
    ).where(*where, Referral.clicked_at.is_not(None))


def purchase_gaps(where: list) -> Select:
    """(day of the first purchase, program_id, seconds from the signup) of the referred
    customers matching `where` (their first purchase in a range)."""
    return select(
        utc_date(Referral.first_purchase_at).label("day"),
        Referral.program_id.label("program_id"),
        cast(seconds_between(Referral.first_purchase_at, Referral.created_at), BigInteger).label(
            "seconds"
        ),
    ).where(*where)


GAPS = {
    "click_to_signup": (click_gaps, Referral.created_at),
    "signup_to_purchase": (purchase_gaps, Referral.first_purchase_at),
}


def gap_counts(scope: Scope, *measures: str) -> dict[str, dict[int, int]]:
    """How many of the range's referrals took how long, per measure and bucket
    (admin/analytics/buckets.py): click to signup over the range's signups, signup to purchase
    over its acquired customers. The roll-up's rows of every measure asked for are read in one
    pass."""
    counts: dict[str, dict[int, int]] = {measure: {} for measure in measures}
    queries = []
    if scope.rolls:
        table = AnalyticsGapDay
        queries.append(
            select(table.measure, table.bucket, func.sum(table.referrals))
            .where(table.measure.in_(measures), *scope.rolled(table))
            .group_by(table.measure, table.bucket)
        )
    for measure in measures if scope.live_spans else ():
        gaps, when = GAPS[measure]
        live = (
            gaps([_within(when, scope.live_spans), *_in_scope(Referral.program_id, scope)])
            .cte(f"{measure}_gaps")
            .prefix_with("MATERIALIZED")
        )
        bucketed = select(bucket_sql().label("bucket")).select_from(live).subquery()
        queries.append(
            select(literal(measure), bucketed.c.bucket, func.count()).group_by(bucketed.c.bucket)
        )
    for query in queries:
        for measure, bucket, referrals in db.session.execute(query):
            counts[measure][bucket] = counts[measure].get(bucket, 0) + int(referrals)
    return counts


def daily_query(scope: Scope) -> Select:
    """One row per day of the range, (day, new participants, conversions), zeros included."""
    numbers = select(literal_column("0").label("n")).cte("day_numbers", recursive=True)
    numbers = numbers.union_all(
        select(numbers.c.n + literal_column("1")).where(numbers.c.n < scope.day_count - 1)
    )
    days = select(day_label(scope.first_day.isoformat(), numbers.c.n).label("day")).subquery()
    # Each worked out once: a planner that misjudges their size (a roll-up table not yet
    # analysed) must not run them again for every day of the range.
    joined = _new_participants_per_day(scope).cte("new_per_day").prefix_with("MATERIALIZED")
    bought = _purchases_per_day(scope).cte("bought_per_day").prefix_with("MATERIALIZED")
    return (
        select(
            days.c.day,
            func.coalesce(joined.c.n, 0).label("new_participants"),
            func.coalesce(bought.c.n, 0).label("conversions"),
        )
        .select_from(days)
        .outerjoin(joined, joined.c.day == days.c.day)
        .outerjoin(bought, bought.c.day == days.c.day)
        .order_by(days.c.day)
    )


def _purchases_per_day(scope: Scope):
    """(day, n): accepted purchases per day of the range that had any."""
    parts = []
    if scope.rolls:
        table = AnalyticsPurchaseDay
        parts.append(
            select(date_label(table.day).label("day"), table.purchases.label("n")).where(
                *scope.rolled(table)
            )
        )
    rows = purchase_rows(
        [
            _within(Conversion.occurred_at, scope.live_spans),
            *_in_scope(Conversion.program_id, scope),
        ]
    )
    parts.append(select(date_label(rows.c.day).label("day"), rows.c.purchases.label("n")))
    every = union_all(*parts).subquery()
    total = cast(func.sum(every.c.n), Integer).label("n")
    return select(every.c.day, total).group_by(every.c.day)


# --- participants: members (the few staff accounts left out); with programs in view, those
# holding one of their codes, from the day their first one was issued -----------------------


def first_code(programs: list[int] | None) -> ColumnElement:
    """The ReferralCode row is its holder's first code of its program (given `programs`: of
    any of them); ties on the issue time go to the lower id."""
    earlier = aliased(ReferralCode)
    same = (
        earlier.program_id == ReferralCode.program_id
        if programs is None
        else earlier.program_id.in_(programs)
    )
    before = or_(
        earlier.created_at < ReferralCode.created_at,
        and_(earlier.created_at == ReferralCode.created_at, earlier.id < ReferralCode.id),
    )
    return ~exists().where(earlier.user_id == ReferralCode.user_id, same, before)


def _becoming(scope: Scope, roles, spans: list[Span]) -> tuple:
    """(when, query): accounts with `roles` who became participants in the spans, as a
    select without columns yet. All programs: by joining; else by their first code."""
    if scope.programs is None:
        when, query = User.created_at, select().select_from(User)
    else:
        when = ReferralCode.created_at
        query = (
            select()
            .select_from(ReferralCode)
            .join(User, User.id == ReferralCode.user_id)
            .where(ReferralCode.program_id.in_(scope.programs), first_code(scope.programs))
        )
    return when, query.where(User.role.in_(roles), _within(when, spans))


def _count(query: Select) -> int:
    return db.session.scalar(query.add_columns(func.count()))


def _rolled_participants(scope: Scope, first_day: date | None, until: date) -> tuple:
    """(day column, participants column, where, stale days) of the scope's roll-up rows in
    the days [first_day, until) (None: from the first): the stale ones are left out."""
    if scope.programs is None:
        table, column, where = AnalyticsDailyAccounts, AnalyticsDailyAccounts.new_accounts, []
    else:
        table, column = AnalyticsDaily, AnalyticsDaily.new_participants
        where = [AnalyticsDaily.program_id.in_(scope.programs)]
    where.append(table.day < until)
    if first_day is not None:
        where.append(table.day >= first_day)
    stale = [day for day in scope.stale if (first_day is None or day >= first_day) and day < until]
    if stale:
        where.append(table.day.not_in(stale))
    return table.day, column, where, stale


def participants_at_end(scope: Scope) -> int:
    """Participants by the end of the range: the rolled-up days' sum plus everyone of the
    stale days, less the staff among them, plus the members of the later days."""
    rolled_until = scope.participants_rolled_until
    if rolled_until is None:
        return _count(_becoming(scope, MEMBERS, [(None, scope.end)])[1])
    split = midnight(rolled_until)
    _, column, where, stale = _rolled_participants(scope, None, rolled_until)
    rolled = db.session.scalar(select(func.sum(column)).where(*where)) or 0
    in_stale = _count(_becoming(scope, ROLES, _spans(stale))[1]) if stale else 0
    staff = _count(_becoming(scope, STAFF, [(None, split)])[1])
    live = _count(_becoming(scope, MEMBERS, [(split, scope.end)])[1]) if split < scope.end else 0
    return rolled + in_stale - staff + live


def _new_participants_per_day(scope: Scope):
    """(day, n) for the range's days that had new participants, as participants_at_end
    counts them."""
    rolled_until = scope.participants_rolled_until
    live_since = scope.start
    parts = []
    if rolled_until is not None and rolled_until > scope.first_day:
        day, column, where, stale = _rolled_participants(scope, scope.first_day, rolled_until)
        parts.append(select(date_label(day).label("day"), column.label("n")).where(*where))
        if stale:
            when, everyone = _becoming(scope, ROLES, _spans(stale))
            parts.append(_per_day(when, everyone))
        live_since = midnight(rolled_until)
        when, staff = _becoming(scope, STAFF, [(scope.start, live_since)])
        parts.append(_per_day(when, staff, sign=-1))
    when, live = _becoming(scope, MEMBERS, [(live_since, scope.end)])
    parts.append(_per_day(when, live))
    rows = union_all(*parts).subquery()
    total = cast(func.sum(rows.c.n), Integer).label("n")
    return select(rows.c.day, total).group_by(rows.c.day)


def _per_day(when, query: Select, sign: int = 1) -> Select:
    count = func.count() if sign > 0 else -func.count()
    return query.add_columns(utc_day(when).label("day"), count.label("n")).group_by(utc_day(when))


def _counted_referrals(scope: Scope) -> list:
    return [
        *_between(Referral.created_at, scope),
        *_in_scope(Referral.program_id, scope),
        Referral.status.in_(COUNTED_STATUSES),
    ]


def leading_referrers(scope: Scope) -> list[int] | None:
    """The ids of the range's top referrers, or None when the walk below gives up.

    Participants are taken in the order of their all-time counter (the board's index), and
    their counted referrals of the range are counted in growing batches. The database keeps
    the counter, and a counted referral never leaves the counted statuses (migration 0023),
    so no one's range count is above their counter: once the counter of the last one counted
    is below the tenth best range count, nobody further down can enter the ten. A long range
    is decided near the top of the order; a short one, whose leaders may stand further down,
    after more batches of smaller counts, and past WALK_MOST grouping the range's referrals
    costs less than walking on."""
    candidates = db.session.execute(
        select(User.id, User.referral_count)
        .where(User.referral_count > 0)
        .order_by(User.referral_count.desc(), User.last_referral_at, User.id)
        .limit(WALK_MOST)
    ).all()
    best: list[tuple[int, int]] = []  # (-range count, referrer id): the board's order
    start, size = 0, WALK_FIRST
    while start < len(candidates):
        batch = candidates[start : start + size]
        counted = db.session.execute(
            select(Referral.referrer_id, func.count())
            .where(Referral.referrer_id.in_([user_id for user_id, _ in batch]))
            .where(*_counted_referrals(scope))
            .group_by(Referral.referrer_id)
        )
        best = sorted(best + [(-count, user_id) for user_id, count in counted])[:TOP_REFERRERS]
        lowest_counter = batch[-1].referral_count
        if len(best) == TOP_REFERRERS and lowest_counter < -best[-1][0]:
            break
        start, size = start + size, size * 4
    else:
        if len(candidates) == WALK_MOST:
            return None
    return [user_id for _, user_id in best]


def top_referrers_query(scope: Scope) -> Select:
    """The range's top referrers by counted referrals (ties: the earlier account first), with
    what they earned by referring in the range: one row per currency they earned in. The ten
    are found first (leading_referrers), so only their referrals are grouped here."""
    leaders = leading_referrers(scope)
    if leaders is None and db.session.get_bind().dialect.name == "postgresql":
        # The walk gave up: the range's referrals are grouped, in memory rather than on disk.
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))
    among = [] if leaders is None else [Referral.referrer_id.in_(leaders)]
    # Only counted referrals are grouped (qualified ones are among them): a referrer with
    # none in the range never makes a group.
    counted = func.count()
    top = (
        select(
            Referral.referrer_id.label("user_id"),
            counted.label("referrals"),
            func.count().filter(Referral.status.in_(QUALIFIED)).label("qualified"),
        )
        .where(*_counted_referrals(scope), *among)
        .group_by(Referral.referrer_id)
        .order_by(counted.desc(), Referral.referrer_id)
        .limit(TOP_REFERRERS)
        .cte("top_referrers")
    )
    earned = (
        select(Reward.beneficiary_id, Reward.currency, func.sum(Reward.amount).label("earned"))
        .where(
            Reward.beneficiary_id.in_(select(top.c.user_id)),
            Reward.role.in_(EARNING_ROLES),
            *_cost_entries(scope),
        )
        .group_by(Reward.beneficiary_id, Reward.currency)
        .subquery()
    )
    return (
        select(
            top.c.user_id,
            User.name,
            User.email,
            top.c.referrals,
            top.c.qualified,
            earned.c.currency,
            earned.c.earned,
        )
        .join(User, User.id == top.c.user_id)
        .outerjoin(earned, earned.c.beneficiary_id == top.c.user_id)
        .order_by(top.c.referrals.desc(), top.c.user_id, earned.c.currency)
    )
