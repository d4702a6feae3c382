"""The heart of InviteLoop over HTTP: a link, a click, a signup, a counted referral."""

from datetime import timedelta

import itsdangerous
import itsdangerous.timed
import pytest
from sqlalchemy import func, select, update

from extensions import db
from models import Click, Referral, ReferralCode, User, utcnow
from referral import attribution
from referral.attribution import ATTRIBUTION_COOKIE, VISITOR_COOKIE
from tests import factories
from tests.helpers import csrf_token, log_in


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _referral_of(app, email):
    with app.app_context():
        user = factories.user_by_email(email)
        return db.session.scalar(select(Referral).where(Referral.referred_id == user.id))


def test_whole_loop_link_cookie_signup_dashboard_leaderboard(app, make_participant, signup):
    alice = make_participant("Alice Zimmer")
    visitor = app.test_client()

    click = visitor.get(f"/r/{alice['code']}")
    assert click.status_code == 302
    assert click.headers["Location"].endswith(f"/auth/signup?ref={alice['code']}")

    # Bob arrives later on the plain signup page: only the cookie knows who sent him.
    form = visitor.get("/auth/signup")
    assert f'value="{alice["code"]}"' in form.get_data(as_text=True)
    token = csrf_token(visitor, "/auth/signup")
    done = visitor.post(
        "/auth/signup",
        data={
            "csrf_token": token,
            "name": "Bob Baker",
            "email": "bob@example.com",
            "password": "correct horse battery staple",
            "referral_code": "",
        },
    )
    assert done.status_code == 302
    assert done.headers["Location"].endswith("/referral/dashboard")
    referral = _referral_of(app, "bob@example.com")
    assert referral.status == "pending" and referral.source == "link"

    alice_client = app.test_client()
    log_in(alice_client, alice["email"])
    dashboard = alice_client.get("/referral/dashboard").get_data(as_text=True)
    assert 'data-label="Name">Bob B.<' in dashboard  # his public name (docs/guarantees.md #27)
    assert "b***@example.com" in dashboard
    assert 'id="stat-clicks">1<' in dashboard
    assert 'id="stat-signups">1<' in dashboard

    board = app.test_client().get("/referral/leaderboard").get_data(as_text=True)
    assert "Alice Z." in board
    api = app.test_client().get("/api/v1/leaderboard").json
    assert api["rows"] == [{"rank": 1, "display_name": "Alice Z.", "referrals": 1}]


