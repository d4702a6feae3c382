"""Rewards, payouts and conversions in the staff panel: filters, the staff actions (each once,
each audited), purchases recorded by hand, and the audit entries of jobs and commands."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from extensions import db
from models import AuditLog, Conversion, Payout, Reward, User, utcnow
from rewards import ledger, services
from rewards.conversions import record_event
from rewards.events import EventIn
from rewards.signals import rewards_paid
from tests import factories
from tests.helpers import accepted_purchase, csrf_token, read_form


@pytest.fixture
def pair(make_participant):
    """Rita invited Fred; Fred bought: Rita holds $10.00 and Fred $5.00, both pending."""
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    return rita, fred


@pytest.fixture
def staff_login(app, login):
    def as_role(role: str) -> dict:
        with app.app_context():
            person = factories.staff(role)
        login(person["email"])
        return person

    return as_role


def reward_of(app, user_id: int) -> Reward:
    with app.app_context():
        return db.session.scalars(
            select(Reward).where(Reward.beneficiary_id == user_id).order_by(Reward.id)
        ).first()


def set_status(app, reward_id: int, status: str) -> None:
    with app.app_context():
        values = {"status": status}
        if status == "paid":
            values["paid_at"] = utcnow()
        db.session.execute(update(Reward).where(Reward.id == reward_id).values(**values))
        db.session.commit()


def audit_entries(app, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            )
        )


def act(client, path: str, **fields):
    """Submit an action's confirmation page as a person would: token from the page."""
    return client.post(path, data={"csrf_token": csrf_token(client, path), **fields})


# --- rewards ---------------------------------------------------------------------------------


