"""Saleor order webhooks: RS256 detached JWS against the configured shop's JWKS, and the payload
of InviteLoop's own subscription query (docs/guarantees.md #1-#3)."""

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, build_schema, parse, validate
from sqlalchemy import func, select, update

from app import create_app
from extensions import db
from models import Conversion, Reward, utcnow
from rewards import jwks
from rewards.saleor import (
    SUBSCRIPTION_QUERY,
    InvalidSaleorPayload,
    minor_units,
    order_event,
    same_instance,
)
from tests import databases
from tests.apps import app_config, close
from tests.jwks_server import JwksServer
from tests.webhook_signing import SigningKey, forged_jws, hs256_jws

URL = "/webhooks/order-confirmed"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "shared" / "saleor" / "schema.graphql"
ORDER_ID = "T3JkZXI6NmY0ZTQ5NjgtMjVkZS00YjRk"


@pytest.fixture(scope="module")
def shop_key():
    return SigningKey()


@pytest.fixture(scope="module")
def attacker_key():
    return SigningKey()


@pytest.fixture(scope="module")
def shop_server():
    # One server for the module: a new one per test would change SALEOR_API_URL and so
    # make the module's apps again for every test.
    with JwksServer() as server:
        yield server


@pytest.fixture
def shop(shop_server, shop_key):
    """The configured shop, publishing only its own key, with no requests counted yet."""
    shop_server.keys[:] = [shop_key.public_jwk()]
    shop_server.requests.clear()
    return shop_server


@pytest.fixture
def config_overrides(shop):
    return {"SALEOR_API_URL": shop.api_url}


def order_payload(
    typename="OrderConfirmed",
    *,
    order_id=ORDER_ID,
    user=None,
    user_email="guest@example.com",
    amount=25.0,
    currency="USD",
    refunded=0.0,
    metadata=None,
    issued_at="2026-08-03T10:00:05.123456+00:00",
    created="2026-08-03T10:00:00.000000+00:00",
    channel="default-channel",
    shipping_country="US",
    billing_country="US",
    lines=None,
) -> dict:
    """The `event` object Saleor sends for SUBSCRIPTION_QUERY (test_payload_has_the_query_shape
    keeps the two in step)."""
    return {
        "__typename": typename,
        "issuedAt": issued_at,
        "order": {
            "id": order_id,
            "number": "1042",
            "created": created,
            "checkoutId": "Q2hlY2tvdXQ6ZmQ2YjQ4ZDQ=",
            "userEmail": user_email,
            "user": user,
            "total": {"gross": {"amount": amount, "currency": currency}},
            "totalRefunded": {"amount": refunded, "currency": currency},
            "metadata": [{"key": k, "value": v} for k, v in (metadata or {}).items()],
            "channel": {"slug": channel},
            "shippingAddress": shipping_country and {"country": {"code": shipping_country}},
            "billingAddress": billing_country and {"country": {"code": billing_country}},
            "lines": [
                {
                    "totalPrice": {"gross": {"amount": line_amount, "currency": currency}},
                    "variant": {"product": {"category": category and {"slug": category}}},
                }
                for category, line_amount in (lines or [("apparel", amount)])
            ],
        },
    }


