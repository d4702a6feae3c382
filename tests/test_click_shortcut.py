"""The plain click answered before Flask's request cycle (referral/click_shortcut.py): it
answers exactly as the app would, hands every other request to the app, and every hook the
app runs on a request is one it accounts for."""

import secrets

import pytest
from sqlalchemy import select
from werkzeug.http import dump_cookie
from werkzeug.test import EnvironBuilder
from werkzeug.utils import redirect

from extensions import db
from models import Click, Program, ReferralCode
from referral import attribution, click_shortcut, clicks
from rewards import programs
from tests import databases
from tests.helpers import logged_in
from tests.shortcuts import (
    HandedOver,
    blueprint_hooks,
    cookies_set,
    headers_but_per_request,
    request_hooks,
    the_app_alone,
)

NAMESPACE = f"inviteloop-shortcut-test-{secrets.token_hex(4)}"
WITH_REDIS = {
    "REDIS_URL": databases.REDIS_URL,
    "RATELIMIT_STORAGE_URI": databases.REDIS_URL,  # so the click's script counts the limits
    "RATELIMIT_STORAGE_OPTIONS": {"key_prefix": NAMESPACE},
    "REFERRAL_LINK_LIMITS": "1000/minute",
    "CELERY_DEFAULT_QUEUE": NAMESPACE,
    "CELERY_ALWAYS_EAGER": True,
}

# Every hook the app runs on a request, and what the shortcut does for it. A hook added to
# the app fails test_every_request_hook_of_the_app_is_accounted_for until it is listed here
# (and, if a plain click needs it, done by the shortcut too).
ACCOUNTED_HOOKS = {
    "before": {
        "_take_request_id": "request_id_for, request_id_bound",
        "refuse_unknown_hosts": "is_allowed_host; any other host: the app's 400",
        "_start_clock": "count_request(..., started)",
        "_declare_request_mode": "a click writes: nothing to declare",
        "csrf_protect": "GET: nothing to check",
        "_check_request_limit": "the click's script counts the limits (the request filter)",
        "ensure_started": "the outbox sender's ensure_started",
        "refuse_nul": "a NUL in the path or query: the app's 400",
    },
    "after": {
        "_update_remember_cookie": "no remember-me cookie: nothing to update",
        "__inject_headers": "the view leaves the rate-limit headers off a click",
        "vary_by_language": "vary_by_language",
        "_count_request": "count_request",
        "add_headers": "add_security_headers",
        "_send_request_id": "the X-Request-ID header",
    },
    "teardown": {
        "_forget_request_mode": "nothing declared",
        "__release_context": "the limiter's context is not used",
        "_forget_request_id": "request_id_bound resets it",
    },
}


@pytest.fixture
def config_overrides():
    return WITH_REDIS


@pytest.fixture(autouse=True)
def clean_redis(app):
    # The stream, the generation, the links' entries and the limiter's windows.
    with databases.redis_keys_forgotten(f"{NAMESPACE}:*"):
        yield


@pytest.fixture
def handed_over(app):
    spy = HandedOver(app, click_shortcut.ClickShortcut)
    yield spy
    spy.restore()


def _stored_clicks(app) -> list[Click]:
    with app.app_context():
        clicks.move_queued(app.extensions["click_queue"], claim_seconds=30)
        return list(db.session.scalars(select(Click).order_by(Click.id)))


def _visited(clicked: Click) -> tuple:
    return (
        clicked.code_id,
        clicked.ip_prefix,
        clicked.user_agent,
        clicked.referrer,
        clicked.utm_source,
        clicked.utm_campaign,
    )


