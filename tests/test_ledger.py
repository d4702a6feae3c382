"""The participant's ledger: entries, balances summed from them, and payout requests."""

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from core.money import format_amount
from extensions import db
from models import Conversion, Payout, Referral, Reward, User, utcnow
from referral.services import default_program
from rewards import ledger
from rewards.conversions import record_event
from rewards.events import EventIn
from rewards.services import release_held_rewards
from tests.helpers import csrf_token, logged_in

PAGE_SIZE = 5
THREAD_TIMEOUT = 20
_orders = itertools.count(1)


@pytest.fixture
def config_overrides():
    return {"DASHBOARD_PAGE_SIZE": PAGE_SIZE}


def add_reward(app, beneficiary: dict, amount: int = 1000, **fields) -> int:
    """One ledger entry as the rewards engine writes it, with the conversion it came from."""
    with app.app_context():
        currency = fields.pop("currency", "USD")
        refund = "reverses_id" in fields
        conversion = Conversion(
            source="manual",
            kind="refund" if refund else "purchase",
            external_id=f"order-{next(_orders)}",
            order_id=f"O-{next(_orders)}",
            participant_id=beneficiary["id"],
            outcome="accepted",
            currency=currency,
            amount=2500,
        )
        db.session.add(conversion)
        db.session.flush()
        reward = Reward(
            program_id=default_program().id,
            conversion_id=conversion.id,
            beneficiary_id=beneficiary["id"],
            role=fields.pop("role", "referrer"),
            kind=fields.pop("kind", "credit"),
            amount=amount,
            currency=currency,
            status=fields.pop("status", "approved"),
            **fields,
        )
        if reward.status == "paid" and reward.paid_at is None:
            reward.paid_at = utcnow()
        db.session.add(reward)
        db.session.commit()
        return reward.id


def referral_id_of(app, referred: dict) -> int:
    with app.app_context():
        return db.session.scalar(select(Referral.id).where(Referral.referred_id == referred["id"]))


def payouts(app) -> list[Payout]:
    with app.app_context():
        return list(db.session.scalars(select(Payout).order_by(Payout.id)))


def claimed_ids(app, payout_id: int) -> set[int]:
    with app.app_context():
        return set(db.session.scalars(select(Reward.id).where(Reward.payout_id == payout_id)))


def balance_of(app, participant: dict, kind="credit", currency="USD") -> ledger.Balance:
    with app.app_context():
        user = db.session.get(User, participant["id"])
        found = [b for b in ledger.balances(user) if (b.kind, b.currency) == (kind, currency)]
        return found[0] if found else None


def ask_payout(client, kind="credit", currency="USD", **extra):
    token = csrf_token(client, "/rewards/")
    data = {"csrf_token": token, "kind": kind, "currency": currency, **extra}
    return client.post("/rewards/payouts", data=data)


def test_amounts_read_as_money():
    assert format_amount(1000, "USD") == "$10.00"
    assert format_amount(123456, "USD") == "$1,234.56"
    assert format_amount(-500, "USD") == "-$5.00"
    assert format_amount(500, "JPY") == "¥500"
    assert format_amount(1250, "CHF") == "12.50 CHF"
    assert format_amount(1500, "KWD") == "1.500 KWD"
    assert format_amount(120, "USD", "points") == "120 points"
    assert format_amount(1, "USD", "points") == "1 point"


def test_page_lists_every_entry_with_kind_for_whom_amount_status_reason_and_date(
    app, make_participant
):
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    bob_referral = referral_id_of(app, bob)
    add_reward(
        app, alice, 1000, referral_id=bob_referral, expires_at=datetime(2031, 3, 4, tzinfo=UTC)
    )
    hold_ends = datetime(2030, 1, 15, 12, tzinfo=UTC)
    add_reward(app, alice, 500, role="referee", status="pending", available_at=hold_ends)
    add_reward(app, alice, 700, status="cancelled", reason="refunded", referral_id=bob_referral)
    add_reward(app, alice, 300, status="review", level=2, kind="cash")
    add_reward(app, alice, 120, kind="points", role="bonus", milestone=5)
    add_reward(app, alice, 500, kind="coupon", currency="JPY", coupon_code="SAVE-7Q2X9K")
    add_reward(app, alice, 400, status="rejected", reason="same_device")
    add_reward(app, alice, 600, status="expired", reason="expired")
    paid = add_reward(app, alice, 250, status="paid", paid_at=datetime(2026, 2, 3, tzinfo=UTC))
    add_reward(app, alice, -250, reverses_id=paid, reason="refunded")

    client = logged_in(app, alice)
    pages = [client.get("/rewards/"), client.get("/rewards/?page=2")]  # ten entries, five a page
    html = "".join(page.get_data(as_text=True) for page in pages)

    assert [page.status_code for page in pages] == [200, 200]
    assert "You invited Bob Baker" in html
    assert "$10.00" in html and "Expires 2031-03-04" in html
    assert "You were invited" in html and "Hold ends 2030-01-15" in html
    assert "Cancelled" in html and "The order was refunded" in html
    assert "Under review" in html and "Held for review" in html
    assert "Level 2 — from your network" in html
    assert "120 points" in html and "Milestone bonus #5" in html
    assert "Coupon" in html and "SAVE-7Q2X9K" in html and "¥500" in html
    assert "Rejected" in html and "Did not pass our referral checks" in html
    assert "same_device" not in html and "same device" not in html.lower()
    assert "Expired" in html and "Not used before it expired" in html
    assert "Paid 2026-02-03" in html
    assert "Reversal of an earlier reward" in html and "-$2.50" in html
    assert 'href="/rewards/"' in html  # the navigation's Rewards link


