"""A purchase staff record by hand: it goes through the same conversion pipeline as a
shop's event, and the flash says what became of it."""

from datetime import UTC, date, datetime, time

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import select

from admin.operations import labels
from core import audit, money
from core.errors import DomainError
from core.money import CURRENCIES, exponent
from extensions import db
from models import User
from rewards.conversions import record_event
from rewards.events import EventIn, Outcome


class UnknownParticipant(DomainError):
    status = 422
    code = "unknown_participant"
    field = "email"
    message = _l("No participant has this email address. Check it on the participants screen.")


class InvalidPurchase(DomainError):
    status = 422
    code = "invalid_purchase"


def parse_amount(text: str, currency: str) -> int:
    """ "12.50" USD -> 1250 minor units; refuses more decimals than the currency has."""
    decimals = exponent(currency)
    example = "12" if decimals == 0 else "12." + "5".ljust(decimals, "0")
    not_a_number = _purchase_error(
        "amount", _("Write the amount as a number above zero, like %(example)s.", example=example)
    )
    try:
        minor = money.to_minor_units(text, decimals)
    except money.AmountNotANumber:
        raise not_a_number from None
    except money.AmountTooPrecise:
        raise _purchase_error(
            "amount",
            ngettext(
                "%(currency)s amounts have %(num)d decimal at most.",
                "%(currency)s amounts have %(num)d decimals at most.",
                decimals,
                currency=currency,
            ),
        ) from None
    except money.AmountTooLarge:
        raise _purchase_error("amount", _("This amount is too large.")) from None
    if minor <= 0:
        raise not_a_number
    return minor


def find_participant(email: str) -> User:
    participant = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if participant is None:
        raise UnknownParticipant()
    return participant


def check_currency(currency: str) -> str:
    currency = currency.strip().upper()
    if currency not in CURRENCIES:
        raise _purchase_error("currency", _("Choose a currency from the list (ISO 4217 codes)."))
    return currency


def _purchase_error(field_name: str, message: str) -> InvalidPurchase:
    error = InvalidPurchase(message)
    error.field = field_name
    return error


def purchase_moment(day: date, now: datetime) -> datetime:
    """The purchase's time: now for today; the end of an earlier day (UTC), so a purchase on
    the day of the referral is never taken for one made before it."""
    if day > now.date():
        raise _purchase_error("occurred_on", _("The purchase date cannot be in the future."))
    return min(now, datetime.combine(day, time.max, UTC))


def record_manual_purchase(
    *, email: str, order_id: str, amount: str, currency: str, day: date, now: datetime
) -> Outcome:
    """Staff record a paid order: it goes through `record_event` like a shop's event, so the
    same order entered twice is a duplicate and pays once."""
    participant = find_participant(email)
    currency = check_currency(currency)
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
    None: _l("Recorded; the rewards it earned are on the rewards screen."),
    "held_for_review": _l("Recorded; its rewards wait in the review queue."),
    "not_referred": _l("Recorded; this participant was not referred, so it pays no reward."),
    "below_minimum": _l("Recorded; the amount is below the program's minimum, so no reward."),
    "already_rewarded": _l("Recorded; this referral was rewarded already (first purchase only)."),
    "existing_customer": _l("Recorded; the participant had bought before being referred."),
    "currency_mismatch": _l("Recorded; the program pays in another currency, so no reward."),
    "already_received": _l("This order was recorded before; nothing new was written."),
}


def describe(outcome: Outcome) -> str:
    if outcome.reason in OUTCOME_WORDS:
        return str(OUTCOME_WORDS[outcome.reason])
    return _(
        "Recorded: %(outcome)s, %(reason)s.",
        outcome=labels.in_words(outcome.outcome, "outcome"),
        reason=labels.conversion_reason(outcome.reason),
    )
