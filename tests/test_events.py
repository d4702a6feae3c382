"""The signed events API: signatures, outcomes, rewards written exactly once, refunds."""

import base64
import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import create_app
from extensions import db
from models import Conversion, Referral, Reward, User, utcnow
from tests.apps import app_config, close
from tests.events_api import SECRET, purchase, refund, sign

OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-of-thirty-2-bytes").decode()


@pytest.fixture
def config_overrides():
    return {"EVENTS_WEBHOOK_SECRET": f"{OTHER_SECRET}, {SECRET}"}


def send(client, event: dict, *, secret=SECRET, timestamp=None, headers=None, body=None):
    body = body if body is not None else json.dumps(event).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    message_id = f"msg_{event.get('id', 'x')}"
    signed = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(body, message_id, timestamp, secret),
        "Content-Type": "application/json",
    }
    if headers is not None:
        signed = {**signed, **headers}
        signed = {key: value for key, value in signed.items() if value is not None}
    return client.post("/api/v1/events", data=body, headers=signed)


@pytest.fixture
def pair(make_participant):
    """Rita invited Fred; returns (rita, fred) as plain dicts."""
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    return rita, fred


def rewards_of(app, user_id: int) -> list[tuple]:
    with app.app_context():
        return [
            (reward.role, reward.level, reward.kind, reward.amount, reward.status)
            for reward in db.session.scalars(
                select(Reward).where(Reward.beneficiary_id == user_id).order_by(Reward.id)
            )
        ]


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def referral_status(app, referred_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(Referral.status).where(Referral.referred_id == referred_id))


# --- the default program pays on the friend's first purchase --------------------------------


def test_a_qualifying_purchase_pays_referrer_and_friend_on_hold(app, client, pair):
    rita, fred = pair
    response = send(client, purchase(fred["email"]))
    assert response.status_code == 200
    assert response.get_json() == {"outcome": "accepted", "reason": None}
    assert rewards_of(app, rita["id"]) == [("referrer", 1, "credit", 1000, "pending")]
    assert rewards_of(app, fred["id"]) == [("referee", 1, "credit", 500, "pending")]
    assert referral_status(app, fred["id"]) == "qualified"
    with app.app_context():
        reward = db.session.scalar(select(Reward).where(Reward.beneficiary_id == rita["id"]))
        hold = reward.available_at - reward.created_at
    assert hold == timedelta(days=14)


def test_the_same_event_twice_is_one_conversion_and_one_set_of_rewards(app, client, pair):
    rita, fred = pair
    first = send(client, purchase(fred["email"]))
    again = send(client, purchase(fred["email"]))
    assert first.status_code == again.status_code == 200
    assert again.get_json() == {"outcome": "duplicate", "reason": "already_received"}
    assert count(app, Conversion) == 1
    assert len(rewards_of(app, rita["id"])) == 1 and len(rewards_of(app, fred["id"])) == 1


def test_a_replay_a_day_later_changes_nothing(app, client, pair):
    rita, fred = pair
    send(client, purchase(fred["email"]))
    with app.app_context():
        db.session.execute(
            Conversion.__table__.update().values(created_at=utcnow() - timedelta(days=1))
        )
        db.session.commit()
    assert send(client, purchase(fred["email"])).get_json()["outcome"] == "duplicate"
    assert len(rewards_of(app, rita["id"])) == 1


def test_a_second_purchase_does_not_pay_a_first_purchase_program_again(app, client, pair):
    rita, fred = pair
    send(client, purchase(fred["email"], order="order-1"))
    answer = send(client, purchase(fred["email"], order="order-2")).get_json()
    assert answer == {"outcome": "ignored", "reason": "already_rewarded"}
    assert len(rewards_of(app, rita["id"])) == 1


def test_an_order_below_the_minimum_is_stored_without_reward(app, client, pair):
    rita, fred = pair
    answer = send(client, purchase(fred["email"], amount=1999)).get_json()
    assert answer == {"outcome": "ignored", "reason": "below_minimum"}
    assert count(app, Conversion) == 1 and rewards_of(app, rita["id"]) == []
    assert referral_status(app, fred["id"]) == "pending"


def test_a_purchase_by_an_unknown_customer_is_unattributed(app, client, pair):
    answer = send(client, purchase("nobody@example.com")).get_json()
    assert answer == {"outcome": "unattributed", "reason": "unknown_customer"}
    assert count(app, Conversion) == 1 and count(app, Reward) == 0
    assert count(app, User) == 2


def test_a_participant_nobody_invited_is_unattributed(app, client, pair):
    rita, _fred = pair
    answer = send(client, purchase(rita["email"])).get_json()
    assert answer == {"outcome": "unattributed", "reason": "not_referred"}
    assert count(app, Reward) == 0