def test_the_rewards_list_filters_and_exports_the_same_rows(app, client, pair, staff_login):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    staff_login("manager")
    page = client.get("/admin/rewards", query_string={"participant": "rita"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "$10.00" in html and "$5.00" not in html
    assert "Approve early…" in html and "Cancel…" in html
    csv = client.get("/admin/export/rewards.csv", query_string={"participant": "rita"}).text
    lines = csv.splitlines()
    assert len(lines) == 2 and ",10.00,USD,pending," in lines[1]
    none = client.get("/admin/rewards", query_string={"status": "paid"}).get_data(as_text=True)
    assert "No reward matches these filters" in none


def test_approving_early_is_a_confirmed_staff_override(app, client, pair, staff_login):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    manager = staff_login("manager")
    reward = reward_of(app, rita["id"])
    path = f"/admin/rewards/{reward.id}/approve?status=pending"
    assert "staff override of the refund window" in client.get(path).get_data(as_text=True)

    unconfirmed = act(client, path)
    assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
    assert reward_of(app, rita["id"]).status == "pending"

    done = act(client, path, confirm="y")
    assert done.status_code == 302 and done.headers["Location"].endswith("?status=pending")
    assert reward_of(app, rita["id"]).status == "approved"
    (entry,) = audit_entries(app, "reward.approve")
    assert entry.actor_id == manager["id"]
    assert entry.after == {"status": "approved", "hold_ended_early": True}

    again = act(client, path, confirm="y")
    assert again.status_code == 409 and "Only a reward on hold (pending)" in again.text
    assert len(audit_entries(app, "reward.approve")) == 1


def test_cancelling_needs_a_reason_and_refuses_paid_rewards(app, client, pair, staff_login):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    staff_login("manager")
    rita_reward, fred_reward = reward_of(app, rita["id"]), reward_of(app, fred["id"])
    path = f"/admin/rewards/{rita_reward.id}/cancel"
    no_reason = act(client, path, confirm="y")
    assert no_reason.status_code == 400 and reward_of(app, rita["id"]).status == "pending"

    assert act(client, path, confirm="y", reason="order was fake").status_code == 302
    cancelled = reward_of(app, rita["id"])
    assert (cancelled.status, cancelled.reason) == ("cancelled", "order was fake")
    (entry,) = audit_entries(app, "reward.cancel")
    assert entry.before == {"status": "pending"} and entry.after["reason"] == "order was fake"

    set_status(app, fred_reward.id, "paid")
    refused = act(client, f"/admin/rewards/{fred_reward.id}/cancel", confirm="y", reason="x")
    assert refused.status_code == 409
    assert "already paid and cannot be cancelled" in refused.text
    assert "reversing entry" in refused.text
    assert reward_of(app, fred["id"]).status == "paid"


def test_paying_out_by_hand_marks_paid_once_and_announces_it(app, client, pair, staff_login):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    reward = reward_of(app, rita["id"])
    set_status(app, reward.id, "approved")
    heard = []

    def listener(sender, reward_ids, now):
        heard.append(reward_ids)

    rewards_paid.connect(listener)
    try:
        staff_login("manager")
        path = f"/admin/rewards/{reward.id}/pay"
        assert act(client, path, confirm="y", reference="gift card 4411").status_code == 302
        again = act(client, path, confirm="y")
        assert again.status_code == 409 and "Only an approved reward" in again.text
    finally:
        rewards_paid.disconnect(listener)
    paid = reward_of(app, rita["id"])
    assert paid.status == "paid" and paid.paid_at is not None
    assert paid.external_reference == "gift card 4411"
    assert heard == [[reward.id]]
    assert len(audit_entries(app, "reward.pay")) == 1


def test_a_reward_inside_a_payout_request_is_paid_through_the_request(
    app, client, pair, make_participant, staff_login
):
    rita, fred = pair
    gina = make_participant("Gina Friend", invited_by=rita["code"])
    accepted_purchase(app, fred["email"], "o1")
    accepted_purchase(app, gina["email"], "o2")
    with app.app_context():
        services.release_held_rewards(utcnow() + timedelta(days=15))
        payout = ledger.request_payout(db.session.get(User, rita["id"]), "credit", "USD", utcnow())
        db.session.commit()
        payout_id = payout.id
    manager = staff_login("manager")
    reward = reward_of(app, rita["id"])
    refused = act(client, f"/admin/rewards/{reward.id}/pay", confirm="y")
    assert refused.status_code == 409 and f"payout request #{payout_id}" in refused.text

    listed = client.get("/admin/payouts", query_string={"status": "requested"}).text
    assert "$20.00" in listed and "Mark paid…" in listed
    assert (
        act(client, f"/admin/payouts/{payout_id}/pay", confirm="y", reference="wire 7").status_code
        == 302
    )
    with app.app_context():
        payout = db.session.get(Payout, payout_id)
        assert (payout.status, payout.reference) == ("paid", "wire 7")
        statuses = db.session.scalars(
            select(Reward.status).where(Reward.payout_id == payout_id)
        ).all()
    assert statuses == ["paid", "paid"]
    (entry,) = audit_entries(app, "payout.pay")
    assert entry.actor_id == manager["id"] and entry.after["reference"] == "wire 7"
    twice = act(client, f"/admin/payouts/{payout_id}/cancel", confirm="y", reason="late")
    assert twice.status_code == 409 and "no longer open" in twice.text


def test_cancelling_a_payout_request_frees_its_rewards(
    app, client, pair, make_participant, staff_login
):
    rita, fred = pair
    gina = make_participant("Gina Friend", invited_by=rita["code"])
    accepted_purchase(app, fred["email"], "o1")
    accepted_purchase(app, gina["email"], "o2")
    with app.app_context():
        services.release_held_rewards(utcnow() + timedelta(days=15))
        payout_id = ledger.request_payout(
            db.session.get(User, rita["id"]), "credit", "USD", utcnow()
        ).id
        db.session.commit()
    staff_login("manager")
    path = f"/admin/payouts/{payout_id}/cancel"
    assert act(client, path, confirm="y").status_code == 400  # a reason is required
    assert act(client, path, confirm="y", reason="bank details missing").status_code == 302
    with app.app_context():
        assert db.session.get(Payout, payout_id).status == "cancelled"
        assert db.session.scalar(select(func.count()).where(Reward.payout_id == payout_id)) == 0
    (entry,) = audit_entries(app, "payout.cancel")
    assert entry.after["reason"] == "bank details missing"
    assert len(entry.after["released_reward_ids"]) == 2


# --- conversions -----------------------------------------------------------------------------


def record(client, **fields):
    form = {
        "order_id": "shop-77",
        "amount": "25.00",
        "currency": "USD",
        "occurred_on": utcnow().date().isoformat(),
        **fields,
    }
    return act(client, "/admin/conversions/new", **form)


def test_a_purchase_recorded_by_hand_pays_once(app, client, pair, staff_login):
    rita, fred = pair
    manager = staff_login("manager")
    first = record(client, email=fred["email"].upper())
    assert first.status_code == 302
    assert "rewards it earned" in client.get(first.headers["Location"]).text
    again = record(client, email=fred["email"])
    assert "recorded before; nothing new" in client.get(again.headers["Location"]).text
    with app.app_context():
        conversion = db.session.scalars(select(Conversion)).one()
        assert (conversion.source, conversion.amount, conversion.outcome) == (
            "manual",
            2500,
            "accepted",
        )
        rewards = db.session.scalars(select(Reward.amount).order_by(Reward.amount)).all()
    assert rewards == [500, 1000]
    (entry,) = audit_entries(app, "conversion.record")
    assert entry.actor_id == manager["id"] and entry.after["order_id"] == "shop-77"
    listed = client.get("/admin/conversions", query_string={"source": "manual"}).text
    assert "shop-77" in listed and "$25.00" in listed
    assert (
        "No conversion matches"
        in client.get("/admin/conversions", query_string={"source": "stripe"}).text
    )


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"email": "nobody@example.com"}, "No participant has this email address"),
        ({"amount": "12.505"}, "USD amounts have 2 decimals at most"),
        ({"amount": "-3"}, "a number above zero"),
        ({"amount": "twelve"}, "a number above zero"),
        ({"currency": "U$D"}, "Choose a currency from the list"),
        ({"currency": "XYZ"}, "Choose a currency from the list"),
        ({"currency": "JPY", "amount": "12.50"}, "JPY amounts have 0 decimals at most"),
        ({"occurred_on": "2999-01-01"}, "cannot be in the future"),
    ],
)
def test_a_bad_manual_purchase_is_refused_and_keeps_what_was_typed(
    app, client, pair, staff_login, fields, message
):
    rita, fred = pair
    staff_login("manager")
    response = record(client, **{"email": fred["email"], **fields})
    assert response.status_code in (400, 422)
    assert message in response.text
    assert 'value="shop-77"' in response.text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversion)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditLog)) == 0


