"""InviteLoop as a Saleor App: the manifest, the token registration and uninstall, against a
local Saleor stand-in built from Saleor's schema (docs/guarantees.md #38)."""

import json
import logging

import pytest
from graphql import parse, validate
from sqlalchemy import select

from app import create_app
from config import ConfigError, saleor_dashboard_origins
from extensions import db
from models import SaleorInstallation
from rewards import saleor_install
from rewards.saleor_queries import OPERATIONS, SUBSCRIPTIONS
from tests import databases, factories
from tests.apps import app_config
from tests.helpers import count, log_in, text_of
from tests.saleor_standin import SaleorStandIn, saleor_schema
from tests.webhook_signing import SigningKey

PUBLIC_URL = "https://refer.example.com"


@pytest.fixture(scope="module")
def schema():
    try:
        return saleor_schema()
    except OSError as error:
        databases.service_missing("Saleor's schema (../shared/saleor/schema.graphql)", error)


@pytest.fixture(scope="module")
def shop(schema):
    with SaleorStandIn() as standin:
        yield standin


@pytest.fixture(autouse=True)
def fresh_shop(shop):
    shop.reset()
    yield shop
    shop.reset()


@pytest.fixture
def config_overrides(shop):
    return {"SALEOR_API_URL": shop.api_url, "PUBLIC_URL": PUBLIC_URL}


def register(client, token, api_url, **headers):
    return client.post(
        "/saleor/register",
        data=json.dumps({"auth_token": token}),
        content_type="application/json",
        headers={"saleor-api-url": api_url, "saleor-domain": "shop.example.com", **headers},
    )


def installations(app) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.scalars(select(SaleorInstallation))
        return [(row.api_url, row.app_id) for row in rows]


def app_event(client, shop, payload, *, event="APP_DELETED", signature=None, **headers):
    body = json.dumps(payload).encode()
    sent = {
        "Saleor-Event": event,
        "Saleor-Signature": signature or shop.sign(body),
        "Saleor-Api-Url": shop.api_url,
        **headers,
    }
    return client.post("/saleor/events", data=body, headers=sent, content_type="application/json")


# --- The manifest -------------------------------------------------------------------------


def test_manifest_names_the_app_its_permissions_and_urls_under_public_url(client):
    manifest = client.get("/saleor/manifest").get_json()
    assert manifest["id"] and manifest["version"] and manifest["name"] == "InviteLoop"
    assert manifest["about"]
    assert set(manifest["permissions"]) == {
        "MANAGE_ORDERS",
        "MANAGE_USERS",
        "MANAGE_GIFT_CARD",
        "MANAGE_DISCOUNTS",
    }
    assert manifest["tokenTargetUrl"] == f"{PUBLIC_URL}/saleor/register"
    assert manifest["appUrl"] == f"{PUBLIC_URL}/saleor/app"
    targets = {
        event: hook["targetUrl"] for hook in manifest["webhooks"] for event in hook["asyncEvents"]
    }
    order_url = f"{PUBLIC_URL}/webhooks/order-confirmed"
    events_url = f"{PUBLIC_URL}/saleor/events"
    assert targets == {
        "ORDER_CONFIRMED": order_url,
        "ORDER_FULLY_PAID": order_url,
        "ORDER_REFUNDED": order_url,
        "ORDER_FULLY_REFUNDED": order_url,
        "CUSTOMER_CREATED": events_url,
        "APP_DELETED": events_url,
    }


def test_every_manifest_subscription_is_valid_against_saleor_schema(client, schema):
    for hook in client.get("/saleor/manifest").get_json()["webhooks"]:
        assert validate(schema, parse(hook["query"])) == [], hook["name"]


def test_each_subscription_selects_the_events_its_webhook_subscribes_to(client):
    """Saleor sends exactly what the query selects: an event without its fragment would
    arrive as an empty object."""
    for hook in client.get("/saleor/manifest").get_json()["webhooks"]:
        for event in hook["asyncEvents"]:
            typename = "".join(word.title() for word in event.split("_"))
            assert f"on {typename} " in hook["query"], (hook["name"], event)


@pytest.mark.parametrize("name", sorted({**OPERATIONS, **SUBSCRIPTIONS}))
def test_every_document_sent_to_saleor_is_valid_against_its_schema(schema, name):
    document = {**OPERATIONS, **SUBSCRIPTIONS}[name]
    assert validate(schema, parse(document)) == []


