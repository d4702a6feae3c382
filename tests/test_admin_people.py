"""Staff panel — participants, staff users and roles: search, the participant page, actions."""

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AuditLog, ReferralCode, User, utcnow
from rewards.conversions import record_event
from rewards.events import EventIn
from tests import factories
from tests.helpers import csrf_token, log_in


@pytest.fixture
def config_overrides():
    return {"ADMIN_PAGE_SIZE": 3}


@pytest.fixture
def staff(app):
    def make(role: str) -> dict:
        with app.app_context():
            return factories.staff(role)

    return make


def as_role(client, staff, role: str) -> dict:
    person = staff(role)
    log_in(client, person["email"])
    return person


def audit_entries(app, action: str) -> list[AuditLog]:
    with app.app_context():
        entries = db.session.scalars(select(AuditLog).where(AuditLog.action == action)).all()
        db.session.expunge_all()
        return entries


def user_row(app, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def post(client, path: str, data: dict):
    """A form post with a valid CSRF token (taken from the logout form every page has)."""
    token = csrf_token(client, "/referral/dashboard")
    return client.post(path, data={"csrf_token": token, **data})


# --- search and autocomplete -----------------------------------------------------------------


def test_search_finds_by_name_email_or_code_in_any_case(client, staff, make_participant):
    ann = make_participant("Ann Archer")
    make_participant("Bob Baker", email="bob@shop.example.org")
    as_role(client, staff, "manager")

    def names(query: str) -> set[str]:
        html = client.get("/admin/participants", query_string={"q": query}).get_data(True)
        return set(re.findall(r'/admin/participants/\d+">([^<]+)</a>', html))

    assert names("aRCHer") == {"Ann Archer"}
    assert names("SHOP.example") == {"Bob Baker"}
    assert names(ann["code"].lower()) == {"Ann Archer"}
    assert names("nobody-like-this") == set()
    assert names("%") == names("_") == names("\\") == set()  # typed text, never a pattern
    page = client.get("/admin/participants", query_string={"q": "nobody-like-this"})
    assert "Nobody matches" in page.get_data(True)


def test_search_is_paginated_and_keeps_the_filters(client, staff, make_participant):
    for name in ("Pat One", "Pat Two", "Pat Three", "Pat Four"):
        make_participant(name)
    as_role(client, staff, "manager")
    first = client.get("/admin/participants", query_string={"q": "pat"}).get_data(True)
    assert "Page 1 of 2" in first and "4 accounts" in first
    assert "/admin/participants?page=2&amp;q=pat" in first
    second = client.get("/admin/participants", query_string={"q": "pat", "page": 2})
    assert second.get_data(True).count("Pat ") == 1


def test_autocomplete_answers_json_with_at_most_ten_matches(client, staff, make_participant):
    for number in range(12):
        make_participant(f"Zed Number{number}", email=f"zed{number}@example.com")
    as_role(client, staff, "manager")
    answer = client.get("/admin/participants/suggest", query_string={"q": "zed"})
    assert answer.status_code == 200 and answer.is_json
    results = answer.get_json()["results"]
    assert len(results) == 10
    assert {"id", "name", "email", "codes", "url"} <= set(results[0])
    assert results[0]["url"] == f"/admin/participants/{results[0]['id']}"
    one_letter = client.get("/admin/participants/suggest", query_string={"q": "z"})
    assert one_letter.get_json() == {"results": []}


@pytest.mark.parametrize("role", ["operator", "marketer"])
def test_roles_without_participants_access_get_403(client, staff, make_participant, role):
    person = make_participant("Ann Archer")
    as_role(client, staff, role)
    assert client.get("/admin/participants").status_code == 403
    assert client.get("/admin/participants/suggest?q=ann").status_code == 403
    assert client.get(f"/admin/participants/{person['id']}").status_code == 403
    assert client.get("/admin/export/participants.csv").status_code == 403


def test_participants_export_holds_the_rows_of_the_filtered_page(client, staff, make_participant):
    make_participant("Ann Archer")
    make_participant("Bob Baker")
    as_role(client, staff, "manager")
    answer = client.get("/admin/export/participants.csv", query_string={"q": "archer"})
    rows = list(csv.DictReader(io.StringIO(answer.get_data(True))))
    assert [row["name"] for row in rows] == ["Ann Archer"]
    assert len(rows[0]["active_codes"]) == 6


# --- the participant page --------------------------------------------------------------------


@pytest.fixture
def family(app, make_participant):
    """Ann invited Bob; Bob invited Cat and (from Bob's own IP, held for review) Eve;
    Cat invited Dan. Bob's friend Cat bought, so Bob has a reward."""
    then = utcnow() - timedelta(days=40)
    ann = make_participant("Ann Archer", now=then)
    bob = make_participant("Bob Baker", invited_by=ann["code"], ip="10.200.1.1", now=then)
    cat = make_participant("Cat Cole", invited_by=bob["code"], now=then)
    eve = make_participant("Eve Evans", invited_by=bob["code"], ip="10.200.1.1", now=then)
    dan = make_participant("Dan Drake", invited_by=cat["code"], now=then)
    with app.app_context():
        event = EventIn(
            source="api",
            kind="purchase",
            external_id="evt-cat-1",
            customer_email=cat["email"],
            amount=2500,
            currency="USD",
            order_id="order-cat-1",
            occurred_at=utcnow() - timedelta(days=5),
        )
        assert record_event(event).outcome == "accepted"
        db.session.commit()
    return {"ann": ann, "bob": bob, "cat": cat, "dan": dan, "eve": eve}


def test_the_participant_page_shows_dashboard_fraud_tree_and_ledger(client, staff, family):
    as_role(client, staff, "manager")
    bob, eve = family["bob"], family["eve"]
    html = client.get(f"/admin/participants/{bob['id']}").get_data(True)

    assert f'id="dashboard-code">{bob["code"]}<' in html
    assert f"/r/{bob['code']}" in html
    assert 'id="stat-signups">1<' in html  # Cat; Eve waits for review
    assert 'id="stat-qualified">1<' in html  # Cat bought
    # The tree: Ann above; Cat at level 1, Dan at level 2.
    assert re.search(r'1 up: <a href="/admin/participants/\d+">Ann Archer</a>', html)
    assert 'id="level-1-count">1<' in html and 'id="level-2-count">1<' in html
    assert "Dan Drake" in html.split('id="level-2"')[1].split("</p>")[0]
    # Fraud: the referral of Eve they made is flagged, with its reasons.
    flagged = html.split('id="flagged-referrals"')[1].split("</table>")[0]
    assert "Eve Evans" in flagged and "same_ip" in flagged and "Cat Cole" not in flagged
    # The ledger: Bob's $10.00 for Cat's purchase, on hold.
    ledger = html.split('id="ledger-entries"')[1].split("</table>")[0]
    assert "$10.00" in ledger and "pending" in ledger and "Cat Cole" in ledger

    eve_page = client.get(f"/admin/participants/{eve['id']}").get_data(True)
    assert 'id="risk-score">50<' in eve_page
    assert "same_ip" in eve_page.split('id="risk-reasons"')[1]


def test_an_unknown_participant_is_404(client, staff):
    as_role(client, staff, "manager")
    assert client.get("/admin/participants/999999").status_code == 404


# --- actions ---------------------------------------------------------------------------------


def test_an_admin_changes_a_role_from_the_participant_page(app, client, staff, make_participant):
    ann = make_participant("Ann Archer")
    as_role(client, staff, "admin")
    path = f"/admin/participants/{ann['id']}"
    answer = post(client, f"{path}/role", {"role": "operator"})
    assert answer.status_code == 302
    assert user_row(app, ann["id"]).role == "operator"
    [entry] = audit_entries(app, "user.role")
    assert (entry.before, entry.after) == ({"role": "member"}, {"role": "operator"})


def test_a_manager_cannot_change_roles(app, client, staff, make_participant):
    ann = make_participant("Ann Archer")
    as_role(client, staff, "manager")
    path = f"/admin/participants/{ann['id']}"
    assert "Change role" not in client.get(path).get_data(True)
    answer = post(client, f"{path}/role", {"role": "admin"})
    assert answer.status_code == 403
    assert user_row(app, ann["id"]).role == "member"
    assert audit_entries(app, "user.role") == []


def test_deactivating_needs_the_box_ticked_then_works(app, client, staff, make_participant):
    ann = make_participant("Ann Archer")
    as_role(client, staff, "manager")
    path = f"/admin/participants/{ann['id']}"
    unconfirmed = post(client, f"{path}/deactivate", {})
    assert unconfirmed.status_code == 400
    assert "Tick the box to confirm." in unconfirmed.get_data(True)
    assert user_row(app, ann["id"]).active

    answer = post(client, f"{path}/deactivate", {"deactivate-confirm": "y"})
    assert answer.status_code == 302
    assert not user_row(app, ann["id"]).active
    assert len(audit_entries(app, "user.deactivate")) == 1
    assert log_in(client.application.test_client(), ann["email"]).status_code != 302

    answer = post(client, f"{path}/reactivate", {})
    assert answer.status_code == 302 and user_row(app, ann["id"]).active
    assert len(audit_entries(app, "user.reactivate")) == 1


@pytest.mark.parametrize("role", ["operator", "marketer"])
def test_other_roles_cannot_deactivate(app, client, staff, make_participant, role):
    ann = make_participant("Ann Archer")
    as_role(client, staff, role)
    answer = post(
        client, f"/admin/participants/{ann['id']}/deactivate", {"deactivate-confirm": "y"}
    )
    assert answer.status_code == 403
    assert user_row(app, ann["id"]).active


def test_a_manager_cannot_deactivate_a_staff_account(app, client, staff):
    operator = staff("operator")
    as_role(client, staff, "manager")
    path = f"/admin/participants/{operator['id']}"
    answer = post(client, f"{path}/deactivate", {"deactivate-confirm": "y"})
    assert answer.status_code == 403
    assert "Only an administrator" in answer.get_data(True)
    assert user_row(app, operator["id"]).active


def test_nobody_deactivates_their_own_account(app, client, staff):
    admin = as_role(client, staff, "admin")
    staff("admin")  # not the last admin either way
    path = f"/admin/participants/{admin['id']}"
    answer = post(client, f"{path}/deactivate", {"deactivate-confirm": "y"})
    assert answer.status_code == 409
    assert "your own account" in answer.get_data(True)
    assert user_row(app, admin["id"]).active


def test_the_last_active_admin_cannot_be_demoted(app, client, runner, staff):
    admin = as_role(client, staff, "admin")
    path = f"/admin/participants/{admin['id']}"
    answer = post(client, f"{path}/role", {"role": "manager"})
    assert answer.status_code == 409
    assert "last active administrator" in answer.get_data(True)
    assert user_row(app, admin["id"]).role == "admin"

    result = runner.invoke(args=["admin", "set-role", admin["email"], "member"])
    assert result.exit_code != 0 and "last active administrator" in result.output
    assert user_row(app, admin["id"]).role == "admin"

    # An inactive second admin does not count; an active one does.
    other = staff("admin")
    with app.app_context():
        db.session.get(User, other["id"]).active = False
        db.session.commit()
    assert post(client, f"{path}/role", {"role": "manager"}).status_code == 409
    with app.app_context():
        db.session.get(User, other["id"]).active = True
        db.session.commit()
    assert post(client, f"{path}/role", {"role": "manager"}).status_code == 302
    assert user_row(app, admin["id"]).role == "manager"
    assert audit_entries(app, "user.role")[0].after == {"role": "manager"}


def test_a_code_is_replaced_only_after_it_is_disabled(app, client, staff, make_participant):
    ann = make_participant("Ann Archer")
    as_role(client, staff, "manager")
    path = f"/admin/participants/{ann['id']}"
    with app.app_context():
        old = db.session.scalar(select(ReferralCode).where(ReferralCode.code == ann["code"]))
        old_id, program_id = old.id, old.program_id

    refused = post(client, f"{path}/codes", {"program_id": program_id})
    assert refused.status_code == 409
    assert f"still has the active code {ann['code']}" in refused.get_data(True)
    assert "disable it first" in refused.get_data(True)

    disable = f"{path}/codes/{old_id}/disable"
    assert post(client, disable, {}).status_code == 400  # not confirmed
    assert post(client, disable, {f"code{old_id}-confirm": "y"}).status_code == 302
    assert post(client, f"{path}/codes", {"program_id": program_id}).status_code == 302

    with app.app_context():
        codes = dict(
            db.session.execute(
                select(ReferralCode.code, ReferralCode.status).where(
                    ReferralCode.user_id == ann["id"]
                )
            ).all()
        )
    assert codes[ann["code"]] == "disabled"
    assert sorted(codes.values()) == ["active", "disabled"]
    assert client.get(f"/r/{ann['code']}").headers.get("Set-Cookie") is None
    [disabled] = audit_entries(app, "code.disable")
    assert disabled.after == {"code": ann["code"], "status": "disabled"}
    [issued] = audit_entries(app, "code.issue")
    assert issued.after["code"] != ann["code"] and issued.after["user_id"] == ann["id"]


def test_an_operator_cannot_disable_or_issue_codes(app, client, staff, make_participant):
    ann = make_participant("Ann Archer")
    with app.app_context():
        code = db.session.scalar(select(ReferralCode).where(ReferralCode.code == ann["code"]))
        code_id, program_id = code.id, code.program_id
    as_role(client, staff, "operator")
    base = f"/admin/participants/{ann['id']}/codes"
    data = {f"code{code_id}-confirm": "y", "program_id": program_id}
    assert post(client, f"{base}/{code_id}/disable", data).status_code == 403
    assert post(client, base, data).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ReferralCode)) == 2
        assert db.session.get(ReferralCode, code_id).status == "active"


