"""Staff operations: the review queue, rewards, payouts and conversions.

The list queries here take the page's query string and return a Select; the CSV exports use
the same functions, so a file holds exactly the rows its page lists. The actions call the
rewards services, which make each change conditional and write the audit entry.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import MultiDict

from admin.analytics_queries import midnight
from core import audit, money
from core.errors import DomainError
from core.money import exponent
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
from rewards import review
from rewards.conversions import record_event
from rewards.events import EventIn, Outcome

# Linked accounts are looked up for a whole page at once; a very common address (a shared
# office network) could match thousands, so the scan stops here.
_LINK_SCAN_LIMIT = 500
LINKS_SHOWN = 10
_CURRENCY = re.compile(r"^[A-Z]{3}$")


# --- filters (the page and its CSV export share them) ----------------------------------------


def _choice(args: MultiDict, name: str, allowed) -> str | None:
    value = (args.get(name) or "").strip()
    return value if value in allowed else None


def _number(args: MultiDict, name: str) -> int | None:
    value = (args.get(name) or "").strip()
    return int(value) if value.isdigit() else None


def parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        return None


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
    itself in review are decided with the referral."""
    held = (
        select(Reward.conversion_id)
        .outerjoin(Referral, Reward.referral_id == Referral.id)
        .where(Reward.status == "review")
        .where(or_(Referral.id.is_(None), Referral.status != "review"))
    )
    return (
        select(Conversion)
        .options(joinedload(Conversion.participant))
        .where(Conversion.id.in_(held))
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


def held_rewards(conversion_ids: list[int]) -> dict[int, list[Reward]]:
    """The rewards waiting in review, per conversion (to show what a decision moves)."""
    found: dict[int, list[Reward]] = {}
    if conversion_ids:
        rewards = db.session.scalars(
            select(Reward)
            .options(joinedload(Reward.beneficiary))
            .where(Reward.conversion_id.in_(conversion_ids), Reward.status == "review")
            .order_by(Reward.id)
        )
        for reward in rewards:
            found.setdefault(reward.conversion_id, []).append(reward)
    return found


# --- linked accounts -------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkedAccount:
    id: int
    name: str
    email: str | None
    links: tuple[str, ...]  # what they share: "same device", "same IP", ...


def linked_accounts(people: list[User]) -> dict[int, list[LinkedAccount]]:
    """Per person, the other accounts sharing their browser, signup address or network, or
    mailbox: one query for a whole page of people."""
    conditions = [condition for person in people for condition in _link_conditions(person)]
    if not conditions:
        return {}
    candidates = db.session.scalars(
        select(User).where(or_(*conditions)).order_by(User.id).limit(_LINK_SCAN_LIMIT)
    ).all()
    found: dict[int, list[LinkedAccount]] = {}
    for person in people:
        linked = [
            LinkedAccount(other.id, other.name, other.email, links)
            for other in candidates
            if other.id != person.id and (links := _shared(person, other))
        ]
        found[person.id] = linked[:LINKS_SHOWN]
    return found


def _ipv4_network(address: str | None) -> str | None:
    """ "203.0.113.7" -> "203.0.113.": the /24 as a text prefix (IPv6 is matched exactly)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    return str(ip).rsplit(".", 1)[0] + "." if ip.version == 4 else None


def _link_conditions(person: User) -> list:
    conditions = []
    if person.device_id:
        conditions.append(User.device_id == person.device_id)
    if person.email_canonical:
        conditions.append(User.email_canonical == person.email_canonical)
    if network := _ipv4_network(person.signup_ip):
        conditions.append(User.signup_ip.startswith(network, autoescape=True))
    elif person.signup_ip:
        conditions.append(User.signup_ip == person.signup_ip)
    return conditions


def _shared(person: User, other: User) -> tuple[str, ...]:
    links = []
    if person.device_id and person.device_id == other.device_id:
        links.append("same device")
    if person.signup_ip and person.signup_ip == other.signup_ip:
        links.append("same IP")
    elif (network := _ipv4_network(person.signup_ip)) and network == _ipv4_network(other.signup_ip):
        links.append(f"same network {network}0/24")
    if person.email_canonical and person.email_canonical == other.email_canonical:
        links.append("same mailbox")
    return tuple(links)


# --- review decisions ------------------------------------------------------------------------


@dataclass
class Decided:
    """What a (bulk) decision did: the ids it changed, and those no longer waiting because
    someone else decided them first."""

    changed: list[int] = field(default_factory=list)
    already_decided: list[int] = field(default_factory=list)


def decide_referrals(ids: list[int], approve: bool, reason: str, now: datetime) -> Decided:
    """Approve or reject held referrals. Each decision is the services' conditional UPDATE,
    in a savepoint: one decided meanwhile is skipped and the others still go through."""
    result = Decided()
    for referral_id in sorted(set(ids)):
        try:
            with db.session.begin_nested():
                referral = db.session.get(Referral, referral_id)
                if referral is None:
                    raise review.NotUnderReview()
                if approve:
                    review.approve_referral(referral, now, reason)
                else:
                    review.reject_referral(referral, reason, now)
        except review.NotUnderReview:
            result.already_decided.append(referral_id)
        else:
            result.changed.append(referral_id)
    return result


def decide_purchases(ids: list[int], approve: bool, reason: str, now: datetime) -> Decided:
    """Approve (back into the normal hold) or reject rewards a purchase's checks held."""
    result = Decided()
    for conversion_id in sorted(set(ids)):
        conversion = db.session.get(Conversion, conversion_id)
        own_decision = conversion is not None and not (
            conversion.referral is not None and conversion.referral.status == "review"
        )
        if own_decision and review.decide_held_rewards(conversion, approve, reason, now):
            result.changed.append(conversion_id)
        else:
            result.already_decided.append(conversion_id)
    return result


# --- a purchase recorded by hand -------------------------------------------------------------


class UnknownParticipant(DomainError):
    status = 422
    code = "unknown_participant"
    field = "email"
    message = "No participant has this email address. Check it on the participants screen."


class InvalidPurchase(DomainError):
    status = 422
    code = "invalid_purchase"


def parse_amount(text: str, currency: str) -> int:
    """ "12.50" USD -> 1250 minor units; refuses more decimals than the currency has."""
    decimals = exponent(currency)
    example = "12" if decimals == 0 else "12." + "5".ljust(decimals, "0")
    not_a_number = _purchase_error(
        "amount", f"Write the amount as a number above zero, like {example}."
    )
    try:
        minor = money.to_minor_units(text, decimals)
    except money.AmountNotANumber:
        raise not_a_number from None
    except money.AmountTooPrecise:
        raise _purchase_error(
            "amount", f"{currency} amounts have {decimals} decimals at most."
        ) from None
    except money.AmountTooLarge:
        raise _purchase_error("amount", "This amount is too large.") from None
    if minor <= 0:
        raise not_a_number
    return minor


def _purchase_error(field_name: str, message: str) -> InvalidPurchase:
    error = InvalidPurchase(message)
    error.field = field_name
    return error


def purchase_moment(day: date, now: datetime) -> datetime:
    """The purchase's time: now for today; the end of an earlier day (UTC), so a purchase on
    the day of the referral is never taken for one made before it."""
    if day > now.date():
        raise _purchase_error("occurred_on", "The purchase date cannot be in the future.")
    return min(now, datetime.combine(day, time.max, UTC))


def record_manual_purchase(
    *, email: str, order_id: str, amount: str, currency: str, day: date, now: datetime
) -> Outcome:
    """Staff record a paid order: it goes through `record_event` like a shop's event, so the
    same order entered twice is a duplicate and pays once."""
    participant = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if participant is None:
        raise UnknownParticipant()
    currency = currency.strip().upper()
    if not _CURRENCY.match(currency):
        raise _purchase_error("currency", "Use a three-letter currency code such as USD.")
    order_id = order_id.strip()
    event = EventIn(
        source="manual",
        kind="purchase",
        external_id=order_id,
        order_id=order_id,
        customer_email=participant.email,
        amount=parse_amount(amount, currency),
        currency=currency,
        occurred_at=purchase_moment(day, now),
    )
    outcome = record_event(event, now)
    if outcome.outcome != "duplicate":
        after = {
            "order_id": order_id,
            "participant_id": participant.id,
            "amount": event.amount,
            "currency": currency,
            "outcome": outcome.outcome,
            "reason": outcome.reason,
        }
        audit.record("conversion.record", "conversion", outcome.conversion_id, after=after)
    return outcome


# What an outcome means, for the flash after a manual purchase.
OUTCOME_WORDS = {
    None: "Recorded; the rewards it earned are on the rewards screen.",
    "held_for_review": "Recorded; its rewards wait in the review queue.",
    "not_referred": "Recorded; this participant was not referred, so it pays no reward.",
    "below_minimum": "Recorded; the amount is below the program's minimum, so no reward.",
    "already_rewarded": "Recorded; this referral was rewarded already (first purchase only).",
    "existing_customer": "Recorded; the participant had bought before being referred.",
    "currency_mismatch": "Recorded; the program pays in another currency, so no reward.",
    "already_received": "This order was recorded before; nothing new was written.",
}


def describe(outcome: Outcome) -> str:
    reason = (outcome.reason or "").replace("_", " ")
    return OUTCOME_WORDS.get(outcome.reason, f"Recorded: {outcome.outcome}, {reason}.")
