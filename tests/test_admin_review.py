"""The review queue: held referrals and purchases, their reasons and linked accounts, and
decisions one by one or in bulk, by managers only, each in the audit log."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AuditLog, Click, Referral, ReferralCode, Reward, User, utcnow
from rewards import review
from rewards.conversions import record_event
from rewards.events import EventIn
from tests import factories
from tests.helpers import accepted_purchase, configure, csrf_token, referral_of, take_outbox


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem"}  # the approval emails land in an outbox to read


def held_friend(make_participant, referrer: dict, name: str, ip: str = "203.0.113.7") -> dict:
    """A friend who signed up from the referrer's address: held for review (same_ip)."""
    email = f"{name.replace(' ', '.').lower()}@example.com"
    return make_participant(name, email=email, invited_by=referrer["code"], ip=ip)


@pytest.fixture
def rita(make_participant):
    return make_participant("Rita Referrer", email="rita@example.com", ip="203.0.113.7")


@pytest.fixture
def manager(app, login):
    with app.app_context():
        person = factories.staff("manager")
    login(person["email"])
    return person


def reward_statuses(app, referral_id: int) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Reward.status).where(Reward.referral_id == referral_id).order_by(Reward.id)
            )
        )


def audit_entries(app, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            )
        )


def decide(client, ids, path="/admin/review", show="referrals", **fields):
    data = {"csrf_token": csrf_token(client, path), "ids": [str(i) for i in ids], **fields}
    return client.post(f"/admin/review/{show}/decide", data=data)


def test_the_queue_lists_reasons_and_linked_accounts(app, client, rita, make_participant, manager):
    fred = held_friend(make_participant, rita, "Fred Friend")
    page = client.get("/admin/review")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Fred Friend" in html and "same_ip" in html and "+50" in html
    assert "signed up from the referrer&#39;s IP address" in html
    # Rita shares Fred's signup address: shown masked, linked to her participant page.
    assert f'href="/admin/participants/{rita["id"]}"' in html
    assert "r***@example.com" in html and "same IP" in html
    assert f'value="{referral_of(app, fred["id"]).id}"' in html


def test_linked_accounts_cover_device_network_and_mailbox(app, client, make_participant, manager):
    rita = make_participant("Rita Referrer", email="rita.r@gmail.com", device_id="d" * 32)
    fred = make_participant(
        "Fred Friend", email="fred@example.com", invited_by=rita["code"], device_id="d" * 32
    )
    nina = make_participant("Nina Neighbour", email="nina@example.com", ip="198.51.100.9")
    alias = make_participant("Alias Rita", email="ritar+x@gmail.com")
    with app.app_context():
        db.session.get(User, fred["id"]).signup_ip = "198.51.100.20"
        db.session.commit()
    assert referral_of(app, fred["id"]).status == "review"
    html = client.get("/admin/review").get_data(as_text=True)
    assert "same device" in html  # Rita's browser
    assert "same network 198.51.100.0/24" in html and "n***@example.com" in html
    assert f'href="/admin/participants/{nina["id"]}"' in html
    # The alias shares Rita's mailbox, not Fred's: nothing links it to Fred.
    assert f'href="/admin/participants/{alias["id"]}"' not in html


def test_approving_one_counts_it_starts_the_hold_and_is_audited(
    app, client, rita, make_participant, manager
):
    fred = held_friend(make_participant, rita, "Fred Friend")
    accepted_purchase(app, fred["email"], "o1")
    referral = referral_of(app, fred["id"])
    assert reward_statuses(app, referral.id) == ["review", "review"]
    path = f"/admin/review/referrals/{referral.id}"
    assert "same_ip" in client.get(path).get_data(as_text=True)

    data = {"csrf_token": csrf_token(client, path), "ids": str(referral.id), "approve": "1"}
    data["reason"] = "same flat, called them"
    response = client.post(path, data=data)
    assert response.status_code == 302
    assert "1 approved" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert referral_of(app, fred["id"]).status == "qualified"
    assert reward_statuses(app, referral.id) == ["pending", "pending"]
    with app.app_context():
        assert db.session.get(User, rita["id"]).referral_count == 1
    (entry,) = audit_entries(app, "referral.approve")
    assert (entry.actor_id, entry.actor_label) == (manager["id"], manager["email"])
    assert entry.target_id == str(referral.id)
    assert entry.before == {"status": "review"}
    assert (
        entry.after["status"] == "qualified" and entry.after["reason"] == "same flat, called them"
    )


