"""The storefront snippet and the embeddable widget (docs/guarantees.md #42): scripts a shop
loads from InviteLoop, clicks recorded from an allowed shop only, and a widget page that only
allowed shops may frame, with a session and CSRF tokens of its own. The whole journey in a
browser, from another origin: tests/browser/test_embed_journey.py."""

import re
from pathlib import Path

import pytest
from flask import Flask
from graphql import parse, validate
from sqlalchemy import select

from config import ConfigError, embed_origins
from core.embedding import FRAME_SESSION_COOKIE, FrameAwareSessionInterface, frame_policy
from extensions import db
from models import Click, Referral
from referral.services import participant_stats
from tests import databases, factories
from tests.helpers import count, is_logged_in, logged_in, smallest_limit, text_of
from tests.saleor_standin import saleor_schema

SHOP = "https://shop.example.com"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config_overrides():
    return {"EMBED_ALLOWED_ORIGINS": f"{SHOP}/, http://127.0.0.1:8123"}


@pytest.fixture
def owner(make_participant):
    return make_participant("Ann Lee")


def _click(client, body, origin=SHOP, headers=None, **kwargs):
    sent = ({"Origin": origin} if origin else {}) | (headers or {})
    return client.post("/embed/v1/clicks", json=body, headers=sent, **kwargs)


def _clicks(app) -> list[Click]:
    with app.app_context():
        rows = db.session.scalars(select(Click).order_by(Click.id)).all()
        db.session.expunge_all()
        return rows


# --- the scripts ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ref.js", "widget.js"])
def test_the_scripts_are_served_under_their_version_and_cached_for_a_year(client, name):
    response = client.get(f"/embed/v1/{name}")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "/embed/v1/" in text_of(response)


def test_the_snippet_talks_to_inviteloop_only():
    """No third-party request: the only URL the snippet fetches is its own origin's."""
    source = (ROOT / "static" / "embed" / "ref.js").read_text()
    assert re.findall(r"https?://", source) == []
    assert source.count("fetch(") == 1 and 'fetch(base + "/embed/v1/clicks"' in source


# --- recording clicks -------------------------------------------------------------------