@pytest.mark.parametrize(
    "query, headers",
    [
        ("", {}),
        (
            "utm_source=mail&utm_campaign=spring",
            {"Referer": "https://news.example/post", "User-Agent": "Phone/1.0"},
        ),
        ("", {"X-Request-ID": "shop-42", "Accept-Language": "ru"}),
    ],
)
def test_the_shortcut_answers_a_plain_click_as_the_app_would(
    app, make_participant, handed_over, query, headers
):
    alice = make_participant()
    path = f"/r/{alice['code'].lower()}"
    headers = {"User-Agent": "Browser/1.0", **headers}  # the same for both clients

    by_the_app = the_app_alone(app, handed_over).get(path, query_string=query, headers=headers)
    by_the_shortcut = app.test_client().get(path, query_string=query, headers=headers)

    assert handed_over.count == 0  # the shortcut answered the second one itself
    for answer in (by_the_app, by_the_shortcut):
        assert answer.status_code == 302
        assert answer.headers["Location"] == f"/auth/signup?ref={alice['code']}"
    assert headers_but_per_request(by_the_shortcut) == headers_but_per_request(by_the_app)
    assert by_the_shortcut.get_data() == by_the_app.get_data()
    assert cookies_set(by_the_shortcut) == cookies_set(by_the_app)
    assert set(cookies_set(by_the_app)) == {
        attribution.ATTRIBUTION_COOKIE,
        attribution.VISITOR_COOKIE,
    }
    with app.test_request_context():
        for answer in (by_the_app, by_the_shortcut):
            value = answer.headers["Set-Cookie"].partition("il_ref=")[2].partition(";")[0]
            assert attribution._serializer().loads(value) == {"code": alice["code"]}
    if "X-Request-ID" in headers:
        assert by_the_shortcut.headers["X-Request-ID"] == headers["X-Request-ID"]
    else:
        assert len(by_the_shortcut.headers["X-Request-ID"]) == 32

    stored = _stored_clicks(app)
    assert len(stored) == 2
    assert _visited(stored[0]) == _visited(stored[1])
    assert stored[1].utm_source == ("mail" if query else None)


def test_a_returning_visitor_keeps_their_id_and_gets_no_new_one(app, make_participant):
    alice = make_participant()
    visitor = app.test_client()
    visitor.set_cookie(attribution.VISITOR_COOKIE, "a" * 32)

    answer = visitor.get(f"/r/{alice['code']}")

    assert set(cookies_set(answer)) == {attribution.ATTRIBUTION_COOKIE}
    assert [click.visitor_id for click in _stored_clicks(app)] == ["a" * 32]


def test_a_disabled_code_leads_to_the_landing_page_and_stores_nothing(
    app, make_participant, handed_over
):
    alice = make_participant()
    with app.app_context():
        db.session.get(ReferralCode, db.session.scalar(select(ReferralCode.id))).status = "disabled"
        db.session.commit()

    by_the_app = the_app_alone(app, handed_over).get(f"/r/{alice['code']}")
    by_the_shortcut = app.test_client().get(f"/r/{alice['code']}")

    assert handed_over.count == 0
    for answer in (by_the_app, by_the_shortcut):
        assert answer.status_code == 302 and answer.headers["Location"] == "/"
        assert "Set-Cookie" not in answer.headers  # no visit: no cookie
    assert headers_but_per_request(by_the_shortcut) == headers_but_per_request(by_the_app)
    assert _stored_clicks(app) == []


def test_a_programs_landing_page_is_where_the_shortcut_sends_a_click_too(
    app, make_participant, handed_over
):
    alice = make_participant()
    with app.app_context():
        program = db.session.scalar(select(Program).where(Program.is_default))
        programs.update_program(program, {"landing_url": "https://shop.example/?from=us"})
        db.session.commit()

    by_the_app = the_app_alone(app, handed_over).get(f"/r/{alice['code']}")
    by_the_shortcut = app.test_client().get(f"/r/{alice['code']}")

    assert handed_over.count == 0
    assert (
        by_the_shortcut.headers["Location"] == f"https://shop.example/?from=us&ref={alice['code']}"
    )
    assert headers_but_per_request(by_the_shortcut) == headers_but_per_request(by_the_app)
    assert by_the_shortcut.get_data() == by_the_app.get_data()


@pytest.mark.parametrize("code", ["AB3K9Z", "ZZZZZZZZ", "SPRING-2026", "STANDIN4CODE"])
def test_the_signup_redirect_filled_in_is_werkzeugs_own(app, code):
    environ = EnvironBuilder(f"/r/{code}").get_environ()
    to_signup = click_shortcut._SignupRedirect("/auth/signup", app.response_class, environ)

    filled = to_signup.filled(code)
    werkzeugs = redirect(f"/auth/signup?ref={code}", 302, app.response_class)

    assert filled.status == werkzeugs.status
    assert filled.body == werkzeugs.get_data()
    assert sorted(filled.headers) == sorted(werkzeugs.get_wsgi_headers(environ).to_wsgi_list())
    assert to_signup.filled("<b>&amp;") is None  # escaped by Werkzeug: made anew