def test_a_new_customer_with_a_code_becomes_a_referred_participant(app, client, pair):
    rita, _fred = pair
    event = purchase("newbie@example.com", ref_code=rita["code"].lower())
    assert send(client, event).get_json() == {"outcome": "accepted", "reason": None}
    with app.app_context():
        newbie = db.session.scalar(select(User).where(User.email == "newbie@example.com"))
        referral = db.session.scalar(select(Referral).where(Referral.referred_id == newbie.id))
        assert newbie.password_hash is None and referral.source == "api"
        assert referral.referrer_id == rita["id"] and referral.status == "qualified"
    assert rewards_of(app, rita["id"]) == [("referrer", 1, "credit", 1000, "pending")]


def test_a_known_customer_matched_by_external_id_before_email(app, client, pair):
    rita, fred = pair
    with app.app_context():
        db.session.get(User, fred["id"]).external_id = "shop-42"
        db.session.commit()
    event = purchase("someone-else@example.com")
    event["customer"] = {"external_id": "shop-42", "email": "someone-else@example.com"}
    assert send(client, event).get_json()["outcome"] == "accepted"
    assert rewards_of(app, fred["id"]) == [("referee", 1, "credit", 500, "pending")]


def test_an_unhandled_event_type_is_acknowledged_and_not_stored(app, client, pair):
    response = send(client, {"type": "subscription.paused", "id": "evt-9"})
    assert response.status_code == 200
    assert response.get_json() == {"outcome": "ignored", "reason": "unhandled_event_type"}
    assert count(app, Conversion) == 0


# --- refunds ---------------------------------------------------------------------------------


def test_a_refund_inside_the_hold_cancels_the_rewards_with_the_reason(app, client, pair):
    rita, fred = pair
    send(client, purchase(fred["email"]))
    assert send(client, refund()).get_json() == {"outcome": "accepted", "reason": None}
    assert rewards_of(app, rita["id"]) == [("referrer", 1, "credit", 1000, "cancelled")]
    assert rewards_of(app, fred["id"]) == [("referee", 1, "credit", 500, "cancelled")]
    with app.app_context():
        reasons = set(db.session.scalars(select(Reward.reason)))
    assert reasons == {"refunded"}
    assert referral_status(app, fred["id"]) == "pending"  # a real purchase may qualify later


def test_a_refund_after_payout_writes_one_reversing_entry_even_if_sent_twice(app, client, pair):
    rita, fred = pair
    send(client, purchase(fred["email"]))
    with app.app_context():
        now = utcnow()
        for reward in db.session.scalars(select(Reward)):
            reward.status, reward.paid_at = "paid", now
        db.session.commit()
    send(client, refund(event_id="refund-a"))
    send(client, refund(event_id="refund-b"))
    assert rewards_of(app, rita["id"]) == [
        ("referrer", 1, "credit", 1000, "paid"),
        ("referrer", 1, "credit", -1000, "approved"),
    ]
    with app.app_context():
        balance = db.session.scalar(
            select(func.sum(Reward.amount)).where(Reward.beneficiary_id == rita["id"])
        )
    assert balance == 0


def test_a_refund_before_the_purchase_means_the_purchase_pays_nothing(app, client, pair):
    rita, fred = pair
    early = send(client, refund()).get_json()
    assert early == {"outcome": "unattributed", "reason": "refund_before_purchase"}
    late = send(client, purchase(fred["email"])).get_json()
    assert late == {"outcome": "ignored", "reason": "refunded"}
    assert count(app, Reward) == 0


# --- signatures --------------------------------------------------------------------------------


def test_missing_signature_headers_are_refused_and_nothing_is_stored(app, client, pair):
    _rita, fred = pair
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        response = send(client, purchase(fred["email"]), headers={missing: None})
        assert response.status_code == 400, missing
        assert response.get_json()["error"]["code"] == "missing_signature"
    assert count(app, Conversion) == 0


@pytest.mark.parametrize("timestamp", ["soon", "", "12.5e3", "-"])
def test_a_malformed_timestamp_is_a_400_not_a_500(app, client, pair, timestamp):
    _rita, fred = pair
    response = send(client, purchase(fred["email"]), headers={"webhook-timestamp": timestamp})
    assert response.status_code == 400
    assert count(app, Conversion) == 0


@pytest.mark.parametrize("signature", ["v2,abc", "garbage", "v1,", "v1,%%%not-base64%%%"])
def test_a_malformed_or_unknown_scheme_signature_is_refused(app, client, pair, signature):
    _rita, fred = pair
    response = send(client, purchase(fred["email"]), headers={"webhook-signature": signature})
    assert response.status_code == 401
    assert count(app, Conversion) == 0


