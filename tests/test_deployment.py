"""The production topology, with the very commands compose.yaml runs (tests/deployment.py;
tests/test_compose.py checks compose.yaml against them): the migrate step on a fresh PostgreSQL
database, gunicorn with production settings and gunicorn.conf.py, a Celery worker and beat as
separate processes, Redis, and an SMTP server. A referral is walked over HTTP through a TLS
proxy's headers: a friend signs up through a link, the shop sends a signed purchase, beat
releases the reward once its hold has ended, and the worker mails both news to the referrer.
docs/guarantees.md #34."""

import re
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import databases
from tests.deployment import (
    AFTER_MIGRATE,
    METRICS_FOLDERS,
    Browser,
    Running,
    command_environment,
    metrics_setting,
    run_once,
    running,
)
from tests.events_api import SECRET, purchase, signed_delivery
from tests.server import SERVER_SECRET, free_port
from tests.smtp_server import SmtpServer
from tests.workers import redis_broker

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.postgres_only]

WAIT_SECONDS = 30.0
MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
ADMIN = {"ADMIN_EMAIL": "owner@example.com", "ADMIN_PASSWORD": "owner's first passphrase"}
PASSWORD = "a long friendly passphrase"
METRICS_TOKEN = "metrics-token-for-the-topology-test"
# What a previous run of the container left: not counter files any process could read.
LEFT_OVER = "counter_1.db"


@dataclass
class Installation:
    base_url: str
    database_url: str
    smtp: SmtpServer
    services: list[Running]
    metrics_folder: Path

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.log()[-3000:]}" for s in self.services)

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            stopped = [s.name for s in self.services if s.process.poll() is not None]
            if stopped or time.monotonic() > deadline:
                pytest.fail(f"no {what} ({', '.join(stopped) or 'timed out'}):\n{self.logs()}")
            time.sleep(0.1)

    def sql(self, statement: str, *values):
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            cursor = connection.execute(statement, values)
            return cursor.fetchall() if cursor.description else None


def production_settings(database_url: str, broker, smtp: SmtpServer, port: int, folder) -> dict:
    """What an operator's .env holds (compose adds DATABASE_URL and REDIS_URL), with short
    sweep intervals so beat's work shows within seconds."""
    return command_environment(
        APP_ENV="production",
        SECRET_KEY=SERVER_SECRET,
        PUBLIC_URL=f"https://127.0.0.1:{port}",
        DATABASE_URL=database_url,
        REDIS_URL=broker.url,
        CELERY_DEFAULT_QUEUE=broker.queue,  # a queue of this test's own on the shared Redis
        TRUSTED_PROXY_COUNT="1",
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp.port),
        MAIL_TIMEOUT="5",
        EVENTS_WEBHOOK_SECRET=SECRET,
        METRICS_TOKEN=METRICS_TOKEN,
        REWARDS_SWEEP_SECONDS="1",
        OUTBOX_SWEEP_SECONDS="1",
        WEB_CONCURRENCY="1",  # one worker process (and its threads) is enough here
        CELERY_BEAT_SCHEDULE=str(folder / "beat-schedule"),
        # Where compose publishes port 8000, the test binds a free port of its own.
        GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}",
    )


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deployment")
    try:
        database_url = databases.create_postgres_database()
    except Exception as error:  # any connection problem: skip or fail, with the reason
        databases.service_missing("PostgreSQL", error)
    try:
        with redis_broker() as broker, SmtpServer() as smtp, ExitStack() as services:
            port = free_port()
            env = production_settings(database_url, broker, smtp, port, folder)
            migrate = run_once("migrate", {**env, **ADMIN}, timeout=120)
            assert migrate.returncode == 0, migrate.stdout + migrate.stderr
            assert "Admin owner@example.com created." in migrate.stdout
            metrics_folder = folder / "metrics"
            for name in METRICS_FOLDERS:
                left_by_last_run = Path(metrics_setting(name, str(metrics_folder))[MULTIPROC])
                left_by_last_run.mkdir(parents=True, exist_ok=True)
                (left_by_last_run / LEFT_OVER).write_bytes(b"not a counter file")
            started = [
                services.enter_context(
                    running(n, {**env, **metrics_setting(n, str(metrics_folder))}, folder)
                )
                for n in AFTER_MIGRATE
            ]
            services.callback(stop_together, started)
            found = Installation(
                f"http://127.0.0.1:{port}", database_url, smtp, started, metrics_folder
            )
            found.wait_for(lambda: healthy(found.base_url), "answer 200 from /health")
            yield found
    finally:
        databases.drop_postgres_database(database_url)


def stop_together(services: list[Running]) -> None:
    """SIGTERM to all three at once; each is then awaited (and killed if it lingers)."""
    for service in services:
        service.process.terminate()


