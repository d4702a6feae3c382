"""Near copies of the board's public answers (docs/guarantees.md #50): with Redis, each
process keeps the JSON and the page it served, so a repeated visit costs no round trip, and
drops them the moment any process announces a new board or brand.

Two apps on one database and one Redis stand for two processes: each has its own near
copies and its own subscription to the announcements."""

import secrets
import time
from unittest import mock

import pytest
import redis

from admin.settings.services import save_branding
from core import caching
from extensions import cache, db
from tests import databases, factories
from tests.apps import other_app, start_afresh

pytestmark = [pytest.mark.postgres_only]


@pytest.fixture(scope="module")
def redis_url():
    with databases.redis_database_of_its_own() as url:
        yield url


@pytest.fixture
def two_processes(postgresql_url, redis_url):
    settings = {
        "REDIS_URL": redis_url,
        "CACHE_TYPE": "core.caching.FailSoftRedisCache",
        # Its own announcement channel: Redis's pub/sub spans its databases, and another test
        # worker's announcements would drop these copies.
        "CACHE_KEY_PREFIX": f"inviteloop-near-test-{secrets.token_hex(4)}:",
    }
    with (
        other_app(postgresql_url, **settings) as first,
        other_app(postgresql_url, **settings) as second,
    ):
        start_afresh(first)  # empty tables, and the shared cache cleared
        yield first, second


def redis_commands_during(app, request) -> list[str]:
    """The commands `app`'s cache sent to Redis while `request()` ran, and its answer."""
    with app.app_context():
        client = cache.cache._read_client
    with mock.patch.object(client, "execute_command", wraps=client.execute_command) as sent:
        answer = request()
    return [call.args[0] for call in sent.call_args_list], answer


def names_on(answer) -> list[str]:
    return [row["display_name"] for row in answer.json["rows"]]


def refer(app, inviter_code: str, name: str) -> None:
    with app.app_context():
        factories.participant(name, invited_by=inviter_code)


def alice_ahead_of_bob(app) -> dict:
    """Alice with one friend counted, Bob with none yet: their participants by first name."""
    with app.app_context():
        people = {
            "alice": factories.participant("Alice Zimmer"),
            "bob": factories.participant("Bob Young"),
        }
    refer(app, people["alice"]["code"], "Aa Friend")
    return people


def test_a_repeated_visit_costs_no_round_trip_and_a_change_elsewhere_shows_at_once(
    two_processes,
):
    first, second = two_processes
    bob = alice_ahead_of_bob(first)["bob"]
    visitor = first.test_client()

    sent, answer = redis_commands_during(first, lambda: visitor.get("/api/v1/leaderboard"))
    assert names_on(answer) == ["Alice Z."] and "MGET" in sent
    sent, again = redis_commands_during(first, lambda: visitor.get("/api/v1/leaderboard"))
    assert sent == [] and again.data == answer.data
    assert again.headers["ETag"] == answer.headers["ETag"]

    # Bob's two friends are counted by the other process: the next visit here sees them.
    refer(second, bob["code"], "Bb Friend")
    refer(second, bob["code"], "Bc Friend")
    sent, changed = redis_commands_during(first, lambda: visitor.get("/api/v1/leaderboard"))
    assert names_on(changed) == ["Bob Y.", "Alice Z."] and "MGET" in sent


def test_a_new_brand_saved_elsewhere_shows_on_the_next_page(two_processes):
    first, second = two_processes
    alice_ahead_of_bob(first)
    visitor = first.test_client()
    assert "Acme Rewards" not in visitor.get("/referral/leaderboard").text
    sent, _ = redis_commands_during(first, lambda: visitor.get("/referral/leaderboard"))
    assert sent == []

    with second.app_context(), second.test_request_context():
        save_branding(site_name="Acme Rewards", support_email=None, primary_color=None)
        db.session.commit()
    assert "Acme Rewards" in visitor.get("/referral/leaderboard").text


def test_without_its_subscription_a_process_serves_from_redis_and_misses_no_change(
    two_processes, redis_url, monkeypatch
):
    monkeypatch.setattr(caching, "RETRY_SECONDS", 1.0)  # how long a lost one waits
    first, second = two_processes
    bob = alice_ahead_of_bob(first)["bob"]
    visitor = first.test_client()
    assert names_on(visitor.get("/api/v1/leaderboard")) == ["Alice Z."]

    # Redis drops the subscriptions (a restart, a network cut): what is announced meanwhile
    # is not heard, so no copy may be served until the process subscribes again.
    admin = redis.Redis.from_url(redis_url)
    admin.client_kill_filter(_type="pubsub")
    admin.close()
    refer(second, bob["code"], "Bb Friend")
    refer(second, bob["code"], "Bc Friend")
    sent, answer = redis_commands_during(first, lambda: visitor.get("/api/v1/leaderboard"))
    assert names_on(answer) == ["Bob Y.", "Alice Z."] and "MGET" in sent

    time.sleep(1.1)  # the wait before subscribing again
    visitor.get("/api/v1/leaderboard")  # subscribes again, and keeps a copy
    sent, answer = redis_commands_during(first, lambda: visitor.get("/api/v1/leaderboard"))
    assert sent == [] and names_on(answer) == ["Bob Y.", "Alice Z."]


def test_a_copy_lives_a_few_seconds_at_most(two_processes, monkeypatch):
    monkeypatch.setattr(caching, "NEAR_COPY_SECONDS", 0.5)
    first, _ = two_processes
    alice_ahead_of_bob(first)
    visitor = first.test_client()
    visitor.get("/api/v1/leaderboard")
    sent, _ = redis_commands_during(first, lambda: visitor.get("/api/v1/leaderboard"))
    assert sent == []
    time.sleep(0.6)
    sent, _ = redis_commands_during(first, lambda: visitor.get("/api/v1/leaderboard"))
    assert "MGET" in sent
