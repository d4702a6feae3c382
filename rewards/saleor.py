"""Saleor order webhooks (`POST /webhooks/order-confirmed`).

Saleor sends exactly what the webhook's subscription query selects: SUBSCRIPTION_QUERY below
is the query to register (`webhookCreate(input: {query: ...})`); the body of each delivery is
its `event` object. The `Saleor-Event` header is not signed, so the event is taken from the
signed body's `__typename` and the header must agree with it.
"""

import hashlib
import hmac
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core import dates, money
from core.errors import DomainError
from core.inputs import parse_json
from extensions import csrf, db
from models import utcnow
from rewards.conversions import record_event
from rewards.eligibility import COUNTRY, SLUG, OrderLine
from rewards.events import EventIn, InvalidEvent, counts_refusals, unhandled
from rewards.jwks import InvalidSignature, verify_detached_jws

saleor_bp = Blueprint("saleor", __name__)
csrf.exempt(saleor_bp)

SUBSCRIPTION_QUERY = """
subscription InviteLoopOrderEvents {
  event {
    __typename
    issuedAt
    ... on OrderConfirmed { order { ...InviteLoopOrder } }
    ... on OrderFullyPaid { order { ...InviteLoopOrder } }
    ... on OrderRefunded { order { ...InviteLoopOrder } }
    ... on OrderFullyRefunded { order { ...InviteLoopOrder } }
  }
}
"""

# Saleor copies a checkout's metadata into the order it completes, so a ref_code the
# storefront put on the checkout arrives here as order metadata. The reconciliation's order
# listing (rewards/saleor_queries.py) selects the same fields.
ORDER_FRAGMENT = """
fragment InviteLoopOrder on Order {
  id
  number
  created
  checkoutId
  userEmail
  user { id email }
  total { gross { amount currency } }
  totalRefunded { amount currency }
  metadata { key value }
  channel { slug }
  shippingAddress { country { code } }
  billingAddress { country { code } }
  lines {
    totalPrice { gross { amount currency } }
    variant { product { category { slug } } }
  }
}
"""
SUBSCRIPTION_QUERY += ORDER_FRAGMENT

# Saleor-Event header value → (the signed body's __typename, our conversion kind).
HANDLED_EVENTS = {
    "order_confirmed": ("OrderConfirmed", "purchase"),
    "order_fully_paid": ("OrderFullyPaid", "purchase"),
    "order_refunded": ("OrderRefunded", "refund"),
    "order_fully_refunded": ("OrderFullyRefunded", "refund"),
}
REF_CODE_KEYS = ("ref_code", "referral_code")


class SaleorNotConfigured(DomainError):
    # 503, not 404: Saleor retries a 5xx for a few minutes, so events sent while the
    # operator finishes the set-up are not lost, and its delivery log shows the failure.
    status = 503
    code = "saleor_not_configured"
    message = _l("Saleor webhooks are not configured here: SALEOR_API_URL is not set.")


class InvalidSaleorPayload(InvalidEvent):
    message = _l("The webhook body is not the payload of InviteLoop's subscription query.")


# Not rate-limited: Saleor does not retry a 429, so a limit would lose real orders. Forged
# requests cost one signature check; unknown keys are refetched at most once per kid.
@saleor_bp.post("/webhooks/order-confirmed")
@counts_refusals("saleor")
def receive_order_event():
    api_url = current_app.config["SALEOR_API_URL"]
    if not api_url:
        raise SaleorNotConfigured()
    body = request.get_data()
    check_signature(request.headers, body, api_url, current_app.config["SALEOR_WEBHOOK_SECRET"])
    event_name = request.headers.get("Saleor-Event", "").strip().lower()
    if event_name not in HANDLED_EVENTS:
        return jsonify(unhandled(event_name).as_json()), 200
    event = order_event(event_name, parse_body(body))
    outcome = record_event(event)
    db.session.commit()
    return jsonify(outcome.as_json()), 200