def test_balances_are_the_sums_of_the_rows_including_a_reversal(app, make_participant):
    alice = make_participant("Alice Zimmer")
    refunded = add_reward(app, alice, 1000, status="paid")
    add_reward(app, alice, -1000, reverses_id=refunded, reason="refund_after_payout")
    add_reward(app, alice, 2500)
    add_reward(app, alice, 500, status="pending")
    add_reward(app, alice, 300, status="review")
    add_reward(app, alice, 700, status="cancelled", reason="refunded")
    add_reward(app, alice, 120, kind="points")

    credit = balance_of(app, alice)
    assert (credit.available, credit.on_hold, credit.paid, credit.requested) == (1500, 800, 1000, 0)
    with app.app_context():
        rows = db.session.scalars(select(Reward).where(Reward.beneficiary_id == alice["id"]))
        by_status = {}
        for row in rows:
            if row.kind == "credit":
                by_status[row.status] = by_status.get(row.status, 0) + row.amount
    assert credit.available == by_status["approved"]
    assert credit.on_hold == by_status["pending"] + by_status["review"]
    assert credit.paid == by_status["paid"]

    body = logged_in(app, alice).get("/api/v1/me/rewards").get_json()
    assert body["balances"] == [
        {"kind": "credit", "currency": "USD", "available": 1500, "on_hold": 800,
         "requested": 0, "paid": 1000, "payable": 1500},
        {"kind": "points", "currency": "USD", "available": 120, "on_hold": 0,
         "requested": 0, "paid": 0, "payable": None},
    ]  # fmt: skip


def test_the_json_has_exactly_the_documented_shape(app, make_participant):
    alice = make_participant("Alice Zimmer")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    reward_id = add_reward(
        app,
        alice,
        1000,
        status="pending",
        reason=None,
        created_at=created,
        available_at=created + timedelta(days=14),
    )

    response = logged_in(app, alice).get("/api/v1/me/rewards")

    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"rewards", "balances", "page", "pages"}
    assert (body["page"], body["pages"]) == (1, 1)
    assert body["rewards"] == [
        {
            "id": reward_id,
            "kind": "credit",
            "role": "referrer",
            "level": 1,
            "amount": 1000,
            "currency": "USD",
            "status": "pending",
            "reason": None,
            "available_at": "2026-01-16T03:04:05+00:00",
            "expires_at": None,
            "created_at": "2026-01-02T03:04:05+00:00",
        }
    ]


def test_nobody_sees_another_participants_rewards(app, make_participant):
    alice = make_participant("Alice Zimmer")
    carol = make_participant("Carol Chen")
    add_reward(app, alice, 1111)
    carols = add_reward(app, carol, 9876, coupon_code="CAROL-ONLY-1", kind="coupon")

    client = logged_in(app, alice)
    html = client.get("/rewards/").get_data(as_text=True)
    body = client.get("/api/v1/me/rewards").get_json()

    assert "$11.11" in html
    assert "$98.76" not in html and "CAROL-ONLY-1" not in html
    assert [reward["amount"] for reward in body["rewards"]] == [1111]
    assert carols not in {reward["id"] for reward in body["rewards"]}
    assert [balance["kind"] for balance in body["balances"]] == ["credit"]


