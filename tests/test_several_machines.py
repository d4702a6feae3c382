"""Two machines, one installation (docs/guarantees.md #35): two gunicorn servers on different
ports, each with the in-process outbox sender, share one PostgreSQL and one Redis behind a
proxy. What one counts or caches, the other sees: a rate limit counts the requests of both, a
leaderboard page one rendered is served by the other, a sign-in made on one works (and ends)
on the other, and the outbox rows written by either are mailed once each."""

import random
import re
import secrets
import time
from dataclasses import dataclass

import psycopg
import pytest

from tests import databases
from tests.apps import other_app, start_afresh
from tests.deployment import Browser
from tests.helpers import scheme_seen
from tests.server import running_server
from tests.smtp_server import SmtpServer

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.postgres_only]

PASSWORD = "a long friendly passphrase"
LINK_LIMIT = 5
FRIENDS = 4
WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def redis_url():
    with databases.redis_database_of_its_own() as url:
        yield url


@dataclass(frozen=True)
class Machines:
    first: str
    second: str
    smtp: SmtpServer
    database_url: str

    def sql(self, statement: str, *values) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            connection.execute(statement, values)


@pytest.fixture(scope="module")
def machines(postgresql_url, redis_url):
    with other_app(postgresql_url) as app:
        start_afresh(app)  # no participants left by an earlier module
    settings = {
        "REDIS_URL": redis_url,
        "OUTBOX_DELIVERY": "thread",  # each server's own sender, both on one outbox table
        "OUTBOX_POLL_SECONDS": "1",
        "TRUSTED_PROXY_COUNT": "1",
        "REFERRAL_LINK_LIMITS": f"{LINK_LIMIT}/minute",
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_TIMEOUT": "5",
    }
    with SmtpServer() as smtp:
        settings["MAIL_PORT"] = str(smtp.port)
        with (
            running_server(postgresql_url, workers=1, threads=4, **settings) as first,
            running_server(postgresql_url, workers=1, threads=4, **settings) as second,
        ):
            yield Machines(first, second, smtp, postgresql_url)


def a_new_address() -> str:
    octets = (random.randint(64, 127), random.randint(0, 255), random.randint(1, 254))
    return "100.{}.{}.{}".format(*octets)


def sign_up(browser: Browser, name: str, email: str, **fields) -> None:
    answer = browser.submit("/auth/signup", name=name, email=email, password=PASSWORD, **fields)
    assert answer.status_code == 302, re.sub(r"<[^>]+>|\s+", " ", answer.text)[-800:]


def code_of(browser: Browser) -> str:
    return re.search(r"/r/([A-Z0-9]{6,8})\b", browser.get("/referral/dashboard").text).group(1)


def test_a_rate_limit_counts_the_requests_both_servers_answer(machines):
    owner = Browser(machines.first, a_new_address())
    sign_up(owner, "Lena Limit", f"lena-{secrets.token_hex(3)}@example.com")
    code = code_of(owner)
    visitor = Browser(machines.first, a_new_address())
    statuses = [
        visitor.via(server).get(f"/r/{code}", follow_redirects=False).status_code
        for server in [machines.first, machines.second] * LINK_LIMIT
    ]
    # Counted per process, each server would allow the limit: twice as many in all.
    assert statuses == [302] * LINK_LIMIT + [429] * LINK_LIMIT


def test_the_outbox_and_the_leaderboard_cache_are_shared(machines):
    rita_email = f"rita-{secrets.token_hex(3)}@example.com"
    rita = Browser(machines.first, a_new_address())
    sign_up(rita, "Rita Referrer", rita_email)
    code = code_of(rita)

    # Friends join through either machine; each "friend joined" email goes out once.
    for number in range(FRIENDS):
        friend = Browser([machines.first, machines.second][number % 2], a_new_address())
        email = f"friend-{number}-{secrets.token_hex(3)}@example.org"
        sign_up(friend, f"Friend Number{number}", email, referral_code=code)
    joined = wait_for_mails(machines.smtp, rita_email, "A friend joined", FRIENDS)
    message_ids = {re.search(rb"Message-ID: (\S+)", mail, re.I).group(1) for mail in joined}
    assert len(message_ids) == FRIENDS

    # A board page the first machine rendered is what the second serves, from the cache ...
    visitor = Browser(machines.first, a_new_address())
    assert "Rita R." in visitor.get("/referral/leaderboard").text
    machines.sql("UPDATE users SET display_name = 'Renamed Rita' WHERE email = %s", rita_email)
    assert "Rita R." in visitor.via(machines.second).get("/referral/leaderboard").text
    # ... until a referral counted on either machine starts a new board for both.
    late = Browser(machines.first, a_new_address())
    sign_up(late, "Late Friend", f"late-{secrets.token_hex(3)}@example.org", referral_code=code)
    assert "Renamed Rita" in visitor.via(machines.second).get("/referral/leaderboard").text


def test_a_sign_in_works_and_ends_on_both_machines(machines):
    sam = Browser(machines.first, a_new_address())
    sign_up(sam, "Sam Session", f"sam-{secrets.token_hex(3)}@example.com")
    code = code_of(sam)
    on_second = sam.via(machines.second)
    assert code in on_second.get("/referral/dashboard").text
    copied = Browser(machines.first, a_new_address())  # the same cookie, kept elsewhere
    copied.session.cookies.update(sam.session.cookies)

    answer = on_second.post("/auth/logout", "/referral/dashboard")
    assert answer.status_code == 302
    assert "/auth/login" in copied.get("/referral/dashboard").url


def test_behind_the_proxy_its_forwarded_scheme_is_believed(machines):
    # TRUSTED_PROXY_COUNT=1: the app (not gunicorn, docs/guarantees.md #34) trusts one hop.
    assert scheme_seen(machines.first) == "https"


def wait_for_mails(smtp: SmtpServer, address: str, subject: str, expected: int) -> list[bytes]:
    def mails() -> list[bytes]:
        wanted = f"Subject: {subject}".encode()
        return [mail for mail in smtp.messages_to(address) if wanted in mail]

    deadline = time.monotonic() + WAIT_SECONDS
    while len(mails()) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # a second sender of the same row would have sent its copy by now
    assert len(mails()) == expected, f"{len(mails())} mails to {address}, not {expected}"
    return mails()
