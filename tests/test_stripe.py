"""Stripe webhooks: `Stripe-Signature` verified by the stripe package (±5 minutes), and the
checkout, invoice and refund events turned into conversions (docs/guarantees.md #1-#3)."""

import json
import math
import secrets
import time

import pytest
from sqlalchemy import func, select, update

from extensions import db
from models import Conversion, Reward, User
from rewards.stripe_webhooks import stripe_event
from tests.webhook_signing import stripe_signature, stripe_v1

URL = "/webhooks/stripe"
SECRET = "whsec_test_" + "5" * 32
INTENT = "pi_3QxTestIntent"
SESSION = "cs_test_a1B2c3"


@pytest.fixture
def config_overrides():
    return {"STRIPE_WEBHOOK_SECRET": SECRET}


def event(kind: str, obj: dict, *, event_id: str | None = None) -> dict:
    """A Stripe event as its webhook body carries it."""
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def checkout_session(**fields) -> dict:
    return {
        "id": SESSION,
        "object": "checkout.session",
        "amount_total": 2500,
        "currency": "usd",
        "client_reference_id": None,
        "customer": "cus_Test1",
        "customer_details": {"email": "guest@example.com", "name": "Guest"},
        "customer_email": None,
        "invoice": None,
        "metadata": {},
        "mode": "payment",
        "payment_intent": INTENT,
        "payment_status": "paid",
        "status": "complete",
        **fields,
    }


def invoice(**fields) -> dict:
    return {
        "id": "in_1Test",
        "object": "invoice",
        "amount_paid": 2500,
        "total": 2500,
        "currency": "usd",
        "customer": "cus_Test1",
        "customer_email": "guest@example.com",
        "metadata": {},
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"metadata": {}, "subscription": "sub_1Test"},
        },
        "status": "paid",
        **fields,
    }


def charge(**fields) -> dict:
    return {
        "id": "ch_3Test",
        "object": "charge",
        "amount": 2500,
        "amount_refunded": 2500,
        "currency": "usd",
        "billing_details": {"email": "guest@example.com"},
        "metadata": {},
        "payment_intent": INTENT,
        "receipt_email": None,
        "refunded": True,
        **fields,
    }


def send(client, payload, *, secret=SECRET, timestamp=None, header=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {}
    if header is None:
        header = stripe_signature(body, secret, timestamp)
    if header is not False:
        headers["Stripe-Signature"] = header
    return client.post(URL, data=body, headers=headers, content_type="application/json")


def stored(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.scalars(select(Conversion).order_by(Conversion.id))
        return [(c.kind, c.external_id, c.order_id, c.outcome, c.reason, c.amount) for c in rows]


def rewards_written(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.scalars(select(Reward).order_by(Reward.role))
        return [(r.beneficiary_id, r.role, r.amount, r.currency, r.status, r.reason) for r in rows]


def conversions(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Conversion))


# --- Signatures (docs/guarantees.md #1) ----------------------------------------------------


def test_missing_signature_is_400_and_nothing_is_recorded(app, client):
    response = send(client, event("checkout.session.completed", checkout_session()), header=False)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert conversions(app) == 0


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=abc,v1=00",
        "v1=" + "0" * 64,
        "t={now}",
        "t={now},v0={sig}",
        "t=,v1=",
        "t={now},v1",
        "é",
    ],
)
def test_malformed_header_is_400_never_500(app, client, header):
    body = json.dumps(event("checkout.session.completed", checkout_session())).encode()
    now = int(time.time())
    header = header.format(now=now, sig=stripe_v1(body, SECRET, now))
    response = send(client, body, header=header)
    assert response.status_code == 400
    assert conversions(app) == 0


def test_wrong_secret_is_400(app, client):
    response = send(client, event("checkout.session.completed", checkout_session()), secret="x")
    assert response.status_code == 400
    assert conversions(app) == 0