def deliver(client, payload, *, key, event="order_confirmed", signature=None, **headers):
    """POST as Saleor does: raw JSON body, signed unless a signature is given."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = {"Saleor-Event": event, "Saleor-Domain": "shop.example.com", **headers}
    if signature is None and key is not None:
        signature = key.sign(body)
    if signature is not None:
        sent["Saleor-Signature"] = signature
    return client.post(URL, data=body, headers=sent, content_type="application/json")


def conversions(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Conversion))


# --- The subscription query and the payloads built from it -------------------------------


@pytest.fixture(scope="module")
def saleor_schema():
    try:
        source = SCHEMA_PATH.read_text()
    except OSError as error:
        databases.service_missing("Saleor's schema (../shared/saleor/schema.graphql)", error)
    return build_schema(source)


def test_subscription_query_is_valid_against_saleor_schema(saleor_schema):
    assert validate(saleor_schema, parse(SUBSCRIPTION_QUERY)) == []


def test_a_field_saleor_lacks_would_be_caught(saleor_schema):
    broken = SUBSCRIPTION_QUERY.replace("checkoutId", "checkoutMetadata")
    assert validate(saleor_schema, parse(broken)) != []


@pytest.mark.parametrize(
    "typename", ["OrderConfirmed", "OrderFullyPaid", "OrderRefunded", "OrderFullyRefunded"]
)
def test_payload_has_the_query_shape(typename):
    payload = order_payload(
        typename, user={"id": "VXNlcjox", "email": "a@example.com"}, metadata={"ref_code": "X"}
    )
    assert _shape(payload) == _selected_shape(SUBSCRIPTION_QUERY, typename)


def _selected_shape(query: str, typename: str) -> dict:
    document = parse(query)
    fragments = {d.name.value: d for d in document.definitions if hasattr(d, "type_condition")}
    operation = next(d for d in document.definitions if not hasattr(d, "type_condition"))
    event = operation.selection_set.selections[0]
    return _fields(event.selection_set, fragments, typename)


def _fields(selection_set, fragments, typename) -> dict:
    shape = {}
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            inner = selection.selection_set
            shape[selection.name.value] = inner and _fields(inner, fragments, typename)
        elif isinstance(selection, FragmentSpreadNode):
            shape |= _fields(fragments[selection.name.value].selection_set, fragments, typename)
        elif (
            isinstance(selection, InlineFragmentNode)
            and selection.type_condition.name.value == typename
        ):
            shape |= _fields(selection.selection_set, fragments, typename)
    return shape


def _shape(value):
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return _shape(value[0]) if value else None
    return None


# --- Reading the payload ------------------------------------------------------------------


def test_purchase_maps_to_an_event_keyed_by_order():
    payload = order_payload(
        user={"id": "VXNlcjo3", "email": "ann@example.com"},
        amount=49.99,
        metadata={"utm": "x", "ref_code": " AB12CD "},
    )
    event = order_event("order_confirmed", payload)
    assert (event.source, event.kind, event.external_id) == ("saleor", "purchase", ORDER_ID)
    assert (event.order_id, event.amount, event.currency) == (ORDER_ID, 4999, "USD")
    assert (event.customer_external_id, event.customer_email) == ("VXNlcjo3", "ann@example.com")
    assert event.ref_code == "AB12CD"
    assert event.occurred_at.isoformat() == "2026-08-03T10:00:00+00:00"
    assert event.payload == payload


def test_paid_and_confirmed_are_the_same_conversion_and_refund_is_another():
    confirmed = order_event("order_confirmed", order_payload())
    paid = order_event("order_fully_paid", order_payload("OrderFullyPaid"))
    refund = order_event("order_fully_refunded", order_payload("OrderFullyRefunded", refunded=25))
    assert confirmed.external_id == paid.external_id == ORDER_ID
    assert (refund.kind, refund.external_id, refund.order_id) == (
        "refund",
        f"{ORDER_ID}:refund",
        ORDER_ID,
    )
    assert refund.amount is None  # fully refunded: the whole order, whatever totalRefunded says
    assert refund.occurred_at.isoformat() == "2026-08-03T10:00:05.123456+00:00"


def test_guest_order_uses_user_email_and_referral_code_key():
    payload = order_payload(user_email="guest@example.com", metadata={"referral_code": "ZZ99"})
    event = order_event("order_confirmed", payload)
    assert (event.customer_external_id, event.customer_email) == (None, "guest@example.com")
    assert event.ref_code == "ZZ99"


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        (19.99, "USD", 1999),
        (0.07, "USD", 7),
        (1234, "JPY", 1234),
        (12.345, "KWD", 12345),
        ("100.10", "eur", 10010),
        (0, "USD", 0),
    ],
)
def test_amounts_convert_to_minor_units_exactly(amount, currency, minor):
    assert minor_units(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"), [(0.30000000000000004, "USD"), (12.5, "JPY"), ("NaN", "USD")]
)
def test_amounts_that_are_not_whole_minor_units_are_refused(amount, currency):
    with pytest.raises(InvalidSaleorPayload):
        minor_units(amount, currency)


@pytest.mark.parametrize(
    ("claimed", "same"),
    [
        ("https://Shop.Example.com/graphql", True),
        ("https://shop.example.com:443/graphql/", True),
        ("http://shop.example.com/graphql/", False),
        ("https://evil.example.com/graphql/", False),
        ("https://shop.example.com.evil.example/graphql/", False),
        ("https://shop.example.com/other/graphql/", False),
        ("https://shop.example.com:99999/graphql/", False),
    ],
)
def test_api_url_header_names_the_configured_instance_or_not(claimed, same):
    assert same_instance(claimed, "https://shop.example.com/graphql/") is same


# --- Signatures (docs/guarantees.md #1) ----------------------------------------------------


def test_unhandled_event_is_answered_2xx_and_nothing_is_stored(app, client, shop, shop_key):
    response = deliver(client, {"product": {"id": "UHJvZHVjdDox"}}, key=shop_key, event="x")
    assert response.status_code == 200
    assert response.get_json() == {"outcome": "ignored", "reason": "unhandled_event_type"}
    assert conversions(app) == 0


def test_missing_signature_is_401_and_nothing_is_recorded(app, client, shop):
    response = deliver(client, order_payload(), key=None)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert conversions(app) == 0
    assert shop.jwks_requests == 0


@pytest.mark.parametrize(
    "signature",
    [
        "not-a-jws",
        "a.b",
        "..",
        "!!!..!!!",
        forged_jws({"alg": "RS256"}).replace("..", ".e30."),  # attached payload
        "bm90IGpzb24..c2ln",  # header is not JSON
        forged_jws(["RS256"]),  # header is not an object
        forged_jws({"alg": "RS256", "b64": False, "crit": ["b64"]}),  # no kid
        forged_jws({"alg": "RS256", "b64": False, "crit": ["b64"], "kid": 7}),
        forged_jws({"alg": "RS256", "kid": "k"}),  # b64 not false: not a detached payload
        forged_jws({"alg": "RS256", "b64": False, "crit": ["b64", "exp"], "kid": "k"}),
        "x" * 5000 + "..y",
        "é..é",
    ],
)
def test_malformed_signature_is_401_never_500(app, client, shop, signature):
    response = deliver(client, order_payload(), key=None, signature=signature)
    assert response.status_code == 401
    assert conversions(app) == 0
    assert shop.jwks_requests == 0


def test_alg_none_is_refused_without_fetching_keys(app, client, shop, shop_key):
    header = {"alg": "none", "b64": False, "crit": ["b64"], "kid": shop_key.kid}
    response = deliver(client, order_payload(), key=None, signature=forged_jws(header))
    assert response.status_code == 401
    assert conversions(app) == 0
    assert shop.jwks_requests == 0


def test_hs256_keyed_with_the_public_key_is_refused(app, client, shop, shop_key):
    body = json.dumps(order_payload()).encode()
    public = json.dumps(shop_key.public_jwk()).encode()
    response = deliver(client, body, key=None, signature=hs256_jws(body, public, shop_key.kid))
    assert response.status_code == 401
    assert conversions(app) == 0
    assert shop.jwks_requests == 0


def test_signature_by_another_key_under_the_shops_kid_is_401(app, client, shop, shop_key):
    impostor = SigningKey(kid=shop_key.kid)
    response = deliver(client, order_payload(), key=impostor)
    assert response.status_code == 401
    assert conversions(app) == 0


def test_body_changed_by_one_byte_is_401(app, client, shop, shop_key):
    body = json.dumps(order_payload(amount=25.0)).encode()
    signature = shop_key.sign(body)
    tampered = body.replace(b"25.0", b"95.0")
    assert len(tampered) == len(body) and tampered != body
    response = deliver(client, tampered, key=None, signature=signature)
    assert response.status_code == 401
    assert conversions(app) == 0


def test_signature_is_checked_before_the_body_is_parsed(app, client, shop, shop_key):
    unsigned = deliver(client, b"{not json", key=None, signature="bad..sig")
    signed = deliver(client, b"{not json", key=shop_key)
    assert (unsigned.status_code, signed.status_code) == (401, 422)
    assert conversions(app) == 0


def test_header_event_must_match_the_signed_body(app, client, shop, shop_key):
    # The Saleor-Event header is not signed: a signed purchase replayed as a "refund".
    response = deliver(client, order_payload(), key=shop_key, event="order_fully_refunded")
    assert response.status_code == 422
    assert conversions(app) == 0


def test_api_url_of_another_instance_is_401_and_it_gets_no_request(app, client, shop, attacker_key):
    with JwksServer([attacker_key.public_jwk()]) as foreign:
        response = deliver(
            client, order_payload(), key=attacker_key, **{"Saleor-Api-Url": foreign.api_url}
        )
        assert response.status_code == 401
        assert foreign.requests == []
    assert shop.jwks_requests == 0
    assert conversions(app) == 0


def test_foreign_key_is_looked_for_only_at_the_configured_shop(app, client, shop, attacker_key):
    with JwksServer([attacker_key.public_jwk()]) as foreign:
        response = deliver(client, order_payload(), key=attacker_key)
        assert response.status_code == 401
        assert foreign.requests == []
    assert shop.jwks_requests == 1
    assert conversions(app) == 0


def test_keys_are_cached_between_webhooks(client, shop, shop_key):
    for _ in range(3):
        response = deliver(client, {}, key=shop_key, event="product_updated")
        assert response.status_code == 200
    assert shop.jwks_requests == 1


def test_matching_api_url_header_is_accepted(client, shop, shop_key):
    headers = {"Saleor-Api-Url": shop.api_url.rstrip("/")}
    response = deliver(client, {}, key=shop_key, event="product_updated", **headers)
    assert response.status_code == 200


def test_signature_from_older_saleor_without_crit_is_accepted(client, shop, shop_key):
    body = b"{}"
    signature = shop_key.sign_without_crit(body)
    response = deliver(client, body, key=None, signature=signature, event="product_updated")
    assert response.status_code == 200


def test_unknown_kid_is_refetched_exactly_once(app, client, shop, shop_key):
    assert deliver(client, {}, key=shop_key, event="product_updated").status_code == 200
    stranger = SigningKey()
    for _ in range(3):
        assert deliver(client, order_payload(), key=stranger).status_code == 401
    assert shop.jwks_requests == 2
    assert conversions(app) == 0


def test_rotated_key_is_found_by_one_refetch(client, shop, shop_key):
    assert deliver(client, {}, key=shop_key, event="product_updated").status_code == 200
    rotated = SigningKey()
    shop.keys.append(rotated.public_jwk())
    for _ in range(2):
        assert deliver(client, {}, key=rotated, event="product_updated").status_code == 200
    assert shop.jwks_requests == 2


def test_refetches_are_spaced_out_whatever_the_kids(app, client, shop, shop_key):
    assert deliver(client, {}, key=shop_key, event="product_updated").status_code == 200
    assert deliver(client, order_payload(), key=SigningKey()).status_code == 401
    # A second invented kid within REFETCH_INTERVAL_SECONDS: no request, a retryable answer.
    response = deliver(client, order_payload(), key=SigningKey())
    assert response.status_code == 503
    assert shop.jwks_requests == 2
    assert jwks.REFETCH_INTERVAL_SECONDS >= 5
    assert conversions(app) == 0


def test_unreachable_jwks_is_503_so_saleor_retries(app, client, shop, shop_key):
    with JwksServer() as gone:
        dead_url = gone.api_url
    app.config["SALEOR_API_URL"] = dead_url
    response = deliver(client, order_payload(), key=shop_key)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "signing_keys_unavailable"
    assert conversions(app) == 0


def test_without_saleor_api_url_the_endpoint_says_so(app, client, shop, shop_key):
    app.config["SALEOR_API_URL"] = None
    response = deliver(client, order_payload(), key=shop_key)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "saleor_not_configured"
    assert conversions(app) == 0
    assert shop.jwks_requests == 0


def test_legacy_hmac_only_when_a_secret_is_configured(client, app, shop):
    body = b"{}"
    signature = hmac.new(b"legacy-secret", body, hashlib.sha256).hexdigest()
    refused = deliver(client, body, key=None, signature=signature, event="product_updated")
    app.config["SALEOR_WEBHOOK_SECRET"] = "legacy-secret"
    accepted = deliver(client, body, key=None, signature=signature, event="product_updated")
    wrong = deliver(client, body, key=None, signature="0" * 64, event="product_updated")
    assert (refused.status_code, accepted.status_code, wrong.status_code) == (401, 200, 401)


# --- Conversions and rewards (docs/guarantees.md #2, #3) ----------------------------------


def rewards_written(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.scalars(select(Reward).order_by(Reward.role))
        return [(r.beneficiary_id, r.role, r.amount, r.currency, r.status, r.reason) for r in rows]


def stored(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.scalars(select(Conversion).order_by(Conversion.id))
        return [(c.kind, c.external_id, c.outcome, c.reason, c.amount) for c in rows]


@pytest.fixture
def friend_order(make_participant):
    """A referred friend's 25.00 order, signed in: (referrer, friend, payload)."""
    ann = make_participant("Ann Lee")
    bob = make_participant("Bob Baker", invited_by=ann["code"])
    now = utcnow().isoformat()
    payload = order_payload(
        user={"id": "VXNlcjo0Mg==", "email": bob["email"]}, created=now, issued_at=now
    )
    return ann, bob, payload


