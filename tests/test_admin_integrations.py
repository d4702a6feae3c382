"""The integrations screens and the audit log: API keys shown once and revocable, webhook
endpoints managed with confirmations and audit entries, the delivery log, the audit log's
filters and exports, and every route closed to staff who are not admins."""

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from admin.integrations import services as integrations
from core.api_keys import create_api_key
from extensions import db
from models import ApiKey, AuditLog, WebhookDelivery, WebhookEndpoint, utcnow
from tests import factories
from tests.helpers import count, csrf_token, log_in

PUBLIC_URL = "https://93.184.215.14/hooks"  # a literal public address: no DNS needed
KEY = re.compile(r"il_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")
INTEGRATIONS = "/admin/integrations"


@pytest.fixture
def admin(app, client):
    with app.app_context():
        person = factories.staff("admin")
    log_in(client, person["email"])
    return person


def post(client, path: str, data: dict | None = None, token_from: str = INTEGRATIONS):
    return client.post(path, data={"csrf_token": csrf_token(client, token_from), **(data or {})})


def audit_entries(app, action_prefix: str = "") -> list[AuditLog]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditLog).where(AuditLog.action.startswith(action_prefix)).order_by(AuditLog.id)
        ).all()
        db.session.expunge_all()
        return rows


def create_key(client, name="Saleor shop", scopes=("codes:issue",)):
    return post(client, f"{INTEGRATIONS}/api-keys", {"name": name, "scopes": list(scopes)})


# --- API keys -------------------------------------------------------------------------------


def test_an_api_key_is_shown_once_and_never_again(app, client, admin, caplog):
    assert "No API keys yet." in client.get(INTEGRATIONS).text
    created = create_key(client)
    assert created.status_code == 200
    assert created.headers["Cache-Control"] == "no-store"
    [secret] = KEY.findall(created.text)
    assert "It is not shown again" in created.text

    listing = client.get(INTEGRATIONS).text
    prefix = secret.split("_")[1]
    assert f"il_{prefix}_…" in listing and "codes:issue" in listing
    assert secret not in listing
    session = app.session_interface.get_signing_serializer(app).loads(
        client.get_cookie("session").value
    )
    assert secret not in str(session)  # not flashed, not kept in the session
    assert secret not in caplog.text
    [entry] = audit_entries(app, "api_key.")
    assert entry.action == "api_key.create" and entry.actor_id == admin["id"]
    assert entry.after == {"name": "Saleor shop", "prefix": prefix, "scopes": ["codes:issue"]}
    assert secret.split("_", 2)[2] not in str(entry.after)


def test_a_revoked_key_gets_401_and_revoking_needs_a_confirmation(app, client, admin):
    [secret] = KEY.findall(create_key(client).text)
    issue = {"json": {"email": "shopper@example.com"}}
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.post("/codes/issue", headers=bearer, **issue).status_code == 200
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id))
    revoke = f"{INTEGRATIONS}/api-keys/{key_id}/revoke"

    page = client.get(revoke)
    assert page.status_code == 200 and "Revoke the API key &#39;Saleor shop&#39;?" in page.text
    unconfirmed = post(client, revoke, token_from=revoke)
    assert unconfirmed.status_code == 400 and "Tick the box to confirm." in unconfirmed.text
    assert client.post("/codes/issue", headers=bearer, **issue).status_code == 200

    confirmed = post(client, revoke, {"confirm": "y"}, token_from=revoke)
    assert confirmed.status_code == 302
    assert client.post("/codes/issue", headers=bearer, **issue).status_code == 401
    assert "is revoked" in client.get(INTEGRATIONS).text
    assert [entry.action for entry in audit_entries(app, "api_key.")] == [
        "api_key.create",
        "api_key.revoke",
    ]
    post(client, revoke, {"confirm": "y"}, token_from=revoke)  # again: nothing more happens
    assert len(audit_entries(app, "api_key.")) == 2


