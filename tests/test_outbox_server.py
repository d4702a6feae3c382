"""Nothing promised is lost, and nobody waits for it (issue 12, rows 3 and 8), against a real
gunicorn in the embedded mode (no broker: the in-process sender).

- A hanging webhook receiver no longer holds up a referred signup or /health; its deliveries
  go out once it answers again.
- A phone code is texted within a fraction of a second (the sender is woken by the commit),
  and a hanging SMS provider holds up no request.
- A password reset answers in the same time for a registered and an unknown address, also
  while the mail server hangs; with the mail server refusing connections the link is kept and
  mailed once it is back.
docs/guarantees.md no. 20 and 21.
"""

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select, update

from admin.integrations import services as integrations
from extensions import db
from models import OutboxMessage, WebhookDelivery, utcnow
from tests import factories
from tests.helpers import CSRF_FIELD
from tests.receiver import Receiver
from tests.server import GENEROUS_LIMITS, free_port, running_server, shared_servers
from tests.smtp_server import SmtpServer

pytestmark = [pytest.mark.server]

# Old answers: 31 s for one referred signup with 3 hanging receivers, 10.5 s for a reset
# with a hanging SMTP server. Now everything a person waits for is a few database writes
# (and a signup's password hash, which takes its share of a busy 2-core machine).
PROMPT_SECONDS = 5.0
DELIVERY_WAIT_SECONDS = 40.0
ROUNDS = 9


def settings(**extra) -> dict[str, str]:
    return {
        "OUTBOX_POLL_SECONDS": "1",
        "PASSWORD_RESET_IP_LIMITS": GENEROUS_LIMITS,
        "PASSWORD_RESET_EMAIL_LIMITS": GENEROUS_LIMITS,
        **extra,
    }


def smtp(port: int) -> dict[str, str]:
    return {
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(port),
        "MAIL_TIMEOUT": "1",
    }


def form_token(browser: requests.Session, url: str) -> str:
    page = browser.get(url, timeout=10)
    assert page.status_code == 200, page.text[:300]
    return CSRF_FIELD.search(page.text).group(1)


def timed_post(browser: requests.Session, url: str, data: dict) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = browser.post(url, data=data, timeout=30, allow_redirects=False)
    return time.monotonic() - started, response


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {DELIVERY_WAIT_SECONDS:.0f} s")
        time.sleep(0.2)


def outbox_statuses(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage.status).order_by(OutboxMessage.id)))


def make_due_now(app) -> None:
    """What staff's "retry now" does for every waiting row: skip the rest of the backoff."""
    with app.app_context():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(next_attempt_at=utcnow())
        )
        db.session.commit()


# --- row 3: hanging webhook receivers ------------------------------------------------------


def sign_up(base_url: str, code: str, number: int) -> float:
    with requests.Session() as browser:
        token = form_token(browser, f"{base_url}/auth/signup")
        elapsed, response = timed_post(
            browser,
            f"{base_url}/auth/signup",
            {
                "csrf_token": token,
                "name": f"Friend Number{number}",
                "email": f"friend{number}@example.com",
                "password": "a long passphrase for hanging hooks",
                "referral_code": code,
            },
        )
    assert response.status_code == 302, response.text[:300]
    return elapsed


def health_time(base_url: str) -> float:
    started = time.monotonic()
    assert requests.get(f"{base_url}/health", timeout=30).status_code == 200
    return time.monotonic() - started


