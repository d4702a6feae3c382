"""Naming an inviter after signup: POST /referral/claim, on SQLite and PostgreSQL."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from extensions import db
from models import Program, Referral, ReferralCode, Reward, User, utcnow
from referral.services import default_program
from tests import factories
from tests.helpers import CSRF_FIELD, buy, csrf_token, log_in
from tests.server import GENEROUS_LIMITS, running_server

CYCLE_MESSAGE = "joined through you"


def claim(client, code: str):
    token = csrf_token(client, "/referral/claim")
    return client.post("/referral/claim", data={"csrf_token": token, "referral_code": code})


def tree_state(app) -> dict:
    """Everything a claim may change: referrals, inviters, counters."""
    with app.app_context():
        referrals = db.session.execute(
            select(
                Referral.referrer_id, Referral.referred_id, Referral.source, Referral.status
            ).order_by(Referral.id)
        ).all()
        users = db.session.execute(
            select(User.id, User.referred_by_id, User.referral_count).order_by(User.id)
        ).all()
        return {"referrals": [tuple(row) for row in referrals], "users": [tuple(r) for r in users]}


def user_values(app, user_id: int) -> tuple:
    with app.app_context():
        user = db.session.get(User, user_id)
        return user.referred_by_id, user.referral_count


def referral_row(app, user_id: int):
    with app.app_context():
        row = db.session.execute(
            select(Referral.referrer_id, Referral.source, Referral.status, Referral.reason).where(
                Referral.referred_id == user_id
            )
        ).first()
        return tuple(row) if row else None


def people(app, *names, **invites):
    """Participants by first name; invites={"bob": "ann"} makes Ann Bob's inviter."""
    made = {}
    with app.app_context():
        for name in names:
            inviter = invites.get(name.lower())
            made[name.lower()] = factories.participant(
                f"{name} Tester", invited_by=made[inviter]["code"] if inviter else None
            )
    return made


def refused(response, status: int, message: str) -> str:
    page = response.get_data(as_text=True)
    assert response.status_code == status, page[:2000]
    assert message in page
    return page


# --- accepted ----------------------------------------------------------------------------


def test_an_uninvited_participant_names_an_inviter_and_it_counts(app, client):
    folks = people(app, "Ann", "Bob")
    log_in(client, folks["bob"]["email"])

    dashboard = client.get("/referral/dashboard").get_data(as_text=True)
    assert "Did a friend invite you?" in dashboard
    response = claim(client, folks["ann"]["code"].lower())  # typed in any case

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/referral/dashboard")
    assert referral_row(app, folks["bob"]["id"]) == (folks["ann"]["id"], "claimed", "pending", None)
    assert user_values(app, folks["bob"]["id"])[0] == folks["ann"]["id"]
    assert user_values(app, folks["ann"]["id"])[1] == 1
    page = client.get("/referral/dashboard").get_data(as_text=True)
    assert "Ann T. is now your inviter" in page
    assert "Did a friend invite you?" not in page  # nothing more to claim

    # It counts like any other referral: the friend's first purchase pays the inviter.
    assert buy(app, folks["bob"]["email"], "order-1").outcome == "accepted"
    with app.app_context():
        status = db.session.scalar(
            select(Referral.status).where(Referral.referred_id == folks["bob"]["id"])
        )
        earned = db.session.execute(
            select(Reward.role, Reward.level, Reward.amount).where(
                Reward.beneficiary_id == folks["ann"]["id"]
            )
        ).all()
    assert status == "qualified"
    assert [tuple(row) for row in earned] == [("referrer", 1, 1000)]
    ann_browser = app.test_client()
    log_in(ann_browser, folks["ann"]["email"])
    page = ann_browser.get("/referral/dashboard").get_data(as_text=True)
    assert 'id="stat-signups">1<' in page


def test_a_claim_runs_the_fraud_checks(app, client):
    with app.app_context():
        ann = factories.participant("Ann Tester", device_id="d" * 32)
        bob = factories.participant("Bob Tester", device_id="d" * 32)
    log_in(client, bob["email"])

    assert claim(client, ann["code"]).status_code == 302

    referrer, source, status, reason = referral_row(app, bob["id"])
    assert (referrer, source, status, reason) == (ann["id"], "claimed", "review", "same_device")
    assert user_values(app, ann["id"]) == (None, 0)  # not counted while held
    assert "will show as your inviter once we" in client.get("/referral/dashboard").get_data(
        as_text=True
    )


