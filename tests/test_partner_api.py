"""API keys, `POST /codes/issue` and `POST /referral/process_referral`."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from admin.people.roles import set_role
from core.api_keys import create_api_key
from extensions import db
from models import ApiKey, Conversion, Referral, ReferralCode, User, utcnow
from tests import events_api, factories
from tests.helpers import csrf_token, log_in


def new_key(app, *scopes) -> str:
    with app.app_context():
        _row, secret = create_api_key("shop", list(scopes))
        db.session.commit()
    return secret


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def users(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


def test_issuing_a_code_creates_the_participant_once(app, client):
    key = new_key(app, "codes:issue")
    body = {"external_id": "cust-7", "email": "Shopper@Example.com"}
    first = client.post("/codes/issue", json=body, headers=bearer(key))
    again = client.post("/codes/issue", json=body, headers=bearer(key))
    assert first.status_code == again.status_code == 200
    assert first.get_json()["code"] == again.get_json()["code"]
    assert first.get_json()["email"] == "shopper@example.com"
    assert first.get_json()["link"].endswith(f"/r/{first.get_json()['code']}")
    assert users(app) == 1
    with app.app_context():
        shopper = db.session.scalar(select(User).where(User.external_id == "cust-7"))
        assert shopper.password_hash is None


def test_issuing_needs_an_identity_a_valid_key_and_the_scope(app, client):
    key = new_key(app, "codes:issue")
    assert client.post("/codes/issue", json={}, headers=bearer(key)).status_code == 422
    assert client.post("/codes/issue", json={"email": "a@b.co"}).status_code == 401
    wrong = key[:-3] + ("aaa" if not key.endswith("aaa") else "bbb")
    assert (
        client.post("/codes/issue", json={"email": "a@b.co"}, headers=bearer(wrong)).status_code
        == 401
    )
    other = new_key(app, "referrals:write")
    denied = client.post("/codes/issue", json={"email": "a@b.co"}, headers=bearer(other))
    assert denied.status_code == 403
    assert users(app) == 0


def test_a_revoked_key_stops_working(app, client):
    key = new_key(app, "codes:issue")
    with app.app_context():
        db.session.scalar(select(ApiKey)).revoked_at = utcnow()
        db.session.commit()
    response = client.post("/codes/issue", json={"email": "a@b.co"}, headers=bearer(key))
    assert response.status_code == 401 and users(app) == 0


def test_only_a_hash_of_the_key_is_stored(app):
    key = new_key(app, "codes:issue")
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert key.split("_", 2)[2] not in row.secret_hash and row.prefix in key


def test_staff_may_issue_codes_from_their_session_with_csrf(app, client, make_participant):
    staff = make_participant("Stan Staff")
    with app.app_context():
        set_role(staff["email"], "manager")
        db.session.commit()
    log_in(client, staff["email"])
    without_token = client.post("/codes/issue", data={"email": "walkin@example.com"})
    assert without_token.status_code == 400 and users(app) == 1
    token = csrf_token(client, "/referral/dashboard")
    response = client.post(
        "/codes/issue", data={"email": "walkin@example.com", "csrf_token": token}
    )
    assert response.status_code == 200 and users(app) == 2


def test_a_member_session_may_not_issue_codes(app, client, make_participant):
    member = make_participant("Max Member")
    log_in(client, member["email"])
    token = csrf_token(client, "/referral/dashboard")
    response = client.post("/codes/issue", data={"email": "x@example.com", "csrf_token": token})
    assert response.status_code == 403 and users(app) == 1


@pytest.fixture
def rita(make_participant):
    return make_participant("Rita Referrer")


def test_process_referral_records_an_external_signup(app, client, rita):
    key = new_key(app, "referrals:write")
    body = {"external_id": "cust-9", "email": "newcomer@example.com", "ref_code": rita["code"]}
    response = client.post("/referral/process_referral", json=body, headers=bearer(key))
    assert response.get_json() == {"outcome": "accepted", "reason": "awaiting_purchase"}
    again = client.post("/referral/process_referral", json=body, headers=bearer(key))
    assert again.get_json()["outcome"] == "duplicate"
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert (referral.referrer_id, referral.source, referral.status) == (
            rita["id"],
            "api",
            "pending",
        )
        assert db.session.get(User, rita["id"]).referral_count == 1
        assert db.session.scalar(select(func.count()).select_from(ReferralCode)) == 2


def test_process_referral_refuses_an_unknown_code_and_changes_nothing(app, client, rita):
    key = new_key(app, "referrals:write")
    body = {"email": "newcomer@example.com", "ref_code": "ZZZZZZ"}
    response = client.post("/referral/process_referral", json=body, headers=bearer(key))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "code_not_found"
    assert users(app) == 1


def test_a_person_already_referred_keeps_the_first_referral(app, client, rita, make_participant):
    other = make_participant("Olga Other")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    key = new_key(app, "referrals:write")
    body = {"email": fred["email"], "ref_code": other["code"]}
    client.post("/referral/process_referral", json=body, headers=bearer(key))
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.referred_id == fred["id"]))
        assert referral.referrer_id == rita["id"]
        assert db.session.get(User, other["id"]).referral_count == 0


def referrals_of(app, user_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(Referral).where(Referral.referred_id == user_id)
        )


def test_process_referral_never_makes_a_staff_account_someones_referral(app, client, rita):
    with app.app_context():
        manager = factories.staff("manager")
    key = new_key(app, "referrals:write")
    body = {"external_id": "cust-staff", "email": manager["email"], "ref_code": rita["code"]}
    response = client.post("/referral/process_referral", json=body, headers=bearer(key))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "staff_account"
    assert referrals_of(app, manager["id"]) == 0
    with app.app_context():  # the shop's customer id was not attached to the staff account
        assert db.session.get(User, manager["id"]).external_id is None
        assert db.session.get(User, rita["id"]).referral_count == 0


def test_process_referral_for_an_existing_participant_follows_the_claim_window(
    app, client, rita, make_participant
):
    long_ago = make_participant("Lena Late", now=utcnow() - timedelta(days=30))
    recent = make_participant("Rob Recent")
    key = new_key(app, "referrals:write")

    late = {"email": long_ago["email"], "ref_code": rita["code"]}
    response = client.post("/referral/process_referral", json=late, headers=bearer(key))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "claim_window_closed"
    assert referrals_of(app, long_ago["id"]) == 0

    within = {"email": recent["email"], "ref_code": rita["code"]}
    response = client.post("/referral/process_referral", json=within, headers=bearer(key))
    assert response.get_json()["outcome"] == "accepted"
    assert referrals_of(app, recent["id"]) == 1


def test_an_events_write_key_sends_events_without_a_signature(app, client, rita, make_participant):
    friend = make_participant("Fred Friend", invited_by=rita["code"])
    key = new_key(app, "events:write")
    body = events_api.purchase(friend["email"], order="key-order")
    response = client.post("/api/v1/events", json=body, headers=bearer(key))
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "accepted"
    again = client.post("/api/v1/events", json=body, headers=bearer(key))
    assert again.get_json()["outcome"] == "duplicate"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversion)) == 1


def test_a_key_without_events_write_or_a_wrong_key_sends_nothing(app, client, rita):
    body = events_api.purchase(rita["email"], order="refused-order")
    other_scope = client.post(
        "/api/v1/events", json=body, headers=bearer(new_key(app, "codes:issue"))
    )
    assert other_scope.status_code == 403
    assert other_scope.get_json()["error"]["code"] == "missing_scope"
    wrong = client.post("/api/v1/events", json=body, headers=bearer("il_nothere_secret"))
    assert wrong.status_code == 401
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversion)) == 0
