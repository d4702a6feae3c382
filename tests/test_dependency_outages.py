"""Redis down never turns a page into a 500, and /health tells the truth (issue 12, row 1).

Against a real gunicorn: with REDIS_URL pointing at a closed port every page a visitor, a new
participant, a returning one and a signed sender use answers as usual and /health says
`degraded`; with a Redis of the test's own that is stopped and started again, the rate limits
hold before, during (in process memory) and after the outage.
docs/guarantees.md no. 15.
"""

import json
import logging
import subprocess
import time

import pytest
import redis
import requests
from sqlalchemy import func, select

from core import caching, outbox
from core.caching import FailSoftRedisCache
from extensions import cache, db
from models import Click, Conversion, OutboxMessage, User
from tests import factories
from tests.apps import other_app
from tests.events_api import SECRET, purchase, sign
from tests.helpers import CSRF_FIELD, take_outbox
from tests.server import free_port, running_server, stop_process

pytestmark = [pytest.mark.server]

TIMEOUT = 15
# Every answer below comes well within this, Redis or not.
PROMPT_SECONDS = 5.0


def closed_port_url() -> str:
    """A Redis URL on 127.0.0.1 where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


class RedisProcess:
    """A redis-server of the test's own on 127.0.0.1, to stop and start again on one port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        try:
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        except FileNotFoundError as error:
            pytest.skip(f"redis-server not installed ({error})")
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def keys(self) -> list[bytes]:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            return list(client.scan_iter("*"))
        finally:
            client.close()


@pytest.fixture
def own_redis():
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


def timed(call, *args, **kwargs) -> requests.Response:
    started = time.monotonic()
    response = call(*args, timeout=TIMEOUT, allow_redirects=False, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < PROMPT_SECONDS, f"{response.request.url} took {elapsed:.1f} s"
    assert response.status_code < 500, (response.request.url, response.status_code)
    return response


def form_token(browser: requests.Session, url: str) -> str:
    page = timed(browser.get, url)
    assert page.status_code == 200, page.text[:300]
    match = CSRF_FIELD.search(page.text)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def signed_post(base_url: str, event: dict) -> requests.Response:
    body = json.dumps(event).encode()
    stamp = int(time.time())
    message_id = f"msg_{event['id']}"
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(body, message_id, stamp),
        "Content-Type": "application/json",
    }
    return timed(requests.post, f"{base_url}/api/v1/events", data=body, headers=headers)


def test_with_redis_unreachable_every_page_answers_and_health_says_degraded(app, database_url):
    with app.app_context():
        rita = factories.participant("Rita Referrer")
        fred = factories.participant("Fred Friend", invited_by=rita["code"])
    settings = {"REDIS_URL": closed_port_url(), "EVENTS_WEBHOOK_SECRET": SECRET}

    with running_server(database_url, **settings) as base_url, requests.Session() as browser:
        health = timed(requests.get, f"{base_url}/health")
        landing = timed(browser.get, f"{base_url}/")
        board = timed(browser.get, f"{base_url}/referral/leaderboard")
        link = timed(browser.get, f"{base_url}/r/{rita['code']}")
        token = form_token(browser, f"{base_url}/auth/signup")
        joined = timed(
            browser.post,
            f"{base_url}/auth/signup",
            data={
                "csrf_token": token,
                "name": "Nina Newcomer",
                "email": "nina@example.com",
                "password": "a long passphrase for outages",
            },
        )
        board_after = timed(browser.get, f"{base_url}/api/v1/leaderboard")
        with requests.Session() as returning:
            token = form_token(returning, f"{base_url}/auth/login")
            login = timed(
                returning.post,
                f"{base_url}/auth/login",
                data={"csrf_token": token, "email": rita["email"], "password": factories.PASSWORD},
            )
            dashboard = timed(returning.get, f"{base_url}/referral/dashboard")
        bought = signed_post(base_url, purchase(fred["email"], order="order-outage"))

    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["database"] == "ok"
    assert health.json()["dependencies"]["redis"] == "down"
    assert health.json()["dependencies"]["broker"] == "down"
    assert landing.status_code == board.status_code == 200
    assert link.status_code == 302 and "/auth/signup" in link.headers["Location"]
    assert joined.status_code == 302 and joined.headers["Location"] == "/referral/dashboard"
    assert board_after.status_code == 200
    assert login.status_code == 302 and dashboard.status_code == 200
    assert bought.status_code == 200
    with app.app_context():
        # Nothing was lost: the click, the referred signup and the purchase are all stored.
        clicks = db.session.scalar(select(func.count()).select_from(Click))
        nina = db.session.scalar(select(User).where(User.email == "nina@example.com"))
        orders = db.session.scalars(select(Conversion.external_id)).all()
        assert clicks == 1
        assert nina is not None and nina.referred_by_id == rita["id"]
        assert orders == ["evt-order-outage"]  # keyed by the event id
        # The announcement of Nina's referral (Rita's "a friend joined" email among what it
        # sets off) could not be handed to the dead broker, but it is in the outbox
        # (docs/guarantees.md no. 20) ...
        # (Fred's, from before the server ran, went out at once: the tests' inline delivery.)
        waiting = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.status == "pending")
        ).all()
        assert [(row.job, row.args[1]) for row in waiting] == [("referral.announce", "pending")]
    # ... and goes out once a worker (beat's sweep, or `flask jobs run`) gets to it: the
    # announcement, then the email it queued (here right after, the tests' inline delivery).
    with other_app(database_url, MAIL_BACKEND="locmem") as recovered, recovered.app_context():
        assert outbox.drain() == len(waiting)
        [message] = take_outbox(recovered)
        assert message.to == [rita["email"]]
        assert set(db.session.scalars(select(OutboxMessage.status))) == {"sent"}


