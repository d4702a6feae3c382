"""The rollout of Saleor payments: automatic, limited (allow-list, stable share) or manual,
with staff's "Pay out"; gift cards and vouchers shown used once Saleor says so
(docs/guarantees.md #41); customers and codes both ways. Against the local Saleor stand-in."""

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AuditLog, Conversion, Reward, utcnow
from referral.services import default_program
from rewards import programs, rollout, saleor_reconcile, saleor_usage, services
from tests import factories
from tests.helpers import buy, configure, csrf_token, form_fields, log_in, text_of


@pytest.fixture
def admin(app):
    with app.app_context():
        person = factories.staff("admin")
    staff = app.test_client()
    log_in(staff, person["email"])
    return staff


def referred_purchase(app, make_participant, referrer_name: str, friend_name: str) -> dict:
    """`referrer_name` invites `friend_name`, who buys; the hold ends. Returns the referrer."""
    referrer = make_participant(referrer_name)
    friend = make_participant(friend_name, invited_by=referrer["code"])
    assert buy(app, friend["email"], f"order-{friend['id']}").outcome == "accepted"
    with app.app_context():
        services.release_held_rewards(utcnow() + timedelta(days=30))
        db.session.commit()
    return referrer


def reward_of(app, user_id: int) -> tuple[int, str, str | None]:
    with app.app_context():
        reward = db.session.scalar(select(Reward).where(Reward.beneficiary_id == user_id))
        return reward.id, reward.status, reward.coupon_code


def counts(page: str) -> dict[str, str]:
    """The Saleor rewards per state, as the integrations page shows them."""
    found = re.findall(r'data-state="([^"]+)"><strong>(\d+)</strong>', page)
    return {state: number for state, number in found}


def confirm_form(client, path: str) -> dict:
    """The confirmation page's form (it posts back to its own address), box unticked."""
    return form_fields(client.get(path).get_data(True), None)


def cards_for(shop, email: str) -> list:
    return [card for card in shop.gift_cards if card.user_email == email]


def test_automatic_is_the_default_and_issues_on_approval(app, installed, make_participant):
    ann = referred_purchase(app, make_participant, "Ann Lee", "Bob Baker")
    [card] = cards_for(installed, ann["email"])
    assert reward_of(app, ann["id"])[1:] == ("paid", card.code)


def test_manual_rewards_wait_approved_until_staff_pay_them_out(
    app, installed, make_participant, admin
):
    configure(app, fulfilment_mode="manual")
    ann = referred_purchase(app, make_participant, "Ann Lee", "Bob Baker")
    reward_id, status, _code = reward_of(app, ann["id"])
    assert status == "approved" and installed.gift_cards == []
    page = text_of(admin.get("/admin/integrations"))
    assert counts(page)["waiting for staff"] == "1" and ann["email"] in page

    path = f"/admin/integrations/saleor/rewards/{reward_id}/pay-out"
    assert "Pay out reward" in text_of(admin.get(path))
    unticked = confirm_form(admin, path)
    assert admin.post(path, data=unticked).status_code == 400
    assert installed.gift_cards == [] and reward_of(app, ann["id"])[1] == "approved"

    fields = confirm_form(admin, path) | {"confirm": "y"}
    assert admin.post(path, data=fields).status_code == 302
    [card] = cards_for(installed, ann["email"])
    assert reward_of(app, ann["id"])[1:] == ("paid", card.code)
    assert counts(text_of(admin.get("/admin/integrations")))["issued"] == "1"
    again = admin.post(path, data=confirm_form(admin, path) | {"confirm": "y"})
    assert again.status_code == 409 and len(installed.gift_cards) == 1
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "reward.pay_out"))
        assert entry.target_id == str(reward_id)


def test_limited_pays_the_allow_list_automatically_and_leaves_the_others(
    app, installed, make_participant
):
    ann = make_participant("Ann Lee")
    configure(app, fulfilment_mode="limited", fulfilment_allowlist=[ann["email"]])
    friend = make_participant("Bob Baker", invited_by=ann["code"])
    cyd = referred_purchase(app, make_participant, "Cyd Cole", "Dee Dunn")
    buy(app, friend["email"], "order-bob")
    with app.app_context():
        services.release_held_rewards(utcnow() + timedelta(days=30))
        db.session.commit()
    assert len(cards_for(installed, ann["email"])) == 1
    assert cards_for(installed, cyd["email"]) == []
    assert reward_of(app, cyd["id"])[1] == "approved"