def test_entries_come_newest_first_a_page_at_a_time(app, make_participant):
    alice = make_participant("Alice Zimmer")
    start = utcnow() - timedelta(days=30)
    ids = [
        add_reward(app, alice, 100 + day, created_at=start + timedelta(days=day))
        for day in range(PAGE_SIZE + 2)
    ]
    client = logged_in(app, alice)

    first = client.get("/api/v1/me/rewards").get_json()
    second = client.get("/api/v1/me/rewards?page=2").get_json()
    html = client.get("/rewards/?page=2").get_data(as_text=True)

    assert [r["id"] for r in first["rewards"]] == ids[::-1][:PAGE_SIZE]
    assert [r["id"] for r in second["rewards"]] == ids[::-1][PAGE_SIZE:]
    assert (second["page"], second["pages"]) == (2, 2)
    assert "Page 2 of 2" in html and "$1.01" in html and "$1.06" not in html


def test_a_newcomer_is_told_how_to_earn_rewards(app, make_participant):
    alice = make_participant("Alice Zimmer")

    html = logged_in(app, alice).get("/rewards/").get_data(as_text=True)

    assert (
        "No rewards yet. You get $10.00 credit when a friend you invite makes their first"
        " purchase of $20.00 or more." in html
    )
    assert 'href="/referral/dashboard"' in html
    assert logged_in(app, alice).get("/api/v1/me/rewards").get_json() == {
        "rewards": [],
        "balances": [],
        "page": 1,
        "pages": 0,
    }


def test_the_ledger_needs_a_login(app, client, make_participant):
    alice = make_participant("Alice Zimmer")
    add_reward(app, alice, 5000)

    page = client.get("/rewards/")
    api = client.get("/api/v1/me/rewards")
    token = csrf_token(client, "/auth/login")
    post = client.post(
        "/rewards/payouts", data={"csrf_token": token, "kind": "credit", "currency": "USD"}
    )

    assert page.status_code == 302 and "/auth/login?next=/rewards/" in page.headers["Location"]
    assert api.status_code == 401
    assert api.get_json()["error"]["code"] == "login_required"
    assert post.status_code == 302 and "/auth/login" in post.headers["Location"]
    assert payouts(app) == []


def test_a_payout_below_the_minimum_is_refused_and_nothing_is_written(app, make_participant):
    alice = make_participant("Alice Zimmer")
    reward_id = add_reward(app, alice, 1500)
    client = logged_in(app, alice)

    before = client.get("/rewards/").get_data(as_text=True)
    refused = ask_payout(client)

    assert "You can request a payout from $20.00 available." in before
    assert refused.status_code == 400
    assert (
        "A payout needs at least $20.00 of available credit; you have $15.00."
        in refused.get_data(as_text=True)
    )
    assert payouts(app) == []
    with app.app_context():
        assert db.session.get(Reward, reward_id).payout_id is None


def test_only_cash_and_credit_can_be_paid_out(app, make_participant):
    alice = make_participant("Alice Zimmer")
    add_reward(app, alice, 5000, kind="points")
    client = logged_in(app, alice)

    refused = ask_payout(client, kind="points")

    assert refused.status_code == 400
    assert "Only cash and credit rewards can be paid out." in refused.get_data(as_text=True)
    assert 'name="kind" value="points"' not in client.get("/rewards/").get_data(as_text=True)
    assert payouts(app) == []


def test_a_payout_claims_exactly_the_available_rows_and_is_worth_their_sum(app, make_participant):
    alice = make_participant("Alice Zimmer")
    refunded = add_reward(app, alice, 1000, status="paid")
    claimable = {
        add_reward(app, alice, 1500),
        add_reward(app, alice, 1000),
        add_reward(app, alice, -500, reverses_id=refunded, reason="refund_after_payout"),
    }
    held = add_reward(app, alice, 800, status="pending")
    euros = add_reward(app, alice, 3000, currency="EUR")
    client = logged_in(app, alice)

    done = ask_payout(client)
    page = client.get("/rewards/").get_data(as_text=True)

    assert done.status_code == 302 and done.headers["Location"].endswith("/rewards/")
    assert "Payout of $20.00 requested." in page
    assert "Payout of <strong>$20.00</strong> requested on" in page
    [payout] = payouts(app)
    assert (payout.kind, payout.currency, payout.amount, payout.status) == (
        "credit",
        "USD",
        2000,
        "requested",
    )
    assert claimed_ids(app, payout.id) == claimable
    with app.app_context():
        assert db.session.get(Reward, held).payout_id is None
        assert db.session.get(Reward, euros).payout_id is None
    credit = balance_of(app, alice)
    assert (credit.available, credit.requested, credit.on_hold) == (0, 2000, 800)
    # docs/guarantees.md #33: the claimed entries say so; the free euros are still available.
    assert page.count(">Payout requested</span>") == len(claimable)
    assert page.count(">Available</span>") == 1