def test_a_field_saleor_lacks_is_caught_by_the_contract(schema):
    broken = OPERATIONS["CREATE_GIFT_CARD"].replace("isActive", "isEnabled")
    assert validate(schema, parse(broken)) != []


# --- Registration -------------------------------------------------------------------------


def test_a_token_from_the_configured_saleor_is_checked_then_stored_encrypted(app, client, shop):
    token = shop.issue_token()
    answer = register(client, token, shop.api_url)
    assert answer.status_code == 200
    assert installations(app) == [(shop.api_url, shop.app_id)]
    assert shop.log == ["InviteLoopWhoAmI: ok"]
    with app.app_context():
        stored = db.session.scalar(select(SaleorInstallation.token_ciphertext))
        assert token not in stored
        assert saleor_install.connection() == saleor_install.Connection(shop.api_url, token)


def test_the_token_never_reaches_the_log(app, client, shop, caplog):
    caplog.set_level(logging.DEBUG)
    token = shop.issue_token()
    assert register(client, token, shop.api_url).status_code == 200
    assert token not in caplog.text


@pytest.mark.parametrize(
    "api_url", ["https://evil.example/graphql/", "http://127.0.0.1:1/graphql/", ""]
)
def test_a_saleor_not_configured_here_is_refused_and_not_called(app, client, shop, api_url):
    answer = register(client, shop.issue_token(), api_url)
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "saleor_not_allowed"
    assert installations(app) == [] and shop.log == []


def test_a_token_saleor_does_not_accept_is_not_stored(app, client, shop):
    answer = register(client, "made-up-token", shop.api_url)
    assert answer.status_code == 403
    assert "Saleor did not accept the token" in answer.get_json()["error"]["message"]
    assert installations(app) == []


def test_an_unreachable_saleor_stores_nothing(app, client, shop):
    shop.fail = "error"
    answer = register(client, shop.issue_token(), shop.api_url)
    assert answer.status_code == 403
    assert installations(app) == []


@pytest.mark.parametrize("body", [b"", b"[]", b'{"auth_token": 5}', b'{"auth_token": ""}'])
def test_a_malformed_registration_is_400(app, client, shop, body):
    answer = client.post(
        "/saleor/register",
        data=body,
        content_type="application/json",
        headers={"saleor-api-url": shop.api_url},
    )
    assert answer.status_code == 400
    assert installations(app) == [] and shop.log == []


def test_a_stream_of_made_up_tokens_is_throttled_before_it_reaches_saleor(app, client, shop):
    app.config["SALEOR_REGISTER_LIMITS"] = "3/minute"
    answers = [register(client, f"made-up-{n}", shop.api_url).status_code for n in range(5)]
    assert answers == [403, 403, 403, 429, 429]
    assert len(shop.log) == 3 and installations(app) == []


def test_a_saleor_on_the_allow_list_may_install_too(app, client, shop):
    app.config["SALEOR_API_URL"] = "https://main-shop.example.com/graphql/"
    app.config["SALEOR_ALLOWED_API_URLS"] = f"https://other.example.com/graphql/, {shop.api_url}"
    assert register(client, shop.issue_token(), shop.api_url).status_code == 200
    assert installations(app) == [(shop.api_url, shop.app_id)]


def test_an_allow_list_entry_that_is_not_a_url_stops_the_start():
    with pytest.raises(ConfigError, match="SALEOR_ALLOWED_API_URLS"):
        create_app(app_config("sqlite://", SALEOR_ALLOWED_API_URLS="shop.example.com"))


def test_a_reinstall_replaces_the_token_of_the_one_installation(app, client, shop):
    register(client, shop.issue_token(), shop.api_url)
    second = shop.issue_token()
    assert register(client, second, shop.api_url).status_code == 200
    assert count(app, SaleorInstallation) == 1
    with app.app_context():
        assert saleor_install.connection().token == second


def test_the_database_allows_one_installation_per_saleor(app):
    with app.app_context():
        for _ in range(2):
            db.session.add(
                SaleorInstallation(api_url="https://a/graphql/", app_id="x", token_ciphertext="y")
            )
        with pytest.raises(Exception, match="(?i)unique"):
            db.session.flush()
        db.session.rollback()


