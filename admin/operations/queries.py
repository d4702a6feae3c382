"""The operations lists: the review queue, rewards, payouts and conversions, and their CSV
exports. Each list query takes the page's query string and returns a Select; its export
uses the same function, so a file holds exactly the rows its page lists."""

from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import aliased, joinedload
from werkzeug.datastructures import MultiDict

from admin.exports import CsvExport, currency_cell, money_cell
from core.dates import EARLIEST_DAY, LATEST_DAY, midnight
from core.inputs import whole_number
from extensions import db
from models import (
    CONVERSION_KINDS,
    CONVERSION_SOURCES,
    OUTCOMES,
    PAYOUT_STATUSES,
    REWARD_KINDS,
    REWARD_STATUSES,
    Conversion,
    Payout,
    Program,
    Referral,
    Reward,
    User,
)

# --- filters (the page and its CSV export share them) ----------------------------------------


def _choice(args: MultiDict, name: str, allowed) -> str | None:
    value = (args.get(name) or "").strip()
    return value if value in allowed else None


def _number(args: MultiDict, name: str) -> int | None:
    return whole_number(args.get(name))


def parse_day(text: str | None) -> date | None:
    """The day `text` names, or None (no filter) for anything else, including days outside
    the range a filter may name (whose arithmetic would overflow)."""
    try:
        day = date.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return day if EARLIEST_DAY <= day <= LATEST_DAY else None


def review_referrals_query(args: MultiDict) -> Select:
    """Referrals held by the signup checks, oldest first (a queue)."""
    return (
        select(Referral)
        .options(joinedload(Referral.referred), joinedload(Referral.referrer))
        .where(Referral.status == "review")
        .order_by(Referral.created_at, Referral.id)
    )


def review_purchases_query(args: MultiDict) -> Select:
    """Conversions whose rewards a purchase's own checks held; those of a referral that is
    itself in review are decided with the referral. Rewards a partial refund restated under
    the refund are listed with their purchase: one item per purchase."""
    held = (
        select(Reward.conversion_id)
        .outerjoin(Referral, Reward.referral_id == Referral.id)
        .where(Reward.status == "review")
        .where(or_(Referral.id.is_(None), Referral.status != "review"))
    )
    refund = aliased(Conversion)
    purchase_of_held_refund = (
        select(func.min(Conversion.id))
        .join(
            refund,
            and_(refund.source == Conversion.source, refund.order_id == Conversion.order_id),
        )
        .where(Conversion.kind == "purchase", refund.kind == "refund", refund.id.in_(held))
        .group_by(refund.id)
    )
    return (
        select(Conversion)
        .options(joinedload(Conversion.participant))
        .where(
            or_(
                and_(Conversion.id.in_(held), Conversion.kind != "refund"),
                Conversion.id.in_(purchase_of_held_refund),
            )
        )
        .order_by(Conversion.created_at, Conversion.id)
    )


def rewards_query(args: MultiDict) -> Select:
    query = select(Reward).options(joinedload(Reward.beneficiary))
    if status := _choice(args, "status", REWARD_STATUSES):
        query = query.where(Reward.status == status)
    if kind := _choice(args, "kind", REWARD_KINDS):
        query = query.where(Reward.kind == kind)
    if (program_id := _number(args, "program")) is not None:
        query = query.where(Reward.program_id == program_id)
    if participant := (args.get("participant") or "").strip().lower():
        people = select(User.id).where(User.email.contains(participant, autoescape=True))
        query = query.where(Reward.beneficiary_id.in_(people))
    return query.order_by(Reward.created_at.desc(), Reward.id.desc())


def payouts_query(args: MultiDict) -> Select:
    query = select(Payout).options(joinedload(Payout.user))
    if status := _choice(args, "status", PAYOUT_STATUSES):
        query = query.where(Payout.status == status)
    return query.order_by(Payout.created_at.desc(), Payout.id.desc())


def conversions_query(args: MultiDict) -> Select:
    query = select(Conversion).options(joinedload(Conversion.participant))
    for name, column, allowed in (
        ("source", Conversion.source, CONVERSION_SOURCES),
        ("kind", Conversion.kind, CONVERSION_KINDS),
        ("outcome", Conversion.outcome, OUTCOMES),
    ):
        if value := _choice(args, name, allowed):
            query = query.where(column == value)
    if since := parse_day(args.get("since")):
        query = query.where(Conversion.created_at >= midnight(since))
    if until := parse_day(args.get("until")):
        query = query.where(Conversion.created_at < midnight(until + timedelta(days=1)))
    return query.order_by(Conversion.created_at.desc(), Conversion.id.desc())


def program_choices() -> list[tuple[int, str]]:
    return list(db.session.execute(select(Program.id, Program.name).order_by(Program.name)))


