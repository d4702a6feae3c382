"""The shape every incoming conversion takes, whatever sent it, and the answer it gets."""

import functools
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core import counters, dates
from core.errors import DomainError
from core.inputs import parse_json
from rewards.eligibility import COUNTRY, SLUG, OrderLine

SOURCES_FROM_OUTSIDE = ("api", "saleor", "stripe", "manual")
API_EVENT_TYPES = ("signup", "purchase", "refund")


class InvalidEvent(DomainError):
    status = 422
    code = "invalid_event"
    message = _l("The event is malformed.")


@dataclass(frozen=True)
class EventIn:
    """A conversion as the integrations hand it to `rewards.conversions.record_event`.

    `external_id` identifies the event at its source (a redelivery carries the same one);
    `amount` is in minor units; `order_id` is the order a purchase pays for or a refund
    gives back. `channel`, `country` and `lines` are what a program's eligibility filters
    check (rewards/eligibility.py); None when the source did not say.
    """

    source: str  # api | saleor | stripe | manual
    kind: str  # signup | purchase | refund
    external_id: str
    customer_external_id: str | None = None
    customer_email: str | None = None
    ref_code: str | None = None
    amount: int | None = None
    currency: str | None = None
    order_id: str | None = None
    occurred_at: datetime | None = None
    payload: dict = field(default_factory=dict)
    channel: str | None = None
    country: str | None = None
    lines: tuple[OrderLine, ...] | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to an event: accepted, duplicate, unattributed, ignored or rejected.
    `conversion_id` is the row this delivery stored; None for a duplicate (it stored none)."""

    outcome: str
    reason: str | None = None
    conversion_id: int | None = None

    def as_json(self) -> dict:
        return {"outcome": self.outcome, "reason": self.reason}


def unhandled(event_type: str) -> Outcome:
    """An event type InviteLoop does not act on: answered 2xx, nothing stored."""
    return Outcome("ignored", "unhandled_event_type")


def parse_api_event(body: bytes) -> EventIn | None:
    """The events API's JSON as an EventIn; None for a well-formed event of a type we do
    not act on. Anything malformed raises InvalidEvent with what was wrong."""
    try:
        data = parse_json(body)
    except ValueError as error:
        raise InvalidEvent(str(error)) from None
    return api_event(data)


def api_event(data: object) -> EventIn | None:
    """parse_api_event for a body already read as JSON (an event stored for later keeps it)."""
    if not isinstance(data, dict):
        raise InvalidEvent(_("The body must be a JSON object."))
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidEvent(_("type is required: signup, purchase or refund."))
    if kind not in API_EVENT_TYPES:
        return None
    customer = data.get("customer") or {}
    if not isinstance(customer, dict):
        raise InvalidEvent(_("customer must be an object with external_id and/or email."))
    return EventIn(
        source="api",
        kind=kind,
        external_id=_string(data, "id", required=True),
        customer_external_id=_string(customer, "external_id"),
        customer_email=_string(customer, "email"),
        ref_code=_string(data, "ref_code"),
        amount=_amount(data.get("amount")),
        currency=_string(data, "currency"),
        order_id=_string(data, "order_id"),
        occurred_at=_moment(data.get("occurred_at")),
        payload=data,
        channel=_slug(data, "channel"),
        country=_country(data.get("country")),
        lines=_lines(data.get("lines")),
    )


def _slug(data: dict, key: str) -> str | None:
    value = _string(data, key)
    if value is not None and not SLUG.match(value.lower()):
        raise InvalidEvent(_("%(key)s must be a slug such as default-channel.", key=key))
    return value.lower() if value else None


def _country(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not COUNTRY.match(value.strip().upper()):
        raise InvalidEvent(_("country must be an ISO 3166 alpha-2 code such as DE."))
    return value.strip().upper()


def _lines(value) -> tuple[OrderLine, ...] | None:
    """The order's lines, [{"category": "shoes", "amount": 2500}, ...]; None if not sent."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 500:
        raise InvalidEvent("lines must be a list (at most 500) of {category, amount}.")
    lines = []
    for line in value:
        if not isinstance(line, dict):
            raise InvalidEvent(_("Each line is an object with category and amount."))
        amount = _amount(line.get("amount"))
        if amount is None or amount < 0:
            raise InvalidEvent(_("Each line needs an amount: whole minor units, 0 or more."))
        lines.append(OrderLine(_slug(line, "category"), amount))
    return tuple(lines)


def _string(data: dict, key: str, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InvalidEvent(_("%(key)s is required.", key=key))
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(_("%(key)s must be a string.", key=key))
    value = str(value).strip()
    if len(value) > 200:
        raise InvalidEvent(_("%(key)s is at most 200 characters.", key=key))
    return value


def _amount(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(_("amount must be a whole number of minor units (2500 = 25.00)."))
    return value


def _moment(value) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(_("occurred_at must be an ISO 8601 time."))
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(_("occurred_at must be an ISO 8601 time.")) from None
    if moment.tzinfo is None:
        raise InvalidEvent(_("occurred_at needs a time zone (e.g. 2026-11-21T10:00:00Z)."))
    if dates.plausible_utc(moment) is None:
        raise InvalidEvent(
            _(
                "occurred_at must lie between %(first)s and %(last)s (UTC).",
                first=dates.EARLIEST_EVENT.date().isoformat(),
                last=dates.LATEST_EVENT.date().isoformat(),
            )
        )
    return moment


def counts_refusals(source: str):
    """Count an intake view's 4xx refusals (bad signature, malformed body, unknown key) as
    `rejected` events of `source` in /metrics; the error goes on to its usual answer."""

    def decorate(view):
        @functools.wraps(view)
        def counted(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except DomainError as error:
                if error.status < 500:
                    counters.count_refused_event(source)
                raise

        return counted

    return decorate
