"""Production mode's shared state: with REDIS_URL, every process sees the same leaderboard
cache generation and the same rate-limit counters."""

import secrets

import pytest

from app import create_app
from extensions import limiter
from tests import databases, factories
from tests.apps import app_config, close
from tests.helpers import csrf_token


@pytest.fixture
def redis_prefix():
    with databases.redis_client() as client:
        prefix = f"inviteloop-test-{secrets.token_hex(4)}"
        yield prefix
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)


@pytest.fixture
def two_processes(app, database_url, redis_prefix):
    """Two app instances sharing one database and one Redis, as two gunicorn workers do."""
    overrides = {
        "REDIS_URL": databases.REDIS_URL,
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": databases.REDIS_URL,
        "CACHE_KEY_PREFIX": f"{redis_prefix}:",
        "RATELIMIT_STORAGE_URI": databases.REDIS_URL,
        "RATELIMIT_KEY_PREFIX": redis_prefix,
        "LOGIN_LIMITS": "3/minute",
    }
    apps = [create_app(app_config(database_url, **overrides)) for _ in range(2)]
    yield apps
    for each in apps:
        with each.app_context():
            limiter.reset()
        close(each)


def test_a_referral_landing_in_one_process_refreshes_the_board_in_another(two_processes):
    first, second = two_processes
    with first.app_context():
        alice = factories.participant("Alice Zimmer")
    assert first.test_client().get("/api/v1/leaderboard").json["rows"] == []  # cached in Redis
    with second.app_context():
        factories.participant("Bob Baker", invited_by=alice["code"])
    rows = first.test_client().get("/api/v1/leaderboard").json["rows"]
    assert rows == [{"rank": 1, "display_name": "Alice Z.", "referrals": 1}]


def test_rate_limits_are_counted_across_processes(two_processes):
    clients = [each.test_client() for each in two_processes]
    statuses = []
    for attempt in range(4):
        client = clients[attempt % 2]
        token = csrf_token(client, "/auth/login")
        response = client.post(
            "/auth/login",
            data={"csrf_token": token, "email": "x@example.com", "password": "wrong password"},
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429]
