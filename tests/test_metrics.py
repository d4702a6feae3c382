"""/metrics as Prometheus scrapes it: the series real traffic moves, the bearer token, the
alert rules and dashboard shipped in deploy/, and several gunicorn workers adding up
(docs/guarantees.md #36)."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from admin.integrations import services as integrations
from core import outbox
from extensions import db
from models import OutboxMessage, utcnow
from rewards import outbound
from tests.apps import other_app
from tests.events_api import SECRET, purchase, signed_delivery
from tests.helpers import csrf_token
from tests.receiver import Receiver
from tests.server import free_port, running_server

ROOT = Path(__file__).resolve().parent.parent
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "inviteloop.json"
TOKEN = "metrics-token-for-tests-0123456789"
EVENTS_ENDPOINT = "rewards.webhooks.receive_event"


@pytest.fixture
def config_overrides():
    return {"EVENTS_WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE_URLS": True}


def scrape(client, token: str | None = None) -> dict:
    """Every sample of one scrape: {(name, sorted label pairs): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return samples_of(response.get_data(as_text=True))


def samples_of(text: str) -> dict:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def post_event(client, event: dict, body: bytes | None = None):
    signed_body, headers = signed_delivery(event)
    return client.post("/api/v1/events", data=body or signed_body, headers=headers)


def sign_up_through_link(client, code: str, name: str, email: str):
    assert client.get(f"/r/{code}").status_code == 302
    data = {
        "csrf_token": csrf_token(client, "/auth/signup"),
        "name": name,
        "email": email,
        "password": "correct horse battery staple",
    }
    assert client.post("/auth/signup", data=data).status_code == 302


def test_traffic_moves_the_counters_and_the_state_is_read_at_scrape(app, make_participant):
    rita = make_participant("Rita Referrer")
    visitor, sender, prometheus = app.test_client(), app.test_client(), app.test_client()
    before = scrape(prometheus)

    sign_up_through_link(visitor, rita["code"], "Fred Friend", "fred@example.com")
    event = purchase("fred@example.com", order="order-7", amount=4000)
    assert post_event(sender, event).get_json()["outcome"] == "accepted"
    assert post_event(sender, event).get_json()["outcome"] == "duplicate"
    assert post_event(sender, event, body=b'{"forged": true}').status_code == 401

    after = scrape(prometheus)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("inviteloop_clicks_total") == 1
    assert moved("inviteloop_signups_total") == 1
    assert moved("inviteloop_events_total", source="api", outcome="accepted") == 1
    assert moved("inviteloop_events_total", source="api", outcome="duplicate") == 1
    assert moved("inviteloop_events_total", source="api", outcome="rejected") == 1
    ok = {"endpoint": EVENTS_ENDPOINT, "method": "POST"}
    assert moved("inviteloop_http_requests_total", **ok, status="200") == 2
    assert moved("inviteloop_http_requests_total", **ok, status="401") == 1
    assert moved("inviteloop_http_request_duration_seconds_count", endpoint=EVENTS_ENDPOINT) == 3
    # Requests are labelled by route, never by the code in the path.
    assert not [key for key in after if rita["code"] in repr(key)]
    # The state, read from this test's database at scrape time.
    assert value(after, "inviteloop_referrals", status="qualified") == 1
    # A purchase seconds after the click is held for review (docs/guarantees.md #27).
    assert value(after, "inviteloop_rewards", status="review", kind="credit") == 2
    amount = {"status": "review", "kind": "credit", "currency": "USD"}
    assert value(after, "inviteloop_rewards_amount", **amount) == 1500
    assert value(after, "inviteloop_health_status", status="ok") == 1


def test_a_failed_signup_is_not_counted(app, make_participant):
    make_participant("Ann Taken", email="ann@example.com")
    client = app.test_client()
    before = value(scrape(client), "inviteloop_signups_total")
    data = {
        "csrf_token": csrf_token(client, "/auth/signup"),
        "name": "Ann Again",
        "email": "ANN@example.com",
        "password": "correct horse battery staple",
    }
    assert client.post("/auth/signup", data=data).status_code == 409  # already registered
    assert value(scrape(client), "inviteloop_signups_total") == before


def test_the_outbox_depth_and_the_age_of_its_oldest_due_message(app, client):
    with app.app_context():
        db.session.add(
            OutboxMessage(
                job="mail.send",
                args=["someone@example.com"],
                status="pending",
                attempts=3,
                next_attempt_at=utcnow() - timedelta(minutes=20),
                created_at=utcnow() - timedelta(minutes=30),
            )
        )
        db.session.commit()
    samples = scrape(client)
    assert value(samples, "inviteloop_outbox_messages", status="pending") == 1
    assert value(samples, "inviteloop_outbox_messages", status="dead") == 0
    assert 20 * 60 <= value(samples, "inviteloop_outbox_oldest_due_seconds") < 25 * 60
    # The same backlog makes /health degraded (OUTBOX_BACKLOG_SECONDS), and says so here.
    assert value(samples, "inviteloop_health_status", status="degraded") == 1


def test_failed_jobs_and_webhook_attempts_are_counted(app, client, make_participant):
    before = scrape(client)
    with app.app_context():
        outbox.add("no.such.job", ["x"])
        db.session.commit()  # inline delivery: the job is run and fails at once
    with Receiver(statuses=[500]) as receiver:  # answers 500 once, then 200
        with app.app_context():
            integrations.create_endpoint(receiver.url, "CRM", ["referral.created"], True)
            db.session.commit()
        rita = make_participant("Rita Referrer")
        make_participant("Fred Friend", invited_by=rita["code"])  # referral.created: 500
        with app.app_context():
            outbound.retry_due(utcnow() + timedelta(days=1), app.config["WEBHOOK_MAX_ATTEMPTS"])
            db.session.commit()  # the second attempt: 200
        assert len(receiver.requests) == 2
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("inviteloop_job_failures_total", job="no.such.job") == 1
    assert moved("inviteloop_webhook_deliveries_total", result="retrying") == 1
    assert moved("inviteloop_webhook_deliveries_total", result="succeeded") == 1
    assert moved("inviteloop_webhook_deliveries_total", result="failed") == 0


def test_with_the_database_down_the_counters_are_still_scraped():
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/inviteloop"
    unmatched = {"endpoint": "unmatched", "method": "GET", "status": "404"}
    with other_app(unreachable, HEALTH_PROBE_TIMEOUT_SECONDS=1) as app:
        client = app.test_client()
        before = value(scrape(client), "inviteloop_http_requests_total", **unmatched)
        client.get("/no-such-page")
        samples = scrape(client)
    assert value(samples, "inviteloop_http_requests_total", **unmatched) == before + 1
    assert value(samples, "inviteloop_health_status", status="error") == 1
    assert not [key for key in samples if key[0] == "inviteloop_referrals"]


def test_with_a_token_only_its_bearer_may_scrape(app, client):
    app.config["METRICS_TOKEN"] = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert wrong.status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert "inviteloop_http_requests_total" in repr(scrape(client, TOKEN))


def test_without_a_token_production_has_no_metrics_page(app, client):
    app.config["APP_ENV"] = "production"
    app.config["METRICS_TOKEN"] = None
    response = client.get("/metrics")
    assert response.status_code == 404
    assert "inviteloop_" not in response.get_data(as_text=True)


# --- the example alert rules and dashboard use only series a scrape has ----------------------


def names_in_a_scrape(text: str) -> set[str]:
    """Every series name a query may use: samples, plus families with no sample yet (a
    labelled counter nothing has moved), with their type's suffixes."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def queried_names(expressions: list[str]) -> set[str]:
    return {name for text in expressions for name in re.findall(r"inviteloop_\w+", text)}


def dashboard_expressions(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for child in node.values() for e in dashboard_expressions(child)]
    if isinstance(node, list):
        return [e for child in node for e in dashboard_expressions(child)]
    return []


def test_alert_rules_and_dashboard_query_only_series_that_exist(app, client):
    text = client.get("/metrics").get_data(as_text=True)
    exposed = names_in_a_scrape(text)

    rules = yaml.safe_load(ALERT_RULES.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in alerts} >= {
        "InviteLoopEventsRejected",
        "InviteLoopEventsDuplicated",
        "InviteLoopOutboxBacklog",
        "InviteLoopJobsFailing",
        "InviteLoopHigh5xxRate",
        "InviteLoopHealthDegraded",
    }
    assert all(rule["annotations"]["summary"] for rule in alerts)
    used_by_alerts = queried_names([rule["expr"] for rule in alerts])

    dashboard = json.loads(DASHBOARD.read_text())
    used_by_dashboard = queried_names(dashboard_expressions(dashboard))

    assert len(used_by_dashboard) >= 10
    assert used_by_alerts - exposed == set()
    assert used_by_dashboard - exposed == set()


# --- several gunicorn workers, one set of numbers ---------------------------------------------


@pytest.mark.server
def test_every_worker_reports_the_requests_of_all_workers(sqlite_url, tmp_path):
    """Two workers, each its own process: whichever answers the scrape reports every
    request either of them served (PROMETHEUS_MULTIPROC_DIR)."""
    with running_server(sqlite_url, workers=2, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)) as url:
        for _ in range(40):  # a connection each: the workers take turns accepting
            requests.get(f"{url}/no-such-page", timeout=10, headers={"Connection": "close"})
        unmatched = {"endpoint": "unmatched", "method": "GET", "status": "404"}
        seen = set()
        for _ in range(6):
            text = requests.get(f"{url}/metrics", timeout=10, headers={"Connection": "close"}).text
            seen.add(value(samples_of(text), "inviteloop_http_requests_total", **unmatched))
        assert seen == {40}
    workers_with_counts = {path.name for path in tmp_path.glob("counter_*.db")}
    assert len(workers_with_counts) >= 2