def test_the_percentage_is_a_stable_bucket_of_each_participant(app, installed, make_participant):
    ann = make_participant("Ann Lee")
    with app.app_context():
        program_id = default_program().id
    place = rollout.bucket(program_id, ann["id"])
    assert place == rollout.bucket(program_id, ann["id"]) and 0 <= place < 100
    configure(app, fulfilment_mode="limited", fulfilment_percent=place)  # just outside
    with app.app_context():
        assert not rollout.pays_automatically(default_program(), ann["id"])
    configure(app, fulfilment_percent=place + 1)  # the share grows: Ann is in, and stays in
    with app.app_context():
        assert rollout.pays_automatically(default_program(), ann["id"])
    configure(app, fulfilment_percent=100)
    with app.app_context():
        assert rollout.pays_automatically(default_program(), ann["id"])


def test_a_change_of_mode_is_audit_logged(app, installed):
    configure(app, fulfilment_mode="manual")
    with app.app_context():
        entry = db.session.scalar(
            select(AuditLog).where(AuditLog.action == "program.update").order_by(AuditLog.id.desc())
        )
        assert entry.before == {"fulfilment_mode": "automatic"}
        assert entry.after == {"fulfilment_mode": "manual"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fulfilment_allowlist": "nobody@example.com"}, "No participant has the email"),
        ({"fulfilment_percent": "101"}, "The share is a whole percent from 0 to 100."),
        ({"fulfilment_mode": "sometimes"}, "Not a valid choice"),
    ],
)
def test_a_bad_rollout_in_the_form_is_named_and_changes_nothing(app, admin, changes, message):
    with app.app_context():
        path = f"/admin/programs/{default_program().id}"
    fields = form_fields(admin.get(path).get_data(True), path)
    response = admin.post(path, data=fields | {"fulfilment_mode": "limited", **changes})
    assert response.status_code == 400
    assert message in text_of(response)
    with app.app_context():
        program = default_program()
        assert (program.fulfilment_mode, program.fulfilment_allowlist) == ("automatic", [])


def test_the_form_saves_a_limited_rollout(app, admin, make_participant):
    ann = make_participant("Ann Lee")
    with app.app_context():
        path = f"/admin/programs/{default_program().id}"
    fields = form_fields(admin.get(path).get_data(True), path)
    changes = {
        "fulfilment_mode": "limited",
        "fulfilment_percent": "25",
        "fulfilment_allowlist": ann["email"].upper(),
    }
    assert admin.post(path, data=fields | changes).status_code == 302
    shown = form_fields(admin.get(path).get_data(True), path)
    assert shown["fulfilment_percent"] == "25" and shown["fulfilment_allowlist"] == ann["email"]
    with app.app_context():
        assert programs.RULE_FIELDS["fulfilment_allowlist"] is list
        assert default_program().fulfilment_mode == "limited"


def test_a_manager_pays_out_from_the_rewards_screen(app, installed, make_participant):
    """Managers manage rewards but may not open Integrations: the rewards screen offers
    "Issue in Saleor…" for a waiting reward, and the pay-out brings them back there."""
    configure(app, fulfilment_mode="manual")
    ann = referred_purchase(app, make_participant, "Ann Lee", "Bob Baker")
    reward_id = reward_of(app, ann["id"])[0]
    with app.app_context():
        manager = factories.staff("manager")
    client = app.test_client()
    log_in(client, manager["email"])
    path = f"/admin/integrations/saleor/rewards/{reward_id}/pay-out"
    rewards_page = client.get("/admin/rewards").get_data(True)
    assert "Issue in Saleor" in rewards_page and f'href="{path}"' in rewards_page
    answer = client.post(path, data=confirm_form(client, path) | {"confirm": "y"})
    assert answer.status_code == 302 and answer.location.endswith("/admin/rewards")
    [card] = cards_for(installed, ann["email"])
    assert reward_of(app, ann["id"])[1:] == ("paid", card.code)
    assert "Issue in Saleor" not in client.get("/admin/rewards").get_data(True)


def test_only_staff_who_manage_rewards_may_pay_out(app, installed, make_participant):
    configure(app, fulfilment_mode="manual")
    ann = referred_purchase(app, make_participant, "Ann Lee", "Bob Baker")
    reward_id = reward_of(app, ann["id"])[0]
    with app.app_context():
        marketer = factories.staff("marketer")
    client = app.test_client()
    log_in(client, marketer["email"])
    path = f"/admin/integrations/saleor/rewards/{reward_id}/pay-out"
    assert client.get(path).status_code == 403
    token = csrf_token(client, "/admin/programs/new")
    assert client.post(path, data={"confirm": "y", "csrf_token": token}).status_code == 403
    assert installed.gift_cards == []


# --- reconciliation of use ------------------------------------------------------------------


