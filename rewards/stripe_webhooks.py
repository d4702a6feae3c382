"""Stripe webhooks (`POST /webhooks/stripe`).

Each conversion is keyed by the Stripe object it reports (checkout session, invoice, charge),
not by the event id: a redelivered event carries the same object, and so does a second event
about the same payment (`checkout.session.completed` then `async_payment_succeeded`, or a
subscription's checkout session and its first `invoice.paid`), which must not count twice.
"""

import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core import dates
from core.errors import DomainError
from core.inputs import parse_json
from extensions import csrf, db, limiter
from models import utcnow
from rewards.conversions import record_event
from rewards.events import EventIn, InvalidEvent, Outcome, counts_refusals, unhandled

stripe_bp = Blueprint("stripe", __name__)
csrf.exempt(stripe_bp)

SESSION_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
PAID_SESSION_STATUSES = ("paid", "no_payment_required")


class StripeNotConfigured(DomainError):
    # 503: Stripe keeps retrying for days, so events wait until the secret is configured.
    status = 503
    code = "stripe_not_configured"
    message = _l("Stripe webhooks are not configured here: STRIPE_WEBHOOK_SECRET is not set.")


class InvalidStripeSignature(DomainError):
    status = 400
    code = "invalid_signature"
    message = _l("The Stripe-Signature header is missing, malformed, stale or does not match.")


class InvalidStripePayload(InvalidEvent):
    message = _l("The webhook body is not a Stripe event.")


@stripe_bp.post("/webhooks/stripe")
@limiter.limit(lambda: current_app.config["EVENTS_LIMITS"])
@counts_refusals("stripe")
def receive_stripe_event():
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        raise StripeNotConfigured()
    body = request.get_data()
    verify_signature(
        body,
        request.headers.get("Stripe-Signature"),
        secret,
        current_app.config["WEBHOOK_TOLERANCE_SECONDS"],
    )
    event = stripe_event(parse_body(body))
    if isinstance(event, Outcome):
        return jsonify(event.as_json()), 200
    outcome = record_event(event)
    db.session.commit()
    return jsonify(outcome.as_json()), 200


def verify_signature(body: bytes, header: str | None, secret: str, tolerance: int) -> None:
    """Raise InvalidStripeSignature unless Stripe signed these bytes within ±tolerance."""
    if not header or not header.isascii():  # Stripe's header is ASCII; hmac cannot compare else
        raise InvalidStripeSignature()
    # Imported at the first Stripe delivery: the package brings `requests` and its HTTP stack
    # (~0.15 CPU-s), which every other process start (server, worker, command) never uses.
    import stripe

    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise InvalidStripeSignature() from None
    # The stripe package refuses old timestamps only; a future one is refused here.
    if signed_timestamp(header) > time.time() + tolerance:
        raise InvalidStripeSignature(_("The Stripe-Signature timestamp is in the future."))


def signed_timestamp(header: str) -> int:
    """The `t=` of a header verify_header accepted (it reads the first one, as here)."""
    for item in header.split(","):
        key, _equals, value = item.partition("=")
        if key == "t":
            return int(value)
    raise InvalidStripeSignature()


def parse_body(body: bytes) -> dict:
    try:
        payload = parse_json(body)
    except ValueError as error:
        raise InvalidStripePayload(str(error)) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise InvalidStripePayload()
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise InvalidStripePayload(_("The event carries no object."))
    if not isinstance(data["object"].get("id"), str):
        raise InvalidStripePayload(_("The event's object has no id."))
    return payload


def stripe_event(payload: dict) -> EventIn | Outcome:
    """The conversion a verified Stripe event reports, or the outcome of one we ignore."""
    kind = payload["type"]
    obj = payload["data"]["object"]
    if kind in SESSION_EVENTS:
        if obj.get("payment_status") not in PAID_SESSION_STATUSES:
            return Outcome("ignored", "payment_pending")
        return _session_purchase(payload, obj)
    if kind == "invoice.paid":
        return _invoice_purchase(payload, obj)
    if kind == "charge.refunded":
        return _charge_refund(payload, obj)
    return unhandled(kind)