def held_rewards(conversions: list[Conversion]) -> dict[int, list[Reward]]:
    """The rewards waiting in review, per conversion (to show what a decision moves), with
    those its order's refunds restated (what `review.decide_held_rewards` decides)."""
    item_of = {conversion.id: conversion.id for conversion in conversions}
    orders = {
        (conversion.source, conversion.order_id): conversion.id
        for conversion in sorted(conversions, key=lambda conversion: -conversion.id)
        if conversion.kind == "purchase" and conversion.order_id
    }
    if orders:
        refunds = db.session.execute(
            select(Conversion.id, Conversion.source, Conversion.order_id).where(
                Conversion.kind == "refund",
                Conversion.order_id.in_({order_id for _, order_id in orders}),
            )
        )
        for refund_id, source, order_id in refunds:
            if (source, order_id) in orders:
                item_of.setdefault(refund_id, orders[source, order_id])
    found: dict[int, list[Reward]] = {}
    if item_of:
        rewards = db.session.scalars(
            select(Reward)
            .options(joinedload(Reward.beneficiary))
            .where(Reward.conversion_id.in_(item_of), Reward.status == "review")
            .order_by(Reward.id)
        )
        for reward in rewards:
            found.setdefault(item_of[reward.conversion_id], []).append(reward)
    return found


# --- CSV exports -----------------------------------------------------------------------------


def _reasons(item) -> str:
    return "; ".join(f"{r['code']} ({r['points']})" for r in item.risk_reasons or [])


CSV_EXPORTS = (
    CsvExport(
        name="review",
        permission="review.decide",
        columns=(
            (_l("id"), lambda r: r.id),
            (_l("created_at"), lambda r: r.created_at),
            (_l("referred_id"), lambda r: r.referred_id),
            (_l("referrer_id"), lambda r: r.referrer_id),
            (_l("risk_score"), lambda r: r.risk_score),
            (_l("referred_email"), lambda r: r.referred.email),
            (_l("referrer_email"), lambda r: r.referrer.email),
            (_l("reasons"), _reasons),
        ),
        query=review_referrals_query,
    ),
    CsvExport(
        name="review_purchases",
        permission="review.decide",
        columns=(
            (_l("id"), lambda c: c.id),
            (_l("created_at"), lambda c: c.created_at),
            (_l("participant_id"), lambda c: c.participant_id),
            (_l("order_id"), lambda c: c.order_id),
            (_l("amount"), lambda c: money_cell(c.amount, c.currency)),
            (_l("currency"), lambda c: c.currency),
            (_l("risk_score"), lambda c: c.risk_score),
            (_l("reasons"), _reasons),
        ),
        query=review_purchases_query,
    ),
    CsvExport(
        name="rewards",
        permission="rewards.manage",
        columns=(
            (_l("id"), lambda r: r.id),
            (_l("created_at"), lambda r: r.created_at),
            (_l("beneficiary_id"), lambda r: r.beneficiary_id),
            (_l("program_id"), lambda r: r.program_id),
            (_l("role"), lambda r: r.role),
            (_l("level"), lambda r: r.level),
            (_l("kind"), lambda r: r.kind),
            (_l("amount"), lambda r: money_cell(r.amount, r.currency, r.kind)),
            (_l("currency"), lambda r: currency_cell(r.currency, r.kind)),
            (_l("status"), lambda r: r.status),
            (_l("reason"), lambda r: r.reason),
            (_l("available_at"), lambda r: r.available_at),
            (_l("paid_at"), lambda r: r.paid_at),
            (_l("payout_id"), lambda r: r.payout_id),
            (_l("external_reference"), lambda r: r.external_reference),
            (_l("beneficiary_email"), lambda r: r.beneficiary.email),
        ),
        query=rewards_query,
    ),
    CsvExport(
        name="payouts",
        permission="payouts.manage",
        columns=(
            (_l("id"), lambda p: p.id),
            (_l("created_at"), lambda p: p.created_at),
            (_l("user_id"), lambda p: p.user_id),
            (_l("kind"), lambda p: p.kind),
            (_l("amount"), lambda p: money_cell(p.amount, p.currency)),
            (_l("currency"), lambda p: p.currency),
            (_l("status"), lambda p: p.status),
            (_l("reference"), lambda p: p.reference),
            (_l("paid_at"), lambda p: p.paid_at),
            (_l("user_email"), lambda p: p.user.email),
        ),
        query=payouts_query,
    ),
    CsvExport(
        name="conversions",
        permission="conversions.manage",
        columns=(
            (_l("id"), lambda c: c.id),
            (_l("created_at"), lambda c: c.created_at),
            (_l("occurred_at"), lambda c: c.occurred_at),
            (_l("source"), lambda c: c.source),
            (_l("kind"), lambda c: c.kind),
            (_l("external_id"), lambda c: c.external_id),
            (_l("order_id"), lambda c: c.order_id),
            (_l("participant_id"), lambda c: c.participant_id),
            (_l("amount"), lambda c: money_cell(c.amount, c.currency)),
            (_l("currency"), lambda c: c.currency),
            (_l("outcome"), lambda c: c.outcome),
            (_l("reason"), lambda c: c.reason),
            (_l("risk_score"), lambda c: c.risk_score),
        ),
        query=conversions_query,
    ),
)
