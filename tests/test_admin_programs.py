"""Staff panel — referral programs: create, edit with the engine's validation, activate,
default, and the 30-day preview of edited rules."""

import csv
import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from core.money import CURRENCIES
from extensions import db
from models import AuditLog, Campaign, Program, utcnow
from referral.services import default_program
from rewards import programs
from rewards.conversions import record_event
from rewards.events import EventIn
from tests import factories
from tests.helpers import csrf_token, form_fields, log_in


@pytest.fixture
def marketer(app, client):
    with app.app_context():
        person = factories.staff("marketer")
    log_in(client, person["email"])
    return person


def default_id(app) -> int:
    with app.app_context():
        return default_program().id


def program_values(app, program_id: int, *names: str) -> tuple:
    with app.app_context():
        program = db.session.get(Program, program_id)
        return tuple(getattr(program, name) for name in names)


def audit_actions(app) -> list[str]:
    """The programs' audit entries (the ledger's own entries are left out)."""
    with app.app_context():
        query = select(AuditLog.action).where(AuditLog.target_type == "program")
        return list(db.session.scalars(query.order_by(AuditLog.id)))


def submit(client, path: str, **changes):
    """Post the form of `path` as shown, with `changes` typed over it."""
    fields = form_fields(client.get(path).get_data(True), path)
    return client.post(path, data={**fields, **changes})


def campaign(app, name: str, channel: str) -> int:
    with app.app_context():
        row = Campaign(name=name, channel=channel, starts_on=date.today())
        db.session.add(row)
        db.session.commit()
        return row.id


# --- create and edit -------------------------------------------------------------------------


def test_the_edit_form_shows_amounts_as_typed_and_saving_it_unchanged_changes_nothing(
    app, client, marketer
):
    program_id = default_id(app)
    path = f"/admin/programs/{program_id}"
    fields = form_fields(client.get(path).get_data(True), path)
    assert fields["min_purchase_amount"] == "20.00"
    assert fields["referrer_reward_value"] == "10.00"
    assert fields["friend_reward_value"] == "5.00"
    before = program_values(app, program_id, *programs.RULE_FIELDS)
    assert client.post(path, data=fields).status_code == 302
    assert program_values(app, program_id, *programs.RULE_FIELDS) == before
    assert audit_actions(app) == []


def test_the_rejection_email_is_off_by_default_and_a_tick_turns_it_on(app, client, marketer):
    program_id = default_id(app)
    path = f"/admin/programs/{program_id}"
    assert program_values(app, program_id, "notify_rejected") == (False,)
    assert submit(client, path, notify_rejected="y").status_code == 302
    assert program_values(app, program_id, "notify_rejected") == (
        True,
    )  # tests/test_notifications.py


def test_a_marketer_creates_a_program_in_a_referral_campaign(app, client, marketer):
    spring = campaign(app, "Spring referrals", "referral")
    campaign(app, "Search ads", "search")
    page = client.get("/admin/programs/new").get_data(True)
    assert "Spring referrals" in page and "Search ads" not in page

    answer = submit(
        client,
        "/admin/programs/new",
        slug="spring",
        name="Spring promo",
        campaign_id=str(spring),
        trigger_event="every_purchase",
        min_purchase_amount="12.50",
        referrer_reward_basis="percent",
        referrer_reward_value="12.5",
        friend_reward_kind="",
        level_shares="50, 20",
    )
    assert answer.status_code == 302
    with app.app_context():
        program = db.session.scalar(select(Program).where(Program.slug == "spring"))
        assert (program.name, program.campaign_id, program.is_default) == (
            "Spring promo",
            spring,
            False,
        )
        assert program.min_purchase_amount == 1250
        assert (program.referrer_reward_basis, program.referrer_reward_value) == ("percent", 1250)
        assert program.friend_reward_kind is None and program.level_shares == [50, 20]
        entry = db.session.scalars(select(AuditLog)).one()
        assert (entry.action, entry.target_id) == ("program.create", str(program.id))
        assert entry.after["referrer_reward_value"] == 1250
    location = answer.headers["Location"]
    edit = form_fields(client.get(location).get_data(True), location)
    assert edit["referrer_reward_value"] == "12.5" and edit["min_purchase_amount"] == "12.50"


