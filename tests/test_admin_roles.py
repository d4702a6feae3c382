"""The route walk: every staff page and action, for every role.

Allowed pages open, allowed actions are not refused; everything else is 403 and changes
nothing (a digest of every table is the same before and after). A new admin route without a
permission, or with an argument this walk cannot fill, fails here until it is added.
"""

import hashlib
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from admin import exports
from admin.crm import uploads
from admin.policy import role_can
from core import api_keys
from extensions import db
from models import (
    Campaign,
    Contract,
    Conversion,
    Lead,
    OutboxMessage,
    Payout,
    Referral,
    ReferralCode,
    Reward,
    Service,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from referral.services import default_program
from tests import databases, factories
from tests.helpers import csrf_token, log_in

ROLES = ("member", "operator", "marketer", "manager", "admin")
ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@pytest.fixture
def config_overrides(tmp_path):
    return {"CONTRACTS_FOLDER": str(tmp_path / "contracts")}


def admin_routes(app) -> list:
    routes = [
        (rule, app.view_functions[rule.endpoint])
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/admin")
    ]
    assert len(routes) > 50, "the walk found too few admin routes to mean anything"
    return routes


def test_every_admin_route_names_the_permission_it_needs(app):
    unguarded = [
        rule.rule for rule, view in admin_routes(app) if not hasattr(view, "required_permission")
    ]
    assert unguarded == []


def seed_world(app) -> dict:
    """One of everything a staff route can point at; returns the ids by argument name."""
    with app.app_context():
        program = default_program()
        rita = factories.participant("Rita Referrer")
        fred = factories.participant("Fred Friend", invited_by=rita["code"])
        # Vera signs up from Rita's address: held for review.
        vera_ip = db.session.get(User, rita["id"]).signup_ip
        vera = factories.participant("Vera Review", invited_by=rita["code"], ip=vera_ip)
        referral_in_review = db.session.scalar(
            db.select(Referral).where(Referral.referred_id == vera["id"])
        )
        assert referral_in_review.status == "review"
        conversion = Conversion(
            source="manual",
            kind="purchase",
            external_id="walk-1",
            order_id="walk-1",
            participant_id=fred["id"],
            outcome="accepted",
            amount=5000,
            currency="USD",
        )
        db.session.add(conversion)
        db.session.flush()
        reward = Reward(
            program_id=program.id,
            conversion_id=conversion.id,
            beneficiary_id=rita["id"],
            role="referrer",
            kind="credit",
            amount=3000,
            currency="USD",
            status="approved",
        )
        held = Reward(
            program_id=program.id,
            conversion_id=conversion.id,
            beneficiary_id=fred["id"],
            role="referee",
            kind="credit",
            amount=500,
            currency="USD",
            status="review",
        )
        db.session.add_all([reward, held])
        db.session.flush()
        payout = Payout(user_id=rita["id"], kind="credit", amount=3000, currency="USD")
        db.session.add(payout)
        db.session.flush()
        reward.payout_id = payout.id
        service = Service(name="Consulting", price=10000)
        db.session.add(service)
        db.session.flush()
        campaign = Campaign(
            name="Spring search", service_id=service.id, channel="search", starts_on=date.today()
        )
        db.session.add(campaign)
        db.session.flush()
        lead = Lead(full_name="Lena Lead", email="lena@example.com", campaign_id=campaign.id)
        db.session.add(lead)
        db.session.flush()
        contract = Contract(
            name="Lena's contract",
            service_id=service.id,
            lead_id=lead.id,
            file_key="walk-test-document",
            file_name="contract.pdf",
            file_size=8,
            content_type="application/pdf",
            signed_on=date.today(),
            valid_from=date.today(),
            valid_until=date.today() + timedelta(days=365),
            amount=50000,
        )
        db.session.add(contract)
        (uploads.contracts_folder() / contract.file_key).write_bytes(b"%PDF-1.7")
        endpoint = WebhookEndpoint(
            url="https://hooks.example.com/inviteloop", secret="whsec_" + "A" * 32, events=[]
        )
        db.session.add(endpoint)
        db.session.flush()
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id, message_id="msg_walk", event_type="reward.paid"
        )
        db.session.add(delivery)
        key, _secret = api_keys.create_api_key("Shop", ["events:write"])
        code = db.session.scalar(db.select(ReferralCode).where(ReferralCode.user_id == fred["id"]))
        stuck = OutboxMessage(job="rewards.send_email", args=["x@example.com", "Hi", "Hello"])
        stuck.status, stuck.attempts, stuck.last_error = "dead", 3, "OSError: walk"
        db.session.add(stuck)
        db.session.commit()
        return {
            "user_id": fred["id"],
            "code_id": code.id,
            "program_id": program.id,
            "reward_id": reward.id,
            "payout_id": payout.id,
            "conversion_id": conversion.id,
            "service_id": service.id,
            "campaign_id": campaign.id,
            "lead_id": lead.id,
            "contract_id": contract.id,
            "endpoint_id": endpoint.id,
            "delivery_id": delivery.id,
            "key_id": key.id,
            "message_id": stuck.id,
            "referrals": referral_in_review.id,
            "purchases": conversion.id,
        }


