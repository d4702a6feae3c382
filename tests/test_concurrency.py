"""Signups racing each other against a real gunicorn process, on SQLite and on PostgreSQL."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from extensions import db
from models import Referral, ReferralCode, User
from tests import factories
from tests.helpers import CSRF_FIELD
from tests.server import shared_servers

pytestmark = [pytest.mark.server, pytest.mark.slow]

PASSWORD = "a long passphrase for racing signups"
REQUEST_TIMEOUT = 30
BARRIER_TIMEOUT = 20
ALREADY_REGISTERED = "This email is already registered"
# One proxy hop trusted: each browser comes from an address of its own (_race_signups).
SERVER_OPTIONS = {"TRUSTED_PROXY_COUNT": "1"}


@pytest.fixture(scope="module")
def servers():
    """One server per database for the module: each race starts from emptied tables."""
    with shared_servers() as servers:
        yield servers


def _get_token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=REQUEST_TIMEOUT)
    assert page.status_code == 200, page.text[:500]
    match = CSRF_FIELD.search(page.text)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def _race_signups(base_url: str, forms: list[dict]) -> list[requests.Response]:
    """Each form from its own browser: fetch the signup page (session cookie and CSRF
    token), wait until every browser is ready, then all submit at once."""
    barrier = threading.Barrier(len(forms), timeout=BARRIER_TIMEOUT)

    def sign_up(form: dict) -> requests.Response:
        with requests.Session() as browser:
            # Each browser on a network of its own (the server trusts one proxy hop), so
            # the fraud checks see forty households, not forty signups from one address.
            browser.headers["X-Forwarded-For"] = factories.distinct_ip()
            token = _get_token(browser, f"{base_url}/auth/signup")
            barrier.wait()
            response = browser.post(
                f"{base_url}/auth/signup",
                data={"csrf_token": token, **form},
                allow_redirects=False,
                timeout=REQUEST_TIMEOUT,
            )
            response.close()
            return response

    with ThreadPoolExecutor(max_workers=len(forms)) as pool:
        return list(pool.map(sign_up, forms))


def _dashboard_as(base_url: str, email: str, password: str) -> str:
    with requests.Session() as browser:
        token = _get_token(browser, f"{base_url}/auth/login")
        login = browser.post(
            f"{base_url}/auth/login",
            data={"csrf_token": token, "email": email, "password": password},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
        )
        assert login.status_code == 302, login.text[:500]
        page = browser.get(f"{base_url}/referral/dashboard", timeout=REQUEST_TIMEOUT)
        assert page.status_code == 200
        return page.text


def _stat(page: str, name: str) -> int:
    match = re.search(rf'id="stat-{name}">(\d+)<', page)
    assert match, f"no {name} figure on the dashboard"
    return int(match.group(1))


def test_forty_referred_signups_with_one_code_at_once(app, database_url, servers):
    with app.app_context():
        referrer = factories.participant("Rita Referrer")
    forms = [
        {
            "name": f"Friend {number:02d}",
            "email": f"friend{number:02d}@example.com",
            "password": PASSWORD,
            "referral_code": referrer["code"],
        }
        for number in range(40)
    ]

    base_url = servers.base_url(database_url, **SERVER_OPTIONS)
    responses = _race_signups(base_url, forms)
    dashboard = _dashboard_as(base_url, referrer["email"], factories.PASSWORD)

    answers = [(response.status_code, response.headers.get("Location")) for response in responses]
    assert answers == [(302, "/referral/dashboard")] * 40
    with app.app_context():
        counter = db.session.scalar(select(User.referral_count).where(User.id == referrer["id"]))
        rows = db.session.scalar(select(func.count()).where(Referral.referrer_id == referrer["id"]))
        joined = db.session.scalar(
            select(func.count()).where(User.referred_by_id == referrer["id"])
        )
    assert counter == rows == joined == 40
    assert _stat(dashboard, "signups") == 40


def test_same_email_twenty_times_at_once_makes_one_account(app, database_url, servers):
    variants = [
        "same.person@example.com",
        "Same.Person@example.com",
        "SAME.PERSON@EXAMPLE.COM",
        "same.person@Example.Com",
    ]
    forms = [
        {"name": f"Same Person {number}", "email": variants[number % 4], "password": PASSWORD}
        for number in range(20)
    ]

    responses = _race_signups(servers.base_url(database_url, **SERVER_OPTIONS), forms)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [302] + [409] * 19
    refused = [response for response in responses if response.status_code == 409]
    assert all(ALREADY_REGISTERED in response.text for response in refused)
    with app.app_context():
        accounts = db.session.scalars(select(User.email)).all()
        codes = db.session.scalar(select(func.count()).select_from(ReferralCode))
    # The losers left nothing half-written: one account, with its one code.
    assert accounts == ["same.person@example.com"]
    assert codes == 1