@pytest.mark.parametrize(
    "changes, field, message",
    [
        (
            {"cap_per_day": "10", "cap_per_month": "5"},
            "cap_per_day",
            "cap per day (10) cannot exceed",
        ),
        ({"referrer_reward_value": "10.005"}, "referrer_reward_value", "at most 2 decimals"),
        (
            {"referrer_reward_basis": "percent", "referrer_reward_value": "150"},
            "referrer_reward_value",
            "100 %",
        ),
        ({"referrer_reward_value": "ten"}, "referrer_reward_value", "such as 10.00."),
        ({"level_shares": "50, lots"}, "level_shares", "whole percents"),
        ({"hold_days": "-1"}, "hold_days", "The hold is 0 to 365 days."),
        ({"max_depth": "three"}, "max_depth", "Not a valid integer value."),
        ({"campaign_id": "12345"}, "campaign_id", "Not a valid choice."),
        ({"currency": "Dollars"}, "currency", "Choose a currency from the list (ISO 4217"),
        ({"currency": "XYZ"}, "currency", "Choose a currency from the list (ISO 4217"),
        ({"currency": ""}, "currency", "Choose a currency from the list."),
    ],
)
def test_a_bad_rule_is_shown_next_to_its_field_and_nothing_is_saved(
    app, client, marketer, changes, field, message
):
    path = f"/admin/programs/{default_id(app)}"
    before = program_values(app, default_id(app), *programs.RULE_FIELDS)
    answer = submit(client, path, name="Renamed", **changes)
    assert answer.status_code == 400
    html = answer.get_data(True)
    assert message in html
    field_html = html.split(f'name="{field}"')[1].split('<div class="mb-3">')[0]
    assert message in field_html  # the message sits under its field
    assert form_fields(html, path)["name"] == "Renamed"  # what was typed stays
    assert program_values(app, default_id(app), *programs.RULE_FIELDS) == before
    assert audit_actions(app) == []


def test_the_currency_is_picked_from_the_iso_list_and_a_program_keeps_its_own(
    app, client, marketer
):
    """docs/guarantees.md #33: a select of ISO 4217 codes showing the program's currency; one
    that has left the list (set from the command line, say) stays offered and selected."""
    program_id = default_id(app)
    path = f"/admin/programs/{program_id}"
    page = client.get(path).get_data(True)
    select_html = re.search(r'<select[^>]*name="currency".*?</select>', page, re.S).group(0)
    assert select_html.count("<option") == len(CURRENCIES)
    assert form_fields(page, path)["currency"] == "USD"
    assert submit(client, path, currency="EUR").status_code == 302
    assert program_values(app, program_id, "currency") == ("EUR",)
    assert form_fields(client.get(path).get_data(True), path)["currency"] == "EUR"

    with app.app_context():
        db.session.get(Program, program_id).currency = "XTS"
        db.session.commit()
    page = client.get(path).get_data(True)
    assert form_fields(page, path)["currency"] == "XTS"
    assert submit(client, path, name="Still XTS").status_code == 302
    assert program_values(app, program_id, "name", "currency") == ("Still XTS", "XTS")


def test_creating_with_a_bad_rule_saves_nothing(app, client, marketer):
    answer = submit(client, "/admin/programs/new", slug="bad", name="Bad", milestone_every="5")
    assert answer.status_code == 400
    assert "needs both how often" in answer.get_data(True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Program)) == 1
    assert audit_actions(app) == []


def test_an_edit_is_saved_and_audited_with_only_what_changed(app, client, marketer):
    program_id = default_id(app)
    path = f"/admin/programs/{program_id}"
    answer = submit(client, path, referrer_reward_value="15.00", hold_days="7")
    assert answer.status_code == 302
    assert program_values(app, program_id, "referrer_reward_value", "hold_days") == (1500, 7)
    with app.app_context():
        entry = db.session.scalars(select(AuditLog)).one()
        assert entry.action == "program.update"
        assert entry.before == {"referrer_reward_value": 1000, "hold_days": 14}
        assert entry.after == {"referrer_reward_value": 1500, "hold_days": 7}


