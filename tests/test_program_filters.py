"""A program's eligibility filters: channels, countries and categories (docs/guarantees.md #40),
through the events API, Saleor's order webhook, the program form and its preview."""

import json

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import AuditLog, Conversion, ProgramFilter, Reward
from referral.services import default_program
from rewards.saleor import SUBSCRIPTION_QUERY
from tests import factories
from tests.events_api import SECRET, purchase, signed_delivery
from tests.helpers import configure, form_fields, log_in, text_of
from tests.jwks_server import JwksServer
from tests.webhook_signing import SigningKey

# --- what a sender sends --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_key():
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
    return {"EVENTS_WEBHOOK_SECRET": SECRET, "SALEOR_API_URL": shop.api_url}


@pytest.fixture
def pair(make_participant):
    """Rita invited Fred; the default program pays 10.00 (Rita) and 5.00 (Fred) from 20.00."""
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    return rita, fred


def send(client, event: dict):
    body, headers = signed_delivery(event)
    return client.post("/api/v1/events", data=body, headers=headers)


def saleor_order(email, *, shipping=None, billing=None, channel="web", lines=(), total=80.0):
    """An ORDER_CONFIRMED body as Saleor sends it for SUBSCRIPTION_QUERY."""
    return {
        "__typename": "OrderConfirmed",
        "issuedAt": "2026-08-03T10:00:05+00:00",
        "order": {
            "id": "T3JkZXI6ZmlsdGVycw==",
            "number": "7",
            "created": "2026-08-03T10:00:00+00:00",
            "checkoutId": None,
            "userEmail": email,
            "user": None,
            "total": {"gross": {"amount": total, "currency": "USD"}},
            "totalRefunded": {"amount": 0.0, "currency": "USD"},
            "metadata": [],
            "channel": {"slug": channel},
            "shippingAddress": shipping and {"country": {"code": shipping}},
            "billingAddress": billing and {"country": {"code": billing}},
            "lines": [
                {
                    "totalPrice": {"gross": {"amount": amount, "currency": "USD"}},
                    "variant": {"product": {"category": category and {"slug": category}}},
                }
                for category, amount in lines
            ],
        },
    }


def deliver(client, payload: dict, key: SigningKey):
    body = json.dumps(payload).encode()
    headers = {"Saleor-Event": "order_confirmed", "Saleor-Signature": key.sign(body)}
    return client.post(
        "/webhooks/order-confirmed", data=body, headers=headers, content_type="application/json"
    )


def earned(app, user_id: int) -> list[int]:
    with app.app_context():
        query = select(Reward.amount).where(Reward.beneficiary_id == user_id)
        return list(db.session.scalars(query.order_by(Reward.id)))


def stored(app) -> list[tuple]:
    with app.app_context():
        query = select(
            Conversion.outcome,
            Conversion.reason,
            Conversion.channel,
            Conversion.country,
            Conversion.eligible_amount,
        )
        return [tuple(row) for row in db.session.execute(query.order_by(Conversion.id))]


TEN_PERCENT = {"referrer_reward_basis": "percent", "referrer_reward_value": 1000}


# --- the events API -------------------------------------------------------------------------


def test_an_order_to_a_country_outside_the_list_pays_nothing_and_says_which(app, client, pair):
    rita, fred = pair
    configure(app, eligible_countries=["DE", "FR"])
    answer = send(client, purchase(fred["email"], country="us")).get_json()
    assert answer == {"outcome": "ignored", "reason": "not an eligible country: US"}
    assert earned(app, rita["id"]) == []
    answer = send(client, purchase(fred["email"], order="order-2", country="DE")).get_json()
    assert answer == {"outcome": "accepted", "reason": None}
    assert earned(app, rita["id"]) == [1000]
    assert [row[3] for row in stored(app)] == ["US", "DE"]


def test_a_channel_filter_refuses_an_order_that_names_no_channel(app, client, pair):
    rita, fred = pair
    configure(app, eligible_channels=["web-eu"])
    answer = send(client, purchase(fred["email"])).get_json()
    assert answer == {"outcome": "ignored", "reason": "not an eligible channel: none given"}
    answer = send(client, purchase(fred["email"], order="order-2", channel="Web-EU")).get_json()
    assert answer["outcome"] == "accepted"
    assert earned(app, rita["id"]) == [1000]