def test_a_second_request_while_one_is_open_is_refused(app, make_participant):
    alice = make_participant("Alice Zimmer")
    add_reward(app, alice, 2500)
    client = logged_in(app, alice)
    assert ask_payout(client).status_code == 302
    later = add_reward(app, alice, 3000)

    again = ask_payout(client)

    assert again.status_code == 409
    assert "You already have a payout request open" in again.get_data(as_text=True)
    assert [p.amount for p in payouts(app)] == [2500]
    with app.app_context():
        assert db.session.get(Reward, later).payout_id is None


def test_a_post_without_csrf_token_is_refused_and_changes_nothing(app, make_participant):
    alice = make_participant("Alice Zimmer")
    reward_id = add_reward(app, alice, 2500)
    client = logged_in(app, alice)

    refused = client.post("/rewards/payouts", data={"kind": "credit", "currency": "USD"})

    assert refused.status_code == 400
    assert payouts(app) == []
    with app.app_context():
        assert db.session.get(Reward, reward_id).payout_id is None


def _request_in_own_context(app, user_id: int, barrier: threading.Barrier):
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.rollback()  # each racer starts its own transaction at the barrier
        barrier.wait()
        try:
            payout = ledger.request_payout(user, "credit", "USD", utcnow())
            db.session.commit()
        except ledger.PayoutAlreadyRequested as error:
            db.session.rollback()
            return error
        return payout.id


def test_requests_racing_each_other_make_one_payout(app, make_participant):
    alice = make_participant("Alice Zimmer")
    rows = {add_reward(app, alice, 1200), add_reward(app, alice, 1300)}
    racers = 4
    barrier = threading.Barrier(racers, timeout=THREAD_TIMEOUT)

    with ThreadPoolExecutor(max_workers=racers) as pool:
        results = list(
            pool.map(lambda _: _request_in_own_context(app, alice["id"], barrier), range(racers))
        )

    made = [result for result in results if isinstance(result, int)]
    assert len(made) == 1
    assert all(isinstance(r, ledger.PayoutAlreadyRequested) for r in results if r not in made)
    [payout] = payouts(app)
    assert payout.amount == 2500 and claimed_ids(app, payout.id) == rows


def _waiting_on_a_lock(app) -> bool:
    with app.app_context():
        waiting = db.session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        db.session.rollback()
        return waiting > 0


# PostgreSQL only: SQLite writers queue at BEGIN IMMEDIATE, so they cannot overlap.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_request_blocked_by_an_uncommitted_one_gets_the_same_refusal(app, make_participant):
    """The unique index, not the check before it, settles the race: the second request
    passes the check, waits on the index, and turns the violation into the domain error."""
    alice = make_participant("Alice Zimmer")
    add_reward(app, alice, 2500)
    first_flushed, commit_first = threading.Event(), threading.Event()

    def first():
        with app.app_context():
            payout = ledger.request_payout(db.session.get(User, alice["id"]), "credit", "USD",
                                           utcnow())  # fmt: skip
            first_flushed.set()
            commit_first.wait(THREAD_TIMEOUT)
            db.session.commit()
            return payout.id

    def second():
        first_flushed.wait(THREAD_TIMEOUT)
        with app.app_context():
            try:
                ledger.request_payout(db.session.get(User, alice["id"]), "credit", "USD", utcnow())
            except ledger.PayoutAlreadyRequested as error:
                db.session.rollback()
                return error
            db.session.commit()
            return "second payout made"

    with ThreadPoolExecutor(max_workers=2) as pool:
        made, raced = pool.submit(first), pool.submit(second)
        try:
            deadline = time.monotonic() + THREAD_TIMEOUT
            while not _waiting_on_a_lock(app) and time.monotonic() < deadline:
                time.sleep(0.05)
            blocked = _waiting_on_a_lock(app)
        finally:
            commit_first.set()
        payout_id, refusal = made.result(THREAD_TIMEOUT), raced.result(THREAD_TIMEOUT)

    assert blocked, "the second request never waited on the first one's payout row"
    assert isinstance(refusal, ledger.PayoutAlreadyRequested)
    assert [p.id for p in payouts(app)] == [payout_id]