# --- refused, nothing changed --------------------------------------------------------------


def test_own_code_is_refused(app, client):
    folks = people(app, "Ann")
    log_in(client, folks["ann"]["email"])
    before = tree_state(app)

    refused(claim(client, folks["ann"]["code"]), 422, "That&#39;s your own code")

    assert tree_state(app) == before


@pytest.mark.parametrize("typed", ["ZZZZZZZZ", "no", "<script>"])
def test_unknown_or_malformed_code_is_refused(app, client, typed):
    folks = people(app, "Ann")
    log_in(client, folks["ann"]["email"])
    before = tree_state(app)

    page = refused(claim(client, typed), 422, "We don&#39;t know this referral code")

    assert "<script>" not in page
    assert tree_state(app) == before


def test_disabled_code_is_refused(app, client):
    folks = people(app, "Ann", "Bob")
    with app.app_context():
        db.session.execute(
            update(ReferralCode)
            .where(ReferralCode.code == folks["ann"]["code"])
            .values(status="disabled")
        )
        db.session.commit()
    log_in(client, folks["bob"]["email"])
    before = tree_state(app)

    refused(claim(client, folks["ann"]["code"]), 422, "This code is no longer in use")

    assert tree_state(app) == before


def test_claim_after_the_window_is_refused(app, client):
    with app.app_context():
        ann = factories.participant("Ann Tester")
        bob = factories.participant("Bob Tester", now=utcnow() - timedelta(days=14, minutes=1))
    log_in(client, bob["email"])
    assert "Did a friend invite you?" not in client.get("/referral/dashboard").get_data(
        as_text=True
    )
    before = tree_state(app)

    refused(claim(client, ann["code"]), 422, "within 14 days of signing up")

    assert tree_state(app) == before


def test_claim_just_inside_a_program_window_is_accepted(app, client):
    with app.app_context():
        default_program().claim_window_days = 30
        db.session.commit()
        ann = factories.participant("Ann Tester")
        bob = factories.participant("Bob Tester", now=utcnow() - timedelta(days=29, hours=23))
    log_in(client, bob["email"])

    assert claim(client, ann["code"]).status_code == 302
    assert referral_row(app, bob["id"])[:2] == (ann["id"], "claimed")


def test_a_program_without_claims_refuses_them(app, client):
    with app.app_context():
        db.session.execute(update(Program).values(claim_window_days=0))
        db.session.commit()
    folks = people(app, "Ann", "Bob")
    log_in(client, folks["bob"]["email"])
    before = tree_state(app)

    refused(claim(client, folks["ann"]["code"]), 422, "doesn&#39;t let you name an inviter")

    assert tree_state(app) == before


def test_someone_with_an_inviter_cannot_claim_another(app, client):
    folks = people(app, "Ann", "Cat", "Bob", bob="ann")
    log_in(client, folks["bob"]["email"])
    before = tree_state(app)

    refused(claim(client, folks["cat"]["code"]), 409, "You already have an inviter")

    assert tree_state(app) == before


def test_a_second_claim_is_refused(app, client):
    folks = people(app, "Ann", "Cat", "Bob")
    log_in(client, folks["bob"]["email"])
    assert claim(client, folks["ann"]["code"]).status_code == 302
    before = tree_state(app)

    refused(claim(client, folks["cat"]["code"]), 409, "You already have an inviter")

    assert tree_state(app) == before


def test_a_claim_that_would_close_a_cycle_is_refused_at_every_depth(app, client):
    # Ann joined uninvited; below her: Bob (1), Cat (2), Dan (3), Eve (4).
    folks = people(
        app, "Ann", "Bob", "Cat", "Dan", "Eve", bob="ann", cat="bob", dan="cat", eve="dan"
    )
    log_in(client, folks["ann"]["email"])
    before = tree_state(app)

    for name in ("bob", "cat", "dan", "eve"):
        refused(claim(client, folks[name]["code"]), 422, CYCLE_MESSAGE)

    assert tree_state(app) == before