def healthy(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def sign_up(browser: Browser, path: str, name: str, email: str, **fields) -> None:
    answer = browser.submit(path, name=name, email=email, password=PASSWORD, **fields)
    assert answer.status_code == 302, re.sub(r"<[^>]+>|\s+", " ", answer.text)[-1500:]


def mails_to(installation: Installation, address: str, subject: str) -> list[bytes]:
    return [
        message
        for message in installation.smtp.messages_to(address)
        if f"Subject: {subject}".encode() in message
    ]


def test_a_referral_goes_round_the_production_processes(installation):
    referrer = Browser(installation.base_url, "203.0.113.10")
    sign_up(referrer, "/auth/signup", "Rita Referrer", "rita@example.com")
    dashboard = referrer.get("/referral/dashboard")
    code = re.search(r"/r/([A-Z0-9]{6,8})\b", dashboard.text).group(1)

    # A friend opens the link on another network and signs up with the code it filled in.
    friend = Browser(installation.base_url, "198.51.100.20")
    signup_page = friend.get(f"/r/{code}")
    assert signup_page.url.endswith(f"/auth/signup?ref={code}")
    sign_up(
        friend, f"/auth/signup?ref={code}", "Fred Friend", "fred@example.org", referral_code=code
    )
    installation.wait_for(
        lambda: mails_to(installation, "rita@example.com", "A friend joined"),
        "'friend joined' email from the worker",
    )

    # The click was queued in Redis; the worker moves it to the database within seconds.
    installation.wait_for(
        lambda: installation.sql("SELECT count(*) FROM clicks")[0][0] == 1,
        "click moved from the queue by the worker",
    )
    # An hour later (no "purchase seconds after the click" flag) the shop reports an order.
    installation.sql("UPDATE clicks SET created_at = created_at - interval '1 hour'")
    body, headers = signed_delivery(purchase("fred@example.org", "order-1", 2500))
    answer = requests.post(
        f"{installation.base_url}/api/v1/events", data=body, headers=headers, timeout=30
    )
    assert (answer.status_code, answer.json()["outcome"]) == (200, "accepted")
    assert 'badge text-bg-secondary">On hold<' in referrer.get("/rewards/").text

    # The 14 days of the hold pass; beat's sweep has the worker approve and announce it.
    installation.sql("UPDATE rewards SET available_at = now() - interval '1 second'")
    installation.wait_for(
        lambda: mails_to(installation, "rita@example.com", "Your reward of $10.00 is approved"),
        "'reward approved' email after beat's sweep",
    )
    ledger = referrer.get("/rewards/").text
    assert 'badge text-bg-success">Available<' in ledger
    assert 'badge text-bg-secondary">On hold<' not in ledger
    statuses = installation.sql("SELECT DISTINCT status FROM rewards")
    assert statuses == [("approved",)]


def test_the_administrator_from_the_environment_can_log_in(installation):
    staff = Browser(installation.base_url, "192.0.2.30")
    answer = staff.submit(
        "/auth/login", email=ADMIN["ADMIN_EMAIL"], password=ADMIN["ADMIN_PASSWORD"]
    )
    assert answer.status_code == 302
    assert staff.get("/admin/").status_code == 200


def scrape(installation: Installation) -> dict:
    answer = requests.get(
        f"{installation.base_url}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text[:500]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_one_scrape_counts_the_web_servers_and_the_workers_processes(installation):
    """/metrics on the web server adds up the counters of its gunicorn workers and of the
    Celery worker's processes (their shared volume in compose.yaml), and what a previous run
    left there was cleared before they started (docs/guarantees.md #36)."""
    for name in METRICS_FOLDERS:
        own_folder = Path(metrics_setting(name, str(installation.metrics_folder))[MULTIPROC])
        assert not (own_folder / LEFT_OVER).exists(), name
    # A job no version of the app knows, due now: the worker's outbox sweep runs it, it fails.
    installation.sql(
        "INSERT INTO outbox_messages (job, args, status, attempts, next_attempt_at, created_at)"
        " VALUES ('no.such.job', '[]', 'pending', 0, now() - interval '1 second', now())"
    )
    unmatched = (("endpoint", "unmatched"), ("method", "GET"), ("status", "404"))
    for _ in range(3):
        assert requests.get(f"{installation.base_url}/no-such-page", timeout=10).status_code == 404
    failed_job = ("inviteloop_job_failures_total", (("job", "no.such.job"),))
    installation.wait_for(
        lambda: scrape(installation).get(failed_job, 0) >= 1, "failed job in web's /metrics"
    )
    samples = scrape(installation)
    assert samples[("inviteloop_http_requests_total", unmatched)] >= 3
    assert samples[("inviteloop_outbox_messages", (("status", "pending"),))] >= 0
    worker_folder = Path(metrics_setting("worker", str(installation.metrics_folder))[MULTIPROC])
    assert list(worker_folder.glob("counter_*.db")), "the worker's counts are in its own folder"
    assert list(installation.metrics_folder.glob("counter_*.db")), "and web's in the shared one"
    refused = requests.get(f"{installation.base_url}/metrics", timeout=10)
    assert refused.status_code == 401
