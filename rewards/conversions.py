"""Conversion events in: stored once, matched to a participant, turned into rewards.

`record_event` serves the events API, the Saleor and Stripe webhooks and staff's manual
entries alike. It flushes but never commits; the caller's commit makes the conversion, the
referral's new status and the rewards appear together or not at all.
"""

import hashlib
import logging
import re
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from core import counters, money
from core.database import insert_unless_present
from extensions import db
from models import (
    CONVERSION_KINDS,
    LIVE_REWARD_STATUSES,
    Conversion,
    Program,
    Referral,
    Reward,
    utcnow,
)
from referral import fraud, lifecycle
from referral import services as referral_services
from referral.codes import normalize_code
from rewards import customers, eligibility, services
from rewards.events import SOURCES_FROM_OUTSIDE, EventIn, InvalidEvent, Outcome, parse_api_event

log = logging.getLogger(__name__)

__all__ = ["InvalidEvent", "check_event", "parse_api_event", "record_event"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def record_event(event: EventIn, now: datetime | None = None) -> Outcome:
    """Store `event` once and act on it. A redelivery is answered `duplicate` and changes
    nothing; so is one that loses a race with its twin (the unique constraint decides).
    A duplicate costs one statement: the insert that finds the event stored already."""
    now = now or utcnow()
    check_event(event)
    conversion = _store_once(event, now)
    if conversion is None:
        counters.count_on_commit(counters.EVENTS.labels(event.source, "duplicate"))
        return Outcome("duplicate", "already_received")
    if event.kind == "purchase":
        outcome, reason = _on_purchase(conversion, now, event.lines)
    else:
        outcome, reason = {"signup": _on_signup, "refund": _on_refund}[event.kind](conversion, now)
    conversion.outcome, conversion.reason = outcome, reason
    _write_findings(conversion)
    log.info("conversion %s %s: %s %s", conversion.id, event.kind, outcome, reason or "")
    counters.count_on_commit(counters.EVENTS.labels(event.source, outcome))
    return Outcome(outcome, reason, conversion.id)


def _store_once(event: EventIn, now: datetime) -> Conversion | None:
    """The event as a new conversion row, or None when it was stored before: one INSERT that
    skips a row already there (`uq_conversions_event`). The row starts under the default
    program, `accepted`; what the event turns out to be is written by `_write_findings`.

    The Conversion returned is not added to the session, so setting its columns while the
    event is worked on sends nothing; `_write_findings` sends them in one UPDATE."""
    default = select(Program).where(Program.is_default)
    fields = {
        "source": event.source,
        "kind": event.kind,
        "external_id": event.external_id,
        "order_id": event.order_id,
        "customer_external_id": event.customer_external_id,
        "customer_email": _clip(event.customer_email, 254),
        "ref_code": normalize_code(event.ref_code),
        "amount": event.amount,
        "channel": event.channel,
        "country": event.country,
        "outcome": "accepted",
        "occurred_at": event.occurred_at or now,
        "payload": event.payload,
        "risk_score": 0,
        "risk_reasons": [],
        "created_at": now,
    }
    currency = event.currency.upper() if event.currency else None
    insert = (
        insert_unless_present(Conversion, ["source", "kind", "external_id"])
        .values(
            **fields,
            program_id=default.with_only_columns(Program.id).scalar_subquery(),
            currency=currency or default.with_only_columns(Program.currency).scalar_subquery(),
        )
        .returning(Conversion.id, Conversion.program_id, Conversion.currency)
    )
    if event.order_id and db.session.get_bind().dialect.name == "postgresql":
        # A purchase and the refund of the same order take turns (SQLite writers already
        # do): otherwise each could miss the other and a refunded order would still pay.
        # RETURNING runs for a new row only, so a duplicate never waits for the lock; the
        # statements after it see whatever the order's previous holder committed.
        insert = insert.returning(func.pg_advisory_xact_lock(_order_lock_key(event)))
    stored = db.session.execute(insert).first()
    if stored is None:
        return None
    return Conversion(
        id=stored.id, program_id=stored.program_id, currency=stored.currency, **fields
    )


def _order_lock_key(event: EventIn) -> int:
    digest = hashlib.blake2b(f"{event.source}:{event.order_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# What working on an event finds out about it, written to its row at the end in one UPDATE.
_FINDINGS = (
    "program_id",
    "participant_id",
    "referral_id",
    "eligible_amount",
    "outcome",
    "reason",
    "risk_score",
    "risk_reasons",
)


def _write_findings(conversion: Conversion) -> None:
    db.session.execute(
        update(Conversion)
        .where(Conversion.id == conversion.id)
        .values({column: getattr(conversion, column) for column in _FINDINGS})
    )


def check_event(event: EventIn) -> None:
    """InvalidEvent unless `event` can be recorded: what is refused before anything is stored
    (record_event checks it first; an event acknowledged for later is checked at receipt)."""
    if event.source not in SOURCES_FROM_OUTSIDE:
        raise InvalidEvent(_("Unknown source %(source)s.", source=repr(event.source)))
    if event.kind not in CONVERSION_KINDS:
        raise InvalidEvent(_("type must be one of signup, purchase, refund."))
    if not event.external_id or len(event.external_id) > 200:
        raise InvalidEvent(_("id is required (at most 200 characters)."))
    if event.amount is not None and not 0 <= event.amount <= money.MAX_MINOR_UNITS:
        raise InvalidEvent(_("amount must be a whole number of minor units, 0 or more."))
    if event.kind == "purchase" and event.amount is None:
        raise InvalidEvent(_("A purchase needs an amount (in minor units, e.g. 2500 for 25.00)."))
    if event.kind == "refund" and not event.order_id:
        raise InvalidEvent(_("A refund needs the order_id of the purchase it refunds."))
    customers.check_external_id(event.customer_external_id)
    if event.order_id is not None and len(event.order_id) > 200:
        raise InvalidEvent(_("order_id is at most 200 characters."))
    if event.currency is not None and not _CURRENCY.match(event.currency.upper()):
        raise InvalidEvent(_("currency must be a three-letter ISO code such as USD."))
    if event.occurred_at is not None and event.occurred_at.tzinfo is None:
        raise InvalidEvent(_("occurred_at needs a time zone (e.g. 2026-11-21T10:00:00Z)."))


def _clip(value: str | None, length: int) -> str | None:
    return value.strip()[:length] if value else None


def _on_signup(conversion: Conversion, now: datetime) -> tuple[str, str | None]:
    """A shop's new customer: their participant (made if new) and, with a code, the
    referral; a program that pays on signup pays now."""
    customer = customers.find_or_create_customer(
        conversion.customer_external_id, conversion.customer_email, now, conversion.source
    )
    if customer is None:
        return "rejected", "no_customer"
    conversion.participant_id = customer.user.id
    referral = _referral_of(customer, conversion, now)
    if referral is None:
        return "unattributed", "not_referred"
    return _qualify(conversion, referral, "signup", now)


def _on_purchase(
    conversion: Conversion, now: datetime, lines: tuple[eligibility.OrderLine, ...] | None = None
) -> tuple[str, str | None]:
    user = customers.find(conversion.customer_external_id, conversion.customer_email)
    if user is not None:
        customer = customers.Customer(user, created=False)
    elif conversion.ref_code:  # a new customer who came with a code joins the program
        customer = customers.create_customer(
            conversion.customer_external_id, conversion.customer_email, now, conversion.source
        )
    else:
        customer = None
    if customer is None:
        return "unattributed", "unknown_customer"
    conversion.participant_id = customer.user.id
    if _refunded_already(conversion):
        return "ignored", "refunded"
    referral = _referral_of(customer, conversion, now)
    if referral is None:
        return "unattributed", "not_referred"
    _note_first_purchase(referral, conversion.occurred_at)
    return _qualify(conversion, referral, "purchase", now, lines, new_customer=customer.created)


def _note_first_purchase(referral: Referral, occurred_at: datetime) -> None:
    """Keep the earliest purchase time for the analytics' time to purchase."""
    db.session.execute(
        update(Referral)
        .where(
            Referral.id == referral.id,
            (Referral.first_purchase_at.is_(None)) | (Referral.first_purchase_at > occurred_at),
        )
        .values(first_purchase_at=occurred_at),
        execution_options={"synchronize_session": False},
    )


def _referral_of(
    customer: customers.Customer, conversion: Conversion, now: datetime
) -> Referral | None:
    """The participant's referral, locked for this transaction; recorded from the event's
    code when they have none yet (the first attribution always stands). A participant this
    transaction created has no referral yet, nor can anyone else give them one before it
    commits: the referral recorded here is this transaction's own."""
    user = customer.user
    referral = None if customer.created else _locked_referral(user.id)
    if referral is None and conversion.ref_code:
        code = referral_services.find_active_code(conversion.ref_code, now)
        if code is not None and code.user_id != user.id:  # one's own code refers nobody
            try:
                referral = referral_services.attribute_signup(
                    user, code, "api", now, new_participant=customer.created
                )
            except referral_services.AlreadyReferred:
                # A concurrent event recorded it first; then that one stands.
                referral = _locked_referral(user.id)
    if referral is not None:
        conversion.referral_id = referral.id
    return referral


def _locked_referral(user_id: int) -> Referral | None:
    return db.session.scalar(
        select(Referral).where(Referral.referred_id == user_id).with_for_update()
    )


def _qualify(
    conversion: Conversion,
    referral: Referral,
    event: str,
    now: datetime,
    lines: tuple[eligibility.OrderLine, ...] | None = None,
    new_customer: bool = False,
) -> tuple[str, str | None]:
    """Check the program's rules and the fraud policy, then pay. `new_customer`: this
    transaction created the participant, so nothing of theirs was paid or bought before."""
    program = db.session.get(Program, referral.program_id)
    conversion.program_id = program.id
    if referral.status == "rejected":
        return "rejected", referral.reason or "referral_rejected"
    refusal = _rule_refusal(conversion, referral, program, event, lines, new_customer)
    if refusal == "program_pays_on_purchase":
        return "accepted", "awaiting_purchase"  # the referral stands; a purchase will pay
    if refusal:
        return "ignored", refusal
    verdict = fraud.decide(
        program, fraud.purchase_signals(referral, program, conversion.occurred_at)
    )
    conversion.risk_score, conversion.risk_reasons = verdict.score, verdict.reasons()
    if verdict.decision == fraud.REJECT:
        return "rejected", verdict.reason
    held = verdict.decision == fraud.REVIEW or referral.status == "review"
    # Before the status changes, which reloads the referral: one this event recorded came
    # with its referrer, so reading them here costs no query.
    referrer = referral.referrer
    lifecycle.qualify(referral, now)
    grant = services.grant_rewards(
        conversion, referral, program, held=held, now=now, referrer=referrer
    )
    if held:
        return "accepted", "held_for_review"
    return "accepted", grant.note


def _rule_refusal(
    conversion: Conversion,
    referral: Referral,
    program: Program,
    event: str,
    lines: tuple[eligibility.OrderLine, ...] | None,
    new_customer: bool = False,
) -> str | None:
    if not program.is_running(conversion.occurred_at):
        return "program_not_running"
    if program.trigger_event == "signup":
        return None if event == "signup" else "program_pays_on_signup"
    if event == "signup":
        return "program_pays_on_purchase"
    if conversion.currency != program.currency:
        return "currency_mismatch"
    excluded = eligibility.refusal(program, conversion, lines)
    if excluded:
        return excluded
    if eligibility.qualifying_amount(conversion) < program.min_purchase_amount:
        return "below_minimum"
    if program.trigger_event == "first_purchase" and not new_customer:
        return _not_a_first_purchase(conversion, referral)
    return None


def _not_a_first_purchase(conversion: Conversion, referral: Referral) -> str | None:
    """A first-purchase program pays a referral once, unless that payment was taken back
    (`already_rewarded`); a customer who had bought before they were referred is not new
    (`existing_customer`). Both asked in one statement."""
    already_paid = (
        select(Reward.id)
        .where(
            Reward.referral_id == referral.id,
            Reward.role == "referrer",
            Reward.level == 1,
            Reward.amount > 0,
            Reward.status.not_in(("cancelled", "rejected")),
        )
        .exists()
    )
    bought_before = (
        select(Conversion.id)
        .where(
            Conversion.participant_id == conversion.participant_id,
            Conversion.kind == "purchase",
            Conversion.id != conversion.id,
            Conversion.occurred_at < referral.created_at,
        )
        .exists()
    )
    # An ORM select, so pending changes are flushed first (as in `_exists`).
    paid, bought = db.session.execute(select(already_paid, bought_before)).one()
    if paid:
        return "already_rewarded"
    return "existing_customer" if bought else None


def _refunded_already(conversion: Conversion) -> bool:
    """The refund of this order arrived before the purchase did."""
    if not conversion.order_id:
        return False
    return _exists(
        Conversion.id,
        Conversion.source == conversion.source,
        Conversion.kind == "refund",
        Conversion.order_id == conversion.order_id,
    )


def _on_refund(conversion: Conversion, now: datetime) -> tuple[str, str | None]:
    """Take back what the refunded part of the order earned (see `_apply_refunds`)."""
    purchases = _order_conversions(conversion, "purchase")
    if not purchases:
        return "unattributed", "refund_before_purchase"
    conversion.participant_id = purchases[0].participant_id
    conversion.referral_id = purchases[0].referral_id
    return _apply_refunds(purchases, conversion, now)


def _order_conversions(conversion: Conversion, kind: str) -> list[Conversion]:
    return db.session.scalars(
        select(Conversion)
        .where(
            Conversion.source == conversion.source,
            Conversion.kind == kind,
            Conversion.order_id == conversion.order_id,
        )
        .order_by(Conversion.id)
    ).all()


# Sources whose refund events carry the amount refunded so far (Stripe's `amount_refunded`,
# Saleor's `totalRefunded`); each refund of the others (the events API, staff) is one part.
_CUMULATIVE_REFUNDS = ("stripe", "saleor")


def refunded_amount(source: str, ordered: int, refunds: list[Conversion]) -> int:
    """How much of an order worth `ordered` its refunds give back: their sum, or for Stripe and
    Saleor the largest running total; a refund without an amount gives back the whole order."""
    if any(refund.amount is None for refund in refunds):
        return ordered
    amounts = [refund.amount for refund in refunds]
    total = max(amounts, default=0) if source in _CUMULATIVE_REFUNDS else sum(amounts)
    return min(total, ordered)


def _apply_refunds(
    purchases: list[Conversion], refund: Conversion, now: datetime
) -> tuple[str, str | None]:
    """Bring the order's rewards in line with what is left of the order after every refund
    so far, `refund` included. When what is left falls below the program's minimum purchase
    (a full refund always does), every reward is taken back: cancelled while on hold, one
    reversing entry of what is left after approval or payout. Otherwise fixed rewards stand
    and percent rewards shrink to the kept share of the order (`services.take_back`); each
    refund reverses its own difference, so refunds after approval may follow one another.
    The target depends only on the refunds received so far, so a refund delivered again, or a
    later report of the same running total, changes nothing."""
    refunds = _order_conversions(refund, "refund")
    ordered = sum(purchase.amount or 0 for purchase in purchases)
    kept = ordered - refunded_amount(refund.source, ordered, refunds)
    program = db.session.get(Program, purchases[0].program_id)
    take_all = kept <= 0 or kept < program.min_purchase_amount
    purchase_ids = {purchase.id for purchase in purchases}
    # Restated and reversing entries are written under the refund that wrote them.
    entries = services.rewards_of([entry.id for entry in purchases + refunds])
    if not any(reward.amount > 0 and reward.status in LIVE_REWARD_STATUSES for reward in entries):
        return "accepted", "nothing_to_take_back"
    changed, stuck = False, False
    for key, group in _by_beneficiary(entries).items():
        value = sum(reward.amount for reward in group if reward.status in LIVE_REWARD_STATUSES)
        if take_all:
            target = 0
        elif _scales_with_order(program, key[1]) and ordered:
            first = sum(
                reward.amount
                for reward in group
                if reward.conversion_id in purchase_ids and _counts_as_paid(reward)
            )
            target = first * kept // ordered
        else:
            continue  # a fixed reward stands while the order stays above the minimum
        if value <= target:
            continue
        changed = True
        if not services.take_back(group, value - target, refund, now):
            stuck = True
            log.warning("refund %s: could not take back %s of %s", refund.id, value - target, key)
    if stuck:
        return "accepted", "take_back_incomplete"
    if take_all:
        _requalify_if_cancelled(purchases, now)
        return "accepted", None
    return "accepted", "partial_refund" if changed else "rewards_stand"


def _counts_as_paid(reward: Reward) -> bool:
    """A purchase's own entry that was paid out or taken back by a refund (not one staff,
    review or expiry closed)."""
    return reward.amount > 0 and (
        reward.status in LIVE_REWARD_STATUSES or reward.reason == "refunded"
    )


def _by_beneficiary(rewards: list[Reward]) -> dict[tuple, list[Reward]]:
    """The entries per beneficiary and place; a reversal goes with the entry it reverses."""
    by_id = {reward.id: reward for reward in rewards}
    grouped: dict[tuple, list[Reward]] = {}
    for reward in rewards:
        owner = by_id.get(reward.reverses_id, reward)
        grouped.setdefault(services.reward_key(owner), []).append(reward)
    return grouped


def _scales_with_order(program: Program, role: str) -> bool:
    """Whether a reward of `role` is a percent of the purchase (network shares follow the
    referrer's basis; milestone bonuses are fixed)."""
    if role == "referrer":
        return program.referrer_reward_basis == "percent"
    if role == "referee":
        return program.friend_reward_basis == "percent"
    return False


def _requalify_if_cancelled(purchases: list[Conversion], now: datetime) -> None:
    """A referral whose rewards were all cancelled inside the hold may qualify again."""
    for referral_id in {purchase.referral_id for purchase in purchases if purchase.referral_id}:
        still_live = _exists(
            Reward.id,
            Reward.referral_id == referral_id,
            Reward.amount > 0,
            Reward.status.not_in(("cancelled", "rejected", "expired")),
        )
        if not still_live:
            lifecycle.reopen(referral_id, now)


def on_referral_recorded(referral: Referral, now: datetime) -> None:
    """Pay now, in the referral's transaction, when the program pays on signup. Referrals
    made from an event (source "api") are paid by that event's own conversion instead."""
    if referral.source == "api" or referral.status == "rejected":
        return
    program = db.session.get(Program, referral.program_id)
    if program.trigger_event != "signup":
        return
    conversion = Conversion(
        source="app",
        kind="signup",
        external_id=f"referral:{referral.id}",
        program_id=program.id,
        participant_id=referral.referred_id,
        referral_id=referral.id,
        currency=program.currency,
        outcome="accepted",
        occurred_at=now,
        created_at=now,
    )
    db.session.add(conversion)
    db.session.flush()
    conversion.outcome, conversion.reason = _qualify(conversion, referral, "signup", now)


def _exists(column, *conditions) -> bool:
    # An ORM select, so pending changes are flushed first (a bare EXISTS would skip autoflush).
    return db.session.scalar(select(column).where(*conditions).limit(1)) is not None
