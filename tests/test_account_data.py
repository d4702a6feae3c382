"""Participants own their data (docs/guarantees.md #23): they download everything stored
about them, and deleting the account takes them out of every table while every count and
balance other people see stays exactly as it was."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError

from core import outbox
from extensions import cache, db
from models import AuditLog, Click, Payout, ReferralCode, Reward, User, UserSession, utcnow
from tests import databases, factories
from tests.analytics_data import page as analytics_page
from tests.analytics_data import text as analytics_text
from tests.apps import seeded_once, sign_in_once, signed_in
from tests.factories import PASSWORD
from tests.helpers import (
    CSRF_FIELD,
    accepted_purchase,
    configure,
    count,
    csrf_token,
    is_logged_in,
    location_path,
    log_in,
    logged_in,
    read_form,
    text_of,
)
from tests.phone_sign_in import NUMBER, last_code, sign_in, wrong
from tests.server import running_server

FRIEND_IP = "198.51.100.7"
DELETED_MESSAGE = "Your account is deleted."


@pytest.fixture
def config_overrides():
    # The phone tests ask for a code to sign in and one to confirm, within a minute.
    return {"PHONE_CODE_NUMBER_LIMITS": "1000/minute"}


# --- the story: Ann invites Bob through her link and Carl by code; Bob buys ----------------


def follow_link(client, code, ip=FRIEND_IP):
    return client.get(f"/r/{code}", environ_base={"REMOTE_ADDR": ip, "HTTP_USER_AGENT": "Bob/1"})


def sign_up(client, name, email, ip=FRIEND_IP, **extra):
    token = csrf_token(client, "/auth/signup")
    data = {"csrf_token": token, "name": name, "email": email, "password": factories.PASSWORD}
    return client.post("/auth/signup", data={**data, **extra}, environ_base={"REMOTE_ADDR": ip})


@pytest.fixture
def story(app):
    """The story for a test that changes it: told again on its own empty tables."""
    return tell_the_story(app)


@seeded_once
def story_signed_in(app):
    """The story for the tests that only read it, seeded once per database, with Ann, Bob, a
    manager and a marketer signed in once (`signed_in_as`)."""
    told = tell_the_story(app)
    with app.app_context():
        staff = {role: factories.staff(role) for role in ("manager", "marketer")}
    people = {"ann": told["ann"], "bob": told["bob"], **staff}
    return {**told, "sign_ins": {who: sign_in_once(app, p["email"]) for who, p in people.items()}}


def signed_in_as(app, story_signed_in, who: str):
    """A client of the sign-in the seed made for `who`."""
    return signed_in(app.test_client(), story_signed_in["sign_ins"][who])


def tell_the_story(app) -> dict:
    def make_participant(name, **kwargs):
        with app.app_context():
            return factories.participant(name, **kwargs)

    configure(app, min_seconds_click_to_purchase=0)  # Bob buys right after his click
    ann = make_participant("Ann Archer")
    bob_browser = app.test_client()
    assert follow_link(bob_browser, ann["code"]).status_code == 302
    assert sign_up(bob_browser, "Bob Baker", "bob.baker@example.com").status_code == 302
    carl = make_participant("Carl Clark", invited_by=ann["code"])
    dora = make_participant("Dora Dean")  # someone else, with a referral of her own
    make_participant("Eve Evans", invited_by=dora["code"])
    accepted_purchase(app, "bob.baker@example.com", "order-bob-1", 4200)
    with app.app_context():
        bob = factories.user_by_email("bob.baker@example.com")
        bob_id = bob.id
    return {"ann": ann, "bob": {"id": bob_id, "email": "bob.baker@example.com"}, "carl": carl}


def delete_own_account(client, password=factories.PASSWORD, confirm=True, **extra):
    token = read_form(client.get("/auth/profile/delete")).values["csrf_token"]
    data = {"csrf_token": token, "password": password, **extra}
    data = {name: value for name, value in data.items() if value is not None}
    if confirm:
        data["confirm"] = "y"
    return client.post("/auth/profile/delete", data=data)


def download(client):
    return client.get("/auth/profile/data")


def account(app, user_id) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


# --- what people see, before and after -----------------------------------------------------


def dashboard_stats(client) -> tuple[str, ...]:
    html = text_of(client.get("/referral/dashboard"))
    return tuple(
        html.split(f'id="stat-{name}">', 1)[1].split("<", 1)[0]
        for name in ("clicks", "signups", "qualified")
    )


def balances(client) -> list:
    return client.get("/api/v1/me/rewards").json["balances"]


def board(client) -> list:
    rows = client.get("/api/v1/leaderboard").json["rows"]
    return [(row["display_name"], row["referrals"]) for row in rows]


def analytics(app, client) -> dict:
    with app.app_context():
        cache.clear()  # the figures are cached for a minute
    response, parsed = analytics_page(client)
    assert response.status_code == 200
    return {
        "funnel": parsed.tables["funnel"],
        "daily": parsed.tables["daily"],
        **{
            ident: analytics_text(parsed, ident)
            for ident in ("revenue", "reward-cost", "participants", "k-factor")
        },
    }


# --- download ------------------------------------------------------------------------------


@pytest.mark.module_data
def test_the_download_holds_their_data_and_nobody_elses(app, story_signed_in):
    ann = signed_in_as(app, story_signed_in, "ann")
    response = download(ann)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    today = utcnow().date().isoformat()
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="inviteloop-data-{today}.json"'
    )
    assert "no-store" in response.headers["Cache-Control"]
    data = json.loads(response.get_data())
    assert data["account"]["email"] == story_signed_in["ann"]["email"]
    assert data["account"]["name"] == "Ann Archer"
    assert data["account"]["has_password"] is True
    assert data["account"]["on_leaderboard"] is True  # the profile choice, kept with them
    assert [code["code"] for code in data["referral_codes"]] == [story_signed_in["ann"]["code"]]
    assert data["referral_codes"][0]["clicks"] == 1
    assert data["sign_ins"] and set(data["sign_ins"][0]) == {"created_at", "expires_at"}
    invited = {(row["friend"], row["friend_email"]) for row in data["people_invited"]}
    # As the dashboard names them: their public names (docs/guarantees.md #27).
    assert invited == {("Bob B.", "b***@example.com"), ("Carl C.", "c***@example.com")}
    [reward] = data["ledger"]
    assert (reward["role"], reward["amount"], reward["status"]) == ("referrer", 1000, "pending")
    assert data["invited_by"] is None and data["purchases"] == [] and data["payouts"] == []
    raw = response.get_data(as_text=True)
    # Nothing of anyone else's and no secret of their own.
    for secret in ("bob.baker@example.com", "carl.clark@example.com", FRIEND_IP, "Dora", "Eve"):
        assert secret not in raw
    with app.app_context():
        user = db.session.get(User, story_signed_in["ann"]["id"])
        assert user.password_hash not in raw
        for key_hash in db.session.scalars(select(UserSession.key_hash)):
            assert key_hash not in raw


@pytest.mark.module_data
def test_the_friend_finds_their_inviter_and_their_purchase(app, story_signed_in):
    bob = signed_in_as(app, story_signed_in, "bob")
    data = json.loads(download(bob).get_data())
    assert data["invited_by"]["inviter"] == "Ann A."  # the public name, as the board shows
    assert data["invited_by"]["source"] == "link"
    assert [(p["order_id"], p["amount"]) for p in data["purchases"]] == [("order-bob-1", 4200)]
    assert data["account"]["signup_ip"] == FRIEND_IP  # theirs, so theirs to see
    assert story_signed_in["ann"]["email"] not in download(bob).get_data(as_text=True)


def test_the_download_needs_a_login_and_is_rate_limited(app, client, make_participant):
    assert location_path(download(client)) == "/auth/login"
    browser = logged_in(app, make_participant("Fay Fast"))
    statuses = [download(browser).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


# --- deleting: what stays -------------------------------------------------------------------


def test_deleting_a_friend_keeps_every_count_and_balance_others_see(app, story):
    ann = logged_in(app, story["ann"])
    with app.app_context():
        admin = factories.staff("admin")
    staff = logged_in(app, admin)
    before = (dashboard_stats(ann), balances(ann), board(ann), analytics(app, staff))
    assert before[0] == ("1", "2", "1")

    response = delete_own_account(logged_in(app, story["bob"]))
    assert response.status_code == 302
    assert location_path(response) == "/"

    after = (dashboard_stats(ann), balances(ann), board(ann), analytics(app, staff))
    # Bob's own friend reward (5.00, on hold) is forfeited: the program never pays it.
    assert before[3].pop("reward-cost").startswith("$15.00 ")
    assert after[3].pop("reward-cost").startswith("$10.00 ")
    assert after == before
    assert count(app, Click) == 1 and count(app, Reward) == 2
    # Ann's list of friends keeps the row, without Bob in it.
    page = text_of(ann.get("/referral/dashboard"))
    assert "Bob Baker" not in page and "Deleted participant" in page


def test_deleting_a_referrer_keeps_the_board_of_everyone_else(app, story):
    visitor = app.test_client()
    before = board(visitor)
    assert ("Ann A.", 2) in before
    assert delete_own_account(logged_in(app, story["ann"])).status_code == 302
    assert board(visitor) == [row for row in before if row != ("Ann A.", 2)]


def test_a_friend_buying_after_the_referrer_left_pays_the_friend_only(app, story):
    assert delete_own_account(logged_in(app, story["ann"])).status_code == 302
    accepted_purchase(app, story["carl"]["email"], "order-carl-1", 4200)
    with app.app_context():
        paid_to = db.session.execute(
            select(Reward.beneficiary_id, Reward.role).where(
                Reward.conversion_id.in_(
                    select(Reward.conversion_id).where(Reward.beneficiary_id == story["carl"]["id"])
                )
            )
        ).all()
    assert paid_to == [(story["carl"]["id"], "referee")]


def test_the_account_row_keeps_nothing_that_names_them(app, story):
    bob = logged_in(app, story["bob"])
    assert delete_own_account(bob).status_code == 302
    user = account(app, story["bob"]["id"])
    assert user.email == f"deleted-{user.id}@invalid"
    assert (user.name, user.display_name) == ("Deleted participant", "Deleted participant")
    assert None is user.phone is user.password_hash is user.signup_ip is user.device_id
    assert not user.active and user.deleted_at is not None
    with app.app_context():
        clicks = db.session.scalars(select(Click)).all()
        assert [(c.ip_prefix, c.user_agent) for c in clicks] == [(None, None)]
        # Bob's code stopped too.
        assert db.session.scalars(
            select(ReferralCode.status).where(ReferralCode.user_id == user.id)
        ).all() == ["disabled"]
        # The database itself refuses a deleted account that still names someone.
        db.session.get(User, user.id).phone = "+14155550100"
        with pytest.raises(Exception, match="deleted_is_anonymous"):
            db.session.commit()
        db.session.rollback()


def test_no_table_names_them_after_the_deletion(app, story):
    """Every row of every table, read as text: Bob's name, email and address are nowhere
    (his CRM lead, his purchase as the shop sent it, his clicks and sign-up included)."""
    traces = ("bob.baker", "Bob Baker", "Bob B.", "198.51.100.")

    def tables_naming_bob() -> set[str]:
        found = set()
        with app.app_context():
            for table in databases.TABLES:
                rows = db.session.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608
                if any(trace in repr(rows) for trace in traces):
                    found.add(table)
        return found

    assert {"users", "leads", "conversions", "clicks"} <= tables_naming_bob()
    assert delete_own_account(logged_in(app, story["bob"])).status_code == 302
    assert tables_naming_bob() == set()


def test_no_mail_to_them_stays_on_record_or_still_goes_out(app, story):
    """Ann was mailed when Bob joined; a reset she asked for waits in the outbox, unsent."""
    ann_email = story["ann"]["email"]

    def messages_naming_ann() -> int:
        with app.app_context():
            rows = db.session.execute(text("SELECT * FROM outbox_messages")).all()
        return sum(ann_email in repr(row) for row in rows)

    with app.app_context():
        enqueue_later = outbox.add("auth.send_reset_link", [ann_email], delay_seconds=3600)
        assert enqueue_later is not None
        db.session.commit()
    assert messages_naming_ann() >= 2
    assert delete_own_account(logged_in(app, story["ann"])).status_code == 302
    assert messages_naming_ann() == 0


# --- deleting: what stops -------------------------------------------------------------------


def test_the_deleted_person_cannot_sign_in_and_old_cookies_stop(app, client, story):
    assert log_in(client, story["bob"]["email"], remember="y").status_code == 302
    remembered = client.get_cookie("remember_token").value
    session_cookie = client.get_cookie("session").value
    other = logged_in(app, story["bob"])
    assert delete_own_account(other).status_code == 302

    for name, value in (("remember_token", remembered), ("session", session_cookie)):
        browser = app.test_client()
        browser.set_cookie(name, value)
        assert not is_logged_in(browser)
    assert not is_logged_in(other)
    assert log_in(app.test_client(), story["bob"]["email"]).status_code == 401
    assert count(app, UserSession, UserSession.user_id == story["bob"]["id"]) == 0


def test_their_link_no_longer_credits_anyone(app, story):
    assert delete_own_account(logged_in(app, story["ann"])).status_code == 302
    visitor = app.test_client()
    response = follow_link(visitor, story["ann"]["code"], ip="203.0.113.9")
    assert location_path(response) == "/"  # the home page, as for any stopped code
    assert visitor.get_cookie("il_ref") is None
    assert count(app, Click) == 1
    refused = sign_up(visitor, "Gus Green", "gus@example.com", referral_code=story["ann"]["code"])
    assert refused.status_code == 422
    assert count(app, User, User.email == "gus@example.com") == 0


def test_the_email_can_sign_up_again_as_a_new_person(app, story):
    assert delete_own_account(logged_in(app, story["bob"])).status_code == 302
    again = app.test_client()
    assert sign_up(again, "Bob Again", story["bob"]["email"], ip="203.0.113.10").status_code == 302
    with app.app_context():
        new = factories.user_by_email(story["bob"]["email"])
        assert new.id != story["bob"]["id"] and factories.referral_of(new.id) is None


def test_the_audit_log_records_it_without_personal_data(app, story):
    assert delete_own_account(logged_in(app, story["bob"])).status_code == 302
    with app.app_context():
        [entry] = db.session.scalars(select(AuditLog).where(AuditLog.action == "user.delete"))
        assert (entry.target_type, entry.target_id) == ("user", str(story["bob"]["id"]))
        assert entry.after["deleted_at"] and entry.after["codes_disabled"] == 1
        stored = json.dumps([entry.actor_label, entry.ip, entry.before, entry.after])
        for personal in ("bob", "Bob", FRIEND_IP, "127.0.0.1"):
            assert personal not in stored


# --- refused: nothing changes ---------------------------------------------------------------


def test_a_wrong_password_or_no_tick_deletes_nothing(app, story):
    bob = logged_in(app, story["bob"])
    before = account(app, story["bob"]["id"])
    response = delete_own_account(bob, password="not my password")
    assert response.status_code == 403
    assert read_form(response).field_errors["password"] == [
        "This is not your current password. Nothing was deleted."
    ]
    response = delete_own_account(bob, confirm=False)
    assert response.status_code == 400
    assert "Tick the box" in read_form(response).field_errors["confirm"][0]
    after = account(app, story["bob"]["id"])
    assert (after.email, after.name, after.active, after.deleted_at) == (
        before.email,
        before.name,
        True,
        None,
    )
    assert is_logged_in(bob)


def test_a_database_failure_leaves_nothing_half_written(app, story):
    bob = logged_in(app, story["bob"])
    with app.app_context():
        engine = db.engine

    def fail_on_audit(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            raise OperationalError(statement, parameters, Exception("disk full"))

    event.listen(engine, "before_cursor_execute", fail_on_audit)
    try:
        response = delete_own_account(bob)
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_audit)
    assert response.status_code == 503
    user = account(app, story["bob"]["id"])
    assert (user.email, user.active, user.deleted_at) == (story["bob"]["email"], True, None)
    with app.app_context():
        assert (
            db.session.scalar(select(ReferralCode.status).where(ReferralCode.user_id == user.id))
            == "active"
        )
        assert db.session.scalar(select(Click.ip_prefix)) is not None
    assert is_logged_in(bob)


def test_an_open_payout_request_holds_the_deletion_until_it_is_settled(app, story):
    with app.app_context():
        reward = db.session.scalar(
            select(Reward).where(Reward.beneficiary_id == story["ann"]["id"])
        )
        now = utcnow()
        payout = Payout(user_id=reward.beneficiary_id, kind="credit", amount=1000, currency="USD")
        db.session.add(payout)
        db.session.flush()
        reward.status, reward.payout_id, reward.available_at = "approved", payout.id, now
        # One more entry, still on hold: it is forfeited by the deletion.
        db.session.add(
            Reward(
                program_id=reward.program_id,
                conversion_id=reward.conversion_id,
                beneficiary_id=reward.beneficiary_id,
                role="bonus",
                kind="credit",
                amount=500,
                currency="USD",
                status="pending",
                available_at=now + timedelta(days=14),
            )
        )
        db.session.commit()
        payout_id = payout.id
    ann = logged_in(app, story["ann"])
    response = delete_own_account(ann)
    assert response.status_code == 409
    assert "A payout request is still open" in read_form(response).alerts[0]
    assert account(app, story["ann"]["id"]).deleted_at is None

    with app.app_context():
        db.session.get(Payout, payout_id).status = "paid"
        db.session.get(Payout, payout_id).paid_at = utcnow()
        for entry in db.session.scalars(select(Reward).where(Reward.payout_id == payout_id)):
            entry.status, entry.paid_at = "paid", utcnow()
        db.session.commit()
    assert delete_own_account(ann).status_code == 302
    with app.app_context():
        statuses = db.session.execute(
            select(Reward.role, Reward.status, Reward.reason).where(
                Reward.beneficiary_id == story["ann"]["id"]
            )
        ).all()
    assert sorted(statuses) == [
        ("bonus", "cancelled", "account_deleted"),
        ("referrer", "paid", None),
    ]


def test_the_last_administrator_cannot_delete_their_account(app, client):
    with app.app_context():
        admin = factories.staff("admin")
    browser = logged_in(app, admin)
    response = delete_own_account(browser)
    assert response.status_code == 409
    assert "last active administrator" in read_form(response).alerts[0]
    assert account(app, admin["id"]).deleted_at is None
    with app.app_context():
        factories.staff("admin")
    assert delete_own_account(browser).status_code == 302
    assert account(app, admin["id"]).role == "member"


# --- phone-only accounts confirm with a code ------------------------------------------------


@pytest.mark.usefixtures("sms_log")
def test_a_phone_participant_confirms_with_a_texted_code(app, client, sms_log):
    assert sign_in(client, sms_log, name="Pat Phone").status_code == 302
    page = client.get("/auth/profile/delete")
    assert "Your current password" not in text_of(page)
    token = read_form(page).values["csrf_token"]
    assert client.post("/auth/profile/delete/code", data={"csrf_token": token}).status_code == 302
    code = last_code(sms_log, NUMBER)
    response = delete_own_account(client, password=None, code=wrong(code))
    assert response.status_code == 400
    assert count(app, User, User.phone == NUMBER) == 1
    response = delete_own_account(client, password=None, code=code)
    assert response.status_code == 302
    assert count(app, User, User.phone == NUMBER) == 0
    assert not is_logged_in(client)


# --- staff: the same deletion and download, on the person's request -------------------------


def staff_browser(app, role):
    with app.app_context():
        person = factories.staff(role)
    return logged_in(app, person), person


def staff_delete(browser, user_id, confirm=True):
    token = csrf_token(browser, f"/admin/participants/{user_id}")
    data = {"csrf_token": token, **({"delete-confirm": "y"} if confirm else {})}
    return browser.post(f"/admin/participants/{user_id}/delete", data=data)


def test_staff_delete_on_request_and_the_page_says_when(app, story):
    manager, _ = staff_browser(app, "manager")
    bob_id = story["bob"]["id"]
    unticked = staff_delete(manager, bob_id, confirm=False)
    assert unticked.status_code == 400
    assert account(app, bob_id).deleted_at is None

    response = staff_delete(manager, bob_id)
    assert response.status_code == 302
    page = text_of(manager.get(f"/admin/participants/{bob_id}"))
    today = utcnow().date().isoformat()
    assert f"Deleted on {today}" in page
    assert "bob.baker@example.com" not in page
    assert f"/admin/participants/{bob_id}/delete" not in page  # nothing left to act on
    with app.app_context():
        [entry] = db.session.scalars(select(AuditLog).where(AuditLog.action == "user.delete"))
        assert entry.actor_label.endswith("@staff.example.com")
    # A deleted account cannot come back through the panel either.
    token = csrf_token(manager, f"/admin/participants/{bob_id}")
    again = manager.post(f"/admin/participants/{bob_id}/reactivate", data={"csrf_token": token})
    assert again.status_code == 409
    assert not account(app, bob_id).active


@pytest.mark.module_data
def test_staff_download_a_participants_data(app, story_signed_in):
    manager = signed_in_as(app, story_signed_in, "manager")
    response = manager.get(f"/admin/participants/{story_signed_in['ann']['id']}/data")
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    assert json.loads(response.get_data())["account"]["email"] == story_signed_in["ann"]["email"]


@pytest.mark.module_data
def test_roles_without_the_permission_are_refused(app, story_signed_in):
    marketer = signed_in_as(app, story_signed_in, "marketer")
    bob_id = story_signed_in["bob"]["id"]
    assert staff_delete(marketer, bob_id).status_code == 403
    assert marketer.get(f"/admin/participants/{bob_id}/data").status_code == 403
    assert account(app, bob_id).deleted_at is None


def test_only_an_administrator_deletes_a_staff_account(app, story):
    manager, _ = staff_browser(app, "manager")
    _, operator = staff_browser(app, "operator")
    response = staff_delete(manager, operator["id"])
    assert response.status_code == 403
    assert "Only an administrator" in text_of(response)
    assert account(app, operator["id"]).deleted_at is None
    admin, _ = staff_browser(app, "admin")
    assert staff_delete(admin, operator["id"]).status_code == 302
    assert account(app, operator["id"]).role == "member"


# --- at the same moment, on a real server ---------------------------------------------------


@pytest.mark.server
@pytest.mark.slow
def test_the_last_two_admins_deleting_themselves_at_once_leave_one(app, database_url):
    """Both see another active admin when they start; the admins' rows are locked in turn,
    so the second deletion sees the first and is refused: one administrator stays."""
    with app.app_context():
        admins = [factories.staff("admin", f"Admin {n}") for n in (1, 2)]
    with running_server(database_url) as base_url:
        barrier = threading.Barrier(len(admins), timeout=20)

        def delete(person: dict) -> int:
            with requests.Session() as browser:
                token = CSRF_FIELD.search(browser.get(f"{base_url}/auth/login").text).group(1)
                login = browser.post(
                    f"{base_url}/auth/login",
                    data={"csrf_token": token, "email": person["email"], "password": PASSWORD},
                    allow_redirects=False,
                    timeout=30,
                )
                assert login.status_code == 302
                page = browser.get(f"{base_url}/auth/profile/delete", timeout=30).text
                token = CSRF_FIELD.search(page).group(1)
                barrier.wait()
                return browser.post(
                    f"{base_url}/auth/profile/delete",
                    data={"csrf_token": token, "password": PASSWORD, "confirm": "y"},
                    allow_redirects=False,
                    timeout=30,
                ).status_code

        with ThreadPoolExecutor(max_workers=len(admins)) as pool:
            statuses = sorted(pool.map(delete, admins))
    assert statuses == [302, 409]
    assert count(app, User, User.role == "admin", User.active) == 1
