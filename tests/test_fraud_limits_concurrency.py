"""Issue 12, row 7: the fraud limits on signups hold when the signups arrive at once.

Ten browsers on one address sign up with one code at the same moment, against a real
gunicorn on SQLite and on PostgreSQL. The program allows five signups per address and code a
day (docs/guarantees.md #13): exactly five are counted, the other five are held for review.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from extensions import db
from models import Program, Referral, User
from referral.services import default_program
from tests import factories
from tests.helpers import CSRF_FIELD
from tests.server import shared_servers

pytestmark = [pytest.mark.server, pytest.mark.slow]

PASSWORD = "a long passphrase for racing signups"
REQUEST_TIMEOUT = 30
BARRIER_TIMEOUT = 20
ONE_ADDRESS = "10.250.7.7"
# Behind one proxy hop, so each browser's address counts; four workers, so the racing
# signups land in different processes.
SERVER_OPTIONS = {"TRUSTED_PROXY_COUNT": "1", "workers": 4}


@pytest.fixture(scope="module")
def servers():
    """One server per database for the module: each race starts from emptied tables."""
    with shared_servers() as servers:
        yield servers


def _race_signups(base_url: str, signups: list[tuple[str, dict]]) -> list[int]:
    """Each (address, form) from its own browser behind that address: fetch the page, wait
    for the others, submit together. Returns the status codes."""
    barrier = threading.Barrier(len(signups), timeout=BARRIER_TIMEOUT)

    def sign_up(signup: tuple[str, dict]) -> int:
        address, form = signup
        with requests.Session() as browser:
            browser.headers["X-Forwarded-For"] = address
            page = browser.get(f"{base_url}/auth/signup", timeout=REQUEST_TIMEOUT)
            token = CSRF_FIELD.search(page.text).group(1)
            barrier.wait()
            response = browser.post(
                f"{base_url}/auth/signup",
                data={"csrf_token": token, **form},
                allow_redirects=False,
                timeout=REQUEST_TIMEOUT,
            )
            response.close()
            return response.status_code

    with ThreadPoolExecutor(max_workers=len(signups)) as pool:
        return list(pool.map(sign_up, signups))


def _referrals_of(referrer_id: int) -> list[Referral]:
    return db.session.scalars(
        select(Referral).where(Referral.referrer_id == referrer_id).order_by(Referral.id)
    ).all()


def test_ten_signups_from_one_address_with_one_code_at_once_count_five(app, database_url, servers):
    with app.app_context():
        program = default_program()
        limit = program.max_signups_per_ip_per_day
        referrer = factories.participant("Vera Velocity")
    assert limit == 5
    forms = [
        {
            "name": f"Same Household {number}",
            "email": f"household{number}@example.com",
            "password": PASSWORD,
            "referral_code": referrer["code"],
        }
        for number in range(10)
    ]

    base_url = servers.base_url(database_url, **SERVER_OPTIONS)
    statuses = _race_signups(base_url, [(ONE_ADDRESS, form) for form in forms])

    # Every signup goes through; only the referrals past the limit wait for a person.
    assert statuses == [302] * 10
    with app.app_context():
        referrals = _referrals_of(referrer["id"])
        counter = db.session.scalar(select(User.referral_count).where(User.id == referrer["id"]))
    by_status = sorted(referral.status for referral in referrals)
    assert by_status == ["pending"] * 5 + ["review"] * 5
    assert counter == 5
    held = [referral for referral in referrals if referral.status == "review"]
    assert {referral.reason for referral in held} == {"ip_velocity"}
    # They took turns: each held one counted every signup before it (5, 6, ... 9).
    seen = sorted(
        int(item["detail"].split()[0])
        for referral in held
        for item in referral.risk_reasons
        if item["code"] == "ip_velocity"
    )
    assert seen == [5, 6, 7, 8, 9]


def test_signups_at_once_over_the_hourly_code_limit_count_only_the_limit(
    app, database_url, servers
):
    """The per-code-per-hour limit has the same race; each signup from its own network."""
    with app.app_context():
        referrer = factories.participant("Hugo Hourly")
        program = db.session.get(Program, default_program().id)
        program.max_signups_per_code_per_hour = 3
        db.session.commit()
    forms = [
        {
            "name": f"Hourly Friend {number}",
            "email": f"hourly{number}@example.com",
            "password": PASSWORD,
            "referral_code": referrer["code"],
        }
        for number in range(8)
    ]

    signups = [(factories.distinct_ip(), form) for form in forms]
    statuses = _race_signups(servers.base_url(database_url, **SERVER_OPTIONS), signups)

    assert statuses == [302] * 8
    with app.app_context():
        by_status = sorted(referral.status for referral in _referrals_of(referrer["id"]))
        held_reasons = {
            referral.reason
            for referral in _referrals_of(referrer["id"])
            if referral.status == "review"
        }
    assert by_status == ["pending"] * 3 + ["review"] * 5
    assert held_reasons == {"code_velocity"}
