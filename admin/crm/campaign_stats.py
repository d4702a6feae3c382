"""Campaign statistics: what each acquisition campaign brought in against what it cost, over
a date range (whole UTC days, both included; either end may be left open).

Per campaign, in the campaign's own currency:
- leads attracted in the range, and of those the ones now active clients;
- revenue = the amounts of its leads' contracts signed in the range, plus, for a referral
  campaign, the accepted referred purchases of its programs made in the range minus the
  accepted refunds of those orders, whenever they came (a refund without an amount gives back
  the whole order);
- spend = the campaign's budget, in full, when its dates overlap the range;
- reward cost = the reward entries of its programs written in the range that are pending,
  approved, paid or redeemed (reversing entries included, points left out: they are not
  money);
- cost = spend + reward cost, and ROI = (revenue - cost) / cost, none when nothing cost.
Amounts in any other currency are never added in: the figures say how many entries were
left out, and the page lists them per currency.

One SELECT of correlated subqueries serves the page and its CSV export; each figure is
built for a given currency expression, so the per-currency breakdown is the same SQL.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, select, union
from sqlalchemy.orm import aliased
from werkzeug.datastructures import MultiDict

from core.dates import EARLIEST_EVENT, LATEST_EVENT, midnight
from core.errors import InvalidFilter
from extensions import db
from models import (
    CAMPAIGN_CHANNELS,
    COST_STATUSES,
    Campaign,
    Contract,
    Conversion,
    Lead,
    Program,
    Reward,
)


@dataclass(frozen=True)
class Period:
    """Whole UTC days, `first` to `last` included; None leaves that end open."""

    first: date | None = None
    last: date | None = None

    def covers(self, column, days=False) -> list:
        """Conditions that `column` (a timestamp, or a date with `days`) lies in the period."""
        conditions = []
        if self.first is not None:
            conditions.append(column >= (self.first if days else midnight(self.first)))
        if self.last is not None:
            after = self.last + timedelta(days=1)
            conditions.append(column < (after if days else midnight(after)))
        return conditions

    def as_args(self) -> dict:
        args = {"start": self.first, "end": self.last}
        return {name: day.isoformat() for name, day in args.items() if day is not None}


def period_of(args: MultiDict) -> Period:
    """The range asked for in `start` and `end` (YYYY-MM-DD, either may be empty), or
    InvalidFilter naming the field that is wrong."""
    days = {}
    for name in ("start", "end"):
        typed = (args.get(name) or "").strip()
        if not typed:
            days[name] = None
            continue
        try:
            days[name] = date.fromisoformat(typed)
        except ValueError:
            raise InvalidFilter(_("Enter the date as YYYY-MM-DD, e.g. 2026-11-21."), name) from None
        if not EARLIEST_EVENT.date() <= days[name] < LATEST_EVENT.date():
            raise InvalidFilter(
                _(
                    "Pick a date between %(first)s and %(last)s (UTC).",
                    first=EARLIEST_EVENT.date().isoformat(),
                    last=LATEST_EVENT.date().isoformat(),
                ),
                name,
            )
    if days["start"] and days["end"] and days["start"] > days["end"]:
        raise InvalidFilter(_("The start date is after the end date; swap them."), "start")
    return Period(days["start"], days["end"])


def campaigns_query(args: MultiDict) -> Select:
    """The campaigns the table lists (filter: channel), newest first."""
    query = select(Campaign)
    if (channel := args.get("channel")) in CAMPAIGN_CHANNELS:
        query = query.where(Campaign.channel == channel)
    return query.order_by(Campaign.starts_on.desc(), Campaign.id.desc())


def stats_query(args: MultiDict) -> Select:
    """One row per campaign: the campaign and its figures (see the module's docstring) over
    the period in `args`."""
    period = period_of(args)
    currency = Campaign.currency
    return campaigns_query(args).add_columns(
        _leads(period).label("leads"),
        _leads(period, Lead.status == "active").label("active_leads"),
        _revenue(period, currency).label("revenue"),
        _spend(period).label("spend"),
        _reward_cost(period, currency).label("reward_cost"),
        _entries_in_other_currencies(period).label("left_out"),
    )


@dataclass(frozen=True)
class CampaignFigures:
    campaign: Campaign
    leads: int
    active_leads: int
    revenue: int
    spend: int
    reward_cost: int
    left_out: int  # entries in other currencies, not added in
    other_currencies: tuple[tuple[str, int, int], ...] = ()  # (currency, revenue, reward cost)

    @property
    def cost(self) -> int:
        return self.spend + self.reward_cost

    @property
    def roi(self) -> Decimal | None:
        return roi(self.revenue, self.cost)


def roi(revenue: int, cost: int) -> Decimal | None:
    """(revenue - cost) / cost as a percentage to one decimal; None when nothing cost."""
    if not cost:
        return None
    return (Decimal(revenue - cost) * 100 / Decimal(cost)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def figures_for(campaigns: list[Campaign], args: MultiDict) -> list[CampaignFigures]:
    """The figures of these campaigns (a page of the table) over the period in `args`, in
    the same order."""
    ids = [campaign.id for campaign in campaigns]
    if not ids:
        return []
    period_only = MultiDict(period_of(args).as_args())
    query = stats_query(period_only).where(Campaign.id.in_(ids))
    rows = {row.Campaign.id: row for row in db.session.execute(query)}
    others = _other_currencies(ids, period_of(args))
    return [
        CampaignFigures(
            campaign=campaign,
            leads=rows[campaign.id].leads,
            active_leads=rows[campaign.id].active_leads,
            revenue=int(rows[campaign.id].revenue),
            spend=int(rows[campaign.id].spend),
            reward_cost=int(rows[campaign.id].reward_cost),
            left_out=int(rows[campaign.id].left_out),
            other_currencies=tuple(others.get(campaign.id, ())),
        )
        for campaign in campaigns
    ]


# --- the figures, for a period and a currency expression ---------------------------------


def _total(amount) -> ColumnElement:
    return func.coalesce(func.sum(amount), 0)


def _leads(period: Period, *conditions) -> ColumnElement:
    return (
        select(func.count(Lead.id))
        .where(Lead.campaign_id == Campaign.id, *period.covers(Lead.created_at), *conditions)
        .scalar_subquery()
    )


def _revenue(period: Period, currency) -> ColumnElement:
    return (
        _contract_revenue(period, currency)
        + _purchase_revenue(period, currency)
        - _refunds(period, currency)
    )


def _contract_revenue(period: Period, currency) -> ColumnElement:
    return (
        select(_total(Contract.amount))
        .join(Lead, Lead.id == Contract.lead_id)
        .where(
            Lead.campaign_id == Campaign.id,
            Contract.currency == currency,
            *period.covers(Contract.signed_on, days=True),
        )
        .scalar_subquery()
    )


def _referred_purchase(conversion) -> tuple:
    return (
        conversion.kind == "purchase",
        conversion.outcome == "accepted",
        conversion.referral_id.is_not(None),
    )


def _purchase_revenue(period: Period, currency) -> ColumnElement:
    return (
        select(_total(Conversion.amount))
        .join(Program, Program.id == Conversion.program_id)
        .where(
            Program.campaign_id == Campaign.id,
            Conversion.currency == currency,
            *_referred_purchase(Conversion),
            *period.covers(Conversion.occurred_at),
        )
        .scalar_subquery()
    )


def _refunds(period: Period, currency) -> ColumnElement:
    """Accepted refunds, whenever they came, of orders that were referred purchases of the
    campaign's programs made in the period; counted in the order's currency."""
    refund, order, bought = aliased(Conversion), aliased(Conversion), aliased(Conversion)
    same_order = (bought.source == refund.source, bought.order_id == refund.order_id)
    order_total = (
        select(func.sum(order.amount))
        .where(
            order.source == refund.source,
            order.order_id == refund.order_id,
            *_referred_purchase(order),
        )
        .scalar_subquery()
    )
    of_campaign = (
        select(bought.id)
        .join(Program, Program.id == bought.program_id)
        .where(
            *same_order,
            *_referred_purchase(bought),
            *period.covers(bought.occurred_at),
            Program.campaign_id == Campaign.id,
            bought.currency == currency,
        )
        .correlate_except(bought, Program)  # the refund's and the campaign's, two levels up
        .exists()
    )
    return (
        select(_total(func.coalesce(refund.amount, order_total)))
        .where(refund.kind == "refund", refund.outcome == "accepted", of_campaign)
        .scalar_subquery()
    )


def _spend(period: Period) -> ColumnElement:
    """The budget, when the campaign's dates overlap the period."""
    overlaps = []
    if period.last is not None:
        overlaps.append(Campaign.starts_on <= period.last)
    if period.first is not None:
        overlaps.append(or_(Campaign.ends_on.is_(None), Campaign.ends_on >= period.first))
    if not overlaps:
        return Campaign.budget
    return case((and_(*overlaps), Campaign.budget), else_=0)


def _cost_entries(period: Period) -> list:
    return [
        Program.campaign_id == Campaign.id,
        Reward.status.in_(COST_STATUSES),
        Reward.kind != "points",
        *period.covers(Reward.created_at),
    ]


def _reward_cost(period: Period, currency) -> ColumnElement:
    return (
        select(_total(Reward.amount))
        .join(Program, Program.id == Reward.program_id)
        .where(*_cost_entries(period), Reward.currency == currency)
        .scalar_subquery()
    )


def _entries_in_other_currencies(period: Period) -> ColumnElement:
    """How many contracts, referred purchases and reward entries of the period are in
    another currency."""
    other = Campaign.currency
    contracts = (
        select(func.count(Contract.id))
        .join(Lead, Lead.id == Contract.lead_id)
        .where(
            Lead.campaign_id == Campaign.id,
            Contract.currency != other,
            *period.covers(Contract.signed_on, days=True),
        )
    )
    purchases = (
        select(func.count(Conversion.id))
        .join(Program, Program.id == Conversion.program_id)
        .where(
            Program.campaign_id == Campaign.id,
            Conversion.currency != other,
            *_referred_purchase(Conversion),
            *period.covers(Conversion.occurred_at),
        )
    )
    rewards = (
        select(func.count(Reward.id))
        .join(Program, Program.id == Reward.program_id)
        .where(*_cost_entries(period), Reward.currency != other)
    )
    return sum((query.scalar_subquery() for query in (contracts, purchases, rewards)), literal(0))


def _other_currencies(ids: list[int], period: Period) -> dict[int, list[tuple[str, int, int]]]:
    """Per campaign, the revenue and reward cost of the period in each currency not its own."""
    currencies = union(
        select(Contract.currency.label("code"))
        .join(Lead, Lead.id == Contract.lead_id)
        .where(Lead.campaign_id.in_(ids)),
        select(Conversion.currency)
        .join(Program, Program.id == Conversion.program_id)
        .where(Program.campaign_id.in_(ids), Conversion.kind == "purchase"),
        select(Reward.currency)
        .join(Program, Program.id == Reward.program_id)
        .where(Program.campaign_id.in_(ids), Reward.kind != "points"),
    ).subquery()
    code = currencies.c.code
    rows = db.session.execute(
        select(Campaign.id, code, _revenue(period, code), _reward_cost(period, code))
        .join(currencies, code != Campaign.currency)
        .where(Campaign.id.in_(ids))
        .order_by(Campaign.id, code)
    )
    found: dict[int, list[tuple[str, int, int]]] = {}
    for campaign_id, currency, revenue_amount, cost_amount in rows:
        if revenue_amount or cost_amount:
            found.setdefault(campaign_id, []).append(
                (currency, int(revenue_amount), int(cost_amount))
            )
    return found
