"""The SQL behind the analytics home, one aggregate per figure.

Each statement reads the range's entries of an index that holds every column it needs (the
`ix_*_analytics` indexes in models.py), so its work grows with the range, not the tables.
A `Scope` is a half-open UTC time range [start, end) and the programs in view (None: all).

Participants and clicks of the days before the roll-up's watermark come from the roll-up
(admin/analytics/rollup.py), a few rows per day; later days are counted from the rows themselves.
"""

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import aliased

from admin.analytics.sql import date_label, day_label, seconds_between, utc_day
from core.dates import midnight
from extensions import db
from models import (
    COST_STATUSES,
    COUNTED_STATUSES,
    ROLES,
    AnalyticsDaily,
    AnalyticsDailyAccounts,
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
MEMBERS = ("member",)
STAFF = tuple(role for role in ROLES if role != "member")


@dataclass(frozen=True)
class Scope:
    start: datetime
    end: datetime  # exclusive
    first_day: date
    day_count: int
    programs: list[int] | None  # None: every program
    # Days before this one are read from the roll-up (None: none are); never after the range.
    rolled_until: date | None = None
    # Where the period before the range starts, when the figures that scan rows are to be
    # counted for it too, in the same statement (one pass over the index for both).
    previous_start: datetime | None = None

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


def _periods(column, scope: Scope) -> tuple[list, ColumnElement]:
    """(where, period): `column` in the range or the period before it (when the scope asks
    for it), and which of the two: 1 the range, 0 the period before."""
    since = scope.previous_start or scope.start
    period = case((column >= scope.start, 1), else_=0).label("period")
    return [column >= since, column < scope.end], period


def _split(rows, empty) -> tuple:
    """(the range's value, the previous period's) from rows keyed by period."""
    found = {when: value for when, value in rows}
    return found.get(1, empty), found.get(0, empty)


# --- the figures --------------------------------------------------------------------------


def clicks(scope: Scope) -> int:
    """The range's clicks: the rolled-up days' sums, then the later days' rows."""
    rolled, live_since = 0, scope.start
    if scope.rolled_until is not None and scope.rolled_until > scope.first_day:
        days = [AnalyticsDaily.day >= scope.first_day, AnalyticsDaily.day < scope.rolled_until]
        sums = select(func.sum(AnalyticsDaily.clicks)).where(
            *days, *_in_scope(AnalyticsDaily.program_id, scope)
        )
        rolled, live_since = db.session.scalar(sums) or 0, midnight(scope.rolled_until)
    query = (
        select(func.count())
        .select_from(Click)
        .where(Click.created_at >= live_since, Click.created_at < scope.end)
    )
    if scope.programs is not None:
        codes = select(ReferralCode.id).where(ReferralCode.program_id.in_(scope.programs))
        query = query.where(Click.code_id.in_(codes))
    return rolled + db.session.scalar(query)


def referral_counts(scope: Scope) -> tuple[tuple[int, int, int, int], ...]:
    """(referred signups, qualified, rewarded, flagged) among the range's referrals, and
    among the previous period's."""
    flagged = or_(
        Referral.status.in_(FLAGGED_STATUSES), Referral.risk_score >= Program.review_score
    )
    where, period = _periods(Referral.created_at, scope)
    query = (
        select(
            period,
            func.count(),
            func.count().filter(Referral.status.in_(QUALIFIED)),
            func.count().filter(Referral.status == "rewarded"),
            func.count().filter(flagged),
        )
        .select_from(Referral)
        .join(Program, Program.id == Referral.program_id)
        .where(*where, *_in_scope(Referral.program_id, scope))
        .group_by(period)
    )
    rows = ((row[0], tuple(row[1:])) for row in db.session.execute(query))
    return _split(rows, (0, 0, 0, 0))


def daily_query(scope: Scope) -> Select:
    """One row per day of the range, (day, new participants, conversions), zeros included."""
    numbers = select(literal_column("0").label("n")).cte("day_numbers", recursive=True)
    numbers = numbers.union_all(
        select(numbers.c.n + literal_column("1")).where(numbers.c.n < scope.day_count - 1)
    )
    days = select(day_label(scope.first_day.isoformat(), numbers.c.n).label("day")).subquery()
    joined = _new_participants_per_day(scope)
    bought_day = utc_day(Conversion.occurred_at)
    bought = (
        select(bought_day.label("day"), func.count().label("n"))
        .where(*_purchases(scope))
        .group_by(bought_day)
        .subquery()
    )
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


def _purchases(scope: Scope, between: list | None = None) -> list:
    return [
        Conversion.kind == "purchase",
        Conversion.outcome == "accepted",
        *(_between(Conversion.occurred_at, scope) if between is None else between),
        *_in_scope(Conversion.program_id, scope),
    ]


def net_revenue(scope: Scope) -> tuple[dict[str, int], dict[str, int]]:
    """Referred purchases of the range, less refunds of those same orders whenever they came
    (a refund without an amount gives back the whole order), per currency; and the same for
    the previous period."""
    where, period = _periods(Conversion.occurred_at, scope)
    referred = [*_purchases(scope, where), Conversion.referral_id.is_not(None)]
    gross = select(period, Conversion.currency, func.sum(Conversion.amount)).where(*referred)
    totals: dict[int, dict[str, int]] = {1: {}, 0: {}}
    for when, currency, amount in db.session.execute(gross.group_by(period, Conversion.currency)):
        totals[when][currency] = amount
    refund = aliased(Conversion)
    refunds = (
        select(
            period,
            Conversion.currency,
            func.sum(func.coalesce(refund.amount, Conversion.amount)),
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
        .where(*referred)
        .group_by(period, Conversion.currency)
    )
    for when, currency, amount in db.session.execute(refunds):
        totals[when][currency] = totals[when].get(currency, 0) - amount
    return dict(sorted(totals[1].items())), dict(sorted(totals[0].items()))


def _cost_entries(scope: Scope, between: list | None = None) -> list:
    return [
        *(_between(Reward.created_at, scope) if between is None else between),
        Reward.status.in_(COST_STATUSES),
        Reward.kind != "points",
        *_in_scope(Reward.program_id, scope),
    ]


def reward_cost(scope: Scope) -> tuple[dict[str, int], dict[str, int]]:
    """Per currency, for the range and for the previous period."""
    where, period = _periods(Reward.created_at, scope)
    query = (
        select(period, Reward.currency, func.sum(Reward.amount))
        .where(*_cost_entries(scope, where))
        .group_by(period, Reward.currency)
        .order_by(Reward.currency)
    )
    totals: dict[int, dict[str, int]] = {1: {}, 0: {}}
    for when, currency, amount in db.session.execute(query):
        totals[when][currency] = amount
    return totals[1], totals[0]


def _acquired(scope: Scope) -> list:
    return [*_between(Referral.first_purchase_at, scope), *_in_scope(Referral.program_id, scope)]


def acquired_customers(scope: Scope) -> tuple[int, int]:
    """For the range and for the previous period."""
    where, period = _periods(Referral.first_purchase_at, scope)
    query = (
        select(period, func.count())
        .select_from(Referral)
        .where(*where, *_in_scope(Referral.program_id, scope))
        .group_by(period)
    )
    return _split(db.session.execute(query), 0)


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


def _becoming(scope: Scope, roles, since: datetime | None, until: datetime) -> tuple:
    """(when, query): accounts with `roles` who became participants in [since, until), as a
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
    query = query.where(User.role.in_(roles), when < until)
    return when, query if since is None else query.where(when >= since)


def _rolled_participants(scope: Scope, first_day: date | None, until: date) -> tuple:
    """(day column, participants column, where) of the scope's roll-up rows in the days
    [first_day, until) (None: from the first)."""
    if scope.programs is None:
        table, column, where = AnalyticsDailyAccounts, AnalyticsDailyAccounts.new_accounts, []
    else:
        table, column = AnalyticsDaily, AnalyticsDaily.new_participants
        where = [AnalyticsDaily.program_id.in_(scope.programs)]
    where.append(table.day < until)
    if first_day is not None:
        where.append(table.day >= first_day)
    return table.day, column, where


def participants_at_end(scope: Scope) -> int:
    """Participants by the end of the range: the rolled-up days' sum less the staff among
    them, plus the members of the later days."""
    rolled_until = scope.participants_rolled_until
    if rolled_until is None:
        _, live = _becoming(scope, MEMBERS, None, scope.end)
        return db.session.scalar(live.add_columns(func.count()))
    split = midnight(rolled_until)
    _, column, where = _rolled_participants(scope, None, rolled_until)
    rolled = db.session.scalar(select(func.sum(column)).where(*where)) or 0
    _, staff = _becoming(scope, STAFF, None, split)
    _, live = _becoming(scope, MEMBERS, split, scope.end)
    return (
        rolled
        - db.session.scalar(staff.add_columns(func.count()))
        + db.session.scalar(live.add_columns(func.count()))
    )


def _new_participants_per_day(scope: Scope):
    """(day, n) for the range's days that had new participants, as participants_at_end
    counts them."""
    rolled_until = scope.participants_rolled_until
    live_since = scope.start
    parts = []
    if rolled_until is not None and rolled_until > scope.first_day:
        day, column, where = _rolled_participants(scope, scope.first_day, rolled_until)
        parts.append(select(date_label(day).label("day"), column.label("n")).where(*where))
        live_since = midnight(rolled_until)
        when, staff = _becoming(scope, STAFF, scope.start, live_since)
        parts.append(_per_day(when, staff, sign=-1))
    when, live = _becoming(scope, MEMBERS, live_since, scope.end)
    parts.append(_per_day(when, live))
    rows = union_all(*parts).subquery()
    total = cast(func.sum(rows.c.n), Integer).label("n")
    return select(rows.c.day, total).group_by(rows.c.day).subquery()


def _per_day(when, query: Select, sign: int = 1) -> Select:
    count = func.count() if sign > 0 else -func.count()
    return query.add_columns(utc_day(when).label("day"), count.label("n")).group_by(utc_day(when))


def median_click_to_signup(scope: Scope) -> float | None:
    """Over the range's referrals that know when their link was clicked."""
    gap = seconds_between(Referral.created_at, Referral.clicked_at)
    where = [
        *_between(Referral.created_at, scope),
        *_in_scope(Referral.program_id, scope),
        Referral.clicked_at.is_not(None),
    ]
    return _median(gap, where)


def median_signup_to_purchase(scope: Scope) -> float | None:
    """Over the referrals whose first purchase fell in the range (the acquired customers)."""
    return _median(
        seconds_between(Referral.first_purchase_at, Referral.created_at), _acquired(scope)
    )


def _median(value, where: list) -> float | None:
    """The exact median of `value` over the referrals matching `where` (None for none): the
    middle value, or the mean of the two middle ones."""
    if db.session.get_bind().dialect.name == "postgresql":
        # The sort behind percentile_cont stays in memory for a year of referrals.
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))
        query = select(func.percentile_cont(0.5).within_group(value)).where(*where)
        result = db.session.scalar(query)
        return None if result is None else float(result)
    rows = db.session.scalar(select(func.count()).select_from(Referral).where(*where))
    if not rows:
        return None
    middle = select(value).where(*where).order_by(value)
    values = db.session.scalars(middle.limit(2 - rows % 2).offset((rows - 1) // 2)).all()
    return sum(values) / len(values)


def top_referrers_query(scope: Scope) -> Select:
    """The range's top referrers by counted referrals (ties: the earlier account first), with
    what they earned by referring in the range: one row per currency they earned in."""
    counted = func.count().filter(Referral.status.in_(COUNTED_STATUSES))
    top = (
        select(
            Referral.referrer_id.label("user_id"),
            counted.label("referrals"),
            func.count().filter(Referral.status.in_(QUALIFIED)).label("qualified"),
        )
        .where(*_between(Referral.created_at, scope), *_in_scope(Referral.program_id, scope))
        .group_by(Referral.referrer_id)
        .having(counted > 0)
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
