"""Wrong passwords are limited per account from every address (docs/guarantees.md #12): with
a new address for each guess an attacker still gets only LOGIN_FAILURE_LIMITS tries, is told
plainly how long to wait, and learns nothing about whether the account exists; the owner
gets in through a reset link meanwhile."""

import hashlib
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app import create_app
from config import ConfigError
from tests import databases
from tests.apps import app_config
from tests.factories import PASSWORD, distinct_ip
from tests.helpers import (
    CSRF_FIELD,
    csrf_token,
    is_logged_in,
    read_form,
    reset_link_path,
    text_of,
)
from tests.server import running_server

WAIT = "Too many wrong passwords were tried for this email address."
INVALID = "Invalid email or password."
NEW_PASSWORD = "a brand new passphrase for alice"
PUBLIC_URL = "https://refer.example.test"


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem", "PUBLIC_URL": PUBLIC_URL}


@pytest.fixture
def alice(make_participant):
    return make_participant("Alice Zimmer")


def guess(client, email, password="wrong guess 123", ip=None):
    """One login from a browser on an address of its own (the app trusts one proxy hop)."""
    token = csrf_token(client, "/auth/login")
    return client.post(
        "/auth/login",
        data={"csrf_token": token, "email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip or distinct_ip()},
    )


def allowed(app) -> int:
    return min(int(rule.split("/")[0]) for rule in app.config["LOGIN_FAILURE_LIMITS"].split(";"))


def test_wrong_passwords_from_many_addresses_are_throttled(app, alice):
    budget = allowed(app)  # 10 by default
    statuses = [guess(app.test_client(), alice["email"]).status_code for _ in range(budget)]
    assert statuses == [401] * budget

    blocked = guess(app.test_client(), alice["email"])
    assert blocked.status_code == 429
    assert any(WAIT in alert for alert in read_form(blocked).alerts)
    assert re.search(r"Wait \d+ seconds? before trying a password again", text_of(blocked))
    assert int(blocked.headers["Retry-After"]) >= 1
    # The right password is refused too while the account waits: no guess can be confirmed.
    owner = app.test_client()
    assert guess(owner, alice["email"].upper(), PASSWORD).status_code == 429
    assert not is_logged_in(owner)


def test_an_unknown_address_gets_exactly_the_same_answers(app, alice):
    def answers(email):
        replies = [guess(app.test_client(), email) for _ in range(allowed(app) + 2)]
        return [(reply.status_code, read_form(reply).alerts) for reply in replies]

    assert answers(alice["email"]) == answers("nobody.here@example.com")


def test_right_passwords_do_not_count(app, alice):
    for _ in range(3 * allowed(app)):
        browser = app.test_client()
        assert guess(browser, alice["email"], PASSWORD).status_code == 302
    statuses = [guess(app.test_client(), alice["email"]).status_code for _ in range(allowed(app))]
    assert statuses == [401] * allowed(app)
    assert guess(app.test_client(), alice["email"]).status_code == 429


def test_the_owner_gets_in_with_a_reset_link_while_throttled(app, alice):
    while guess(app.test_client(), alice["email"]).status_code != 429:
        pass
    owner = app.test_client()
    token = csrf_token(owner, "/auth/reset")
    assert (
        owner.post("/auth/reset", data={"csrf_token": token, "email": alice["email"]}).status_code
        == 200
    )
    path = reset_link_path(app, alice["email"], PUBLIC_URL)
    page = owner.get(path)
    token = CSRF_FIELD.search(text_of(page)).group(1)

    chosen = owner.post(path, data={"csrf_token": token, "password": NEW_PASSWORD})

    assert chosen.status_code == 302
    assert is_logged_in(owner)
    # Proving who they are clears the count: the new password works at once.
    assert guess(app.test_client(), alice["email"], NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "config_overrides",
    [{"MAIL_BACKEND": "locmem", "LOGIN_FAILURE_LIMITS": "2/second;4/10 seconds;50/hour"}],
    ids=["short-windows"],
)
def test_each_longer_run_of_failures_waits_longer(app, alice):
    def wait_told(response) -> int:
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        return int(re.search(r"Wait (\d+) seconds?", text_of(response)).group(1))

    assert [guess(app.test_client(), alice["email"]).status_code for _ in range(2)] == [401] * 2
    first = wait_told(guess(app.test_client(), alice["email"]))
    assert first == 1

    time.sleep(1.1)
    assert [guess(app.test_client(), alice["email"]).status_code for _ in range(2)] == [401] * 2
    second = wait_told(guess(app.test_client(), alice["email"]))
    assert 1 < second <= 10


@pytest.mark.parametrize(
    "rules", ["10/minute", "200/hour", "60/15 minutes;1000/day", "ten a minute"]
)
def test_rules_allowing_more_than_100_wrong_passwords_an_hour_are_refused(rules):
    with pytest.raises(ConfigError, match="LOGIN_FAILURE_LIMITS"):
        create_app(app_config("sqlite://", LOGIN_FAILURE_LIMITS=rules))


# --- against a real server: many addresses at once, several processes ----------------------


def _attempt(base_url: str, email: str, password: str) -> int:
    with requests.Session() as browser:
        browser.headers["X-Forwarded-For"] = distinct_ip()
        page = browser.get(f"{base_url}/auth/login", timeout=30)
        token = CSRF_FIELD.search(page.text).group(1)
        response = browser.post(
            f"{base_url}/auth/login",
            data={"csrf_token": token, "email": email, "password": password},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code == 429:
            assert WAIT in response.text
        return response.status_code


@pytest.fixture
def redis_cleanup():
    """Deletes the server's failure counters of the addresses a test used, afterwards."""
    with databases.redis_client() as client:
        used = []
        yield used
        for digest in used:
            for key in client.scan_iter(f"*login-failures*{digest}*"):
                client.delete(key)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_many_addresses_at_once_on_several_processes_share_one_budget(
    app, database_url, make_participant, redis_cleanup
):
    email = f"target.{secrets.token_hex(4)}@example.com"
    make_participant("Target Person", email=email)
    redis_cleanup.append(hashlib.sha256(email.encode()).hexdigest())
    budget = allowed(app)

    with running_server(
        database_url,
        workers=2,
        threads=8,
        TRUSTED_PROXY_COUNT="1",
        REDIS_URL=databases.REDIS_URL,
        CELERY_ALWAYS_EAGER="1",
    ) as base_url:
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(
                pool.map(lambda _: _attempt(base_url, email, "wrong guess 123"), range(30))
            )
        right = _attempt(base_url, email, PASSWORD)

    assert sorted(statuses) == [401] * budget + [429] * (30 - budget)
    assert right == 429


@pytest.mark.server
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_twelve_addresses_are_throttled_with_the_in_memory_limiter(app, database_url, alice):
    budget = allowed(app)
    with running_server(database_url, workers=1, TRUSTED_PROXY_COUNT="1") as base_url:
        statuses = [_attempt(base_url, alice["email"], "wrong guess 123") for _ in range(12)]
        right = _attempt(base_url, alice["email"], PASSWORD)

    assert statuses == [401] * budget + [429] * (12 - budget)
    assert right == 429
