"""GET /r/<code> with Redis: the link's rate limits are counted in the script that queues the
click (referral/link_limits.py), into the very windows Flask-Limiter keeps, and a visitor over
a limit still gets Flask-Limiter's 429 with its headers."""

import secrets
import threading
from unittest import mock

import pytest
from redis.connection import AbstractConnection

from referral import clicks
from tests import databases
from tests.helpers import statements_during

NAMESPACE = f"inviteloop-link-limits-test-{secrets.token_hex(4)}"
LIMIT = 3
WITH_REDIS = {
    "REDIS_URL": databases.REDIS_URL,
    "RATELIMIT_STORAGE_URI": databases.REDIS_URL,  # the limiter's counters in Redis too
    # Under a prefix of their own: another test's limiter.reset() (a test worker beside this
    # one) empties every window under the default one, and a window emptied mid-test lets
    # its next visit through.
    "RATELIMIT_STORAGE_OPTIONS": {"key_prefix": NAMESPACE},
    "REFERRAL_LINK_LIMITS": f"{LIMIT}/minute;1000/hour",
    "CELERY_DEFAULT_QUEUE": NAMESPACE,
    "CELERY_ALWAYS_EAGER": True,
}


@pytest.fixture
def config_overrides():
    return WITH_REDIS


def _new_address() -> str:
    """A visitor's address no other test or run shares: the limiter's windows outlive a test."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


@pytest.fixture
def address():
    return _new_address()


@pytest.fixture
def other_address():
    return _new_address()


@pytest.fixture(autouse=True)
def clean_redis(app, address, other_address):
    visitors = [f"*/{visitor}/*" for visitor in (address, other_address)]
    with databases.redis_keys_forgotten(f"{NAMESPACE}:*", *visitors):
        yield


def _queue(app) -> clicks.ClickQueue:
    return app.extensions["click_queue"]


def _visitor(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


CONNECTION_GREETING = {"HELLO", "AUTH", "CLIENT", "SELECT"}


def _redis_commands_during(request) -> tuple[list[str], object]:
    """The commands this thread sent to Redis while `request()` ran, but a new connection's
    greeting (the click's script goes on a connection of its own, the limiter's commands
    through its client: both send here)."""
    sent: list[str] = []
    original = AbstractConnection.send_command
    this_thread = threading.get_ident()

    def counted(connection, *args, **kwargs):
        if threading.get_ident() == this_thread and args[0] not in CONNECTION_GREETING:
            sent.append(args[0])
        return original(connection, *args, **kwargs)

    with mock.patch.object(AbstractConnection, "send_command", counted):
        answer = request()
    return sent, answer


def test_a_click_and_its_limits_cost_one_round_trip_and_a_limit_still_answers_429(
    app, make_participant, address, other_address
):
    alice = make_participant()
    visitor = _visitor(app, address)
    sent, answer = _redis_commands_during(lambda: visitor.get(f"/r/{alice['code']}"))
    assert answer.status_code == 302
    # Not cached yet: the limits counted with the generation read, the link read, the click.
    assert sent == ["EVALSHA", "EVALSHA"]

    sent, answer = _redis_commands_during(lambda: visitor.get(f"/r/{alice['code']}"))
    assert answer.status_code == 302
    assert sent == ["EVALSHA"]  # limits counted and click queued together
    assert "X-RateLimit-Limit" not in answer.headers

    assert visitor.get(f"/r/{alice['code']}").status_code == 302
    refused = visitor.get(f"/r/{alice['code']}")
    assert refused.status_code == 429
    assert "a minute" in refused.get_data(as_text=True)
    assert refused.headers["X-RateLimit-Limit"] == str(LIMIT)
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert _queue(app).waiting() == LIMIT  # the refused visit stored nothing

    # Someone else is not held back by this visitor's window.
    assert _visitor(app, other_address).get(f"/r/{alice['code']}").status_code == 302


def test_the_link_and_flask_limiter_count_into_one_window(
    app, make_participant, address, monkeypatch
):
    alice = make_participant()
    visitor = _visitor(app, address)
    for _ in range(LIMIT - 1):
        assert visitor.get(f"/r/{alice['code']}").status_code == 302
    assert _queue(app).waiting() == LIMIT - 1

    # Clicks off Redis for a while (as after an error): Flask-Limiter counts, in the same window.
    monkeypatch.setattr(_queue(app), "available", lambda: False)
    assert visitor.get(f"/r/{alice['code']}").status_code == 302
    assert visitor.get(f"/r/{alice['code']}").status_code == 429


def test_a_visitor_over_the_limit_costs_the_database_nothing(app, make_participant, address):
    alice = make_participant()
    visitor = _visitor(app, address)
    # Malformed and unknown codes count like any other visit: guessing codes is limited too.
    assert visitor.get("/r/%20%20").status_code == 302
    assert visitor.get("/r/NOBODY-HAS-THIS").status_code == 302
    assert visitor.get(f"/r/{alice['code']}").status_code == 302

    answers = []  # refused before the code is looked up
    sent = statements_during(app, lambda: answers.append(visitor.get("/r/ANOTHER-GUESS")))
    assert answers[0].status_code == 429
    assert not [statement for statement in sent if "referral_codes" in statement]
    assert visitor.get(f"/r/{alice['code']}").status_code == 429
    assert _queue(app).waiting() == 1