def url_for_rule(rule, ids: dict) -> str:
    """The rule's path with each argument filled from the seeded world."""
    names = ARGUMENT.findall(rule.rule)
    if "show" in names:
        show = "referrals"
        values = {"show": show, "item_id": ids[show]}
        path = rule.rule
        for name in names:
            path = ARGUMENT.sub(str(values.get(name, ids.get(name))), path, count=1)
        return path
    missing = [name for name in names if name not in ids and name != "name"]
    assert not missing, f"{rule.rule}: the walk cannot fill {missing}; seed it in seed_world"
    path = rule.rule
    for name in names:
        path = ARGUMENT.sub(str(ids.get(name, "")), path, count=1)
    return path


def digest(app) -> str:
    """Every row of every table, hashed: equal digests mean nothing changed."""
    summary = hashlib.sha256()
    with app.app_context():
        for table in databases.TABLES:
            rows = db.session.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()  # noqa: S608
            summary.update(repr((table, [tuple(row) for row in rows])).encode())
    return summary.hexdigest()


def logged_in_as(app, client, role: str) -> None:
    with app.app_context():
        person = factories.staff(role) if role != "member" else factories.participant("Mo Member")
    assert log_in(client, person["email"]).status_code == 302


@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_exactly_the_pages_it_may(app, client, role):
    ids = seed_world(app)
    logged_in_as(app, client, role)
    wrong = []
    for rule, view in admin_routes(app):
        if "GET" not in rule.methods or rule.endpoint == "admin.exports.export_csv":
            continue
        path = url_for_rule(rule, ids)
        allowed = role_can(role, view.required_permission)
        response = client.get(path)
        status = response.status_code
        response.close()  # a file download holds its file open until closed
        if (allowed and status not in (200, 302)) or (not allowed and status != 403):
            wrong.append((path, status, "allowed" if allowed else "forbidden"))
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_each_role_downloads_exactly_the_exports_it_may(app, client, role):
    seed_world(app)
    logged_in_as(app, client, role)
    wrong = []
    for name, export in exports.registered(app).items():
        response = client.get(f"/admin/export/{name}.csv")
        response.get_data()  # read to the end, which closes the stream
        allowed = role_can(role, export.permission)
        if allowed and not (response.status_code == 200 and response.mimetype == "text/csv"):
            wrong.append((name, response.status_code, "allowed"))
        if not allowed and response.status_code != 403:
            wrong.append((name, response.status_code, "forbidden"))
    assert wrong == []
    assert client.get("/admin/export/no-such-table.csv").status_code in (403, 404)


# An admin may do everything: there is nothing to refuse.
@pytest.mark.parametrize("role", [role for role in ROLES if role != "admin"])
def test_a_forbidden_action_is_refused_and_changes_nothing(app, client, role):
    ids = seed_world(app)
    logged_in_as(app, client, role)
    token = csrf_token(client, "/referral/dashboard")
    refused = [
        (rule, view)
        for rule, view in admin_routes(app)
        if "POST" in rule.methods and not role_can(role, view.required_permission)
    ]
    assert refused, f"nothing is forbidden to {role}: the walk would test nothing"
    before = digest(app)
    wrong = []
    for rule, _view in refused:
        path = url_for_rule(rule, ids)
        data = {"csrf_token": token, "reason": "walk", "role": "admin", "confirm": "y"}
        status = client.post(path, data=data).status_code
        if status != 403:
            wrong.append((path, status))
    assert wrong == []
    assert digest(app) == before


@pytest.mark.parametrize("role", ROLES[1:])
def test_an_allowed_action_is_never_refused_for_its_role(app, client, role):
    ids = seed_world(app)
    logged_in_as(app, client, role)
    token = csrf_token(client, "/referral/dashboard")
    wrong = []
    for rule, view in admin_routes(app):
        if "POST" not in rule.methods or not role_can(role, view.required_permission):
            continue
        status = client.post(url_for_rule(rule, ids), data={"csrf_token": token}).status_code
        if status in (401, 403) or status >= 500:
            wrong.append((rule.rule, status))
    assert wrong == []