def test_friends_purchase_writes_one_set_of_pending_rewards(app, client, shop_key, friend_order):
    ann, bob, payload = friend_order
    first = deliver(client, payload, key=shop_key)
    again = deliver(client, payload, key=shop_key)
    paid = deliver(
        client, {**payload, "__typename": "OrderFullyPaid"}, key=shop_key, event="ORDER_FULLY_PAID"
    )
    assert first.status_code == again.status_code == paid.status_code == 200
    assert first.get_json()["outcome"] == "accepted"
    assert (
        again.get_json()
        == paid.get_json()
        == {
            "outcome": "duplicate",
            "reason": "already_received",
        }
    )
    assert stored(app) == [("purchase", ORDER_ID, "accepted", None, 2500)]
    assert rewards_written(app) == [
        (bob["id"], "referee", 500, "USD", "pending", None),
        (ann["id"], "referrer", 1000, "USD", "pending", None),
    ]


def test_refund_cancels_the_pending_rewards(app, client, shop_key, friend_order):
    _, _, payload = friend_order
    assert deliver(client, payload, key=shop_key).get_json()["outcome"] == "accepted"
    refund = {**payload, "__typename": "OrderFullyRefunded"}
    refund["order"] = {**payload["order"], "totalRefunded": {"amount": 25.0, "currency": "USD"}}
    for _ in range(2):
        response = deliver(client, refund, key=shop_key, event="order_fully_refunded")
        assert response.status_code == 200
    assert response.get_json()["outcome"] == "duplicate"
    assert [r[4:] for r in rewards_written(app)] == [("cancelled", "refunded")] * 2
    assert [c[:3] for c in stored(app)] == [
        ("purchase", ORDER_ID, "accepted"),
        ("refund", f"{ORDER_ID}:refund", "accepted"),
    ]