# --- users and roles -------------------------------------------------------------------------


def test_the_users_screen_lists_staff_by_role_and_sets_roles_by_email(
    app, client, staff, make_participant
):
    ann = make_participant("Ann Archer")
    operator = staff("operator")
    staff("marketer")
    as_role(client, staff, "admin")

    everyone = client.get("/admin/users").get_data(True)
    assert "Operator Staff" in everyone and "Marketer Staff" in everyone
    assert "Ann Archer" not in everyone
    operators = client.get("/admin/users?role=operator").get_data(True)
    assert "Operator Staff" in operators and "Marketer Staff" not in operators

    answer = post(client, "/admin/users/role", {"email": ann["email"].upper(), "role": "marketer"})
    assert answer.status_code == 302
    assert user_row(app, ann["id"]).role == "marketer"
    unknown = post(client, "/admin/users/role", {"email": "ghost@example.com", "role": "admin"})
    assert unknown.status_code == 404
    assert "No account has this email address." in unknown.get_data(True)
    assert 'value="ghost@example.com"' in unknown.get_data(True)  # what was typed stays

    export = client.get("/admin/export/users.csv?role=operator").get_data(True)
    assert [row["email"] for row in csv.DictReader(io.StringIO(export))] == [operator["email"]]


@pytest.mark.parametrize("role", ["operator", "marketer", "manager"])
def test_only_admins_open_users_and_roles(app, client, staff, make_participant, role):
    ann = make_participant("Ann Archer")
    as_role(client, staff, role)
    assert client.get("/admin/users").status_code == 403
    answer = post(client, "/admin/users/role", {"email": ann["email"], "role": "admin"})
    assert answer.status_code == 403
    assert user_row(app, ann["id"]).role == "member"