def test_a_key_without_scopes_is_refused_with_the_name_kept(app, client, admin):
    answer = create_key(client, scopes=())
    assert answer.status_code == 400
    assert "Choose at least one scope." in answer.text
    assert 'value="Saleor shop"' in answer.text
    assert count(app, ApiKey) == 0 and audit_entries(app) == []


# --- Webhook endpoints ----------------------------------------------------------------------


def new_endpoint(client, url=PUBLIC_URL, events=("referral.created",), description="CRM"):
    form = f"{INTEGRATIONS}/webhooks/new"
    data = {"url": url, "description": description, "events": list(events)}
    return post(client, form, data, token_from=form)


def the_endpoint(app) -> WebhookEndpoint:
    with app.app_context():
        endpoint = db.session.scalars(select(WebhookEndpoint)).one()
        db.session.expunge(endpoint)
        return endpoint


def test_an_endpoint_gets_a_signing_secret_shown_to_admins(app, client, admin):
    answer = new_endpoint(client)
    endpoint = the_endpoint(app)
    page = f"{INTEGRATIONS}/webhooks/{endpoint.id}"
    assert answer.status_code == 302 and answer.headers["Location"].endswith(page)
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", endpoint.secret)
    shown = client.get(page)
    assert endpoint.secret in shown.text and shown.headers["Cache-Control"] == "no-store"
    assert "Nothing sent yet" in shown.text
    [entry] = audit_entries(app)
    assert entry.action == "webhook_endpoint.create"
    assert entry.after == {
        "url": PUBLIC_URL,
        "description": "CRM",
        "events": ["referral.created"],
        "active": True,
    }


@pytest.mark.parametrize(
    "url, message",
    [
        ("https://127.0.0.1/hooks", "non-public address"),
        ("https://169.254.169.254/latest/meta-data", "non-public address"),
        ("https://10.1.2.3/hooks", "non-public address"),
        ("http://93.184.215.14/hooks", "Use an https:// URL of a public server."),
    ],
)
def test_a_private_or_plain_http_url_is_refused_with_the_typed_values_kept(
    app, client, admin, url, message
):
    answer = new_endpoint(client, url=url, description="Internal thing")
    assert answer.status_code == 400
    assert message in answer.text
    assert f'value="{url}"' in answer.text and 'value="Internal thing"' in answer.text
    assert count(app, WebhookEndpoint) == 0 and audit_entries(app) == []


def test_editing_disabling_rotating_and_deleting_an_endpoint_are_audited(app, client, admin):
    new_endpoint(client)
    endpoint = the_endpoint(app)
    base = f"{INTEGRATIONS}/webhooks/{endpoint.id}"
    edited = post(
        client,
        f"{base}/edit",
        {"url": PUBLIC_URL, "description": "Sales CRM", "events": ["reward.paid"], "active": "y"},
        token_from=f"{base}/edit",
    )
    assert edited.status_code == 302
    assert post(client, f"{base}/disable", token_from=base).status_code == 302
    assert "disabled" in client.get(base).text
    post(client, f"{base}/enable", token_from=base)

    assert post(client, f"{base}/rotate-secret", token_from=base).status_code == 400
    assert the_endpoint(app).secret == endpoint.secret
    post(client, f"{base}/rotate-secret", {"confirm": "y"}, token_from=base)
    rotated = the_endpoint(app).secret
    assert rotated != endpoint.secret and rotated in client.get(base).text

    actions = [(entry.action, entry.before, entry.after) for entry in audit_entries(app)]
    assert actions[1:] == [
        (
            "webhook_endpoint.update",
            {"description": "CRM", "events": ["referral.created"]},
            {"description": "Sales CRM", "events": ["reward.paid"]},
        ),
        ("webhook_endpoint.disable", {"active": True}, {"active": False}),
        ("webhook_endpoint.enable", {"active": False}, {"active": True}),
        ("webhook_endpoint.rotate_secret", None, {"secret": "rotated"}),
    ]
    logged = str([(entry.before, entry.after) for entry in audit_entries(app)])
    assert endpoint.secret not in logged and rotated not in logged

    add_deliveries(app, endpoint.id, 2)
    assert post(client, f"{base}/delete", token_from=base).status_code == 400
    deleted = post(client, f"{base}/delete", {"confirm": "y"}, token_from=base)
    assert deleted.status_code == 302
    assert count(app, WebhookEndpoint) == 0 and count(app, WebhookDelivery) == 0
    assert audit_entries(app)[-1].action == "webhook_endpoint.delete"
    assert client.get(base).status_code == 404


