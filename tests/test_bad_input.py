"""Bad input gets a clear 4xx and changes nothing: NUL characters, page numbers and ids no
database integer holds, non-ASCII signature headers, deep or unstorable JSON in signed bodies,
and times outside any plausible range (docs/guarantees.md #18)."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.api_keys import create_api_key
from extensions import db
from models import AuditLog, Conversion, Lead, User
from tests import events_api, factories
from tests.helpers import count, csrf_token, is_logged_in, log_in
from tests.jwks_server import JwksServer
from tests.webhook_signing import SigningKey, stripe_signature

STRIPE_SECRET = "whsec_test_" + "7" * 32
HUGE = str(10**20)  # past a 64-bit integer
WIDE = str(2**31)  # past an id column (INTEGER), within 64 bits
ENDLESS = "9" * 5000  # past what Python reads as a number
JSON = "application/json"


@pytest.fixture(scope="module")
def shop_key():
    return SigningKey()


@pytest.fixture(scope="module")
def shop(shop_key):
    with JwksServer([shop_key.public_jwk()]) as server:
        yield server


@pytest.fixture
def config_overrides(shop):
    return {
        "EVENTS_WEBHOOK_SECRET": events_api.SECRET,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "SALEOR_API_URL": shop.api_url,
    }


def as_server_reads(text: str) -> str:
    """A header value as a WSGI server hands it over: the UTF-8 bytes read as Latin-1."""
    return text.encode().decode("latin-1")


def is_page(response) -> bool:
    return response.mimetype == "text/html"


def error_code(response) -> str:
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    return response.get_json()["error"]["code"]


def staff_client(app, role="admin"):
    with app.app_context():
        person = factories.staff(role)
    client = app.test_client()
    assert log_in(client, person["email"]).status_code == 302
    return client


def participant_client(app, make_participant):
    person = make_participant("Paula Pager")
    client = app.test_client()
    assert log_in(client, person["email"]).status_code == 302
    return client


def conversions(app) -> int:
    return count(app, Conversion)


# --- NUL characters in the URL and in forms ---------------------------------------------


PUBLIC_WITH_NUL = (
    "/?ref=AB%00CD",
    "/r/AB%00CD",
    "/auth/signup?ref=%00",
    "/auth/login?next=/%00",
    "/referral/leaderboard?period=%00",
    "/auth/reset?email=a%00b",
    "/health?x%00=1",
)
STAFF_WITH_NUL = (
    "/admin/participants?q=a%00b",
    "/admin/participants/suggest?q=a%00",
    "/admin/users?q=%00",
    "/admin/rewards?participant=a%00",
    "/admin/payouts?participant=%00",
    "/admin/leads?q=%00",
    "/admin/campaigns?q=%00",
    "/admin/programs?q=%00",
    "/admin/audit?actor=%00",
    "/admin/export/audit.csv?actor=%00",
    "/admin/export/participants.csv?q=%00",
)


def test_nul_in_a_query_string_is_a_400_page_for_people(app, client):
    staff = staff_client(app)
    for path, visitor in [(p, client) for p in PUBLIC_WITH_NUL] + [
        (p, staff) for p in STAFF_WITH_NUL
    ]:
        response = visitor.get(path)
        assert response.status_code == 400, path
        assert is_page(response), path


def test_nul_in_an_api_query_is_a_json_400(app, make_participant):
    client = participant_client(app, make_participant)
    for path in ("/api/v1/leaderboard?period=%00", "/api/v1/me/referrals?x=%00", "/api/v1/me"):
        response = client.get(path + ("&" if "?" in path else "?") + "q=%00")
        assert response.status_code == 400, path
        assert error_code(response) == "malformed_input"


def test_nul_in_a_form_field_is_400_and_changes_nothing(app, client, make_participant):
    person = make_participant("Nora Null")
    users = count(app, User)
    token = csrf_token(client, "/auth/signup")
    signup = client.post(
        "/auth/signup",
        data={
            "csrf_token": token,
            "name": "Eve\x00Null",
            "email": "eve@example.com",
            "password": "correct horse battery staple",
        },
    )
    assert signup.status_code == 400 and is_page(signup)
    assert count(app, User) == users
    login = client.post(
        "/auth/login",
        data={"csrf_token": token, "email": person["email"] + "\x00", "password": "x"},
    )
    assert login.status_code == 400
    assert not is_logged_in(client)
    reset = client.post("/auth/reset", data={"csrf_token": token, "email": "a\x00@example.com"})
    assert reset.status_code == 400


def test_nul_in_a_staff_form_is_400_and_writes_nothing(app):
    staff = staff_client(app)
    audit_before = count(app, AuditLog)
    response = staff.post(
        "/admin/leads/new",
        data={
            "csrf_token": csrf_token(staff, "/admin/leads/new"),
            "full_name": "Lead\x00Name",
            "email": "lead@example.com",
            "status": "potential",
        },
    )
    assert response.status_code == 400
    assert count(app, Lead) == 0
    assert count(app, AuditLog) == audit_before


# --- page numbers and ids past a database integer -----------------------------------------


PARTICIPANT_PAGED = (
    "/referral/dashboard",
    "/referral/leaderboard",
    "/referral/tree?level=1",
    "/rewards/",
)
PARTICIPANT_PAGED_API = (
    "/api/v1/leaderboard",
    "/api/v1/me/referrals",
    "/api/v1/me/rewards",
    "/api/v1/me/tree?level=1",
)
STAFF_PAGED = (
    "/admin/participants",
    "/admin/users",
    "/admin/rewards",
    "/admin/payouts",
    "/admin/conversions",
    "/admin/leads",
    "/admin/audit",
    "/admin/review",
)


def with_page(path: str, page: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}page={page}"


def test_a_page_past_a_million_is_400_on_every_paged_page_and_api(app, make_participant):
    participant = participant_client(app, make_participant)
    staff = staff_client(app)
    for page in (HUGE, ENDLESS):
        for path in PARTICIPANT_PAGED:
            response = participant.get(with_page(path, page))
            assert response.status_code == 400, path
            assert is_page(response)
        for path in PARTICIPANT_PAGED_API:
            response = participant.get(with_page(path, page))
            assert response.status_code == 400, path
            assert error_code(response) == "page_out_of_range"
        for path in STAFF_PAGED:
            assert staff.get(with_page(path, page)).status_code == 400, path
    # The last page that may be asked for, and the old leniency for non-numbers, still answer.
    for page in ("1000000", "abc", "-3", ""):
        assert participant.get(with_page("/api/v1/me/referrals", page)).status_code == 200
        assert staff.get(with_page("/admin/participants", page)).status_code == 200


@pytest.mark.parametrize("number", [HUGE, WIDE])
def test_an_id_no_row_can_have_is_404_and_a_filter_on_one_is_ignored(app, number):
    staff = staff_client(app)
    for path in (
        f"/admin/participants/{number}",
        f"/admin/leads/{number}",
        f"/admin/programs/{number}",
        f"/admin/integrations/webhooks/{number}",
    ):
        assert staff.get(path).status_code == 404, path
    for path in (
        f"/admin/rewards?program={number}",
        "/admin/rewards?program=%C2%B2",  # "²" counts as a digit to str.isdigit
        f"/admin/leads?campaign={number}",
        "/admin/leads?campaign=%C2%B2",
        f"/admin/contracts?lead={number}&service=%C2%B2",
        f"/admin/export/contracts.csv?lead={number}",
        f"/admin/export/rewards.csv?program={number}",
    ):
        assert staff.get(path).status_code == 200, path


def test_a_day_filter_beyond_any_record_is_ignored_not_a_500(app):
    staff = staff_client(app)
    for query in ("until=9999-12-31", "since=0001-01-01", "since=9999-12-31&until=9999-12-31"):
        for path in ("/admin/conversions", "/admin/export/conversions.csv"):
            assert staff.get(f"{path}?{query}").status_code == 200, (path, query)


# --- signed senders: headers they could never have signed --------------------------------


def send_event(client, body: bytes, **headers):
    timestamp = int(time.time())
    signed = {
        "webhook-id": "msg_bad_input",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": events_api.sign(body, "msg_bad_input", timestamp),
        **headers,
    }
    return client.post("/api/v1/events", data=body, headers=signed, content_type="application/json")


def send_stripe(client, body: bytes, header: str | None = None):
    header = header or stripe_signature(body, STRIPE_SECRET)
    return client.post(
        "/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": header},
        content_type="application/json",
    )


def send_saleor(client, body: bytes, signature: str, event: str = "order_confirmed"):
    return client.post(
        "/webhooks/order-confirmed",
        data=body,
        headers={"Saleor-Signature": signature, "Saleor-Event": event},
        content_type="application/json",
    )


def purchase_body(**extra) -> bytes:
    return json.dumps(events_api.purchase("buyer@example.com", **extra)).encode()


def test_non_ascii_signature_headers_are_refused_as_bad_signatures(app, client, shop_key):
    body = purchase_body()
    for header in ("webhook-signature", "webhook-id", "webhook-timestamp"):
        value = as_server_reads(f"v1,é{header}€==")
        response = send_event(client, body, **{header: value})
        assert 400 <= response.status_code < 500, header
        assert error_code(response) in ("bad_signature", "bad_timestamp", "missing_signature")
    stripe_body = json.dumps({"type": "charge.refunded"}).encode()
    for header in ("t=1,v1=é", f"t={int(time.time())},v1={as_server_reads('ü€')}", "t=é,v1=ab"):
        response = send_stripe(client, stripe_body, as_server_reads(header))
        assert response.status_code == 400, header
        assert error_code(response) == "invalid_signature"
    for signature in ("é..", "abc..é€", shop_key.sign(body) + as_server_reads("é")):
        response = send_saleor(client, body, as_server_reads(signature))
        assert response.status_code == 401, signature
    assert conversions(app) == 0


# --- signed bodies that can never succeed: 422, so the sender stops retrying ---------------


def deep(levels: int) -> bytes:
    return b'{"type":"purchase","x":' + b"[" * levels + b"]" * levels + b"}"


def with_escape(escape: str) -> bytes:
    """A purchase whose order id holds a JSON escape (`\\u0000`, `\\ud800`)."""
    return purchase_body(order="order-1").replace(b'"order-1"', f'"order{escape}-1"'.encode())


UNUSABLE_BODIES = {
    "5000 levels deep": deep(5000),
    "65 levels deep": deep(65),
    "NUL": with_escape("\\u0000"),
    "lone surrogate": with_escape("\\ud800"),
    "lone surrogate in a key": purchase_body().replace(b'"amount"', b'"\\udfffamount"'),
}
# Numbers Python reads as floats that are not finite; PostgreSQL's JSON cannot hold them.
NOT_FINITE = {"NaN": b"NaN", "Infinity": b"-Infinity", "1e400": b"1e400"}


def with_number(good: bytes, literal: bytes) -> bytes:
    """`good`, a JSON object, with one more member holding the number `literal`."""
    return good[:-1] + b',"x":' + literal + b"}"


UNUSABLE_BODIES |= {name: with_number(purchase_body(), n) for name, n in NOT_FINITE.items()}


def stripe_session(**fields) -> dict:
    session = {
        "id": "cs_bad_input",
        "object": "checkout.session",
        "amount_total": 2500,
        "currency": "usd",
        "customer_email": "buyer@example.com",
        "payment_intent": "pi_bad_input",
        "payment_status": "paid",
        **fields,
    }
    return {
        "id": "evt_bad_input",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {"object": session},
    }


def saleor_order(**order_fields) -> dict:
    return {
        "__typename": "OrderConfirmed",
        "issuedAt": "2026-08-03T10:00:05+00:00",
        "order": {
            "id": "T3JkZXI6YmFkLWlucHV0",
            "created": "2026-08-03T10:00:00+00:00",
            "userEmail": "buyer@example.com",
            "user": None,
            "total": {"gross": {"amount": 25.0, "currency": "USD"}},
            "metadata": [],
            **order_fields,
        },
    }


def stripe_variant(name: str) -> bytes:
    good = json.dumps(stripe_session()).encode()
    if name in NOT_FINITE:
        return with_number(good, NOT_FINITE[name])
    if name.endswith("deep"):
        return good[:-1] + b',"x":' + deep(int(name.split()[0]))[23:] + b"}"
    escape = {"NUL": "\\u0000", "lone surrogate": "\\ud800"}.get(name)
    if escape:
        return good.replace(b'"cs_bad_input"', f'"cs_{escape}"'.encode())
    return good.replace(b'"amount_total"', b'"\\udfffamount_total"')


def saleor_variant(name: str) -> bytes:
    good = json.dumps(saleor_order()).encode()
    if name in NOT_FINITE:
        return with_number(good, NOT_FINITE[name])
    if name.endswith("deep"):
        return good[:-1] + b',"x":' + deep(int(name.split()[0]))[23:] + b"}"
    escape = {"NUL": "\\u0000", "lone surrogate": "\\ud800"}.get(name)
    if escape:
        return good.replace(b'"buyer@example.com"', f'"buyer{escape}@example.com"'.encode())
    return good.replace(b'"metadata"', b'"\\udfffmetadata"')


@pytest.mark.parametrize("name", list(UNUSABLE_BODIES))
def test_a_signed_body_no_database_could_store_is_422(app, client, shop_key, name):
    response = send_event(client, UNUSABLE_BODIES[name])
    assert response.status_code == 422, response.get_data(as_text=True)
    assert error_code(response) == "invalid_event"
    response = send_stripe(client, stripe_variant(name))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert error_code(response) == "invalid_event"
    body = saleor_variant(name)
    response = send_saleor(client, body, shop_key.sign(body))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert error_code(response) == "invalid_event"
    assert conversions(app) == 0
    # The same senders' good bodies still go through.
    assert send_event(client, purchase_body()).status_code == 200
    assert send_stripe(client, json.dumps(stripe_session()).encode()).status_code == 200
    good = json.dumps(saleor_order()).encode()
    assert send_saleor(client, good, shop_key.sign(good)).status_code == 200
    assert conversions(app) == 3


def test_a_saleor_customer_that_is_not_text_is_422(app, client, shop_key):
    for order in (
        saleor_order(user={"id": ["VXNlcjox"], "email": "a@example.com"}),
        saleor_order(userEmail={"email": "a@example.com"}),
    ):
        body = json.dumps(order).encode()
        assert send_saleor(client, body, shop_key.sign(body)).status_code == 422
    assert conversions(app) == 0


# --- times outside any plausible range ------------------------------------------------------


@pytest.mark.parametrize(
    "occurred_at",
    [
        "0001-01-01T00:00:00+05:00",  # before the year 1 once moved to UTC
        "0001-01-01T10:00:00+00:00",
        "9999-12-31T23:00:00-05:00",  # after the year 9999 in UTC
        "9999-12-31T00:00:00+00:00",
        "1969-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
    ],
)
def test_an_event_time_outside_1970_to_2100_is_422(app, client, occurred_at):
    response = send_event(client, purchase_body(occurred_at=occurred_at))
    assert response.status_code == 422
    assert "occurred_at" in response.get_json()["error"]["message"]
    assert conversions(app) == 0


def test_an_event_time_inside_the_range_is_kept(app, client):
    response = send_event(client, purchase_body(occurred_at="2026-03-01T09:30:00+05:30"))
    assert response.status_code == 200
    with app.app_context():
        stored = db.session.scalar(select(Conversion.occurred_at))
    assert stored == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def test_saleor_and_stripe_times_out_of_range_count_as_now(app, client, shop_key):
    """Their times are read leniently (an unreadable one means "now"): out of range is one."""
    before = datetime.now(UTC) - timedelta(minutes=1)
    order = saleor_order(created="0001-01-01T00:00:00+05:00")
    order["issuedAt"] = "9999-12-31T23:00:00-05:00"
    body = json.dumps(order).encode()
    assert send_saleor(client, body, shop_key.sign(body)).status_code == 200
    stripe = stripe_session()
    stripe["created"] = -62135596800  # 0001-01-01 in Unix time
    assert send_stripe(client, json.dumps(stripe).encode()).status_code == 200
    with app.app_context():
        times = list(db.session.scalars(select(Conversion.occurred_at)))
    assert len(times) == 2
    assert all(moment >= before for moment in times)


# --- the partner API's JSON ---------------------------------------------------------------


def test_partner_api_json_that_cannot_be_stored_is_422(app, client):
    with app.app_context():
        _row, key = create_api_key("shop", ["codes:issue", "referrals:write"])
        db.session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    users = count(app, User)
    for path in ("/codes/issue", "/referral/process_referral"):
        for body in (
            b'{"email": "a\\u0000b@example.com"}',
            b'{"email": "a\\ud800@example.com"}',
            b'{"email": "a@example.com", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        ):
            response = client.post(path, data=body, headers=headers, content_type=JSON)
            assert response.status_code == 422, (path, body[:40])
            assert error_code(response) == "invalid_event"
    assert count(app, User) == users
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversion)) == 0


def test_query_names_that_collide_with_link_building_are_ignored(app):
    """`?name=` or `?endpoint=` used to reach url_for(**filters) and fail the page (found by
    tests/test_bad_input_fuzz.py)."""
    staff = staff_client(app)
    for path in ("/admin/rewards", "/admin/payouts", "/admin/conversions", "/admin/review"):
        response = staff.get(f"{path}?name=x&endpoint=y&_external=1&_scheme=javascript")
        assert response.status_code == 200, path
        assert "javascript" not in response.get_data(as_text=True), path


def test_nul_in_a_multipart_form_is_400_too(app, client, make_participant):
    """The same form sent as multipart/form-data (the CSRF check reads it first)."""
    person = make_participant("Mona Multipart")
    token = csrf_token(client, "/auth/login")
    response = client.post(
        "/auth/login",
        data={"csrf_token": token, "email": person["email"] + "\x00", "password": "x"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert not is_logged_in(client)