def test_approving_after_the_hold_has_passed_approves_like_the_hold_release(
    app, rita, make_participant
):
    configure(app, hold_days=0)
    fred = held_friend(make_participant, rita, "Fred Friend")
    accepted_purchase(app, fred["email"], "o1")
    referral = referral_of(app, fred["id"])
    assert reward_statuses(app, referral.id) == ["review", "review"]
    take_outbox(app)

    with app.app_context():
        review.approve_referral(db.session.get(Referral, referral.id), utcnow())
        db.session.commit()

    assert referral_of(app, fred["id"]).status == "rewarded"
    assert reward_statuses(app, referral.id) == ["approved", "approved"]
    subjects = sorted(message.subject for message in take_outbox(app))
    assert subjects == [
        "A friend joined InviteLoop through you",  # counted from now on (rewards/notifications)
        "Your reward of $10.00 is approved",
        "Your reward of $5.00 is approved",
    ]


def test_bulk_reject_reports_what_someone_else_decided_first(
    app, client, rita, make_participant, manager
):
    friends = [held_friend(make_participant, rita, f"Friend No{n}") for n in range(3)]
    ids = [referral_of(app, friend["id"]).id for friend in friends]
    with app.app_context():  # another manager approves the second one meanwhile
        review.approve_referral(db.session.get(Referral, ids[1]), utcnow())
        db.session.commit()

    response = decide(client, ids, reject="1", reason="one household", confirm_reject="y", page="1")
    assert response.status_code == 302
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"2 rejected: #{ids[0]}, #{ids[2]}" in html
    assert f"already decided by someone else): #{ids[1]}" in html
    statuses = [referral_of(app, friend["id"]) for friend in friends]
    assert [(r.status, r.reason) for r in statuses] == [
        ("rejected", "one household"),
        ("approved", None),
        ("rejected", "one household"),
    ]
    assert len(audit_entries(app, "referral.reject")) == 2


def test_bulk_approve_decides_every_ticked_referral(app, client, rita, make_participant, manager):
    friends = [held_friend(make_participant, rita, f"Friend No{n}") for n in range(2)]
    ids = [referral_of(app, friend["id"]).id for friend in friends]
    response = decide(client, ids, approve="1")
    assert response.status_code == 302
    assert {referral_of(app, friend["id"]).status for friend in friends} == {"approved"}
    assert "Nothing is waiting for review" in client.get("/admin/review").get_data(as_text=True)


def test_a_reject_without_reason_or_confirmation_changes_nothing(
    app, client, rita, make_participant, manager
):
    fred = held_friend(make_participant, rita, "Fred Friend")
    referral_id = referral_of(app, fred["id"]).id
    response = decide(client, [referral_id], reject="1")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Say why you reject." in html and "Tick to confirm." in html
    assert "checked" in html  # the ticked item stays ticked
    nothing = decide(client, [], approve="1")
    assert nothing.status_code == 400 and "Select at least one item." in nothing.get_data(
        as_text=True
    )
    assert referral_of(app, fred["id"]).status == "review"
    assert audit_entries(app, "referral.reject") == []


def fast_purchase(app, rita: dict, fred: dict) -> int:
    """Fred buys three seconds after a click on Rita's link: the purchase is held."""
    now = utcnow()
    with app.app_context():
        code_id = db.session.scalar(
            select(ReferralCode.id).where(ReferralCode.code == rita["code"])
        )
        db.session.add(Click(code_id=code_id, visitor_id="v" * 32, created_at=now))
        db.session.commit()
    accepted_purchase(app, fred["email"], "fast", now=now + timedelta(seconds=3))
    with app.app_context():
        return db.session.scalar(select(Reward.conversion_id).where(Reward.status == "review"))