def test_hanging_webhook_receivers_hold_up_no_signup_and_get_every_event_later(app, database_url):
    with Receiver(delay=30) as receiver:  # answers nothing for 30 s: it hangs
        with app.app_context():
            for number in range(3):
                integrations.create_endpoint(
                    f"{receiver.url}hook{number}", f"partner {number}", ["referral.created"], True
                )
            db.session.commit()
            rita = factories.participant("Rita Referrer")
        environment = settings(
            WEBHOOK_ALLOW_PRIVATE_URLS="true", WEBHOOK_DELIVERY_TIMEOUT_SECONDS="1"
        )
        with running_server(database_url, **environment) as base_url:
            one = sign_up(base_url, rita["code"], 0)
            with ThreadPoolExecutor(max_workers=4) as pool:
                signups = [pool.submit(sign_up, base_url, rita["code"], n) for n in (1, 2, 3)]
                health = pool.submit(health_time, base_url)
                together = [future.result() for future in signups]
                health_seconds = health.result()
            print(f"signup {one:.2f} s; 3 at once {together}; /health {health_seconds:.2f} s")
            assert one < PROMPT_SECONDS, f"one referred signup took {one:.1f} s"
            assert max(together) < PROMPT_SECONDS, f"signups took {together}"
            assert health_seconds < PROMPT_SECONDS, f"/health took {health_seconds:.1f} s"
            # The receivers were tried (in the background) and timed out.
            wait_for(lambda: len(receiver.requests) >= 12, "attempt at each delivery")
            receiver.delay = 0  # it answers again
            make_due_now(app)

            def all_delivered() -> bool:
                with app.app_context():
                    statuses = db.session.scalars(select(WebhookDelivery.status)).all()
                return len(statuses) == 12 and set(statuses) == {"succeeded"}

            wait_for(all_delivered, "successful delivery of all 12")
    assert "dead" not in outbox_statuses(app)


# --- row 8: resets that give nothing away, and keep their promise ------------------------


def reset_times(base_url: str, addresses: list[str]) -> dict[str, list[float]]:
    times = {address: [] for address in addresses}
    with requests.Session() as browser:
        token = form_token(browser, f"{base_url}/auth/reset")
        for _ in range(ROUNDS):
            for address in addresses:
                elapsed, response = timed_post(
                    browser, f"{base_url}/auth/reset", {"csrf_token": token, "email": address}
                )
                assert response.status_code == 200
                times[address].append(elapsed)
    return times


def assert_alike(times: dict[str, list[float]], known: str, unknown: str) -> None:
    medians = {address: statistics.median(values) for address, values in times.items()}
    print(f"reset medians: registered {medians[known]:.4f} s, unknown {medians[unknown]:.4f} s")
    assert medians[known] < 0.5
    # Both do the same work (one outbox row); what is left is the machine's noise.
    assert abs(medians[known] - medians[unknown]) < 0.03, medians


@pytest.fixture(scope="class")
def mail_and_servers():
    """A mail server and a server per database on it, for the class's tests only (a server
    left running would deliver the next tests' mail): each test sets the mail server's mode
    and starts with no messages and emptied tables."""
    with SmtpServer("accept") as mail_server, shared_servers() as servers:
        yield mail_server, servers


@pytest.fixture
def mail_server(mail_and_servers):
    mail_server, _ = mail_and_servers
    mail_server.mode = "accept"
    mail_server.messages.clear()
    return mail_server


@pytest.fixture
def reset_server(mail_and_servers, mail_server, database_url) -> str:
    """The base URL of the class's server on this database, mailing through `mail_server`."""
    _, servers = mail_and_servers
    return servers.base_url(database_url, **settings(**smtp(mail_server.port)))


class TestResetsOnOneServer:
    """Timed resets, the mail server calm or hanging: neither needs a fresh server."""

    def test_a_reset_takes_as_long_for_a_registered_address_as_for_an_unknown_one(
        self, app, mail_server, reset_server
    ):
        with app.app_context():
            alice = factories.participant("Alice Zimmer")
        unknown = "nobody.here@example.com"
        calm = reset_times(reset_server, [alice["email"], unknown])
        wait_for(lambda: len(mail_server.messages) == ROUNDS, "reset mails")
        assert_alike(calm, alice["email"], unknown)
        assert len(mail_server.messages_to(alice["email"])) == ROUNDS
        assert mail_server.messages_to(unknown) == []

    def test_a_hanging_mail_server_slows_no_reset_and_the_link_arrives_once_it_answers(
        self, app, mail_server, reset_server
    ):
        with app.app_context():
            alice = factories.participant("Alice Zimmer")
        unknown = "nobody.here@example.com"
        mail_server.mode = "hang"
        hanging = reset_times(reset_server, [alice["email"], unknown])
        assert mail_server.messages == []
        mail_server.mode = "accept"
        make_due_now(app)
        wait_for(lambda: len(mail_server.messages) >= ROUNDS, "reset mails after recovery")
        assert_alike(hanging, alice["email"], unknown)
        assert len(mail_server.messages_to(alice["email"])) == ROUNDS
        assert mail_server.messages_to(unknown) == []


