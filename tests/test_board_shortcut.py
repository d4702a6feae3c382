"""The cached board answered before Flask's request cycle (referral/board_shortcut.py): it
answers exactly as the app would, from the cache the app's views fill, never an answer the
cache no longer holds, hands every other request to the app, and every hook the app runs on a
request is one it accounts for. With Redis its answers are the near copies: tests/
test_near_copies.py shows those follow a change made by another process at once."""

import secrets

import pytest

from core.i18n import LOCALE_COOKIE
from referral import board_shortcut
from tests import databases, factories
from tests.helpers import logged_in
from tests.shortcuts import (
    HandedOver,
    blueprint_hooks,
    headers_but_per_request,
    request_hooks,
    the_app_alone,
)

API, PAGE = board_shortcut.API_PATH, board_shortcut.PAGE_PATH

# Every hook the app runs on a request, and what the shortcut does for it. A hook added to
# the app fails test_every_request_hook_of_the_app_is_accounted_for until it is listed here
# (and, if a cached board needs it, done by the shortcut too).
ACCOUNTED_HOOKS = {
    "before": {
        "_take_request_id": "request_id, request_id_bound",
        "refuse_unknown_hosts": "is_allowed_host; any other host: the app's 400",
        "_start_clock": "count_request(..., started)",
        "_declare_request_mode": "a cached answer reads nothing from the database",
        "csrf_protect": "GET: nothing to check",
        "_check_request_limit": "the boards have no limits (_limits_settled_by_the_view)",
        "ensure_started": "the outbox sender's ensure_started",
        "refuse_nul": "a NUL in the query: the app's 400 (the path is one of two)",
    },
    "after": {
        "_update_remember_cookie": "no remember-me cookie: nothing to update",
        "__inject_headers": "no limits: no rate-limit headers",
        "vary_by_language": "the headers of every answer of its type",
        "_count_request": "count_request",
        "add_headers": "the headers of every answer of its type",
        "_send_request_id": "the X-Request-ID header",
    },
    "teardown": {
        "_forget_request_mode": "nothing declared",
        "__release_context": "the limiter's context is not used",
        "_forget_request_id": "request_id_bound resets it",
    },
}


@pytest.fixture(scope="module")
def redis_url():
    with databases.redis_database_of_its_own() as url:
        yield url


@pytest.fixture(params=["in-process cache", "redis"])
def config_overrides(request):
    if request.param == "in-process cache":
        return {}
    return {
        "REDIS_URL": request.getfixturevalue("redis_url"),
        "CACHE_TYPE": "core.caching.FailSoftRedisCache",
        # Its own announcement channel: Redis's pub/sub spans its databases.
        "CACHE_KEY_PREFIX": f"inviteloop-board-shortcut-test-{secrets.token_hex(4)}:",
    }


@pytest.fixture
def handed_over(app):
    spy = HandedOver(app, board_shortcut.BoardShortcut)
    yield spy
    spy.restore()


@pytest.fixture
def board(app):
    """Alice with one friend counted: the board has one row."""
    with app.app_context():
        alice = factories.participant("Alice Zimmer")
        factories.participant("Aa Friend", invited_by=alice["code"])
    return alice


