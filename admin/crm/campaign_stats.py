"""Campaign statistics: what each acquisition campaign brought in against what it cost.

Per campaign, in the campaign's own currency:
- leads attracted, and leads converted to active clients;
- revenue = the amounts of its leads' contracts, plus, for a referral campaign, the accepted
  referred purchases of its programs minus the accepted refunds of those orders (a refund
  without an amount gives back the whole order);
- spend = the budget, or for a referral campaign the rewards of its programs paid out
  (reversing entries included, points left out: they are not money);
- revenue / spend, none when nothing was spent.
Amounts in any other currency are never added in: the figures say how many entries were
left out, and the page lists them per currency.

One SELECT of correlated subqueries serves the page and its CSV export; each figure is
built for a given currency expression, so the per-currency breakdown is the same SQL.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import ColumnElement, Select, case, func, literal, select, union
from sqlalchemy.orm import aliased
from werkzeug.datastructures import MultiDict

from extensions import db
from models import CAMPAIGN_CHANNELS, Campaign, Contract, Conversion, Lead, Program, Reward


def campaigns_query(args: MultiDict) -> Select:
    """The campaigns the table lists (filter: channel), newest first."""
    query = select(Campaign)
    if (channel := args.get("channel")) in CAMPAIGN_CHANNELS:
        query = query.where(Campaign.channel == channel)
    return query.order_by(Campaign.starts_on.desc(), Campaign.id.desc())


def stats_query(args: MultiDict) -> Select:
    """One row per campaign: the campaign and its figures (see the module's docstring)."""
    currency = Campaign.currency
    revenue = _contract_revenue(currency) + _purchase_revenue(currency) - _refunds(currency)
    spend = case((Campaign.channel == "referral", _rewards_paid(currency)), else_=Campaign.budget)
    return campaigns_query(args).add_columns(
        _leads().label("leads"),
        _leads(Lead.status == "active").label("active_leads"),
        revenue.label("revenue"),
        spend.label("spend"),
        _entries_in_other_currencies().label("left_out"),
    )


@dataclass(frozen=True)
class CampaignFigures:
    campaign: Campaign
    leads: int
    active_leads: int
    revenue: int
    spend: int
    left_out: int  # entries in other currencies, not added in
    other_currencies: tuple[tuple[str, int, int], ...] = ()  # (currency, revenue, spend)

    @property
    def ratio(self) -> Decimal | None:
        return ratio(self.revenue, self.spend)


def ratio(revenue: int, spend: int) -> Decimal | None:
    if not spend:
        return None
    return (Decimal(revenue) / Decimal(spend)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def figures_for(campaigns: list[Campaign]) -> list[CampaignFigures]:
    """The figures of these campaigns (a page of the table), in the same order."""
    ids = [campaign.id for campaign in campaigns]
    if not ids:
        return []
    rows = {
        row.Campaign.id: row
        for row in db.session.execute(stats_query(MultiDict()).where(Campaign.id.in_(ids)))
    }
    others = _other_currencies(ids)
    return [
        CampaignFigures(
            campaign=campaign,
            leads=rows[campaign.id].leads,
            active_leads=rows[campaign.id].active_leads,
            revenue=int(rows[campaign.id].revenue),
            spend=int(rows[campaign.id].spend),
            left_out=int(rows[campaign.id].left_out),
            other_currencies=tuple(others.get(campaign.id, ())),
        )
        for campaign in campaigns
    ]


# --- the figures, for a currency expression ---------------------------------------------


def _total(amount) -> ColumnElement:
    return func.coalesce(func.sum(amount), 0)


def _leads(*conditions) -> ColumnElement:
    return (
        select(func.count(Lead.id))
        .where(Lead.campaign_id == Campaign.id, *conditions)
        .scalar_subquery()
    )


def _contract_revenue(currency) -> ColumnElement:
    return (
        select(_total(Contract.amount))
        .join(Lead, Lead.id == Contract.lead_id)
        .where(Lead.campaign_id == Campaign.id, Contract.currency == currency)
        .scalar_subquery()
    )


def _referred_purchase(conversion) -> tuple:
    return (
        conversion.kind == "purchase",
        conversion.outcome == "accepted",
        conversion.referral_id.is_not(None),
    )


def _purchase_revenue(currency) -> ColumnElement:
    return (
        select(_total(Conversion.amount))
        .join(Program, Program.id == Conversion.program_id)
        .where(
            Program.campaign_id == Campaign.id,
            Conversion.currency == currency,
            *_referred_purchase(Conversion),
        )
        .scalar_subquery()
    )


def _refunds(currency) -> ColumnElement:
    """Accepted refunds of orders that were referred purchases of the campaign's programs;
    counted in the order's currency."""
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


def _rewards_paid(currency) -> ColumnElement:
    return (
        select(_total(Reward.amount))
        .join(Program, Program.id == Reward.program_id)
        .where(
            Program.campaign_id == Campaign.id,
            Reward.status == "paid",
            Reward.kind != "points",
            Reward.currency == currency,
        )
        .scalar_subquery()
    )


def _entries_in_other_currencies() -> ColumnElement:
    """How many contracts, referred purchases and paid rewards are in another currency."""
    other = Campaign.currency
    contracts = (
        select(func.count(Contract.id))
        .join(Lead, Lead.id == Contract.lead_id)
        .where(Lead.campaign_id == Campaign.id, Contract.currency != other)
    )
    purchases = (
        select(func.count(Conversion.id))
        .join(Program, Program.id == Conversion.program_id)
        .where(
            Program.campaign_id == Campaign.id,
            Conversion.currency != other,
            *_referred_purchase(Conversion),
        )
    )
    rewards = (
        select(func.count(Reward.id))
        .join(Program, Program.id == Reward.program_id)
        .where(
            Program.campaign_id == Campaign.id,
            Reward.status == "paid",
            Reward.kind != "points",
            Reward.currency != other,
        )
    )
    return sum((query.scalar_subquery() for query in (contracts, purchases, rewards)), literal(0))


def _other_currencies(ids: list[int]) -> dict[int, list[tuple[str, int, int]]]:
    """Per campaign, the revenue and paid rewards in each currency not its own."""
    currencies = union(
        select(Contract.currency.label("code"))
        .join(Lead, Lead.id == Contract.lead_id)
        .where(Lead.campaign_id.in_(ids)),
        select(Conversion.currency)
        .join(Program, Program.id == Conversion.program_id)
        .where(Program.campaign_id.in_(ids), Conversion.kind == "purchase"),
        select(Reward.currency)
        .join(Program, Program.id == Reward.program_id)
        .where(Program.campaign_id.in_(ids), Reward.status == "paid"),
    ).subquery()
    code = currencies.c.code
    revenue = _contract_revenue(code) + _purchase_revenue(code) - _refunds(code)
    spend = case((Campaign.channel == "referral", _rewards_paid(code)), else_=0)
    rows = db.session.execute(
        select(Campaign.id, code, revenue, spend)
        .join(currencies, code != Campaign.currency)
        .where(Campaign.id.in_(ids))
        .order_by(Campaign.id, code)
    )
    found: dict[int, list[tuple[str, int, int]]] = {}
    for campaign_id, currency, revenue_amount, spend_amount in rows:
        if revenue_amount or spend_amount:
            found.setdefault(campaign_id, []).append(
                (currency, int(revenue_amount), int(spend_amount))
            )
    return found