def test_only_a_referral_campaign_can_hold_a_program(app, runner):
    search = campaign(app, "Search ads", "search")
    with app.app_context():
        with pytest.raises(programs.InvalidRules) as refused:
            programs.update_program(default_program(), {"campaign_id": search})
        assert refused.value.field == "campaign_id"
        db.session.rollback()
    result = runner.invoke(args=["rewards", "program", "set", "default", f"campaign_id={search}"])
    assert result.exit_code != 0 and "referral channel" in result.output
    assert program_values(app, default_id(app), "campaign_id") == (None,)


def test_the_command_line_still_sets_rules_and_is_audited(app, runner):
    result = runner.invoke(args=["rewards", "program", "set", "default", "hold_days=3"])
    assert result.exit_code == 0, result.output
    assert program_values(app, default_id(app), "hold_days") == (3,)
    result = runner.invoke(args=["rewards", "program", "create", "summer", "name=Summer"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        entries = db.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert [entry.action for entry in entries] == ["program.update", "program.create"]
        assert entries[0].actor_label.endswith("rewards program set")


# --- activate, deactivate, default -----------------------------------------------------------


def test_deactivate_needs_confirming_and_activate_restores(app, client, marketer):
    program_id = default_id(app)
    path = f"/admin/programs/{program_id}"
    token = csrf_token(client, path)
    answer = client.post(f"{path}/deactivate", data={"csrf_token": token})
    assert answer.status_code == 400 and "Tick the box to confirm." in answer.get_data(True)
    assert program_values(app, program_id, "active") == (True,)

    answer = client.post(
        f"{path}/deactivate", data={"csrf_token": token, "deactivate-confirm": "y"}
    )
    assert answer.status_code == 302
    assert program_values(app, program_id, "active") == (False,)
    assert client.post(f"{path}/activate", data={"csrf_token": token}).status_code == 302
    assert program_values(app, program_id, "active") == (True,)
    assert audit_actions(app) == ["program.deactivate", "program.activate"]


def test_making_another_program_default_leaves_exactly_one(app, client, marketer):
    with app.app_context():
        spring = programs.create_program("spring", {"name": "Spring"}, "USD")
        db.session.commit()
        spring_id = spring.id
    old_id = default_id(app)
    path = f"/admin/programs/{spring_id}"
    token = csrf_token(client, path)
    answer = client.post(f"{path}/default", data={"csrf_token": token, "default-confirm": "y"})
    assert answer.status_code == 302
    with app.app_context():
        defaults = db.session.scalars(select(Program.id).where(Program.is_default)).all()
        assert defaults == [spring_id]
        entry = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "program.default")
        ).one()
        assert (entry.before, entry.after) == ({"default": "default"}, {"default": "spring"})
    assert program_values(app, old_id, "is_default") == (False,)


@pytest.mark.parametrize("role", ["operator", "manager"])
def test_other_roles_cannot_open_or_change_programs(app, client, role):
    with app.app_context():
        person = factories.staff(role)
    log_in(client, person["email"])
    program_id = default_id(app)
    path = f"/admin/programs/{program_id}"
    token = csrf_token(client, "/referral/dashboard")
    assert client.get("/admin/programs").status_code == 403
    assert client.get(path).status_code == 403
    assert client.get("/admin/export/programs.csv").status_code == 403
    assert client.post(path, data={"csrf_token": token, "name": "X"}).status_code == 403
    confirm = {"csrf_token": token, "deactivate-confirm": "y"}
    assert client.post(f"{path}/deactivate", data=confirm).status_code == 403
    assert program_values(app, program_id, "name", "active") == ("Invite friends", True)
    assert audit_actions(app) == []


def test_the_list_filters_and_exports_the_same_rows(app, client, marketer):
    with app.app_context():
        programs.create_program("spring", {"name": "Spring promo", "active": False}, "USD")
        db.session.commit()
    page = client.get("/admin/programs?status=inactive").get_data(True)
    assert "Spring promo" in page and "Invite friends" not in page
    assert "/admin/export/programs.csv?status=inactive" in page
    export = client.get("/admin/export/programs.csv?status=inactive").get_data(True)
    assert [row["slug"] for row in csv.DictReader(io.StringIO(export))] == ["spring"]


# --- preview ---------------------------------------------------------------------------------


