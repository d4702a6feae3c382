"""Links only to the configured host (issue 12, row 2); docs/guarantees.md no. 16.

Before: with PUBLIC_URL unset, `POST /auth/reset` with `Host: evil.example` mailed the victim
a reset link to the attacker's host with a live token in it, and production started without
PUBLIC_URL. Now production refuses to start without it, every absolute link comes from it, and
in development a request naming a host outside ALLOWED_HOSTS is refused with 400 first.
"""

import re

import pytest
import requests

from app import create_app
from config import ConfigError
from core.hosts import host_name, is_allowed_host
from tests import factories
from tests.apps import TEST_SECRET, other_app
from tests.helpers import CSRF_FIELD
from tests.server import running_server

PUBLIC_URL = "https://refer.example.com"
TIMEOUT = 15


def outbox(app) -> list:
    return list(app.extensions["mailman"].outbox)


def ask_for_reset(client, email: str, host: str):
    """The form fetched and sent under `host` (the test client keeps cookies per host)."""
    site = f"http://{host}"
    page = client.get("/auth/reset", base_url=site)
    if page.status_code != 200:
        return page
    token = CSRF_FIELD.search(page.get_data(as_text=True)).group(1)
    return client.post("/auth/reset", data={"csrf_token": token, "email": email}, base_url=site)


def log_in_at(client, site: str, email: str):
    """Log in through the form under `site` (the test client keeps cookies per host)."""
    page = client.get("/auth/login", base_url=site)
    token = CSRF_FIELD.search(page.get_data(as_text=True)).group(1)
    form = {"csrf_token": token, "email": email, "password": factories.PASSWORD}
    # Over https Flask-WTF also wants a same-origin Referer, as a browser sends one.
    referer = {"Referer": f"{site}/auth/login"}
    return client.post("/auth/login", data=form, base_url=site, headers=referer)


# --- against a real server ------------------------------------------------------------------


@pytest.mark.server
def test_a_reset_asked_for_under_a_foreign_host_is_refused_and_mails_nothing(
    app, database_url, make_participant, tmp_path
):
    alice = make_participant("Alice Zimmer")
    mails = tmp_path / "mail"
    mails.mkdir()
    settings = {"MAIL_BACKEND": "file", "MAIL_FILE_PATH": str(mails), "TRUSTED_PROXY_COUNT": "1"}
    with running_server(database_url, **settings) as base_url, requests.Session() as browser:
        page = browser.get(f"{base_url}/auth/reset", timeout=TIMEOUT)
        token = CSRF_FIELD.search(page.text).group(1)
        form = {"csrf_token": token, "email": alice["email"]}
        forged = [
            browser.post(f"{base_url}/auth/reset", data=form, headers=headers, timeout=TIMEOUT)
            for headers in (
                {"Host": "evil.example"},
                {"Host": "evil.example:80"},
                {"X-Forwarded-Host": "evil.example"},  # through the one trusted proxy
                {"Host": "localhost.evil.example"},
            )
        ]
        assert [response.status_code for response in forged] == [400] * 4
        assert "Bad request" in forged[0].text
        assert list(mails.iterdir()) == []  # nothing was mailed

        honest = browser.post(f"{base_url}/auth/reset", data=form, timeout=TIMEOUT)
    assert honest.status_code == 200
    (sent,) = mails.iterdir()
    links = re.findall(r"https?://[^/\s]+/auth/reset/", sent.read_text())
    assert links and {link.split("/")[2] for link in links} == {base_url.split("/")[2]}


# --- in process -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_overrides", [{"MAIL_BACKEND": "locmem", "PUBLIC_URL": PUBLIC_URL}], ids=["public-url"]
)
def test_with_public_url_the_mailed_link_uses_it_whatever_the_host(app, client, make_participant):
    alice = make_participant("Alice Zimmer")
    for host in ("localhost", "127.0.0.1:5000", "refer.example.com"):
        assert ask_for_reset(client, alice["email"], host).status_code == 200
    assert ask_for_reset(client, alice["email"], "evil.example").status_code == 400
    bodies = [message.body for message in outbox(app)]
    assert len(bodies) == 3
    for body in bodies:
        assert f"{PUBLIC_URL}/auth/reset/" in body
        assert "localhost" not in body and "127.0.0.1" not in body


@pytest.mark.parametrize("config_overrides", [{"ALLOWED_HOSTS": "*"}], ids=["any-host"])
def test_allowing_every_host_still_takes_no_link_from_it_when_public_url_is_set(
    app, make_participant
):
    alice = make_participant("Alice Zimmer")
    app.config["PUBLIC_URL"] = PUBLIC_URL
    site = "http://evil.example"
    browser = app.test_client()
    assert log_in_at(browser, site, alice["email"]).status_code == 302
    me = browser.get("/api/v1/me", base_url=site)
    assert me.status_code == 200
    assert me.json["link"] == f"{PUBLIC_URL}/r/{alice['code']}"
    dashboard = browser.get("/referral/dashboard", base_url=site)
    assert f"{PUBLIC_URL}/r/{alice['code']}" in dashboard.get_data(as_text=True)
    assert "evil.example" not in dashboard.get_data(as_text=True)


def test_development_serves_localhost_names_only(client):
    for host in ("localhost", "localhost:5000", "127.0.0.1:8000", "[::1]:5000", "LOCALHOST."):
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "127.0.0.2", "[::2]", "localhost.evil.example", "a b"):
        response = client.get("/", headers={"Host": host})
        assert response.status_code == 400, host
        assert "Bad request" in response.get_data(as_text=True)
    api = client.get("/api/v1/leaderboard", headers={"Host": "evil.example"})
    assert api.status_code == 400
    assert "not served under that host name" in api.json["error"]["message"]


def test_production_refuses_to_start_without_public_url(tmp_path):
    settings = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "APP_ENV": "production",
        "SECRET_KEY": TEST_SECRET,
    }
    with pytest.raises(ConfigError, match="PUBLIC_URL must be set in production"):
        create_app(settings)


def test_production_links_come_from_public_url_whatever_the_host(database_url, make_participant):
    """Production serves any Host (ALLOWED_HOSTS unset) but builds no link from it."""
    alice = make_participant("Alice Zimmer")
    site = "https://evil.example"  # https: production's cookies are Secure
    with other_app(database_url, APP_ENV="production", PUBLIC_URL=PUBLIC_URL) as production:
        browser = production.test_client()
        assert log_in_at(browser, site, alice["email"]).status_code == 302
        me = browser.get("/api/v1/me", base_url=site)
    assert me.status_code == 200
    assert me.json["link"] == f"{PUBLIC_URL}/r/{alice['code']}"


@pytest.mark.parametrize(
    ("allowed", "host", "expected"),
    [
        (["localhost"], "LocalHost:5000", True),
        (["::1"], "[::1]:8080", True),
        (["::1"], "[::1", False),
        ([".example.com"], "shop.example.com", True),
        ([".example.com"], "example.com", True),
        ([".example.com"], "evil-example.com", False),
        (["refer.example.com"], "refer.example.com.", True),
        (["refer.example.com"], "", False),
        (None, "anything.example", True),
    ],
)
def test_the_allow_list_matches_names_not_ports(allowed, host, expected):
    assert is_allowed_host(host, allowed) is expected


def test_host_names_are_read_without_port_or_brackets():
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("[::1]:5000") == "::1"
    assert host_name(":80") is None