def add_deliveries(app, endpoint_id: int, number: int, status: str = "failed") -> None:
    with app.app_context():
        for index in range(number):
            db.session.add(
                WebhookDelivery(
                    endpoint_id=endpoint_id,
                    message_id=f"msg_test{index}",
                    event_type="referral.created",
                    payload={"type": "referral.created", "data": {"id": index}},
                    status=status,
                    attempts=3,
                    last_status_code=500,
                    last_error='=HYPERLINK("x")' if index == 0 else "HTTP 500",
                    created_at=utcnow() - timedelta(minutes=number - index),
                )
            )
        db.session.commit()


def test_the_delivery_log_is_paginated_filtered_and_exported(app, client, admin):
    new_endpoint(client)
    endpoint = the_endpoint(app)
    add_deliveries(app, endpoint.id, 3)
    app.config["ADMIN_PAGE_SIZE"] = 2
    base = f"{INTEGRATIONS}/webhooks/{endpoint.id}"
    first, second = client.get(base).text, client.get(f"{base}?page=2").text
    assert "msg_test2" in first and "msg_test1" in first and "msg_test0" not in first
    assert "msg_test0" in second and "Page 2 of 2" in second
    assert "No deliveries match" in client.get(base, query_string={"status": "succeeded"}).text

    export = client.get(
        "/admin/export/deliveries.csv",
        query_string={"endpoint_id": endpoint.id, "status": "failed"},
    )
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [row["message_id"] for row in rows] == ["msg_test2", "msg_test1", "msg_test0"]
    assert rows[2]["last_error"] == '\'=HYPERLINK("x")'  # defused for spreadsheets


def test_redelivering_for_a_disabled_endpoint_is_refused(app, client, admin):
    new_endpoint(client)
    endpoint = the_endpoint(app)
    add_deliveries(app, endpoint.id, 1)
    with app.app_context():
        integrations.set_endpoint_active(endpoint.id, False)
        delivery_id = db.session.scalar(select(WebhookDelivery.id))
        db.session.commit()
    base = f"{INTEGRATIONS}/webhooks/{endpoint.id}"
    answer = post(client, f"{INTEGRATIONS}/deliveries/{delivery_id}/redeliver", token_from=base)
    assert answer.status_code == 302
    assert "enable it before redelivering" in client.get(base).text
    with app.app_context():
        assert db.session.get(WebhookDelivery, delivery_id).status == "failed"
    assert not audit_entries(app, "webhook_delivery.")


# --- The audit log --------------------------------------------------------------------------


def listed(client, **filters) -> list[str]:
    """The actions of the audit log's rows on the page, top to bottom."""
    page = client.get("/admin/audit", query_string=filters).text
    return re.findall(r"<td><code>([^<]+)</code></td>", page)


def test_the_audit_log_filters_shows_before_and_after_and_exports(
    app, client, admin, runner, make_participant
):
    olga = make_participant("Olga Operator")
    runner.invoke(args=["admin", "set-role", olga["email"], "operator"])
    create_key(client)

    assert listed(client) == ["api_key.create", "user.role"]  # newest first
    assert "role</strong>: member → operator" in client.get("/admin/audit").text
    assert listed(client, actor="CLI:") == ["user.role"]
    assert listed(client, actor=admin["email"][:6]) == ["api_key.create"]
    assert listed(client, action="api_key") == ["api_key.create"]
    assert listed(client, action="api%") == listed(client, action="_") == []  # not patterns
    assert listed(client, actor="%") == []
    assert listed(client, target_type="user", target_id=olga["id"]) == ["user.role"]
    assert listed(client, target_type="user", target_id=olga["id"] + 1) == []

    today = utcnow().date()
    assert listed(client, since=(today + timedelta(days=1)).isoformat()) == []
    assert listed(client, until=(today - timedelta(days=1)).isoformat()) == []
    assert len(listed(client, since=today.isoformat(), until=today.isoformat())) == 2
    tomorrow = {"since": (today + timedelta(days=1)).isoformat()}
    assert "No entries match" in client.get("/admin/audit", query_string=tomorrow).text
    bad = client.get("/admin/audit", query_string={"since": "31/12/2025"})
    assert bad.status_code == 200 and "From date must read YYYY-MM-DD" in bad.text

    export = client.get("/admin/export/audit.csv", query_string={"actor": "cli:"})
    [row] = list(csv.DictReader(io.StringIO(export.text)))
    assert row["action"] == "user.role" and row["after"] == '{"role": "operator"}'


