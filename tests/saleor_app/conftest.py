"""Fixtures of the tests that pay through the Saleor stand-in: the shop (one per module), the
app's settings pointing at it, and the app installed in it with the referrer paid in gift
cards."""

import json

import pytest

from tests import databases
from tests.helpers import configure
from tests.saleor_standin import SaleorStandIn, saleor_schema


@pytest.fixture(scope="module")
def shop():
    try:
        saleor_schema()
    except OSError as error:
        databases.service_missing("Saleor's schema (../shared/saleor/schema.graphql)", error)
    with SaleorStandIn() as standin:
        yield standin


@pytest.fixture
def config_overrides(shop):
    return {
        "SALEOR_API_URL": shop.api_url,
        "PUBLIC_URL": "https://refer.example.com",
        "MAIL_BACKEND": "locmem",
    }


@pytest.fixture
def installed(app, client, shop):
    """The app installed in the stand-in; the referrer is paid in gift cards."""
    shop.reset()
    answer = client.post(
        "/saleor/register",
        data=json.dumps({"auth_token": shop.issue_token()}),
        content_type="application/json",
        headers={"saleor-api-url": shop.api_url},
    )
    assert answer.status_code == 200
    configure(app, referrer_reward_kind="gift_card")
    yield shop
    shop.reset()
