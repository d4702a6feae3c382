"""The analytics home: checked filters in, figures out, cached per filter set for
ANALYTICS_CACHE_SECONDS. Ranges are whole UTC days, `start_day` 00:00 up to the midnight
after `end_day`. The SQL lives in `queries`; the page's two tables are its CSV exports."""

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from admin.analytics import buckets, queries, rollup
from admin.analytics.cards import Card, cards
from admin.analytics.forms import AnalyticsFilterForm
from admin.analytics.queries import Scope
from admin.exports import CsvExport, money_cell
from core.dates import EARLIEST_EVENT, LATEST_EVENT, midnight
from core.errors import InvalidFilter
from extensions import cache, db
from models import Campaign, Program

MAX_DAYS = 3 * 366  # about three years


@dataclass(frozen=True)
class Filters:
    start_day: date
    end_day: date  # inclusive
    program_id: int | None = None
    campaign_id: int | None = None

    @property
    def start(self) -> datetime:
        return midnight(self.start_day)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return midnight(self.end_day + timedelta(days=1))

    @property
    def day_count(self) -> int:
        return (self.end_day - self.start_day).days + 1

    def previous(self) -> "Filters":
        """The same number of days just before, with the same programs."""
        length = timedelta(days=self.day_count)
        return replace(
            self, start_day=self.start_day - length, end_day=self.start_day - timedelta(days=1)
        )

    def as_args(self) -> dict:
        args = {"start": self.start_day.isoformat(), "end": self.end_day.isoformat()}
        if self.program_id:
            args["program"] = self.program_id
        if self.campaign_id:
            args["campaign"] = self.campaign_id
        return args


def filters_of(form: AnalyticsFilterForm) -> Filters:
    """The form's checked filters; raises InvalidFilter for a field's bad value."""
    form.validate()
    for name in ("start", "end", "program", "campaign"):
        if form[name].errors:
            raise InvalidFilter(form[name].errors[0], name)
    return make_filters(form.start.data, form.end.data, form.program.data, form.campaign.data)


def make_filters(
    start_day: date, end_day: date, program_id: int | None, campaign_id: int | None
) -> Filters:
    """Checked filters, or InvalidFilter naming the field that is wrong."""
    for name, day in (("start", start_day), ("end", end_day)):
        if not EARLIEST_EVENT.date() <= day < LATEST_EVENT.date():
            raise InvalidFilter(
                _(
                    "Pick a date between %(first)s and %(last)s (UTC).",
                    first=EARLIEST_EVENT.date().isoformat(),
                    last=LATEST_EVENT.date().isoformat(),
                ),
                name,
            )
    if start_day > end_day:
        raise InvalidFilter(_("The start date is after the end date; swap them."), "start")
    if (end_day - start_day).days + 1 > MAX_DAYS:
        raise InvalidFilter(
            _("Pick a range of at most %(days)d days (about 3 years).", days=MAX_DAYS), "end"
        )
    if program_id is not None:
        program = db.session.get(Program, program_id)
        if program is None:
            raise InvalidFilter(_("There is no such program."), "program")
        if campaign_id is not None and program.campaign_id != campaign_id:
            raise InvalidFilter(_("That program is not part of the chosen campaign."), "program")
    if campaign_id is not None and db.session.get(Campaign, campaign_id) is None:
        raise InvalidFilter(_("There is no such campaign."), "campaign")
    return Filters(start_day, end_day, program_id, campaign_id)


def scope_of(filters: Filters) -> Scope:
    """The time range, the programs in view (a campaign's programs; None: all), up to which
    day the roll-up can be read and which of its days are stale."""
    if filters.program_id is not None:
        programs = [filters.program_id]
    elif filters.campaign_id is not None:
        query = select(Program.id).where(Program.campaign_id == filters.campaign_id)
        programs = list(db.session.scalars(query))
    else:
        programs = None
    complete_until = rollup.watermark()
    rolled_until = None if complete_until is None else min(complete_until, filters.end.date())
    stale = () if rolled_until is None else rollup.stale_days(rolled_until)
    return Scope(
        filters.start,
        filters.end,
        filters.start_day,
        filters.day_count,
        programs,
        rolled_until,
        stale,
    )


# --- the figures --------------------------------------------------------------------------


@dataclass
class Funnel:
    clicks: int
    signups: int
    qualified: int
    rewarded: int
    flagged: int

    @property
    def steps(self) -> list[tuple[str, int, float | None]]:
        """(step, count, conversion from the step before)."""
        return [
            (_("Clicks"), self.clicks, None),
            (_("Referred signups"), self.signups, ratio(self.signups, self.clicks)),
            (_("Qualified"), self.qualified, ratio(self.qualified, self.signups)),
            (_("Rewarded"), self.rewarded, ratio(self.rewarded, self.qualified)),
        ]

    @property
    def overall(self) -> float | None:
        return ratio(self.rewarded, self.clicks)

    @property
    def fraud_rate(self) -> float | None:
        return ratio(self.flagged, self.signups)