@pytest.fixture
def history(app, make_participant):
    """Rita's friends' purchases under the default program (first purchase, 20.00 minimum,
    10.00 to Rita, 5.00 to the friend). Inside the last 30 days:
    Fred 25.00 (paid) and 40.00; Gina 15.00; Hank 50.00 (Hank's 30.00 forty days ago paid);
    Ivy 20.00 in EUR; Jack 22.00, paid then refunded."""
    then = utcnow() - timedelta(days=60)
    rita = make_participant("Rita Referrer", now=then)
    friends = {
        name: make_participant(f"{name} Friend", invited_by=rita["code"], now=then)
        for name in ("Fred", "Gina", "Hank", "Ivy", "Jack")
    }
    purchases = [
        ("Hank", 3000, "USD", 40),
        ("Fred", 2500, "USD", 10),
        ("Jack", 2200, "USD", 8),
        ("Fred", 4000, "USD", 5),
        ("Gina", 1500, "USD", 3),
        ("Hank", 5000, "USD", 2),
        ("Ivy", 2000, "EUR", 1),
    ]
    with app.app_context():
        for number, (name, amount, currency, days_ago) in enumerate(purchases):
            record_event(
                EventIn(
                    source="api",
                    kind="purchase",
                    external_id=f"evt-{number}",
                    order_id=f"order-{number}",
                    customer_email=friends[name]["email"],
                    amount=amount,
                    currency=currency,
                    occurred_at=utcnow() - timedelta(days=days_ago),
                )
            )
        record_event(EventIn(source="api", kind="refund", external_id="evt-r", order_id="order-2"))
        db.session.commit()


def preview_text(html: str, element_id: str) -> str:
    return html.split(f'id="{element_id}">')[1].split("<")[0]


@pytest.mark.parametrize(
    "changes, paying, referrer, friend, skipped",
    [
        # As stored: only Fred's first 25.00 pays, as it did.
        ({}, "1", "$10.00", "$5.00", ["1 — below", "1 — paid in another", "2 — not the referral"]),
        # Every purchase of 15.00 or more, 10 % to Rita, 2.50 to the friend:
        # Fred 2.50 + 4.00, Gina 1.50, Hank 5.00 = 13.00; four friends' 2.50 = 10.00.
        (
            {
                "trigger_event": "every_purchase",
                "min_purchase_amount": "15.00",
                "referrer_reward_basis": "percent",
                "referrer_reward_value": "10",
                "friend_reward_value": "2.50",
            },
            "4",
            "$13.00",
            "$10.00",
            ["1 — paid in another", "1 — the order was refunded"],
        ),
        # First purchase of 30.00 or more: Fred's 40.00 is now his first qualifying one;
        # Hank's 30.00 forty days ago already qualified him.
        ({"min_purchase_amount": "30.00"}, "1", "$10.00", "$5.00", ["1 — not the referral"]),
    ],
)
def test_the_preview_replays_the_last_30_days_without_saving(
    app, client, marketer, history, changes, paying, referrer, friend, skipped
):
    program_id = default_id(app)
    before = program_values(app, program_id, *programs.RULE_FIELDS)
    answer = submit(client, f"/admin/programs/{program_id}", preview="Preview", **changes)
    assert answer.status_code == 200
    html = answer.get_data(True)
    assert preview_text(html, "preview-paying") == paying
    assert preview_text(html, "preview-referrer") == referrer
    assert preview_text(html, "preview-friend") == friend
    assert preview_text(html, "actual-paying") == "1"
    actual = html.split('id="actual-totals">')[1].split("</ul>")[0]
    assert "To referrers: $10.00 credit" in actual and "To friends: $5.00 credit" in actual
    reasons = html.split('id="preview-skipped">')[1].split("</ul>")[0]
    for reason in skipped:
        assert reason in reasons
    assert "6 stored conversions" in html
    assert "caps per referrer" in html  # what the preview does not model is said
    path = f"/admin/programs/{program_id}"
    assert form_fields(html, path)["min_purchase_amount"] == changes.get(
        "min_purchase_amount", "20.00"
    )
    assert program_values(app, program_id, *programs.RULE_FIELDS) == before
    assert audit_actions(app) == []


def test_a_preview_of_impossible_rules_says_why(app, client, marketer):
    answer = submit(
        client,
        f"/admin/programs/{default_id(app)}",
        preview="Preview",
        trigger_event="signup",
        referrer_reward_basis="percent",
    )
    assert answer.status_code == 400
    assert "needs a purchase" in answer.get_data(True)
    assert 'id="preview-result"' not in answer.get_data(True)