def test_a_changed_key_makes_the_token_unreadable_not_wrong(app, client, shop):
    register(client, shop.issue_token(), shop.api_url)
    app.config["SALEOR_TOKEN_KEY"] = "another key entirely"
    with app.app_context(), pytest.raises(saleor_install.TokenUnreadable):
        saleor_install.connection()


# --- Uninstall ----------------------------------------------------------------------------


def test_a_signed_app_deleted_forgets_the_token(app, client, shop):
    register(client, shop.issue_token(), shop.api_url)
    answer = app_event(client, shop, {"__typename": "AppDeleted", "app": {"id": shop.app_id}})
    assert answer.status_code == 200
    assert answer.get_json()["reason"] == "uninstalled"
    assert installations(app) == []


def test_a_forged_app_deleted_is_401_and_the_token_stays(app, client, shop):
    register(client, shop.issue_token(), shop.api_url)
    forged = SigningKey(kid=shop.key.kid).sign(b'{"__typename": "AppDeleted"}')
    answer = app_event(client, shop, {"__typename": "AppDeleted"}, signature=forged)
    unsigned = client.post("/saleor/events", data=b"{}", headers={"Saleor-Event": "APP_DELETED"})
    assert (answer.status_code, unsigned.status_code) == (401, 401)
    assert installations(app) == [(shop.api_url, shop.app_id)]


def test_an_app_deleted_header_on_another_event_is_refused(app, client, shop):
    register(client, shop.issue_token(), shop.api_url)
    answer = app_event(client, shop, {"__typename": "CustomerCreated", "user": None})
    assert answer.status_code == 422
    assert installations(app) == [(shop.api_url, shop.app_id)]


def test_another_apps_deletion_changes_nothing(app, client, shop):
    register(client, shop.issue_token(), shop.api_url)
    answer = app_event(client, shop, {"__typename": "AppDeleted", "app": {"id": "QXBwOjk5"}})
    assert answer.get_json()["reason"] == "another_app"
    assert installations(app) == [(shop.api_url, shop.app_id)]


def test_customer_created_is_acknowledged_without_side_effects(app, client, shop):
    answer = app_event(
        client, shop, {"__typename": "CustomerCreated", "user": None}, event="CUSTOMER_CREATED"
    )
    assert answer.status_code == 200 and installations(app) == []


# --- What people see ----------------------------------------------------------------------


def test_the_app_page_shows_the_connection_and_links_to_the_staff_panel(app, client, shop):
    before = text_of(client.get("/saleor/app"))
    register(client, shop.issue_token(), shop.api_url)
    after = client.get("/saleor/app")
    assert "Not installed" in before and "Connected" not in before
    assert "Connected" in text_of(after) and shop.api_url in text_of(after)
    assert b'href="/admin/integrations"' in after.data


def test_only_the_saleor_dashboard_may_frame_the_app_page(app, client, shop):
    """The dashboard opens appUrl in a frame: SALEOR_API_URL's origin (where Saleor Cloud
    serves its dashboard) and SALEOR_DASHBOARD_ORIGINS may frame it; every other page stays
    unframable."""
    shop_origin = shop.api_url.split("/graphql")[0]
    page = client.get("/saleor/app")
    assert f"frame-ancestors {shop_origin}" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    landing = client.get("/")
    assert "frame-ancestors 'none'" in landing.headers["Content-Security-Policy"]
    assert landing.headers["X-Frame-Options"] == "DENY"

    apart = {"SALEOR_API_URL": shop.api_url, "SALEOR_DASHBOARD_ORIGINS": "https://Dash.test/"}
    assert saleor_dashboard_origins(apart) == (shop_origin, "https://dash.test")
    assert (
        saleor_dashboard_origins({"SALEOR_API_URL": None, "SALEOR_DASHBOARD_ORIGINS": None}) == ()
    )
    with pytest.raises(ConfigError, match="SALEOR_DASHBOARD_ORIGINS: 'dash.test/app'"):
        saleor_dashboard_origins(
            {"SALEOR_API_URL": None, "SALEOR_DASHBOARD_ORIGINS": "dash.test/app"}
        )


def test_the_staff_integrations_screen_shows_the_connection(app, client, shop):
    with app.app_context():
        admin = factories.staff("admin")
    register(client, shop.issue_token(), shop.api_url)
    log_in(client, admin["email"])
    page = text_of(client.get("/admin/integrations"))
    assert "Saleor app" in page and "Connected" in page