@dataclass
class Headline:
    """The figures the cards show, for one period; the same queries count every period."""

    funnel: Funnel
    revenue: dict[str, int]  # currency -> net minor units
    reward_cost: dict[str, int]
    acquired: int
    participants: int

    @property
    def cost_per_acquired(self) -> dict[str, int]:
        if not self.acquired:
            return {}
        return {
            currency: int((Decimal(cost) / self.acquired).quantize(Decimal(1), ROUND_HALF_UP))
            for currency, cost in self.reward_cost.items()
        }

    @property
    def invites_per_participant(self) -> float | None:
        return ratio(self.funnel.clicks, self.participants)

    @property
    def invite_conversion(self) -> float | None:
        return ratio(self.funnel.signups, self.funnel.clicks)

    @property
    def k_factor(self) -> float | None:
        per_participant, conversion = self.invites_per_participant, self.invite_conversion
        if per_participant is None or conversion is None:
            return None
        return per_participant * conversion


@dataclass
class TopReferrer:
    user_id: int
    name: str
    email: str | None
    referrals: int
    qualified: int
    earned: dict[str, int] = field(default_factory=dict)


@dataclass
class Figures:
    filters: Filters
    headline: Headline
    previous: Headline  # the same length of time just before the range
    days: list[tuple[str, int, int]]  # (day, new participants, conversions)
    click_to_signup: float | None  # median seconds
    signup_to_purchase: float | None
    top_referrers: list[TopReferrer]

    @property
    def funnel(self) -> Funnel:
        return self.headline.funnel

    @property
    def cards(self) -> list[Card]:
        return cards(self.headline, self.previous)


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures(filters: Filters) -> Figures:
    """The page's figures, from the cache when these filters were asked for lately."""
    key = "analytics:" + "&".join(f"{name}={value}" for name, value in filters.as_args().items())
    found = cache.get(key)
    if found is None:
        found = compute(filters)
        cache.set(key, found, timeout=current_app.config["ANALYTICS_CACHE_SECONDS"])
    return found


def compute(filters: Filters) -> Figures:
    scope, previous_scope = scope_of(filters), scope_of(filters.previous())
    gaps = queries.gap_counts(scope, "signup_to_purchase", "click_to_signup")
    to_purchase = gaps["signup_to_purchase"]
    before = queries.gap_counts(previous_scope, "signup_to_purchase")["signup_to_purchase"]
    return Figures(
        filters=filters,
        headline=headline(scope, to_purchase),
        previous=headline(previous_scope, before),
        days=[tuple(row) for row in db.session.execute(queries.daily_query(scope))],
        click_to_signup=buckets.median(gaps["click_to_signup"]),
        signup_to_purchase=buckets.median(to_purchase),
        top_referrers=top_referrers(scope),
    )


def headline(scope: Scope, to_purchase: dict[int, int]) -> Headline:
    """One period's headline figures; `to_purchase`: its signup-to-purchase buckets, whose
    total is its acquired customers."""
    return Headline(
        funnel=Funnel(queries.clicks(scope), *queries.referral_counts(scope)),
        revenue=queries.net_revenue(scope),
        reward_cost=queries.reward_cost(scope),
        acquired=sum(to_purchase.values()),
        participants=queries.participants_at_end(scope),
    )


def top_referrers(scope: Scope) -> list["TopReferrer"]:
    """Counted from the rows (a top ten of any range has no per-day form): those of the few
    referrers who can lead (queries.leading_referrers)."""
    board: dict[int, TopReferrer] = {}
    for row in db.session.execute(queries.top_referrers_query(scope)):
        entry = board.setdefault(
            row.user_id,
            TopReferrer(row.user_id, row.name, row.email, row.referrals, row.qualified),
        )
        if row.currency is not None:
            entry.earned[row.currency] = row.earned
    return list(board.values())


# --- the page's tables as CSV: bad filters answer 400 with the page's message ---------------


def export_scope(args: MultiDict) -> Scope:
    return scope_of(filters_of(AnalyticsFilterForm(formdata=args)))


CSV_EXPORTS = (
    CsvExport(
        name="analytics_daily",
        permission="analytics.view",
        columns=(
            (_l("day"), lambda row: row.day),
            (_l("new_participants"), lambda row: row.new_participants),
            (_l("conversions"), lambda row: row.conversions),
        ),
        query=lambda args: queries.daily_query(export_scope(args)),
    ),
    CsvExport(
        name="top_referrers",
        permission="analytics.view",
        columns=(
            (_l("participant_id"), lambda row: row.user_id),
            (_l("name"), lambda row: row.name),
            (_l("email"), lambda row: row.email),
            (_l("counted_referrals"), lambda row: row.referrals),
            (_l("qualified"), lambda row: row.qualified),
            (_l("reward_earned"), lambda row: money_cell(row.earned, row.currency)),
            (_l("currency"), lambda row: row.currency),
        ),
        query=lambda args: queries.top_referrers_query(export_scope(args)),
    ),
)