def test_a_manual_purchase_reports_every_mistake_at_once(app, client, pair, staff_login):
    # Issue 13: currency, then amount, then email took three submits.
    staff_login("manager")
    form = client.get("/admin/conversions/new").text
    assert 'class="form-select" id="currency"' in form
    assert '<option selected value="USD">USD</option>' in form
    response = record(client, email="nobody@example.com", amount="1.234", currency="K$D")
    assert response.status_code == 422
    errors = read_form(response).field_errors
    assert errors["email"] == [
        "No participant has this email address. Check it on the participants screen."
    ]
    assert errors["currency"] == ["Choose a currency from the list (ISO 4217 codes)."]
    assert "amount" not in errors  # its decimals depend on a currency that is not valid
    response = record(client, email="nobody@example.com", amount="1.2345", currency="KWD")
    errors = read_form(response).field_errors
    assert set(errors) == {"email", "amount"}
    assert errors["amount"] == ["KWD amounts have 3 decimals at most."]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversion)) == 0


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["operator", "marketer"])
def test_other_roles_get_403_on_every_operations_page_and_action(
    app, client, pair, staff_login, role
):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    reward = reward_of(app, rita["id"])
    staff_login(role)
    for path in (
        "/admin/rewards",
        "/admin/payouts",
        "/admin/conversions",
        "/admin/conversions/new",
        f"/admin/rewards/{reward.id}/approve",
        "/admin/export/rewards.csv",
        "/admin/export/conversions.csv",
    ):
        assert client.get(path).status_code == 403, path
    token = csrf_token(client, "/rewards/")
    form = {"csrf_token": token, "confirm": "y", "reason": "x", "reference": "x"}
    for action in ("approve", "cancel", "pay"):
        assert client.post(f"/admin/rewards/{reward.id}/{action}", data=form).status_code == 403
    for action in ("pay", "cancel"):
        assert client.post(f"/admin/payouts/1/{action}", data=form).status_code == 403
    purchase = {
        **form,
        "email": fred["email"],
        "order_id": "x1",
        "amount": "25",
        "currency": "USD",
        "occurred_on": utcnow().date().isoformat(),
    }
    assert client.post("/admin/conversions/new", data=purchase).status_code == 403
    assert reward_of(app, rita["id"]).status == "pending"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversion)) == 1
        assert db.session.scalar(select(func.count()).select_from(AuditLog)) == 0