def test_with_the_mail_server_refusing_the_link_is_kept_and_mailed_when_it_is_back(
    app, database_url
):
    with app.app_context():
        alice = factories.participant("Alice Zimmer")
    port = free_port()  # nothing listens: connections are refused
    with running_server(database_url, **settings(**smtp(port))) as base_url:
        with requests.Session() as browser:
            token = form_token(browser, f"{base_url}/auth/reset")
            _, page = timed_post(
                browser, f"{base_url}/auth/reset", {"csrf_token": token, "email": alice["email"]}
            )
        assert page.status_code == 200

        def failed_once() -> bool:
            with app.app_context():
                row = db.session.scalar(select(OutboxMessage))
                # A sender counts the attempt when it claims the row, then writes the error.
                return row is not None and row.last_error is not None

        wait_for(failed_once, "first attempt")
        with app.app_context():
            row = db.session.scalar(select(OutboxMessage))
            assert (row.job, row.status) == ("auth.send_reset_link", "pending")
            assert "ConnectionRefusedError" in row.last_error
        with SmtpServer("accept", port=port) as mail_server:
            make_due_now(app)
            wait_for(lambda: mail_server.messages, "the reset mail")
    [message] = mail_server.messages
    assert f"To: {alice['email']}".encode() in message
    # The link points where the person asked (the request's own host, checked back then).
    assert f"{base_url}/auth/reset/".encode() in message
    assert outbox_statuses(app) == ["sent"]


# --- phone codes: in seconds, and never lost to a hanging provider ------------------------


def ask_for_code(base_url: str, number: str) -> float:
    with requests.Session() as browser:
        token = form_token(browser, f"{base_url}/auth/phone")
        elapsed, response = timed_post(
            browser, f"{base_url}/auth/phone", {"csrf_token": token, "phone": number}
        )
    assert response.status_code == 302, response.text[:300]
    return elapsed


def test_a_code_is_texted_within_seconds_and_a_hanging_provider_holds_up_nobody(app, database_url):
    with Receiver() as provider:
        environment = settings(
            SMS_BACKEND="http",
            SMS_HTTP_URL=provider.url,
            SMS_HTTP_TIMEOUT_SECONDS="1",
            PHONE_CODE_NUMBER_LIMITS=GENEROUS_LIMITS,
            PHONE_CODE_IP_LIMITS=GENEROUS_LIMITS,
        )
        with running_server(database_url, **environment) as base_url:
            started = time.monotonic()
            ask_for_code(base_url, "+14155550132")
            wait_for(lambda: provider.requests, "text")
            arrived = time.monotonic() - started
            print(f"code texted {arrived:.2f} s after the request was sent")
            assert arrived < PROMPT_SECONDS / 2  # the sender was woken by the commit

            provider.delay = 30  # the provider hangs
            answered = ask_for_code(base_url, "+14155550199")
            assert answered < PROMPT_SECONDS, f"the code page took {answered:.1f} s"
            wait_for(lambda: len(provider.requests) >= 2, "attempt at the second text")
            provider.delay = 0
            make_due_now(app)
            wait_for(lambda: len(provider.requests) >= 3, "second text after recovery")
    assert b"+14155550199" in provider.requests[-1][1]