def test_limits_hold_on_redis_through_its_outage_and_after_it(app, database_url, own_redis):
    """One worker, so the in-memory fallback counts every attempt in one place."""
    settings = {
        "REDIS_URL": own_redis.url,
        "LOGIN_LIMITS": "3/minute",
        "TRUSTED_PROXY_COUNT": "1",
        "CELERY_ALWAYS_EAGER": "true",
    }

    def four_wrong_logins(base_url: str) -> list[int]:
        with requests.Session() as browser:
            browser.headers["X-Forwarded-For"] = factories.distinct_ip()
            statuses = []
            for _ in range(4):
                token = form_token(browser, f"{base_url}/auth/login")
                wrong = {"csrf_token": token, "email": "x@example.com", "password": "wrong"}
                statuses.append(
                    timed(browser.post, f"{base_url}/auth/login", data=wrong).status_code
                )
            return statuses

    with running_server(database_url, workers=1, **settings) as base_url:
        assert four_wrong_logins(base_url) == [401, 401, 401, 429]
        assert own_redis.keys(), "the counters were not kept in Redis"

        own_redis.stop()
        assert timed(requests.get, f"{base_url}/").status_code == 200
        health = timed(requests.get, f"{base_url}/health").json()
        assert (health["status"], health["dependencies"]["redis"]) == ("degraded", "down")
        # Counted in the process's memory meanwhile: still limited, never a 500.
        assert four_wrong_logins(base_url) == [401, 401, 401, 429]

        own_redis.start()  # an empty Redis on the same port
        deadline = time.monotonic() + 45  # Flask-Limiter retries its storage with backoff
        while not own_redis.keys():
            assert time.monotonic() < deadline, "the limiter never went back to Redis"
            timed(requests.get, f"{base_url}/auth/login")  # any request lets it look again
            four_wrong_logins(base_url)
            time.sleep(0.5)
        assert four_wrong_logins(base_url) == [401, 401, 401, 429]
        health = timed(requests.get, f"{base_url}/health").json()
        assert health["status"] == "ok" and health["dependencies"]["redis"] == "ok"


# --- the cache on its own -----------------------------------------------------------------


@pytest.fixture
def dead_cache():
    made = FailSoftRedisCache(
        host=redis.Redis.from_url(closed_port_url(), socket_connect_timeout=0.5),
        key_prefix="failsoft-test:",
    )
    yield made


def test_a_dead_redis_cache_keeps_working_in_memory_and_warns_once(dead_cache, caplog):
    caplog.set_level(logging.WARNING, logger="core.caching")
    assert dead_cache.get("board") is None
    assert dead_cache.set("board", [1, 2, 3]) is True
    assert dead_cache.get("board") == [1, 2, 3]
    assert dead_cache.add("throttle", True, timeout=10) is True
    assert dead_cache.add("throttle", True, timeout=10) is False  # throttles still hold
    for _ in range(50):
        dead_cache.get("board")
    warnings = [record for record in caplog.records if "Redis unreachable" in record.message]
    assert len(warnings) == 1


def test_the_cache_goes_back_to_redis_when_it_answers_again(own_redis, monkeypatch):
    monkeypatch.setattr(caching, "RETRY_SECONDS", 0.2)
    shared = FailSoftRedisCache(
        host=redis.Redis.from_url(own_redis.url, socket_connect_timeout=0.5),
        key_prefix="failsoft-test:",
    )
    assert shared.set("generation", "before") is True
    own_redis.stop()
    assert shared.get("generation") is None  # the process's own memory: empty at first
    shared.set("generation", "during")
    assert shared.get("generation") == "during"
    own_redis.start()
    time.sleep(0.3)
    assert shared.set("generation", "after") is True
    assert shared.get("generation") == "after"
    other_process = FailSoftRedisCache(
        host=redis.Redis.from_url(own_redis.url), key_prefix="failsoft-test:"
    )
    assert other_process.get("generation") == "after"  # written to Redis, shared again


def test_pages_and_the_leaderboard_bump_survive_a_dead_cache(app, database_url):
    # The limiter keeps the tests' memory storage: its fallback state is process-wide.
    dead = closed_port_url()
    overrides = {
        "REDIS_URL": dead,
        "CACHE_TYPE": "core.caching.FailSoftRedisCache",
        "CACHE_REDIS_URL": dead,
        "CELERY_ALWAYS_EAGER": True,
    }
    with other_app(database_url, **overrides) as other:
        client = other.test_client()
        assert client.get("/referral/leaderboard").status_code == 200
        with other.app_context():
            alice = factories.participant("Alice Zimmer")
            factories.participant("Bob Baker", invited_by=alice["code"])  # bumps the board
            assert cache.get("anything") is None
        rows = client.get("/api/v1/leaderboard").json["rows"]
        assert rows == [{"rank": 1, "display_name": "Alice Z.", "referrals": 1}]