def test_only_lines_in_eligible_categories_count_toward_percent_and_minimum(app, client, pair):
    rita, fred = pair
    configure(app, eligible_categories=["shoes"], **TEN_PERCENT)
    hats_only = purchase(fred["email"], amount=8000, lines=[{"category": "hats", "amount": 8000}])
    assert send(client, hats_only).get_json()["reason"] == "no line in an eligible category"
    cheap_shoes = [{"category": "shoes", "amount": 1500}, {"category": "hats", "amount": 6500}]
    answer = send(client, purchase(fred["email"], "order-2", 8000, lines=cheap_shoes)).get_json()
    assert answer["reason"] == "below_minimum"  # 15.00 of shoes is under the 20.00 minimum
    lines = [{"category": "shoes", "amount": 3000}, {"category": "hats", "amount": 5000}]
    answer = send(client, purchase(fred["email"], "order-3", 8000, lines=lines)).get_json()
    assert answer == {"outcome": "accepted", "reason": None}
    assert earned(app, rita["id"]) == [300]  # 10 % of the 30.00 of shoes, not of 80.00
    assert [row[4] for row in stored(app)] == [0, 1500, 3000]


def test_a_category_filter_refuses_an_order_without_lines(app, client, pair):
    rita, fred = pair
    configure(app, eligible_categories=["shoes"])
    answer = send(client, purchase(fred["email"])).get_json()
    assert answer == {"outcome": "ignored", "reason": "no order lines to check categories"}
    assert earned(app, rita["id"]) == []


def test_without_filters_the_channel_and_country_are_kept_and_change_nothing(app, client, pair):
    rita, fred = pair
    answer = send(client, purchase(fred["email"], channel="web", country="JP")).get_json()
    assert answer["outcome"] == "accepted"
    assert stored(app) == [("accepted", None, "web", "JP", None)]
    assert earned(app, rita["id"]) == [1000]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"country": "Germany"}, "country must be an ISO 3166 alpha-2 code such as DE."),
        ({"channel": "web shop"}, "channel must be a slug such as default-channel."),
        ({"lines": {"shoes": 100}}, "lines must be a list (at most 500) of {category, amount}."),
        ({"lines": [{"category": "shoes"}]}, "Each line needs an amount"),
        ({"lines": [{"category": "shoes", "amount": 1.5}]}, "amount must be a whole number"),
    ],
)
def test_malformed_filter_fields_are_refused_and_store_nothing(client, app, pair, extra, message):
    _rita, fred = pair
    response = send(client, purchase(fred["email"], **extra))
    assert response.status_code == 422
    assert message in response.get_json()["error"]["message"]
    assert stored(app) == []


# --- Saleor's order webhook -----------------------------------------------------------------


def test_the_subscription_asks_saleor_for_channel_addresses_and_line_categories():
    for selection in ("channel { slug }", "shippingAddress { country { code } }", "category"):
        assert selection in SUBSCRIPTION_QUERY


def test_saleor_the_shipping_country_wins_over_the_billing_country(app, client, pair, shop_key):
    rita, fred = pair
    configure(app, eligible_countries=["DE"])
    order = saleor_order(fred["email"], shipping="FR", billing="DE", lines=[("shoes", 80.0)])
    answer = deliver(client, order, shop_key).get_json()
    assert answer == {"outcome": "ignored", "reason": "not an eligible country: FR"}
    assert earned(app, rita["id"]) == []


def test_saleor_an_order_with_nothing_to_ship_is_judged_by_billing(app, client, pair, shop_key):
    rita, fred = pair
    configure(app, eligible_countries=["DE"], eligible_channels=["web"])
    order = saleor_order(fred["email"], billing="DE", lines=[("e-books", 80.0)])
    assert deliver(client, order, shop_key).get_json()["outcome"] == "accepted"
    assert earned(app, rita["id"]) == [1000]


