"""The OpenAPI document (`GET /api/openapi.json`, core/openapi.py) describes the code as it is
(docs/guarantees.md #22): every API and webhook rule of the URL map and nothing more, with
its methods; it is valid OpenAPI 3.1; its lists of allowed values are the code's; and
schemathesis's generated requests get answers that match it, never a 5xx, and never a 2xx for
a webhook post without a valid signature."""

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis.generation import GenerationMode
from sqlalchemy import func, select

from core import api_keys, openapi
from extensions import db
from models import ROLES, Conversion, User
from referral import leaderboard, timeline
from rewards import saleor, webhooks
from tests import api_fuzz, events_api
from tests.helpers import log_in
from tests.jwks_server import JwksServer
from tests.webhook_signing import SigningKey

STRIPE_SECRET = "whsec_stripe-test-secret"
# The rules the document must cover: the JSON API, partner endpoints and incoming webhooks.
API_RULE = re.compile(r"^(/api/|/codes/|/webhooks/|/referral/process_referral$)")
IGNORED_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def shop():
    with JwksServer([SigningKey().public_jwk()]) as server:
        yield server


@pytest.fixture
def config_overrides(shop):
    return {
        "SALEOR_API_URL": shop.api_url,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "EVENTS_WEBHOOK_SECRET": events_api.SECRET,
        "EVENTS_LIMITS": "100000/minute",
    }


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def routed_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if API_RULE.match(rule.rule):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            operations |= {(path, method) for method in rule.methods - IGNORED_METHODS}
    return operations


def test_every_api_and_webhook_route_is_documented_and_nothing_else(app):
    documented = documented_operations(openapi.document())
    routed = routed_operations(app)
    assert routed - documented == set(), "routes missing from core/openapi.py"
    assert documented - routed == set(), "documented operations the app does not route"
    # The contract's endpoints are all there (a rule renamed on both sides would pass above).
    for path in (
        "/api/v1/leaderboard",
        "/api/v1/me",
        "/api/v1/me/referrals",
        "/api/v1/me/tree",
        "/api/v1/me/rewards",
        "/api/v1/events",
        "/codes/issue",
        "/referral/process_referral",
        "/webhooks/stripe",
        "/webhooks/order-confirmed",
        "/api/openapi.json",
    ):
        assert path in {path for path, _ in documented}


def test_the_document_is_valid_openapi_3_1():
    document = openapi.document("https://refer.example.com/")
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "https://refer.example.com"}]


def test_it_is_served_as_json_naming_the_public_url(app, client):
    app.config["PUBLIC_URL"] = "https://refer.example.com"
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == openapi.document("https://refer.example.com")


def test_allowed_values_and_scopes_are_the_codes():
    document = openapi.document()
    schemas = document["components"]["schemas"]
    assert schemas["Leaderboard"]["properties"]["period"]["enum"] == list(leaderboard.PERIODS)
    step_states = schemas["TimelineStep"]["properties"]["state"]["enum"]
    assert step_states == [timeline.DONE, timeline.NOW, timeline.NEXT, timeline.STOPPED]
    typenames = sorted(typename for typename, _kind in saleor.HANDLED_EVENTS.values())
    assert sorted(schemas["SaleorEvent"]["properties"]["__typename"]["enum"]) == typenames
    for item in document["paths"].values():
        for operation in item.values():
            for requirement in operation["security"]:
                for scheme, scopes in requirement.items():
                    assert scheme in document["components"]["securitySchemes"]
                    if scheme.startswith("apiKey"):
                        assert set(scopes) <= set(api_keys.SCOPES)
                    if scheme == "session":
                        assert set(scopes) <= set(ROLES)
    issuing = document["paths"]["/codes/issue"]["post"]["security"]
    assert {"session": list(webhooks.CODE_ISSUING_ROLES)} in issuing


def test_errors_are_documented_once_in_the_shape_the_handler_writes(client):
    document = openapi.document()
    error = document["components"]["schemas"]["Error"]
    body = client.get("/api/v1/me").get_json()  # no session: 401 login_required
    assert set(body) == set(error["required"]) == {"error"}
    assert set(body["error"]) == set(error["properties"]["error"]["required"])
    for name, response in document["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }, name


def test_partner_endpoints_answer_json_errors_to_form_posts(client):
    """A form post without `Accept: application/json` still gets the documented JSON error."""
    for path in ("/codes/issue", "/referral/process_referral"):
        response = client.post(path, data={"email": "a@example.com"})
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "invalid_api_key"


def test_a_customer_id_longer_than_the_database_holds_is_refused(app, client, make_participant):
    """Found by schemathesis on PostgreSQL: a customer id of 101-200 characters passed the
    checks and failed the insert with a 500 (docs/guarantees.md #18)."""
    referrer = make_participant("Rita Referrer")
    with app.app_context():
        _row, key = api_keys.create_api_key("shop", list(api_keys.SCOPES))
        db.session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    too_long, longest = "c" * 101, "d" * 100
    purchase = {"type": "purchase", "id": "evt-long", "amount": 2500, "currency": "USD"}
    for path, body in (
        ("/api/v1/events", {**purchase, "customer": {"external_id": too_long}}),
        ("/codes/issue", {"external_id": too_long}),
        ("/referral/process_referral", {"external_id": too_long, "ref_code": referrer["code"]}),
    ):
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 422, path
        assert "at most 100 characters" in response.get_json()["error"]["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversion)) == 0
        assert db.session.scalar(select(func.count()).select_from(User)) == 1
    issued = client.post("/codes/issue", json={"external_id": longest}, headers=headers)
    assert issued.status_code == 200 and issued.get_json()["external_id"] == longest


# --- schemathesis -----------------------------------------------------------------------------

# Enough to reach every documented status of each operation, short enough for the suite.
EXAMPLES_PER_OPERATION = 25
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
    suppress_health_check=list(HealthCheck),
)


def fuzz(operation, mode: GenerationMode, statuses: set[int]) -> None:
    """Send one operation's generated requests; every answer must pass api_fuzz.CHECKS."""

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case):
        api_fuzz.credentials.apply(case)
        response = case.call_and_validate(checks=api_fuzz.CHECKS)
        statuses.add(response.status_code)

    call()


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_no_mismatch_and_no_unsigned_webhook_accepted(app):
    with app.app_context():
        seeded = api_fuzz.seed()
    browser = app.test_client()
    assert log_in(browser, seeded["email"], seeded["password"]).status_code == 302
    api_fuzz.credentials = api_fuzz.Credentials(
        seeded["api_key"], browser.get_cookie("session").value
    )
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Every operation but the document itself, which schemathesis leaves out.
    fuzzed = {(operation.path, operation.method.upper()) for operation in operations}
    assert fuzzed == documented_operations(openapi.document()) - {(openapi.DOCUMENT_PATH, "GET")}
    answered = {operation.label: set() for operation in operations}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, answered[operation.label])
    # The fuzzing reached past authentication where it had credentials.
    assert 200 in answered["GET /api/v1/me/tree"]
    assert 200 in answered["GET /api/v1/me/rewards"]
    assert 200 in answered["POST /codes/issue"]
    assert 200 in answered["POST /api/v1/events"]
    assert 404 in answered["GET /api/v1/events/{inbox_id}"]  # looked up: no such event of yours
    with app.app_context():
        db.session.remove()