def test_a_wrong_secret_or_a_changed_byte_is_refused(app, client, pair):
    _rita, fred = pair
    wrong = "whsec_" + base64.b64encode(b"not-the-secret-not-the-secret!!!").decode()
    assert send(client, purchase(fred["email"]), secret=wrong).status_code == 401
    body = json.dumps(purchase(fred["email"])).encode()
    timestamp = int(time.time())
    tampered = body.replace(b"2500", b"9500")
    response = client.post(
        "/api/v1/events",
        data=tampered,
        headers={
            "webhook-id": "msg_evt-order-1",
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(body, "msg_evt-order-1", timestamp),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 401
    assert count(app, Conversion) == 0


# A few seconds past the 300 s tolerance: a busy machine may take a second or two to answer.
@pytest.mark.parametrize("skew", [-305, 305, -86400])
def test_an_old_or_future_timestamp_is_refused(app, client, pair, skew):
    _rita, fred = pair
    response = send(client, purchase(fred["email"]), timestamp=int(time.time()) + skew)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_timestamp"
    assert count(app, Conversion) == 0


def test_one_valid_signature_among_several_is_enough_once(app, client, pair):
    rita, fred = pair
    event = purchase(fred["email"])
    body = json.dumps(event).encode()
    timestamp = int(time.time())
    good = sign(body, "msg_1", timestamp)
    junk = sign(body, "msg_1", timestamp, OTHER_SECRET.replace("a", "b"))
    headers = {"webhook-id": "msg_1", "webhook-signature": f"v1,bogus== {junk} {good} v2,x"}
    # Sent with the timestamp it was signed for: a second boundary between signing and
    # sending would otherwise fail the signature.
    first = send(client, event, timestamp=timestamp, headers=headers)
    second = send(client, event, timestamp=timestamp, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert len(rewards_of(app, rita["id"])) == 1


def test_a_rotated_secret_still_verifies(app, client, pair):
    _rita, fred = pair
    response = send(client, purchase(fred["email"]), secret=OTHER_SECRET)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "event, message",
    [
        ({"type": "purchase", "id": "e1", "customer": {"email": "a@b.co"}}, "amount"),
        ({"type": "purchase", "id": "e1", "amount": -5}, "amount"),
        ({"type": "purchase", "id": "e1", "amount": 12.5}, "amount"),
        ({"type": "purchase", "id": "e1", "amount": 100, "currency": "dollars"}, "currency"),
        ({"type": "refund", "id": "e1"}, "order_id"),
        ({"type": "purchase", "amount": 100}, "id"),
        ({"id": "e1"}, "type"),
        ({"type": "purchase", "id": "e1", "amount": 1, "occurred_at": "yesterday"}, "occurred_at"),
        ({"type": "purchase", "id": "e1", "amount": 1, "customer": "bob"}, "customer"),
    ],
)
def test_a_malformed_body_is_a_422_with_the_reason(app, client, event, message):
    response = send(client, event)
    assert response.status_code == 422
    assert message in response.get_json()["error"]["message"]
    assert count(app, Conversion) == 0


def test_a_body_that_is_not_json_is_a_422(app, client):
    response = send(client, {"id": "x"}, body=b"\xff not json")
    assert response.status_code == 422
    assert count(app, Conversion) == 0


def test_without_a_configured_secret_the_endpoint_refuses_everything(app, client, pair):
    app.config["EVENTS_WEBHOOK_SECRET"] = None
    _rita, fred = pair
    response = send(client, purchase(fred["email"]))
    assert response.status_code == 503
    assert count(app, Conversion) == 0


# --- faults ----------------------------------------------------------------------------------


def test_a_failed_commit_answers_503_and_the_retry_is_not_a_duplicate(app, client, pair):
    """The connection dies between the inserts and the commit: nothing stays, the sender
    retries, and the retry is processed as new."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.exc import OperationalError

    rita, fred = pair

    def fail_once(session):
        sa_event.remove(db.session, "before_commit", fail_once)
        raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

    sa_event.listen(db.session, "before_commit", fail_once)
    failed = send(client, purchase(fred["email"]))
    assert failed.status_code == 503
    assert count(app, Conversion) == 0 and count(app, Reward) == 0
    retried = send(client, purchase(fred["email"]))
    assert retried.get_json() == {"outcome": "accepted", "reason": None}
    assert len(rewards_of(app, rita["id"])) == 1


def test_an_unreachable_database_answers_503_as_json():
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    down = create_app(
        app_config(unreachable, EVENTS_WEBHOOK_SECRET=SECRET, SQLALCHEMY_ENGINE_OPTIONS={})
    )
    try:
        response = send(down.test_client(), purchase("fred@example.com"))
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "database_unavailable"
    finally:
        close(down)


def test_a_customer_using_their_own_code_refers_nobody(app, client, pair):
    rita, _fred = pair
    answer = send(client, purchase(rita["email"], ref_code=rita["code"])).get_json()
    assert answer == {"outcome": "unattributed", "reason": "not_referred"}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Referral)) == 1
    assert count(app, Reward) == 0