def test_a_gift_card_spent_at_the_shop_shows_used_once_reconciled(
    app, installed, make_participant, admin
):
    ann = referred_purchase(app, make_participant, "Ann Lee", "Bob Baker")
    cyd = referred_purchase(app, make_participant, "Cyd Cole", "Dee Dunn")
    [card] = cards_for(installed, ann["email"])
    card.spent = 2.5  # Ann paid part of an order with it
    with app.app_context():
        assert saleor_usage.reconcile_usage() == 1
        db.session.commit()
        assert saleor_usage.reconcile_usage() == 0  # read once: used stays used
    assert reward_of(app, ann["id"])[1] == "redeemed"
    assert reward_of(app, cyd["id"])[1] == "paid"  # untouched card: still just paid
    assert counts(text_of(admin.get("/admin/integrations")))["used"] == "1"
    participant = app.test_client()
    log_in(participant, ann["email"])
    assert "Used" in text_of(participant.get("/rewards/"))


def test_a_used_voucher_shows_used_once_reconciled(app, installed, make_participant):
    app.config["SALEOR_CHANNEL_ID"] = "Q2hhbm5lbDox"
    configure(app, referrer_reward_kind="coupon")
    ann = referred_purchase(app, make_participant, "Ann Lee", "Bob Baker")
    [voucher] = installed.vouchers
    assert reward_of(app, ann["id"])[1:] == ("paid", voucher.code)
    with app.app_context():
        assert saleor_usage.reconcile_usage() == 0
    voucher.used = 1
    with app.app_context():
        assert saleor_usage.reconcile_usage() == 1
        db.session.commit()
    assert reward_of(app, ann["id"])[1] == "redeemed"


# --- customers both ways --------------------------------------------------------------------


def customer_created(client, shop, user: dict | None):
    body = json.dumps({"__typename": "CustomerCreated", "issuedAt": None, "user": user}).encode()
    headers = {
        "Saleor-Event": "CUSTOMER_CREATED",
        "Saleor-Signature": shop.sign(body),
        "Saleor-Api-Url": shop.api_url,
    }
    return client.post(
        "/saleor/events", data=body, headers=headers, content_type="application/json"
    )


def test_a_new_customer_with_a_ref_code_becomes_a_referred_participant_once(
    app, client, installed, make_participant
):
    ann = make_participant("Ann Lee")
    customer = {
        "id": "VXNlcjo0Mg==",
        "email": "eve.new@example.com",
        "firstName": "Eve",
        "lastName": "New",
        "metadata": [{"key": "ref_code", "value": ann["code"]}],
    }
    first = customer_created(client, installed, customer)
    assert first.get_json() == {"outcome": "accepted", "reason": "awaiting_purchase"}
    again = customer_created(client, installed, customer)
    assert again.get_json() == {"outcome": "duplicate", "reason": "already_received"}
    with app.app_context():
        eve = factories.user_by_email("eve.new@example.com")
        referral = factories.referral_of(eve.id)
        assert referral.referrer_id == ann["id"] and eve.external_id == customer["id"]
        eve_code = factories.code_of(eve.id)
    # The job wrote Eve's own code back to her Saleor customer, once.
    assert installed.metadata == {customer["id"]: {"ref_code": eve_code}}
    assert installed.log.count("InviteLoopWriteMetadata: ok") == 1


def test_a_customer_event_without_a_customer_changes_nothing(app, client, installed):
    answer = customer_created(client, installed, None)
    assert answer.get_json() == {"outcome": "ignored", "reason": "no_customer"}
    assert installed.metadata == {}


def order_with_ref_code(code: str, order_id: str, user: dict | None, email: str) -> dict:
    return {
        "__typename": "OrderConfirmed",
        "issuedAt": utcnow().isoformat(),
        "order": {
            "id": order_id,
            "number": "9",
            "created": utcnow().isoformat(),
            "checkoutId": None,
            "userEmail": email,
            "user": user,
            "total": {"gross": {"amount": 30.0, "currency": "USD"}},
            "totalRefunded": {"amount": 0.0, "currency": "USD"},
            "metadata": [{"key": "ref_code", "value": code}],
            "channel": {"slug": "web"},
            "shippingAddress": None,
            "billingAddress": None,
            "lines": [],
        },
    }


def send_order(client, shop, body: dict):
    raw = json.dumps(body).encode()
    headers = {"Saleor-Event": "order_confirmed", "Saleor-Signature": shop.sign(raw)}
    return client.post(
        "/webhooks/order-confirmed", data=raw, headers=headers, content_type="application/json"
    )