def test_refund_before_the_paid_event_leaves_nothing_payable(app, client, shop_key, friend_order):
    _, _, payload = friend_order
    refund = {**payload, "__typename": "OrderRefunded"}
    assert deliver(client, refund, key=shop_key, event="order_refunded").status_code == 200
    response = deliver(client, payload, key=shop_key)
    assert response.get_json() == {"outcome": "ignored", "reason": "refunded"}
    assert rewards_written(app) == []


def test_purchase_by_unknown_customer_is_stored_unattributed(app, client, shop_key):
    payload = order_payload(user={"id": "VXNlcjo5OQ==", "email": "stranger@example.com"})
    response = deliver(client, payload, key=shop_key)
    assert response.status_code == 200
    assert response.get_json() == {"outcome": "unattributed", "reason": "unknown_customer"}
    assert stored(app) == [("purchase", ORDER_ID, "unattributed", "unknown_customer", 2500)]
    assert rewards_written(app) == []


def test_guest_order_with_a_ref_code_in_metadata_is_attributed(
    app, client, shop_key, make_participant
):
    ann = make_participant("Ann Lee")
    now = utcnow().isoformat()
    payload = order_payload(
        user_email="carol@example.com", metadata={"ref_code": ann["code"]}, created=now
    )
    response = deliver(client, payload, key=shop_key)
    assert response.get_json()["outcome"] == "accepted"
    assert [(r[1], r[2]) for r in rewards_written(app)] == [("referee", 500), ("referrer", 1000)]
    assert rewards_written(app)[1][0] == ann["id"]


def test_database_down_is_5xx_so_saleor_retries(shop, shop_key):
    down = create_app(
        app_config("postgresql://postgres@127.0.0.1:9/none", SALEOR_API_URL=shop.api_url)
    )
    try:
        response = deliver(down.test_client(), order_payload(), key=shop_key)
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "database_unavailable"
    finally:
        close(down)


def test_refund_after_payout_writes_one_reversing_entry_each(app, client, shop_key, friend_order):
    _, _, payload = friend_order
    assert deliver(client, payload, key=shop_key).get_json()["outcome"] == "accepted"
    with app.app_context():
        db.session.execute(update(Reward).values(status="paid", paid_at=utcnow()))
        db.session.commit()
    refund = {**payload, "__typename": "OrderFullyRefunded"}
    for _ in range(2):
        assert (
            deliver(client, refund, key=shop_key, event="order_fully_refunded").status_code == 200
        )
    amounts = sorted((r[1], r[2], r[4]) for r in rewards_written(app))
    assert amounts == [
        ("referee", -500, "approved"),
        ("referee", 500, "paid"),
        ("referrer", -1000, "approved"),
        ("referrer", 1000, "paid"),
    ]