def test_a_click_from_an_allowed_shop_counts_like_a_link_click(app, client, owner):
    response = _click(
        client,
        {
            "code": owner["code"].lower(),
            "visitor": "ab" * 16,
            "referrer": "https://social.example/post/1",
            "utm": {"source": "newsletter", "campaign": "spring"},
        },
        headers={"User-Agent": "ShopBrowser/1.0"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert response.json == {
        "code": owner["code"],
        "attribution_window_days": 30,
        "attribution_model": "last",
    }
    [click] = _clicks(app)
    assert click.visitor_id == "ab" * 16
    assert click.ip_prefix == "203.0.113.0/24"
    assert click.user_agent == "ShopBrowser/1.0"
    assert click.referrer == "https://social.example/post/1"
    assert (click.utm_source, click.utm_campaign, click.utm_medium) == (
        "newsletter",
        "spring",
        None,
    )
    # The participant sees it among their clicks, like a click on /r/<code>.
    client.post("/embed/v1/clicks", json={"code": owner["code"]}, headers={"Origin": SHOP})
    with app.app_context():
        assert participant_stats(factories.user_by_email(owner["email"])).clicks == 2


def test_a_click_without_a_visitor_id_gets_a_fresh_one(app, client, owner):
    assert _click(client, {"code": owner["code"]}).status_code == 201
    assert _click(client, {"code": owner["code"]}).status_code == 201
    first, second = _clicks(app)
    assert re.fullmatch(r"[0-9a-f]{32}", first.visitor_id)
    assert first.visitor_id != second.visitor_id


def test_the_browser_may_ask_first_from_an_allowed_shop(client):
    response = client.options("/embed/v1/clicks", headers={"Origin": "http://127.0.0.1:8123"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8123"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"


@pytest.mark.parametrize("origin", ["https://evil.example", "http://shop.example.com", None])
def test_a_click_from_any_other_site_is_refused_and_not_counted(app, client, owner, origin):
    asked = client.options("/embed/v1/clicks", headers={"Origin": origin} if origin else {})
    assert asked.status_code == 403
    assert "Access-Control-Allow-Origin" not in asked.headers
    response = _click(client, {"code": owner["code"]}, origin=origin)
    assert response.status_code == 403
    assert response.json == {
        "error": {
            "code": "origin_not_allowed",
            "message": "This site may not record referral clicks.",
        }
    }
    assert "Access-Control-Allow-Origin" not in response.headers
    assert count(app, Click) == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("not json", 400, "Send a JSON object with the referral code."),
        (["ANN"], 400, "Send a JSON object with the referral code."),
        ({}, 400, "Send the referral code."),
        ({"code": 12}, 400, "Code must be text of at most 64 characters."),
        ({"code": "X" * 65}, 400, "Code must be text of at most 64 characters."),
        ({"code": "{code}", "visitor": "nope"}, 400, "Visitor must be 32 hexadecimal digits."),
        ({"code": "{code}", "utm": "spring"}, 400, "Utm must be an object."),
        (
            {"code": "{code}", "utm": {"source": 5}},
            400,
            "Source must be text of at most 200 characters.",
        ),
        ({"code": "NOSUCHCODE"}, 404, "This referral code is not in use."),
    ],
)
def test_a_bad_click_is_refused_with_a_message_and_not_counted(
    app, client, owner, body, status, message
):
    if isinstance(body, dict) and body.get("code") == "{code}":
        body = body | {"code": owner["code"]}
    if body == "not json":
        response = client.post(
            "/embed/v1/clicks", data=body, content_type="text/plain", headers={"Origin": SHOP}
        )
    else:
        response = _click(client, body)
    assert response.status_code == status
    code = "unknown_code" if status == 404 else "invalid_body"
    assert response.json == {"error": {"code": code, "message": message}}
    assert response.headers["Access-Control-Allow-Origin"] == SHOP  # the shop can read why
    assert count(app, Click) == 0


def test_clicks_from_one_address_are_rate_limited_like_links(app, client, owner):
    allowed = smallest_limit(app.config["REFERRAL_LINK_LIMITS"])
    for _ in range(allowed):
        assert _click(client, {"code": owner["code"]}).status_code == 201
    assert _click(client, {"code": owner["code"]}).status_code == 429
    assert count(app, Click) == allowed


# --- the widget's frame ----------------------------------------------------------------


def test_only_the_allowed_shops_may_frame_the_widget(client):
    response = client.get("/embed/v1/widget")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert policy.endswith(f"frame-ancestors {SHOP} http://127.0.0.1:8123")
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/", "/auth/login", "/auth/signup", "/referral/leaderboard"])
def test_every_other_page_still_refuses_any_frame(client, path):
    response = client.get(path)
    assert response.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert response.headers["X-Frame-Options"] == "DENY"


def test_without_allowed_shops_nobody_may_frame_the_widget():
    assert embed_origins(None) == () and embed_origins(" , ") == ()
    assert frame_policy(()) == "frame-ancestors 'none'"


@pytest.mark.parametrize(
    "bad", ["shop.example.com", "ftp://shop.example.com", "https://", "https://shop.example.com/a"]
)
def test_an_allowed_origin_that_is_not_an_origin_stops_the_start(bad):
    with pytest.raises(ConfigError, match="EMBED_ALLOWED_ORIGINS"):
        embed_origins(bad)


def test_an_allowed_origin_is_read_as_a_browser_sends_it():
    assert embed_origins("HTTPS://Shop.Example.com:8443/ ,http://a.test") == (
        "https://shop.example.com:8443",
        "http://a.test",
    )


def test_the_frame_session_cookie_is_samesite_none_and_secure_on_https():
    """Cross-site frames get a cookie only when it is SameSite=None; Secure."""
    site = Flask(__name__)
    site.config.update(SECRET_KEY="x", SESSION_COOKIE_SECURE=True)
    interface = FrameAwareSessionInterface()
    with site.test_request_context("/embed/v1/widget"):
        assert interface.get_cookie_name(site) == FRAME_SESSION_COOKIE
        assert interface.get_cookie_path(site) == "/embed/"
        assert interface.get_cookie_samesite(site) == "None"
    with site.test_request_context("/auth/login"):
        assert interface.get_cookie_name(site) == "session"
        assert interface.get_cookie_path(site) == "/"
        assert interface.get_cookie_samesite(site) is None  # Flask's own; the app sets Lax


# --- the widget's pages ----------------------------------------------------------------

_TOKEN = re.compile(r'name="(login|signup)-csrf_token"[^>]*value="([^"]+)"')


def _tokens(client, query="") -> dict[str, str]:
    page = text_of(client.get(f"/embed/v1/widget{query}"))
    return dict(_TOKEN.findall(page))


def _widget_login(client, email, password=factories.PASSWORD):
    token = _tokens(client)["login"]
    return client.post(
        "/embed/v1/widget/login",
        data={"login-csrf_token": token, "login-email": email, "login-password": password},
    )


def test_a_visitor_sees_the_offer_and_a_signup_form_with_the_friends_code(client, owner):
    page = text_of(client.get(f"/embed/v1/widget?ref={owner['code']}"))
    assert "Give $5, get $10" in page
    assert f'name="signup-referral_code" type="text" value="{owner["code"]}"' in page
    assert 'action="/embed/v1/widget/login"' in page


def test_a_participant_signs_in_inside_the_frame_and_sees_their_link_and_numbers(client, owner):
    _click(client, {"code": owner["code"]})
    response = _widget_login(client, owner["email"])
    assert response.status_code == 302
    assert response.headers["Location"] == "/embed/v1/widget"
    frame_cookie = client.get_cookie(FRAME_SESSION_COOKIE, path="/embed/")
    assert frame_cookie is not None and frame_cookie.path == "/embed/"
    page = text_of(client.get("/embed/v1/widget"))
    assert f"/r/{owner['code']}" in page
    assert re.search(r'id="widget-clicks">1<', page)
    assert "https://wa.me/?" in page and 'target="_blank" rel="noopener"' in page
    # A sign-in in the frame is the frame's alone: the site itself is not signed in.
    assert not is_logged_in(client)


def test_signing_out_in_the_frame_shows_the_forms_again(client, owner):
    _widget_login(client, owner["email"])
    page = text_of(client.get("/embed/v1/widget"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/embed/v1/widget/logout", data={"csrf_token": token}).status_code == 302
    assert 'action="/embed/v1/widget/login"' in text_of(client.get("/embed/v1/widget"))


def test_a_sign_in_without_the_frames_csrf_token_is_refused(client, owner):
    response = client.post(
        "/embed/v1/widget/login",
        data={"login-email": owner["email"], "login-password": factories.PASSWORD},
    )
    assert response.status_code == 400
    assert client.get_cookie(FRAME_SESSION_COOKIE, path="/embed/") is None


def test_a_wrong_password_in_the_frame_says_so_and_signs_nobody_in(client, owner):
    response = _widget_login(client, owner["email"], "not the password at all")
    assert response.status_code == 401
    assert "Invalid email or password." in text_of(response)
    assert 'action="/embed/v1/widget/login"' in text_of(client.get("/embed/v1/widget"))


def test_a_visitor_joins_inside_the_frame_as_the_friend_of_the_code(app, client, owner):
    token = _tokens(client, f"?ref={owner['code']}")["signup"]
    response = client.post(
        "/embed/v1/widget/signup",
        data={
            "signup-csrf_token": token,
            "signup-name": "Bea Frame",
            "signup-email": "bea.frame@example.com",
            "signup-password": "correct horse battery staple",
            "signup-referral_code": owner["code"],
        },
    )
    assert response.status_code == 302
    page = text_of(client.get("/embed/v1/widget"))
    assert 'id="widget-link"' in page
    with app.app_context():
        friend = factories.user_by_email("bea.frame@example.com")
        referral = db.session.scalar(select(Referral).where(Referral.referred_id == friend.id))
        assert referral.referrer_id == owner["id"]


def test_a_bad_signup_in_the_frame_shows_every_mistake_and_creates_nobody(app, client):
    token = _tokens(client)["signup"]
    response = client.post(
        "/embed/v1/widget/signup",
        data={"signup-csrf_token": token, "signup-name": "", "signup-email": "nope"},
    )
    assert response.status_code == 400
    assert response.headers["Content-Security-Policy"].endswith("http://127.0.0.1:8123")
    with app.app_context():
        assert factories.user_by_email("nope") is None


# --- the README's checkout call ---------------------------------------------------------


def test_the_readme_checkout_call_is_valid_against_saleors_schema():
    readme = (ROOT / "README.md").read_text()
    [operation] = [
        block
        for block in re.findall(r"```graphql\n(.*?)```", readme, re.DOTALL)
        if "updateMetadata" in block
    ]
    try:
        schema = saleor_schema()
    except OSError as error:
        databases.service_missing("Saleor's schema (../shared/saleor/schema.graphql)", error)
    assert validate(schema, parse(operation)) == []
    assert '"ref_code"' in operation or "ref_code" in operation


def test_a_sign_in_on_the_site_is_not_read_inside_the_frame(app, owner):
    """The frame reads its own session cookie, not the site's: being signed in on the site
    (without "keep me signed in") does not sign the frame in."""
    client = logged_in(app, owner)
    assert is_logged_in(client)
    assert 'action="/embed/v1/widget/login"' in text_of(client.get("/embed/v1/widget"))