def test_an_order_whose_metadata_names_a_code_is_attributed(app, client, installed, shop):
    """The storefront copied ?ref= into the checkout; Saleor copies it into the order. A
    guest (no Saleor customer) becomes a participant with nothing to write back."""
    with app.app_context():
        ann = factories.participant("Ann Lee")
    body = order_with_ref_code(ann["code"], "T3JkZXI6bWV0YWRhdGE=", None, "guest.buyer@example.com")
    assert send_order(client, shop, body).get_json()["outcome"] == "accepted"
    with app.app_context():
        buyer = factories.user_by_email("guest.buyer@example.com")
        assert factories.referral_of(buyer.id).referrer_id == ann["id"]
    assert installed.metadata == {}


def test_a_customer_first_seen_in_an_order_gets_their_code_written_back_once(
    app, client, installed, shop
):
    with app.app_context():
        ann = factories.participant("Ann Lee")
    customer = {"id": "VXNlcjo3Nw==", "email": "olga.order@example.com"}
    first = order_with_ref_code(ann["code"], "T3JkZXI6Zmlyc3Q=", customer, customer["email"])
    second = order_with_ref_code(ann["code"], "T3JkZXI6c2Vjb25k", customer, customer["email"])
    assert send_order(client, shop, first).get_json()["outcome"] == "accepted"
    send_order(client, shop, second)
    with app.app_context():
        olga = factories.user_by_email(customer["email"])
        assert olga.external_id == customer["id"]
        olga_code = factories.code_of(olga.id)
    assert installed.metadata == {customer["id"]: {"ref_code": olga_code}}
    assert installed.log.count("InviteLoopWriteMetadata: ok") == 1


# --- orders the webhooks missed -------------------------------------------------------------


def paid_order(order_id: str, email: str, amount: float = 30.0) -> dict:
    """An Order node as the reconciliation's listing selects it."""
    return {
        "id": order_id,
        "number": order_id[-2:],
        "created": utcnow().isoformat(),
        "checkoutId": None,
        "userEmail": email,
        "user": None,
        "total": {"gross": {"amount": amount, "currency": "USD"}},
        "totalRefunded": {"amount": 0.0, "currency": "USD"},
        "metadata": [],
        "channel": {"slug": "web"},
        "shippingAddress": None,
        "billingAddress": {"country": {"code": "DE"}},
        "lines": [],
    }


def deliver_order(client, shop, node: dict):
    """The order's ORDER_CONFIRMED webhook, signed by the stand-in."""
    body = json.dumps({"__typename": "OrderConfirmed", "issuedAt": None, "order": node}).encode()
    headers = {"Saleor-Event": "order_confirmed", "Saleor-Signature": shop.sign(body)}
    return client.post(
        "/webhooks/order-confirmed", data=body, headers=headers, content_type="application/json"
    )


def test_reconciliation_records_a_missed_order_once(app, installed, make_participant, admin):
    ann = make_participant("Ann Lee")
    bob = make_participant("Bob Baker", invited_by=ann["code"])
    delivered = deliver_order(
        app.test_client(), installed, paid_order("T3JkZXI6c2Vlbg==", bob["email"])
    )
    assert delivered.get_json()["outcome"] == "accepted"
    installed.orders[:] = [
        paid_order("T3JkZXI6c2Vlbg==", bob["email"]),  # its webhook came: a duplicate
        paid_order("T3JkZXI6bWlzc2Vk", "cyd.cole@example.com"),  # its webhook was lost
    ]
    with app.app_context():
        assert saleor_reconcile.reconcile_orders() == 1
        db.session.commit()
        assert saleor_reconcile.reconcile_orders() == 0  # a second run finds nothing new
        db.session.commit()
        orders = db.session.scalars(select(Conversion.order_id).order_by(Conversion.id)).all()
    assert orders == ["T3JkZXI6c2Vlbg==", "T3JkZXI6bWlzc2Vk"]
    page = text_of(admin.get("/admin/integrations"))
    assert "0 order(s) the webhooks had missed" in page


def test_reconciliation_follows_pages_and_shows_an_error_to_staff(
    app, installed, make_participant, admin
):
    installed.orders[:] = [
        paid_order(f"T3JkZXI6{number:04d}", f"buyer{number}@example.com") for number in range(60)
    ]
    with app.app_context():
        assert saleor_reconcile.reconcile_orders() == 60  # 50 a page: two pages
        db.session.commit()
    installed.fail = "error"
    with app.app_context():
        assert saleor_reconcile.reconcile_orders() == 0
        db.session.commit()
    page = text_of(admin.get("/admin/integrations"))
    assert "stopped by an error" in page and "Internal error" in page