def test_body_changed_by_one_byte_is_400(app, client):
    body = json.dumps(event("checkout.session.completed", checkout_session())).encode()
    header = stripe_signature(body, SECRET)
    tampered = body.replace(b'"amount_total": 2500', b'"amount_total": 9500')
    assert len(tampered) == len(body) and tampered != body
    assert send(client, tampered, header=header).status_code == 400
    assert conversions(app) == 0


@pytest.mark.parametrize(("offset", "status"), [(-301, 400), (301, 400), (-290, 200), (290, 200)])
def test_timestamp_within_five_minutes_either_way(app, client, offset, status):
    payload = event("customer.created", {"id": "cus_1"})
    # Rounded up: int() would drop up to a second, and 301 s ahead would pass as 300.
    response = send(client, payload, timestamp=math.ceil(time.time()) + offset)
    assert response.status_code == status
    assert conversions(app) == 0


def test_two_signatures_one_valid_is_accepted_once(app, client):
    body = json.dumps(event("checkout.session.completed", checkout_session())).encode()
    now = int(time.time())
    valid = stripe_v1(body, SECRET, now)
    stale = stripe_v1(body, "whsec_old", now)
    for header in (f"t={now},v1={stale},v1={valid}", f"t={now},v1={valid},v1={stale}"):
        assert send(client, body, header=header).status_code == 200
    assert [row[3] for row in stored(app)] == ["unattributed"]


def test_body_that_is_not_utf8_is_400_not_500(app, client):
    body = b'{"type": "\xff"}'
    assert send(client, body).status_code == 400
    assert conversions(app) == 0


def test_signed_body_that_is_not_an_event_is_422(app, client):
    assert send(client, b"[1, 2]").status_code == 422
    assert send(client, b"{not json").status_code == 422
    assert conversions(app) == 0


def test_without_a_secret_the_endpoint_says_so(app, client):
    app.config["STRIPE_WEBHOOK_SECRET"] = None
    response = send(client, event("checkout.session.completed", checkout_session()))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "stripe_not_configured"
    assert conversions(app) == 0


# --- Reading events -----------------------------------------------------------------------


def test_checkout_session_maps_to_a_purchase_of_its_payment_intent():
    session = checkout_session(
        client_reference_id="cust-42", customer_email="x@example.com", metadata={"ref_code": "abc"}
    )
    converted = stripe_event(event("checkout.session.completed", session))
    assert (converted.source, converted.kind, converted.external_id) == (
        "stripe",
        "purchase",
        SESSION,
    )
    assert (converted.order_id, converted.amount, converted.currency) == (INTENT, 2500, "USD")
    assert (converted.customer_external_id, converted.customer_email) == (
        "cust-42",
        "guest@example.com",
    )
    assert converted.ref_code == "abc"


def test_subscription_checkout_is_keyed_by_its_first_invoice():
    session = checkout_session(mode="subscription", payment_intent=None, invoice="in_1Test")
    from_session = stripe_event(event("checkout.session.completed", session))
    from_invoice = stripe_event(event("invoice.paid", invoice()))
    assert from_session.external_id == from_invoice.external_id == "in_1Test"


def test_invoice_reads_ref_code_from_subscription_metadata():
    parent = {"subscription_details": {"metadata": {"ref_code": "ZZ99"}}}
    converted = stripe_event(event("invoice.paid", invoice(parent=parent, amount_paid=1999)))
    assert (converted.amount, converted.ref_code, converted.order_id) == (1999, "ZZ99", "in_1Test")
    legacy = invoice(parent=None, subscription_details={"metadata": {"referral_code": "YY88"}})
    assert stripe_event(event("invoice.paid", legacy)).ref_code == "YY88"


def test_refund_names_the_purchase_by_payment_intent():
    converted = stripe_event(event("charge.refunded", charge(amount_refunded=1000)))
    assert (converted.kind, converted.external_id, converted.order_id, converted.amount) == (
        "refund",
        "ch_3Test",
        INTENT,
        1000,
    )


# --- Conversions and rewards (docs/guarantees.md #2, #3) ----------------------------------


@pytest.fixture
def referred_friend(make_participant):
    ann = make_participant("Ann Lee")
    bob = make_participant("Bob Baker", invited_by=ann["code"])
    return ann, bob