# --- audit entries of jobs, commands and refunds ---------------------------------------------


def test_the_release_job_logs_one_entry_per_batch_as_the_system(app, pair):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    with app.app_context():
        services.release_held_rewards(utcnow() + timedelta(days=15))
        db.session.commit()
        ids = sorted(db.session.scalars(select(Reward.id)).all())
    (entry,) = audit_entries(app, "rewards.release")
    assert (entry.actor_id, entry.actor_label) == (None, "system: rewards.release_held")
    assert entry.before == {"status": "pending"}
    assert entry.after == {"ids": ids, "status": "approved"}


def test_commands_that_move_rewards_are_logged_with_the_command(app, runner, pair):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    with app.app_context():
        past = utcnow() - timedelta(days=1)
        db.session.execute(update(Reward).values(available_at=past, expires_at=past))
        db.session.commit()
    assert runner.invoke(args=["rewards", "release-held"]).exit_code == 0
    assert runner.invoke(args=["rewards", "expire"]).exit_code == 0
    (released,) = audit_entries(app, "rewards.release")
    (expired,) = audit_entries(app, "rewards.expire")
    assert released.actor_label.startswith("cli: ") and released.actor_label.endswith(
        "rewards release-held"
    )
    assert expired.actor_label.endswith("rewards expire")
    assert expired.after["status"] == "expired" and len(expired.after["ids"]) == 2


def test_a_refund_logs_each_cancelled_reward_as_the_refund(app, pair):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    with app.app_context():
        record_event(EventIn(source="api", kind="refund", external_id="r1", order_id="o1"))
        db.session.commit()
    entries = audit_entries(app, "reward.cancel")
    assert len(entries) == 2
    assert {entry.actor_label for entry in entries} == {"system: refund via api"}
    assert {entry.after["reason"] for entry in entries} == {"refunded"}


# PostgreSQL only: SQLite's transactions begin IMMEDIATE, so two clicks cannot overlap.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_staff_paying_the_same_reward_at_once_pay_it_once(app, pair):
    rita, fred = pair
    accepted_purchase(app, fred["email"], "o1")
    reward_id = reward_of(app, rita["id"]).id
    set_status(app, reward_id, "approved")
    barrier = threading.Barrier(2, timeout=10)

    def pay() -> str:
        with app.app_context():
            reward = db.session.get(Reward, reward_id)
            barrier.wait()
            try:
                ledger.mark_reward_paid(reward, None, utcnow())
                db.session.commit()
                return "paid"
            except ledger.RewardNotChanged:
                db.session.rollback()
                return "refused"

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = sorted(pool.map(lambda _: pay(), range(2)))
    assert answers == ["paid", "refused"]
    assert len(audit_entries(app, "reward.pay")) == 1