def check_signature(headers, body: bytes, api_url: str, legacy_secret: str | None) -> None:
    """Raise InvalidSignature unless the configured Saleor instance signed these raw bytes."""
    claimed_url = headers.get("Saleor-Api-Url")
    if claimed_url is not None and not same_instance(claimed_url, api_url):
        raise InvalidSignature(_("The webhook comes from another Saleor instance."))
    signature = headers.get("Saleor-Signature", "").strip()
    if not signature:
        raise InvalidSignature(_("The Saleor-Signature header is missing."))
    if "." in signature:
        verify_detached_jws(signature, body, api_url)
    elif legacy_secret:
        expected = hmac.new(legacy_secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise InvalidSignature()
    else:
        raise InvalidSignature(_("Only JWS signatures are accepted (no legacy secret is set)."))


def same_instance(claimed: str, configured: str) -> bool:
    """Whether two API URLs name the same Saleor instance (scheme, host, port and path)."""
    try:
        return _instance(claimed) == _instance(configured)
    except ValueError:  # an unparseable port in the claimed URL
        return False


def _instance(url: str) -> tuple:
    parts = urlsplit(url.strip())
    default_port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return (
        parts.scheme.lower(),
        (parts.hostname or "").lower(),
        parts.port or default_port,
        parts.path.rstrip("/"),
    )


def parse_body(body: bytes) -> dict:
    try:
        payload = parse_json(body)
    except ValueError as error:
        raise InvalidSaleorPayload(str(error)) from None
    if not isinstance(payload, dict):
        raise InvalidSaleorPayload()
    return payload


def order_event(event_name: str, payload: dict) -> EventIn:
    """The conversion a handled Saleor order event reports, read from the signed payload."""
    typename, kind = HANDLED_EVENTS[event_name]
    if payload.get("__typename") != typename:
        raise InvalidSaleorPayload(
            f"The signed payload is not a {typename} event; register SUBSCRIPTION_QUERY."
        )
    order = payload.get("order")
    if not isinstance(order, dict) or not isinstance(order.get("id"), str):
        raise InvalidSaleorPayload(_("The payload names no order."))
    user = order.get("user") if isinstance(order.get("user"), dict) else {}
    money = _money(order, kind)
    amount = minor_units(money.get("amount"), money.get("currency"))
    return EventIn(
        source="saleor",
        kind=kind,
        external_id=_external_id(event_name, order["id"], amount),
        customer_external_id=_optional_text(user.get("id"), "user.id"),
        customer_email=_optional_text(user.get("email"), "user.email")
        or _optional_text(order.get("userEmail"), "userEmail"),
        ref_code=ref_code(order.get("metadata")),
        # A full refund gives back the whole order, whatever totalRefunded says.
        amount=None if event_name == "order_fully_refunded" else amount,
        currency=str(money.get("currency")).upper(),
        order_id=order["id"],
        occurred_at=_occurred_at(payload, order, kind),
        payload=payload,
        channel=_channel(order),
        country=_country(order),
        lines=_lines(order) if kind == "purchase" else None,
    )


def _channel(order: dict) -> str | None:
    channel = order.get("channel")
    slug = channel.get("slug") if isinstance(channel, dict) else None
    if slug is not None and not (isinstance(slug, str) and SLUG.match(slug)):
        raise InvalidSaleorPayload(_("The order's channel.slug is not a slug."))
    return slug


def _country(order: dict) -> str | None:
    """The shipping address's country, else the billing address's (rewards/eligibility.py)."""
    for name in ("shippingAddress", "billingAddress"):
        address = order.get(name)
        country = address.get("country") if isinstance(address, dict) else None
        code = country.get("code") if isinstance(country, dict) else None
        if code is None:
            continue
        if not (isinstance(code, str) and COUNTRY.match(code)):
            raise InvalidSaleorPayload(
                _("The order's %(address)s.country.code is not ISO 3166.", address=name)
            )
        return code
    return None


def _lines(order: dict) -> tuple[OrderLine, ...] | None:
    """Each line's category and gross total; None when the payload carries no lines (a
    subscription registered before they were asked for)."""
    lines = order.get("lines")
    if lines is None:
        return None
    if not isinstance(lines, list):
        raise InvalidSaleorPayload(_("The order's lines are not a list."))
    return tuple(_line(line) for line in lines)


def _line(line) -> OrderLine:
    if not isinstance(line, dict):
        raise InvalidSaleorPayload(_("An order line is not an object."))
    price = _dig(line, "totalPrice", "gross")
    if not isinstance(price, dict) or not isinstance(price.get("currency"), str):
        raise InvalidSaleorPayload(_("An order line has no totalPrice.gross."))
    category = _dig(line, "variant", "product", "category", "slug")
    if category is not None and not (isinstance(category, str) and SLUG.match(category)):
        raise InvalidSaleorPayload(_("An order line's category slug is not a slug."))
    return OrderLine(category, minor_units(price.get("amount"), price["currency"]))


def _dig(value, *keys):
    """value[k1][k2]...; None where a level is missing (a deleted variant has no product)."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _external_id(event_name: str, order_id: str, amount: int) -> str:
    """The purchase is the order; its full refund happens once; each partial refund is a
    new running total (totalRefunded), so a redelivery of the same total is a duplicate."""
    if HANDLED_EVENTS[event_name][1] == "purchase":
        return order_id
    if event_name == "order_fully_refunded":
        return f"{order_id}:refund"
    return f"{order_id}:refund:{amount}"


def _optional_text(value, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise InvalidSaleorPayload(_("The order's %(field)s is not a string.", field=name))


def _money(order: dict, kind: str) -> dict:
    """The order's gross total for a purchase; the amount refunded so far for a refund."""
    if kind == "refund" and isinstance(order.get("totalRefunded"), dict):
        money = order["totalRefunded"]
    else:
        total = order.get("total")
        money = total.get("gross") if isinstance(total, dict) else None
    if not isinstance(money, dict) or not isinstance(money.get("currency"), str):
        raise InvalidSaleorPayload(_("The payload has no order total."))
    return money


def minor_units(amount, currency: str) -> int:
    """Saleor's decimal amount in the currency's minor units, exactly (12.34 USD → 1234)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        raise InvalidSaleorPayload(_("The order total is not a number."))
    try:
        # str() of a float is its shortest exact decimal form: 19.99 stays 19.99.
        scaled = Decimal(str(amount)).scaleb(money.exponent(currency))
    except InvalidOperation:
        raise InvalidSaleorPayload(_("The order total is not a number.")) from None
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise InvalidSaleorPayload(
            _("The order total is not a whole number of %(currency)s units.", currency=currency)
        )
    return int(scaled)


def ref_code(metadata) -> str | None:
    """The referral code the storefront stored on the order (or on its checkout)."""
    if not isinstance(metadata, list):
        return None
    values = {item.get("key"): item.get("value") for item in metadata if isinstance(item, dict)}
    for key in REF_CODE_KEYS:
        value = values.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _occurred_at(payload: dict, order: dict, kind: str) -> datetime:
    # A purchase happened when the order was placed; a refund when Saleor reports it.
    candidates = (order.get("created"), payload.get("issuedAt"))
    if kind == "refund":
        candidates = (payload.get("issuedAt"),)
    for value in candidates:
        moment = _parse_datetime(value)
        if moment is not None:
            return moment
    return utcnow()


def _parse_datetime(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Out of range (year 1 with an offset, year 9999) counts as unreadable: the order is kept.
    return dates.plausible_utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