def test_the_audit_log_is_paginated(app, client, admin, runner, make_participant):
    olga = make_participant("Olga Operator")
    for role in ("operator", "marketer", "manager"):
        runner.invoke(args=["admin", "set-role", olga["email"], role])
    app.config["ADMIN_PAGE_SIZE"] = 2
    first = client.get("/admin/audit").text
    second = client.get("/admin/audit", query_string={"page": 2, "actor": "cli"}).text
    assert "marketer → manager" in first and "member → operator" not in first
    assert "member → operator" in second and "Page 2 of 2" in second


# --- Everyone else: 403, and nothing changes ------------------------------------------------


def snapshot(app) -> dict:
    with app.app_context():
        return {
            "keys": db.session.execute(select(ApiKey.id, ApiKey.revoked_at)).all(),
            "endpoints": db.session.execute(
                select(WebhookEndpoint.url, WebhookEndpoint.secret, WebhookEndpoint.active)
            ).all(),
            "deliveries": db.session.execute(
                select(WebhookDelivery.status, WebhookDelivery.attempts)
            ).all(),
            "audit": db.session.scalar(select(func.count()).select_from(AuditLog)),
        }


@pytest.mark.parametrize("role", ["operator", "marketer", "manager"])
def test_staff_who_are_not_admins_get_403_everywhere_and_change_nothing(app, client, role):
    with app.app_context():
        key, _ = create_api_key("shop", ["codes:issue"])
        endpoint = integrations.create_endpoint(PUBLIC_URL, "CRM", ["referral.created"], False)
        db.session.commit()
        key_id, endpoint_id = key.id, endpoint.id
        staff = factories.staff(role)
    add_deliveries(app, endpoint_id, 1)
    with app.app_context():
        delivery_id = db.session.scalar(select(WebhookDelivery.id))
    before = snapshot(app)
    log_in(client, staff["email"])
    token = csrf_token(client, "/referral/dashboard")
    base = f"{INTEGRATIONS}/webhooks/{endpoint_id}"
    pages = [INTEGRATIONS, "/admin/audit", f"{INTEGRATIONS}/webhooks/new", base, f"{base}/edit"]
    pages += [f"{base}/delete", f"{base}/rotate-secret", f"{INTEGRATIONS}/api-keys/{key_id}/revoke"]
    pages += ["/admin/export/deliveries.csv", "/admin/export/audit.csv"]
    for page in pages:
        assert client.get(page).status_code == 403, page
    form = {"csrf_token": token, "confirm": "y", "name": "x", "scopes": ["codes:issue"]}
    form |= {"url": PUBLIC_URL, "events": ["reward.paid"], "active": ""}
    actions = [f"{INTEGRATIONS}/api-keys", f"{INTEGRATIONS}/api-keys/{key_id}/revoke"]
    actions += [f"{INTEGRATIONS}/webhooks/new", f"{base}/edit", f"{base}/disable"]
    actions += [f"{base}/enable", f"{base}/delete", f"{base}/rotate-secret"]
    actions += [f"{INTEGRATIONS}/deliveries/{delivery_id}/redeliver"]
    for action in actions:
        assert client.post(action, data=form).status_code == 403, action
    assert snapshot(app) == before