def test_saleor_lines_of_other_categories_do_not_count(app, client, pair, shop_key):
    rita, fred = pair
    configure(app, eligible_categories=["shoes"], **TEN_PERCENT)
    lines = [("shoes", 45.5), ("hats", 30.0), (None, 4.5)]  # a line whose product is gone
    answer = deliver(client, saleor_order(fred["email"], shipping="US", lines=lines), shop_key)
    assert answer.get_json() == {"outcome": "accepted", "reason": None}
    assert earned(app, rita["id"]) == [455]
    assert stored(app) == [("accepted", None, "web", "US", 4550)]


def test_saleor_an_order_in_another_channel_pays_nothing(app, client, pair, shop_key):
    rita, fred = pair
    configure(app, eligible_channels=["web-eu"])
    order = saleor_order(fred["email"], channel="pos", lines=[("shoes", 80.0)])
    answer = deliver(client, order, shop_key).get_json()
    assert answer == {"outcome": "ignored", "reason": "not an eligible channel: pos"}


# --- the program form, its audit log and the database ---------------------------------------


@pytest.fixture
def marketer(app, client):
    with app.app_context():
        person = factories.staff("marketer")
        program_id = default_program().id
    log_in(client, person["email"])
    return f"/admin/programs/{program_id}"


def filters_of(app) -> list[tuple[str, str]]:
    with app.app_context():
        query = select(ProgramFilter.kind, ProgramFilter.value)
        return sorted(tuple(row) for row in db.session.execute(query))


def test_staff_set_the_filters_in_the_form_and_the_change_is_audited(app, client, marketer):
    fields = form_fields(client.get(marketer).get_data(True), marketer)
    fields |= {
        "eligible_channels": "Web-EU, pos",
        "eligible_countries": "de fr, DE",
        "eligible_categories": "shoes",
    }
    assert client.post(marketer, data=fields).status_code == 302
    assert filters_of(app) == [
        ("category", "shoes"),
        ("channel", "pos"),
        ("channel", "web-eu"),
        ("country", "DE"),
        ("country", "FR"),
    ]
    shown = form_fields(client.get(marketer).get_data(True), marketer)
    assert shown["eligible_countries"] == "DE, FR"
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "program.update"))
        assert entry.after["eligible_countries"] == ["DE", "FR"]
        assert entry.before["eligible_countries"] == []
    fields["eligible_countries"] = "FR"
    assert client.post(marketer, data=fields).status_code == 302
    assert ("country", "DE") not in filters_of(app) and ("country", "FR") in filters_of(app)


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("eligible_countries", "DE, XX", "“XX” is not a two-letter ISO 3166 country code"),
        ("eligible_countries", "Germany", "“GERMANY” is not a two-letter ISO 3166 country code"),
        ("eligible_channels", "web/eu", "“web/eu” is not a channel slug"),
        ("eligible_categories", "summer shoes!", "“shoes!” is not a category slug"),
    ],
)
def test_a_bad_filter_value_is_named_and_nothing_is_saved(
    app, client, marketer, field, typed, message
):
    fields = form_fields(client.get(marketer).get_data(True), marketer)
    response = client.post(marketer, data=fields | {field: typed})
    assert response.status_code == 400
    assert message in text_of(response)
    assert filters_of(app) == []


def test_the_preview_names_the_filter_that_would_exclude_an_order(app, client, pair, marketer):
    _rita, fred = pair
    send(client, purchase(fred["email"], country="US"))
    fields = form_fields(client.get(marketer).get_data(True), marketer)
    answer = client.post(marketer, data=fields | {"eligible_countries": "DE", "preview": "1"})
    skipped = answer.get_data(True).split('id="preview-skipped">')[1].split("</ul>")[0]
    assert "1 — not an eligible country: US" in skipped
    assert filters_of(app) == []  # a preview saves nothing


def test_the_database_refuses_a_lower_case_country_and_a_repeated_value(app):
    with app.app_context():
        program_id = default_program().id
        db.session.add(ProgramFilter(program_id=program_id, kind="country", value="de"))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()
        for _ in range(2):
            db.session.add(ProgramFilter(program_id=program_id, kind="channel", value="web"))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()