@pytest.mark.parametrize(
    "path, query, headers, cookie",
    [
        (API, "", {}, None),
        (API, "period=week&page=1", {"Origin": "https://shop.example"}, None),
        (PAGE, "", {}, None),
        (PAGE, "period=month", {"Accept-Language": "ru-RU,ru;q=0.9"}, None),
        (PAGE, "", {"Accept-Language": "en"}, "ru"),
    ],
)
def test_the_shortcut_answers_a_cached_board_as_the_app_would(
    app, board, handed_over, path, query, headers, cookie
):
    by_the_app_alone = the_app_alone(app, handed_over)
    visitor = app.test_client()
    if cookie:
        for client in (by_the_app_alone, visitor):
            client.set_cookie(LOCALE_COOKIE, cookie)

    by_the_app = by_the_app_alone.get(path, query_string=query, headers=headers)
    by_the_shortcut = visitor.get(path, query_string=query, headers=headers)

    assert handed_over.count == 0  # the app's view cached it; the shortcut answered
    for answer in (by_the_app, by_the_shortcut):
        assert answer.status_code == 200
        assert "Alice Z." in answer.get_data(as_text=True)
    assert headers_but_per_request(by_the_shortcut) == headers_but_per_request(by_the_app)
    assert by_the_shortcut.get_data() == by_the_app.get_data()
    if path == PAGE:
        russian = "ru" in (cookie, headers.get("Accept-Language", "")[:2])
        assert ('<html lang="ru">' in by_the_shortcut.get_data(as_text=True)) == russian

    # A browser holding these bytes is told so, by both alike.
    held = {**headers, "If-None-Match": by_the_app.headers["ETag"]}
    not_modified = [
        client.get(path, query_string=query, headers=held) for client in (by_the_app_alone, visitor)
    ]
    assert [answer.status_code for answer in not_modified] == [304, 304]
    assert headers_but_per_request(not_modified[1]) == headers_but_per_request(not_modified[0])
    assert handed_over.count == 0


def test_a_board_not_cached_is_rendered_by_the_app_and_a_new_referral_shows_at_once(
    app, board, handed_over
):
    visitor = app.test_client()
    first = visitor.get(API)
    assert handed_over.count == 1  # nothing cached yet: the app's view rendered it
    assert visitor.get(API).get_data() == first.get_data()
    assert handed_over.count == 1  # cached: answered before the app

    with app.app_context():
        bob = factories.participant("Bob Young")
        for friend in ("Ba Friend", "Bb Friend"):  # each a new board generation
            factories.participant(friend, invited_by=bob["code"])

    after = visitor.get(API)
    assert handed_over.count == 2  # the cached answer is gone with its generation
    assert [row["display_name"] for row in after.json["rows"]] == ["Bob Y.", "Alice Z."]


@pytest.mark.parametrize(
    "path, environ, cookie, expected",
    [
        (API, {"REQUEST_METHOD": "HEAD"}, None, 200),
        (API, {"QUERY_STRING": "page=1000001"}, None, 400),  # past the last page anyone may ask
        (API, {"QUERY_STRING": "period=%00"}, None, 400),
        (PAGE, {"HTTP_HOST": "evil.example"}, None, 400),
        (PAGE, {"SCRIPT_NAME": "/refer"}, None, 200),
        (PAGE, {}, "remember_token", 200),  # a remembered participant may be signed in
        (API, {}, "session", 200),
    ],
)
def test_any_other_request_is_the_apps_to_answer(
    app, board, handed_over, path, environ, cookie, expected
):
    client = app.test_client()
    client.get(path)  # cached: the shortcut would answer the same request without `environ`
    handed_over.count = 0
    if cookie:
        client.set_cookie(cookie, "stale")

    answer = client.open(path, environ_overrides={"REQUEST_METHOD": "GET", **environ})

    assert handed_over.count == 1
    assert answer.status_code == expected


def test_a_signed_in_participant_gets_their_own_page_from_the_app(app, board, handed_over):
    app.test_client().get(PAGE)  # the public page, cached
    alice = logged_in(app, board)
    handed_over.count = 0

    answer = alice.get(PAGE)

    assert handed_over.count == 1
    assert answer.headers["Cache-Control"].startswith("private")
    assert "You are <strong>#1</strong>" in answer.get_data(as_text=True)  # her own place


def test_every_request_hook_of_the_app_is_accounted_for(app):
    for kind, hooks in request_hooks(app).items():
        assert set(hooks) <= set(ACCOUNTED_HOOKS[kind]), kind
    # Nor do the blueprints the boards' views belong to add any of their own.
    assert not blueprint_hooks(app, "referral")
    assert not blueprint_hooks(app, "referral.api")