def test_a_referral_held_for_review_already_bars_the_cycle(app, client):
    # Bob signed up with Ann's code from Ann's browser: held, not yet an edge of the tree.
    with app.app_context():
        ann = factories.participant("Ann Tester", device_id="e" * 32)
        bob = factories.participant("Bob Tester", invited_by=ann["code"], device_id="e" * 32)
    assert referral_row(app, bob["id"])[2] == "review"
    log_in(client, ann["email"])
    before = tree_state(app)

    refused(claim(client, bob["code"]), 422, CYCLE_MESSAGE)

    assert tree_state(app) == before


def test_claim_needs_a_login_and_a_csrf_token(app, client):
    folks = people(app, "Ann", "Bob")
    anonymous = client.get("/referral/claim")
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]
    token = csrf_token(client, "/auth/login")
    data = {"csrf_token": token, "referral_code": folks["ann"]["code"]}
    anonymous = client.post("/referral/claim", data=data)
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]
    log_in(client, folks["bob"]["email"])
    before = tree_state(app)

    forged = client.post("/referral/claim", data={"referral_code": folks["ann"]["code"]})

    assert forged.status_code == 400
    assert tree_state(app) == before
    assert client.get("/referral/claim").status_code == 200


@pytest.fixture
def config_overrides():
    return {"CLAIM_LIMITS": "4/minute"}


def test_guessing_codes_is_rate_limited(app, client):
    folks = people(app, "Ann")
    log_in(client, folks["ann"]["email"])
    statuses = [claim(client, f"GUESS{n:03d}").status_code for n in range(5)]
    assert statuses == [422, 422, 422, 422, 429]


# --- racing claims against a real server ---------------------------------------------------


def _claim_racers(base_url: str, jobs: list[tuple[str, str]]) -> list[requests.Response]:
    """Each (email, code) from its own logged-in browser; all submit at the same moment."""
    barrier = threading.Barrier(len(jobs), timeout=20)

    def run(job):
        email, code = job
        with requests.Session() as browser:
            browser.headers["X-Forwarded-For"] = factories.distinct_ip()
            page = browser.get(f"{base_url}/auth/login", timeout=30)
            token = CSRF_FIELD.search(page.text).group(1)
            login = browser.post(
                f"{base_url}/auth/login",
                data={"csrf_token": token, "email": email, "password": factories.PASSWORD},
                allow_redirects=False,
                timeout=30,
            )
            assert login.status_code == 302, login.text[-3000:]
            token = CSRF_FIELD.search(browser.get(f"{base_url}/referral/claim", timeout=30).text)
            barrier.wait()
            response = browser.post(
                f"{base_url}/referral/claim",
                data={"csrf_token": token.group(1), "referral_code": code},
                allow_redirects=False,
                timeout=30,
            )
            response.close()
            return response

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


@pytest.mark.server
def test_claims_racing_into_a_cycle_cannot_all_succeed(app, database_url):
    pairs = [
        people(app, f"Ann{n}", f"Bob{n}") for n in range(4)
    ]  # four pairs: Ann claims Bob while Bob claims Ann
    trio = people(app, "Cat", "Dan", "Eve")  # Cat → Dan → Eve → Cat, all at once
    jobs = []
    for pair in pairs:
        (ann, bob) = pair.values()
        jobs += [(ann["email"], bob["code"]), (bob["email"], ann["code"])]
    jobs += [
        (trio["cat"]["email"], trio["dan"]["code"]),
        (trio["dan"]["email"], trio["eve"]["code"]),
        (trio["eve"]["email"], trio["cat"]["code"]),
    ]

    with running_server(database_url, workers=2, threads=8, CLAIM_LIMITS=GENEROUS_LIMITS) as url:
        responses = _claim_racers(url, jobs)

    statuses = [response.status_code for response in responses]
    assert all(status in (302, 422) for status in statuses), statuses
    for index in range(len(pairs)):
        assert sorted(statuses[2 * index : 2 * index + 2]) == [302, 422], statuses
    assert sorted(statuses[-3:]) == [302, 302, 422], statuses
    with app.app_context():
        claimed = db.session.scalar(
            select(func.count()).select_from(Referral).where(Referral.source == "claimed")
        )
        assert claimed == statuses.count(302) == len(pairs) + 2
        for person in [*[p for pair in pairs for p in pair.values()], *trio.values()]:
            # Nobody is their own ancestor: walk up from each, it ends.
            seen, current = set(), person["id"]
            while current is not None:
                assert current not in seen, "the claims closed a loop"
                seen.add(current)
                current = db.session.get(User, current).referred_by_id
