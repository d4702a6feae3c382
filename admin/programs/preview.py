"""What a program's edited (unsaved) rules would have paid over the last 30 days.

It replays the stored conversions of the program — purchases and signups with a referral,
accepted or ignored, that occurred in the period — through the edited trigger, minimum,
currency, dates and reward values (`rewards.services.reward_value`), and sets the result
beside the rewards those conversions actually earned. What it leaves out is listed in
NOT_MODELLED and shown on the page.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, distinct, exists, func, select
from sqlalchemy.orm import aliased

from extensions import db
from models import LIVE_REWARD_STATUSES, Conversion, Program, Referral, Reward
from rewards import eligibility
from rewards.programs import RULE_FIELDS, check_rules
from rewards.services import reward_value

PREVIEW_DAYS = 30
REPLAYED_KINDS = ("purchase", "signup")
REPLAYED_OUTCOMES = ("accepted", "ignored")
NOT_MODELLED = (
    _l("caps per referrer and for the whole program"),
    _l("fraud checks: conversions refused by them are left out, held ones are counted as paying"),
    _l("rewards further up the tree (level 2 and beyond) and milestone bonuses"),
    _l("when rewards would be released or expire (hold and expiry days)"),
    _l("who counts as referred: the referrals stay as recorded, whatever the attribution window"),
    _l(
        "a change to the product categories: each order counts the eligible amount recorded when"
        " it came in (the whole order if none was recorded)"
    ),
    _l(
        "signups that were never stored as conversions (a switch to paying on signup counts only"
        " the signups your shop sent or the program recorded while it paid on signup)"
    ),
)
SKIP_REASONS = {
    "referral_rejected": _l("the referral was rejected"),
    "outside_dates": _l("outside the program's dates"),
    "not_the_trigger": _l("not the event the program pays on"),
    "refunded": _l("the order was refunded"),
    "other_currency": _l("paid in another currency"),
    "below_minimum": _l("below the minimum purchase"),
    "existing_customer": _l("the customer had bought before being referred"),
    "not_first_purchase": _l("not the referral's first qualifying purchase"),
    "nothing_to_pay": _l("the rules pay nothing for it"),
}


@dataclass(frozen=True)
class ActualTotal:
    role: str
    kind: str
    currency: str
    amount: int


@dataclass(frozen=True)
class Preview:
    since: datetime
    until: datetime
    currency: str
    considered: int  # conversions replayed
    paying: int  # of which the edited rules would pay
    referrer_kind: str
    referrer_total: int
    friend_kind: str | None
    friend_total: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> conversions
    actual_paying: int = 0  # conversions that did earn a level-1 reward
    actual: list[ActualTotal] = field(default_factory=list)


def preview(program: Program, changes: dict, now: datetime) -> Preview:
    """Raises InvalidRules (with the field) when the edited rules could not be saved."""
    rules = {name: getattr(program, name) for name in RULE_FIELDS} | changes
    check_rules(rules)
    since = now - timedelta(days=PREVIEW_DAYS)
    window = _window(program, since, now)
    paying, totals, skipped = 0, Counter(), Counter()
    paid_referrals: set[int] = set()
    for row in db.session.execute(_replay_query(window, rules, since)):
        reason = _skip_reason(row, rules, paid_referrals)
        if reason is None:
            referrer, friend = _values(rules, _counted_amount(row, rules))
            if referrer or friend:
                paying += 1
                totals["referrer"] += referrer
                totals["friend"] += friend
                paid_referrals.add(row.referral_id)
            else:
                reason = "nothing_to_pay"
        if reason is not None:
            skipped[reason] += 1
    actual_paying, actual = _actual(window)
    return Preview(
        since=since,
        until=now,
        currency=rules["currency"],
        considered=paying + sum(skipped.values()),
        paying=paying,
        referrer_kind=rules["referrer_reward_kind"],
        referrer_total=totals["referrer"],
        friend_kind=rules.get("friend_reward_kind"),
        friend_total=totals["friend"],
        skipped=dict(skipped),
        actual_paying=actual_paying,
        actual=actual,
    )


def _window(program: Program, since: datetime, until: datetime):
    """The conversions the preview replays."""
    return and_(
        Conversion.program_id == program.id,
        Conversion.kind.in_(REPLAYED_KINDS),
        Conversion.outcome.in_(REPLAYED_OUTCOMES),
        Conversion.referral_id.is_not(None),
        Conversion.occurred_at >= since,
        Conversion.occurred_at <= until,
    )


def _refund_of(purchase):
    refund = aliased(Conversion)
    return exists().where(
        refund.kind == "refund",
        refund.source == purchase.source,
        refund.order_id == purchase.order_id,
    )


def _replay_query(window, rules: dict, since: datetime):
    """Each conversion with what the rules need to know about it, oldest first."""
    earlier, before = aliased(Conversion), aliased(Conversion)
    # For "first purchase": did a purchase before the period already qualify this referral?
    qualified_before = exists().where(
        earlier.referral_id == Conversion.referral_id,
        earlier.kind == "purchase",
        earlier.outcome.in_(REPLAYED_OUTCOMES),
        earlier.occurred_at < since,
        earlier.currency == rules["currency"],
        earlier.amount >= rules["min_purchase_amount"],
        ~_refund_of(earlier),
    )
    # As the engine judges it: a purchase by the customer before they were referred.
    existing_customer = exists().where(
        before.participant_id == Conversion.participant_id,
        before.kind == "purchase",
        before.id != Conversion.id,
        before.occurred_at < Referral.created_at,
    )
    return (
        select(
            Conversion.kind,
            Conversion.amount,
            Conversion.eligible_amount,
            Conversion.channel,
            Conversion.country,
            Conversion.currency,
            Conversion.occurred_at,
            Conversion.referral_id,
            Referral.status.label("referral_status"),
            _refund_of(Conversion).label("refunded"),
            qualified_before.label("qualified_before"),
            existing_customer.label("existing_customer"),
        )
        .join(Referral, Referral.id == Conversion.referral_id)
        .where(window)
        .order_by(Conversion.occurred_at, Conversion.id)
    )


def _skip_reason(row, rules: dict, paid_referrals: set[int]) -> str | None:
    if row.referral_status == "rejected":
        return "referral_rejected"
    starts, ends = rules.get("starts_at"), rules.get("ends_at")
    if (starts and row.occurred_at < starts) or (ends and row.occurred_at >= ends):
        return "outside_dates"
    trigger = rules["trigger_event"]
    if (trigger == "signup") != (row.kind == "signup"):
        return "not_the_trigger"
    if trigger == "signup":
        return None
    return _purchase_skip_reason(row, rules, paid_referrals)


def _purchase_skip_reason(row, rules: dict, paid_referrals: set[int]) -> str | None:
    if row.refunded:
        return "refunded"
    if row.currency != rules["currency"]:
        return "other_currency"
    excluded = _filter_reason(row, rules)
    if excluded:
        return excluded
    if (_counted_amount(row, rules) or 0) < rules["min_purchase_amount"]:
        return "below_minimum"
    if rules["trigger_event"] == "first_purchase":
        if row.existing_customer:
            return "existing_customer"
        if row.qualified_before or row.referral_id in paid_referrals:
            return "not_first_purchase"
    return None


def _filter_reason(row, rules: dict) -> str | None:
    """The edited channel and country filters, worded as the ledger words them."""
    channels, countries = rules.get("eligible_channels"), rules.get("eligible_countries")
    if channels and row.channel not in channels:
        return eligibility.reason("not an eligible channel", row.channel)
    if countries and row.country not in countries:
        return eligibility.reason("not an eligible country", row.country)
    if rules.get("eligible_categories") and row.eligible_amount == 0:
        return eligibility.NO_ELIGIBLE_LINE
    return None


def _counted_amount(row, rules: dict) -> int | None:
    if rules.get("eligible_categories") and row.eligible_amount is not None:
        return row.eligible_amount
    return row.amount


def _values(rules: dict, amount: int | None) -> tuple[int, int]:
    referrer = reward_value(rules["referrer_reward_basis"], rules["referrer_reward_value"], amount)
    friend = 0
    if rules.get("friend_reward_kind"):
        friend = reward_value(rules["friend_reward_basis"], rules["friend_reward_value"], amount)
    return referrer, friend


def _actual(window) -> tuple[int, list[ActualTotal]]:
    """What these conversions did earn: live level-1 rewards of the referrer and friend."""
    earned = and_(
        Reward.conversion_id.in_(select(Conversion.id).where(window)),
        Reward.role.in_(("referrer", "referee")),
        Reward.level == 1,
        Reward.amount > 0,
        Reward.status.in_(LIVE_REWARD_STATUSES),
    )
    paying = db.session.scalar(select(func.count(distinct(Reward.conversion_id))).where(earned))
    rows = db.session.execute(
        select(Reward.role, Reward.kind, Reward.currency, func.sum(Reward.amount))
        .where(earned)
        .group_by(Reward.role, Reward.kind, Reward.currency)
        .order_by(Reward.role.desc(), Reward.kind, Reward.currency)
    )
    totals = [ActualTotal(role, kind, currency, int(total)) for role, kind, currency, total in rows]
    return paying or 0, totals