def test_marking_a_payout_paid_pays_its_rewards(app, make_participant):
    alice = make_participant("Alice Zimmer")
    rows = {add_reward(app, alice, 1200), add_reward(app, alice, 1300)}
    client = logged_in(app, alice)
    assert ask_payout(client).status_code == 302
    paid_at = datetime(2026, 5, 6, 7, 8, tzinfo=UTC)

    with app.app_context():
        payout = db.session.scalar(select(Payout))
        ledger.mark_payout_paid(payout, " bank ref 42 ", paid_at)
        db.session.commit()
        with pytest.raises(ledger.PayoutNotOpen):
            ledger.mark_payout_paid(payout, "again", paid_at)
        db.session.rollback()
        rewards = db.session.scalars(select(Reward).where(Reward.id.in_(rows))).all()
        assert {(r.status, r.paid_at) for r in rewards} == {("paid", paid_at)}
        payout = db.session.get(Payout, payout.id)
        assert (payout.status, payout.paid_at, payout.reference) == ("paid", paid_at, "bank ref 42")

    credit = balance_of(app, alice)
    assert (credit.available, credit.requested, credit.paid) == (0, 0, 2500)
    html = client.get("/rewards/").get_data(as_text=True)
    assert "Paid 2026-05-06" in html and "waiting to be paid" not in html


def test_a_payout_whose_rewards_changed_is_not_marked_paid(app, make_participant):
    alice = make_participant("Alice Zimmer")
    add_reward(app, alice, 2000)
    refunded = add_reward(app, alice, 1000)
    assert ask_payout(logged_in(app, alice)).status_code == 302
    with app.app_context():
        reward = db.session.get(Reward, refunded)
        reward.status, reward.reason = "cancelled", "refunded"
        db.session.commit()

    with app.app_context():
        payout = db.session.scalar(select(Payout))
        with pytest.raises(ledger.PayoutChanged):
            ledger.mark_payout_paid(payout, None, utcnow())
        db.session.rollback()
        assert db.session.get(Payout, payout.id).status == "requested"
        paid = db.session.scalar(
            select(func.count()).select_from(Reward).where(Reward.status == "paid")
        )
        assert paid == 0


def test_cancelling_a_payout_releases_its_rewards_for_a_new_request(app, make_participant):
    alice = make_participant("Alice Zimmer")
    rows = {add_reward(app, alice, 2500)}
    client = logged_in(app, alice)
    assert ask_payout(client).status_code == 302

    with app.app_context():
        payout = db.session.scalar(select(Payout))
        ledger.cancel_payout(payout, "Bank details missing")
        db.session.commit()
        assert db.session.get(Payout, payout.id).reference == "Bank details missing"
    credit = balance_of(app, alice)
    assert (credit.available, credit.requested) == (2500, 0)
    assert ask_payout(client).status_code == 302
    statuses = [(p.status, p.amount) for p in payouts(app)]
    assert statuses == [("cancelled", 2500), ("requested", 2500)]
    assert claimed_ids(app, payouts(app)[1].id) == rows


def _purchase(app, buyer: dict, order: str, now: datetime, kind="purchase") -> str:
    with app.app_context():
        outcome = record_event(
            EventIn(
                source="api",
                kind=kind,
                external_id=f"{kind}-{order}",
                customer_email=buyer["email"],
                amount=2500 if kind == "purchase" else None,
                currency="USD",
                order_id=order,
            ),
            now,
        )
        db.session.commit()
        return outcome.outcome


def test_rewards_from_real_purchases_flow_through_hold_payout_refund_and_payment(
    app, make_participant
):
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    carol = make_participant("Carol Chen", invited_by=alice["code"])
    bought = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert _purchase(app, bob, "A-1", bought) == "accepted"
    assert _purchase(app, carol, "A-2", bought) == "accepted"
    client = logged_in(app, alice)

    held = client.get("/rewards/").get_data(as_text=True)
    assert "You invited Bob Baker" in held and "You invited Carol Chen" in held
    assert held.count("Hold ends 2026-03-15") == 2
    assert "You were invited" in logged_in(app, bob).get("/rewards/").get_data(as_text=True)

    with app.app_context():
        release_held_rewards(bought + timedelta(days=15))
        db.session.commit()
    assert ask_payout(client).status_code == 302
    [payout] = payouts(app)
    assert payout.amount == 2000

    # Bob's order is refunded while the request waits: a reversal, outside the request.
    assert _purchase(app, bob, "A-1", bought + timedelta(days=20), kind="refund") == "accepted"
    credit = balance_of(app, alice)
    assert (credit.available, credit.requested) == (-1000, 2000)
    with app.app_context():
        ledger.mark_payout_paid(db.session.get(Payout, payout.id), "wire 7", utcnow())
        db.session.commit()
    credit = balance_of(app, alice)
    assert (credit.available, credit.requested, credit.paid) == (-1000, 0, 2000)
    html = client.get("/rewards/").get_data(as_text=True)
    assert "Reversal of an earlier reward" in html and "The order was refunded" in html