def test_click_is_recorded_with_utm_fields_and_a_truncated_address(app, make_participant):
    alice = make_participant()
    client = app.test_client()
    client.get(
        f"/r/{alice['code'].lower()}?utm_source=newsletter&utm_campaign=spring",
        headers={"User-Agent": "TestBrowser/1.0", "Referer": "https://mail.example/"},
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    with app.app_context():
        click = db.session.scalar(select(Click))
        assert click.utm_source == "newsletter" and click.utm_campaign == "spring"
        assert click.user_agent == "TestBrowser/1.0"
        assert click.referrer == "https://mail.example/"
        assert click.ip_prefix == "203.0.113.0/24"  # never the full address
        assert len(click.visitor_id) == 32


def test_referral_cookie_is_signed_http_only_and_lasts_the_window(app, make_participant):
    alice = make_participant()
    response = app.test_client().get(f"/r/{alice['code']}")
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
    assert "HttpOnly" in cookies[ATTRIBUTION_COOKIE]
    assert "SameSite=Lax" in cookies[ATTRIBUTION_COOKIE]
    assert f"Max-Age={30 * 86400}" in cookies[ATTRIBUTION_COOKIE]
    value = cookies[ATTRIBUTION_COOKIE].split(";")[0].split("=", 1)[1]
    with app.test_request_context():
        assert attribution._serializer().loads(value) == {"code": alice["code"]}
    forged = itsdangerous.URLSafeTimedSerializer("another key", salt="referral-attribution")
    with pytest.raises(itsdangerous.BadSignature):
        forged.loads(value)
    assert "HttpOnly" in cookies[VISITOR_COOKIE]


def test_junk_unknown_and_disabled_codes_land_on_a_normal_page(app, make_participant):
    alice = make_participant()
    with app.app_context():
        db.session.execute(update(ReferralCode).values(status="disabled"))
        db.session.commit()
    client = app.test_client()
    for path in (
        f"/r/{alice['code']}",  # disabled
        "/r/ZZZZZZ",  # unknown
        "/r/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/r/" + "A" * 500,
        "/r/abc/def",
        "/?ref=%3Cb%3Ehi%3C%2Fb%3E",
        "/?ref=ZZZZZZ",
    ):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        assert client.get_cookie(ATTRIBUTION_COOKIE) is None, path
        body = response.get_data(as_text=True)
        assert "<b>hi</b>" not in body and "<script>alert" not in body
        assert "Traceback" not in body
    assert _count(app, Click) == 0


def test_landing_page_ref_parameter_is_captured_like_a_click(app, make_participant, signup):
    alice = make_participant()
    client = app.test_client()
    page = client.get(f"/?ref={alice['code']}")
    assert page.status_code == 200
    assert "Alice Z. invited you — get $5.00 credit on your first purchase of $20.00 or more." in (
        page.get_data(as_text=True)
    )
    assert client.get_cookie(ATTRIBUTION_COOKIE) is not None
    assert _count(app, Click) == 1


def test_typed_code_wins_over_the_cookie(app, make_participant, client, signup):
    alice = make_participant("Alice Zimmer")
    carol = make_participant("Carol Young")
    client.get(f"/r/{alice['code']}")
    assert signup("Bob Baker", referral_code=carol["code"].lower()).status_code == 302
    referral = _referral_of(app, "bob@example.com")
    assert referral.referrer_id == carol["id"] and referral.source == "code"


def test_signup_through_own_link_is_recorded_as_self_referral(app, client, signup):
    assert signup("Alice Zimmer", email="alice@example.com").status_code == 302
    with app.app_context():
        alice = factories.user_by_email("alice@example.com")
        code = factories.code_of(alice.id)
    client.post("/auth/logout", data={"csrf_token": _token(client)})
    client.get(f"/r/{code}")  # the same browser: the visitor cookie is Alice's
    assert signup("Alice Second", email="alice.second@example.org").status_code == 302
    referral = _referral_of(app, "alice.second@example.org")
    assert referral.status == "rejected" and referral.reason == "self_referral"
    assert {reason["code"] for reason in referral.risk_reasons} == {"same_device", "same_ip"}
    with app.app_context():
        assert db.session.get(User, alice.id).referral_count == 0
    assert app.test_client().get("/api/v1/leaderboard").json["rows"] == []


def _token(client):
    return csrf_token(client, "/")


def test_gmail_alias_of_the_referrer_is_a_self_referral(app, make_participant, signup):
    alice = make_participant("Alice Zimmer", email="alice.zimmer@gmail.com")
    response = signup(
        "Alice Again", email="AliceZimmer+promo@googlemail.com", referral_code=alice["code"]
    )
    assert response.status_code == 302
    referral = _referral_of(app, "alicezimmer+promo@googlemail.com")
    assert referral.status == "rejected" and referral.reason == "self_referral"
    assert [reason["code"] for reason in referral.risk_reasons] == ["same_mailbox"]


def test_a_stale_cookie_from_beyond_the_window_is_ignored(app, make_participant, monkeypatch):
    alice = make_participant()
    with app.app_context():
        from referral.services import default_program

        default_program().attribution_window_days = 1
        db.session.commit()
    client = app.test_client()
    two_days_ago = (utcnow() - timedelta(days=2)).timestamp()
    with monkeypatch.context() as past:  # the click happened two days ago
        past.setattr(itsdangerous.timed.time, "time", lambda: two_days_ago)
        client.get(f"/r/{alice['code']}")
    form = client.get("/auth/signup").get_data(as_text=True)
    assert alice["code"] not in form  # not even pre-filled
    response = client.post(
        "/auth/signup",
        data={
            "csrf_token": csrf_token(client, "/auth/signup"),
            "name": "Bob Baker",
            "email": "bob@example.com",
            "password": "correct horse battery staple",
        },
    )
    assert response.status_code == 302
    assert _referral_of(app, "bob@example.com") is None


def test_a_tampered_cookie_is_ignored(app, make_participant):
    alice = make_participant()
    client = app.test_client()
    client.get(f"/r/{alice['code']}")
    forged = client.get_cookie(ATTRIBUTION_COOKIE).value[:-2] + "xx"
    client.set_cookie(ATTRIBUTION_COOKIE, forged)
    page = client.get("/auth/signup").get_data(as_text=True)
    assert alice["code"] not in page


def test_first_touch_program_keeps_the_first_inviter(app, make_participant, client, signup):
    alice = make_participant("Alice Zimmer")
    carol = make_participant("Carol Young")
    with app.app_context():
        from referral.services import default_program

        default_program().attribution_model = "first"
        db.session.commit()
    client.get(f"/r/{alice['code']}")
    client.get(f"/r/{carol['code']}")
    signup("Bob Baker", referral_code="")
    assert _referral_of(app, "bob@example.com").referrer_id == alice["id"]


def test_last_touch_program_credits_the_latest_link(app, make_participant, client, signup):
    alice = make_participant("Alice Zimmer")
    carol = make_participant("Carol Young")
    client.get(f"/r/{alice['code']}")
    client.get(f"/r/{carol['code']}")
    signup("Bob Baker", referral_code="")
    assert _referral_of(app, "bob@example.com").referrer_id == carol["id"]


def test_the_owner_following_their_own_link_is_not_a_click(app, client, signup):
    signup("Alice Zimmer", email="alice@example.com")
    with app.app_context():
        code = factories.code_of(factories.user_by_email("alice@example.com").id)
    client.get(f"/r/{code}")
    assert _count(app, Click) == 0
    assert client.get_cookie(ATTRIBUTION_COOKIE) is None


def test_dashboard_shows_link_qr_share_buttons_and_paginates_invitees(app, make_participant):
    alice = make_participant("Alice Zimmer")
    for index in range(23):
        with app.app_context():
            factories.participant(f"Friend{index:02d} Number", invited_by=alice["code"])
    client = app.test_client()
    log_in(client, alice["email"])
    first = client.get("/referral/dashboard").get_data(as_text=True)
    assert f"/r/{alice['code']}" in first
    assert "<svg" in first  # the QR code, inline
    for network in ("Email", "Telegram", "WhatsApp", "X", "Facebook"):
        assert f">{network}</a>" in first
    assert 'id="stat-signups">23<' in first
    invitee = 'data-label="Name">Friend'  # a row of the list, named by the public name
    assert first.count(invitee) == 20
    assert "Page 1 of 2" in first
    second = client.get("/referral/dashboard?page=2").get_data(as_text=True)
    assert second.count(invitee) == 3
    assert 'data-label="Name">Friend00 N.<' in second  # oldest last
    junk = client.get("/referral/dashboard?page=banana")
    assert junk.status_code == 200
    qr = client.get("/referral/qr.svg")
    assert qr.mimetype == "image/svg+xml" and b"<svg" in qr.data


def test_dashboard_and_portal_api_require_login(client):
    response = client.get("/referral/dashboard")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    api = client.get("/api/v1/me")
    assert api.status_code == 401
    assert api.json["error"]["code"] == "login_required"


def test_portal_api_gives_code_link_and_invitees(app, make_participant, login, client):
    alice = make_participant("Alice Zimmer")
    with app.app_context():
        factories.participant("Bob Baker", invited_by=alice["code"])
    login(alice["email"])
    me = client.get("/api/v1/me").json
    assert me["code"] == alice["code"]
    assert me["link"].endswith(f"/r/{alice['code']}")
    assert me["stats"] == {
        "clicks": 0,
        "signups": 1,
        "qualified": 0,
        "in_review": 0,
        "not_counted": 0,
    }
    invited = client.get("/api/v1/me/referrals").json
    assert invited["total"] == 1
    [bob] = invited["referrals"]
    assert bob["name"] == "Bob Baker" and bob["email"] == "b***@example.com"
    assert bob["status"] == "pending"


def test_a_person_is_referred_only_once(app, make_participant):
    alice = make_participant("Alice Zimmer")
    carol = make_participant("Carol Young")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    with app.app_context():
        from referral.services import AlreadyReferred, attribute_signup, find_active_code

        user = db.session.get(User, bob["id"])
        with pytest.raises(AlreadyReferred):
            attribute_signup(user, find_active_code(carol["code"]), "code", utcnow())
        db.session.rollback()
        assert db.session.scalar(select(Referral.referrer_id)) == alice["id"]
        assert db.session.get(User, carol["id"]).referral_count == 0


def test_codes_are_unique_case_insensitive_and_use_the_safe_alphabet(app, make_participant):
    codes = {make_participant(f"Person Number{i}")["code"] for i in range(30)}
    assert len(codes) == 30
    assert all(
        6 <= len(code) <= 8 and set(code) <= set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
        for code in codes
    )


def test_a_code_collision_draws_again(app, make_participant, monkeypatch):
    alice = make_participant("Alice Zimmer")
    draws = iter([alice["code"], alice["code"], "QQQQQQ"])
    monkeypatch.setattr("referral.services.generate_code", lambda length: next(draws))
    bob = make_participant("Bob Baker")
    assert bob["code"] == "QQQQQQ"
    with app.app_context():
        assert factories.code_of(alice["id"]) == alice["code"]