@pytest.mark.parametrize(
    "path, environ, expected",
    [
        ("/r/{code}", {"REQUEST_METHOD": "HEAD"}, 302),
        ("/r/{code}/extra", {}, 302),  # to the landing page: no such code
        ("/r/not-a-code!", {}, 302),
        ("/r/{code}", {"HTTP_HOST": "evil.example"}, 400),
        ("/r/{code}", {"QUERY_STRING": "utm_source=%00"}, 400),
        ("/r/{code}", {"SCRIPT_NAME": "/refer"}, 302),
    ],
)
def test_any_other_request_is_the_apps_to_answer(
    app, make_participant, handed_over, path, environ, expected
):
    alice = make_participant()
    answer = app.test_client().open(
        path.format(code=alice["code"]), environ_overrides={"REQUEST_METHOD": "GET", **environ}
    )
    assert handed_over.count == 1
    assert answer.status_code == expected


def test_a_visitor_with_an_earlier_attribution_is_the_apps(app, make_participant, handed_over):
    """First-touch attribution may keep the earlier code: only the app looks it up."""
    alice = make_participant()
    visitor = app.test_client()
    visitor.set_cookie(attribution.ATTRIBUTION_COOKIE, "earlier")

    assert visitor.get(f"/r/{alice['code']}").status_code == 302
    assert handed_over.count == 1
    assert len(_stored_clicks(app)) == 1


def test_a_signed_in_visitor_is_the_apps_and_their_own_link_is_no_visit(
    app, make_participant, handed_over
):
    alice = make_participant()
    bob = make_participant("Bob Baker")
    client = logged_in(app, alice)
    handed_over.count = 0

    own = client.get(f"/r/{alice['code']}")
    friends = client.get(f"/r/{bob['code']}")

    assert handed_over.count == 2
    assert own.headers["Location"] == "/" and friends.status_code == 302
    assert [click.code_id for click in _stored_clicks(app)] == [_code_id(app, bob["id"])]


def _code_id(app, user_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(ReferralCode.id).where(ReferralCode.user_id == user_id))


def test_with_the_limits_counted_in_another_redis_the_app_answers(
    app, make_participant, handed_over
):
    """Flask-Limiter keeping its windows in another Redis than the clicks': neither the
    click's script nor this process can count them."""
    alice = make_participant()
    elsewhere = databases.REDIS_URL.rsplit("/", 1)[0] + "/9"
    app.config["RATELIMIT_STORAGE_URI"], kept = elsewhere, app.config["RATELIMIT_STORAGE_URI"]
    try:
        assert app.test_client().get(f"/r/{alice['code']}").status_code == 302
    finally:
        app.config["RATELIMIT_STORAGE_URI"] = kept
    assert handed_over.count == 1
    assert len(_stored_clicks(app)) == 1


def test_every_request_hook_of_the_app_is_accounted_for(app):
    for kind, hooks in request_hooks(app).items():
        assert set(hooks) <= set(ACCOUNTED_HOOKS[kind]), kind
    # Nor do the blueprints the link's view belongs to add any of their own.
    assert not blueprint_hooks(app, "referral")


@pytest.mark.parametrize(
    "value", ["0123456789abcdef", "eyJjb2RlIjoiQUxJQ0UifQ.Z1s2.x-Y_z", 'a "quoted" one']
)
def test_a_cookie_is_written_as_werkzeug_writes_it(app, value):
    """The click's cookies are written with their attributes made once a second: each is
    still exactly what Werkzeug's dump_cookie gives (a value that needs quoting, quoted)."""
    with app.test_request_context():
        secure = app.config["SESSION_COOKIE_SECURE"]

        def werkzeugs():
            return dump_cookie(
                "il_x", value, max_age=3600, path="/", httponly=True, samesite="Lax", secure=secure
            )

        before = werkzeugs()
        written = attribution._cookie("il_x", value, 3600)
        after = werkzeugs()
    assert written in {before, after}  # the same second as one of them


@pytest.mark.parametrize(
    "code", ["AB3K9Z", "2222222", "ZZZZZZZZ", "2Z2Z2Z2Z", "SPRINGTIME-2026-" * 3]
)
def test_a_codes_signed_payload_is_the_serializers_own(code):
    """Written directly for a code of the stored form (the most repetitive ones included,
    which a longer text would have compressed), by the serializer for anything longer."""
    assert attribution._payload_of(code) == attribution._serializer_for("k").dump_payload(
        {"code": code}
    )