def test_a_held_purchase_is_listed_and_approved_into_the_hold(
    app, client, make_participant, manager
):
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    conversion_id = fast_purchase(app, rita, fred)
    html = client.get("/admin/review?show=purchases").get_data(as_text=True)
    assert "fast_purchase" in html and "$25.00" in html and "$10.00" in html

    response = decide(
        client, [conversion_id], path="/admin/review?show=purchases", show="purchases", approve="1"
    )
    assert response.status_code == 302
    with app.app_context():
        statuses = db.session.scalars(
            select(Reward.status).where(Reward.conversion_id == conversion_id)
        ).all()
    assert statuses == ["pending", "pending"]
    (entry,) = audit_entries(app, "conversion.approve_held")
    assert entry.actor_id == manager["id"] and entry.after["status"] == "pending"
    again = decide(
        client, [conversion_id], path="/admin/review?show=purchases", show="purchases", approve="1"
    )
    followed = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "already decided by someone else" in followed


def test_a_held_purchase_partly_refunded_stays_one_item_with_the_restated_amount(
    app, client, make_participant, manager
):
    configure(app, referrer_reward_basis="percent", referrer_reward_value=1000)
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    purchase_id = fast_purchase(app, rita, fred)  # 2500: 10 % for Rita, a fixed 5.00 for Fred
    with app.app_context():
        refund = EventIn(
            source="api", kind="refund", external_id="fast-part", order_id="fast", amount=500
        )
        refund_id = record_event(refund).conversion_id
        db.session.commit()

    page = client.get("/admin/review?show=purchases").get_data(as_text=True)
    # One row, the purchase's, showing what is held now: Rita's 2.50 restated as 2.00.
    assert re.findall(r'name="ids" value="(\d+)"', page) == [str(purchase_id)]
    assert "referrer: $2.00" in page and "referee: $5.00" in page
    assert "$2.50" not in page
    item = client.get(f"/admin/review/purchases/{purchase_id}").get_data(as_text=True)
    assert "referrer level 1: $2.00 for Rita Referrer" in item

    response = decide(
        client, [purchase_id], path="/admin/review?show=purchases", show="purchases", approve="1"
    )
    assert response.status_code == 302
    with app.app_context():
        held = db.session.execute(
            select(Reward.conversion_id, Reward.amount, Reward.status)
            .where(Reward.status.not_in(("cancelled",)))
            .order_by(Reward.id)
        ).all()
    assert held == [(purchase_id, 500, "pending"), (refund_id, 200, "pending")]
    assert "queue-empty" in client.get("/admin/review?show=purchases").get_data(as_text=True)


@pytest.mark.parametrize("role", ["operator", "marketer"])
def test_other_roles_get_403_and_change_nothing(app, client, login, rita, make_participant, role):
    fred = held_friend(make_participant, rita, "Fred Friend")
    referral_id = referral_of(app, fred["id"]).id
    with app.app_context():
        person = factories.staff(role)
    login(person["email"])
    assert client.get("/admin/review").status_code == 403
    assert client.get(f"/admin/review/referrals/{referral_id}").status_code == 403
    assert client.get("/admin/export/review.csv").status_code == 403
    token = csrf_token(client, "/rewards/")
    data = {"csrf_token": token, "ids": str(referral_id), "approve": "1"}
    assert client.post("/admin/review/referrals/decide", data=data).status_code == 403
    assert client.post(f"/admin/review/referrals/{referral_id}", data=data).status_code == 403
    assert referral_of(app, fred["id"]).status == "review"
    assert audit_entries(app, "referral.approve") == []


def test_the_export_holds_the_queue(app, client, rita, make_participant, manager):
    fred = held_friend(make_participant, rita, "Fred Friend")
    referral_id = referral_of(app, fred["id"]).id
    response = client.get("/admin/export/review.csv")
    assert response.status_code == 200
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0].startswith("id,created_at,referred_id,referrer_id,risk_score")
    assert len(lines) == 2 and lines[1].startswith(f"{referral_id},")
    # The queue shows the emails in full, and so does its file.
    assert "same_ip (50)" in lines[1] and fred["email"] in lines[1] and "***" not in lines[1]


def test_a_decision_from_the_command_line_is_audited_with_the_command(
    app, runner, rita, make_participant
):
    fred = held_friend(make_participant, rita, "Fred Friend")
    referral_id = referral_of(app, fred["id"]).id
    result = runner.invoke(
        args=["rewards", "review", "reject", str(referral_id), "--reason", "duplicate"]
    )
    assert result.exit_code == 0, result.output
    (entry,) = audit_entries(app, "referral.reject")
    assert entry.actor_id is None and entry.actor_label.endswith("rewards review reject")
    assert entry.actor_label.startswith("cli: ")
    assert entry.after["reason"] == "duplicate"