def test_same_event_twice_is_one_conversion_and_one_set_of_rewards(app, client, referred_friend):
    ann, bob = referred_friend
    session = checkout_session(customer_details={"email": bob["email"]})
    payload = event("checkout.session.completed", session)
    first, again = send(client, payload), send(client, payload)
    later = send(client, event("checkout.session.async_payment_succeeded", session))
    assert first.status_code == again.status_code == later.status_code == 200
    assert first.get_json()["outcome"] == "accepted"
    assert again.get_json()["outcome"] == later.get_json()["outcome"] == "duplicate"
    assert stored(app) == [("purchase", SESSION, INTENT, "accepted", None, 2500)]
    assert rewards_written(app) == [
        (bob["id"], "referee", 500, "USD", "pending", None),
        (ann["id"], "referrer", 1000, "USD", "pending", None),
    ]


def test_client_reference_id_finds_the_participant(app, client, referred_friend):
    ann, bob = referred_friend
    with app.app_context():
        db.session.execute(update(User).where(User.id == bob["id"]).values(external_id="cust-42"))
        db.session.commit()
    session = checkout_session(client_reference_id="cust-42")
    assert send(client, event("checkout.session.completed", session)).status_code == 200
    assert [(r[0], r[1]) for r in rewards_written(app)] == [
        (bob["id"], "referee"),
        (ann["id"], "referrer"),
    ]


def test_invoice_with_ref_code_attributes_a_new_customer(app, client, make_participant):
    ann = make_participant("Ann Lee")
    parent = {"subscription_details": {"metadata": {"ref_code": ann["code"]}}}
    paid = invoice(customer_email="dora@example.com", parent=parent)
    response = send(client, event("invoice.paid", paid))
    assert response.get_json()["outcome"] == "accepted"
    assert [(r[1], r[2]) for r in rewards_written(app)] == [("referee", 500), ("referrer", 1000)]


def test_refund_cancels_the_pending_rewards(app, client, referred_friend):
    _, bob = referred_friend
    session = checkout_session(customer_details={"email": bob["email"]})
    assert send(client, event("checkout.session.completed", session)).status_code == 200
    refunded = event("charge.refunded", charge())
    assert send(client, refunded).get_json()["outcome"] == "accepted"
    assert send(client, refunded).get_json()["outcome"] == "duplicate"
    assert [r[4:] for r in rewards_written(app)] == [("cancelled", "refunded")] * 2
    assert [row[:4] for row in stored(app)] == [
        ("purchase", SESSION, INTENT, "accepted"),
        ("refund", "ch_3Test", INTENT, "accepted"),
    ]


def test_purchase_by_unknown_customer_is_stored_unattributed(app, client):
    response = send(client, event("checkout.session.completed", checkout_session()))
    assert response.status_code == 200
    assert response.get_json() == {"outcome": "unattributed", "reason": "unknown_customer"}
    assert stored(app) == [("purchase", SESSION, INTENT, "unattributed", "unknown_customer", 2500)]
    assert rewards_written(app) == []


def test_unhandled_event_type_is_2xx_and_changes_nothing(app, client):
    response = send(client, event("customer.subscription.updated", {"id": "sub_1"}))
    assert response.status_code == 200
    assert response.get_json() == {"outcome": "ignored", "reason": "unhandled_event_type"}
    assert conversions(app) == 0


def test_unpaid_checkout_waits_for_its_payment(app, client, referred_friend):
    _, bob = referred_friend
    session = checkout_session(customer_details={"email": bob["email"]}, payment_status="unpaid")
    response = send(client, event("checkout.session.completed", session))
    assert response.get_json() == {"outcome": "ignored", "reason": "payment_pending"}
    assert conversions(app) == 0
    paid = {**session, "payment_status": "paid"}
    assert send(client, event("checkout.session.async_payment_succeeded", paid)).get_json()[
        "outcome"
    ] == ("accepted")
    assert len(rewards_written(app)) == 2