def _session_purchase(payload: dict, session: dict) -> EventIn:
    # A subscription's session pays its first invoice: keyed by that invoice, the
    # `invoice.paid` that follows is the same conversion.
    return _event(
        payload,
        kind="purchase",
        external_id=_text(session.get("invoice")) or session["id"],
        order_id=_text(session.get("payment_intent")) or _text(session.get("invoice")),
        amount=session.get("amount_total"),
        customer_external_id=_text(session.get("client_reference_id")),
        customer_email=_text(_get(session, "customer_details", "email"))
        or _text(session.get("customer_email")),
        ref_code=_metadata_ref_code(session.get("metadata")),
    )


def _invoice_purchase(payload: dict, invoice: dict) -> EventIn:
    amount = invoice.get("amount_paid")
    return _event(
        payload,
        kind="purchase",
        external_id=invoice["id"],
        order_id=_invoice_payment_intent(invoice),
        amount=amount if amount is not None else invoice.get("total"),
        customer_email=_text(invoice.get("customer_email")),
        ref_code=_metadata_ref_code(invoice.get("metadata"))
        or _metadata_ref_code(_get(invoice, "subscription_details", "metadata"))
        or _metadata_ref_code(_get(invoice, "parent", "subscription_details", "metadata")),
    )


def _charge_refund(payload: dict, charge: dict) -> EventIn:
    # The refund names the order the way its purchase did: payment intent, else invoice.
    # `amount_refunded` is the running total: each partial refund is a new state of the
    # charge (a redelivery of the same state is a duplicate); the full refund is the last.
    refunded = charge.get("amount_refunded")
    full = charge.get("refunded") is True
    return _event(
        payload,
        kind="refund",
        external_id=charge["id"] if full else f"{charge['id']}:{refunded}",
        order_id=_text(charge.get("payment_intent")) or _text(charge.get("invoice")),
        amount=charge.get("amount_refunded"),
        customer_email=_text(_get(charge, "billing_details", "email"))
        or _text(charge.get("receipt_email")),
        ref_code=_metadata_ref_code(charge.get("metadata")),
    )


def _event(payload: dict, *, kind: str, order_id: str | None, **fields) -> EventIn:
    obj = payload["data"]["object"]
    currency = obj.get("currency")
    if not isinstance(currency, str):
        raise InvalidStripePayload(_("The event's object has no currency."))
    amount = fields.pop("amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidStripePayload(_("The event's amount is not a whole number of minor units."))
    return EventIn(
        source="stripe",
        kind=kind,
        amount=amount,  # Stripe amounts are already minor units
        currency=currency.upper(),
        order_id=order_id or obj["id"],
        occurred_at=_created(payload),
        payload=payload,
        **fields,
    )


def _invoice_payment_intent(invoice: dict) -> str | None:
    """Before API version 2025-03-31 invoices name their payment intent; after, only the
    expanded `payments` list does."""
    if _text(invoice.get("payment_intent")):
        return invoice["payment_intent"]
    entries = _get(invoice, "payments", "data")
    for entry in entries if isinstance(entries, list) else []:
        intent = _text(_get(entry, "payment", "payment_intent"))
        if intent:
            return intent
    return None


def _metadata_ref_code(metadata) -> str | None:
    if not isinstance(metadata, dict):
        return None
    for key in ("ref_code", "referral_code"):
        value = _text(metadata.get(key))
        if value:
            return value
    return None


def _get(obj, *keys):
    """obj[k1][k2]..., or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _text(value) -> str | None:
    """A non-empty string field, stripped; None for anything else (null, expanded objects)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _created(payload: dict) -> datetime:
    created = payload.get("created")
    if isinstance(created, int) and not isinstance(created, bool):
        try:
            moment = dates.plausible_utc(datetime.fromtimestamp(created, UTC))
        except (OverflowError, OSError, ValueError):
            moment = None
        if moment is not None:
            return moment
    return utcnow()
