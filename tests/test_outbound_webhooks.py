"""Outbound webhooks against a real HTTP receiver on 127.0.0.1: signed per Standard Webhooks,
retried with backoff (the sweep in eager mode, Celery's countdown in a real worker), failed
after the last attempt, redelivered on demand, and never sent where they must not go."""

import ipaddress
import ssl
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select, update
from standardwebhooks import Webhook

from admin.integrations import services as integrations
from extensions import db
from models import AuditLog, Reward, WebhookDelivery, utcnow
from rewards import ledger, outbound
from rewards.conversions import record_event
from rewards.events import EventIn
from rewards.services import release_held_rewards
from tests import factories
from tests.apps import other_app
from tests.helpers import csrf_token, log_in
from tests.receiver import Receiver as LocalServer
from tests.server import free_port
from tests.workers import running_worker, wait_until

MAX_ATTEMPTS = 3
LATER = timedelta(days=1)  # past any backoff of the first attempts


@pytest.fixture
def config_overrides():
    return {
        "WEBHOOK_ALLOW_PRIVATE_URLS": True,
        "WEBHOOK_MAX_ATTEMPTS": MAX_ATTEMPTS,
        "WEBHOOK_DELIVERY_TIMEOUT_SECONDS": 3,
    }


class Receiver(LocalServer):
    """The webhook endpoint: a local receiver that checks the signatures."""

    def __init__(self, statuses=()):
        super().__init__(statuses, path="/hooks?tenant=7")

    def verified(self, secret: str) -> list[dict]:
        """Every request's payload, each checked with the standardwebhooks library."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.requests]


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def add_endpoint(app, url: str, events=("referral.created",)) -> tuple[int, str]:
    with app.app_context():
        endpoint = integrations.create_endpoint(url, "partner CRM", list(events), True)
        db.session.commit()
        return endpoint.id, endpoint.secret


def deliveries(app) -> list[WebhookDelivery]:
    with app.app_context():
        rows = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        db.session.expunge_all()
        return rows


def sweep(app, now) -> int:
    """What beat (or `flask rewards retry-webhooks`) does; eager: the attempts run at commit."""
    with app.app_context():
        queued = outbound.retry_due(now, MAX_ATTEMPTS)
        db.session.commit()
        return queued


def test_a_signup_through_a_code_sends_a_signed_referral_created(app, receiver, make_participant):
    _, secret = add_endpoint(app, receiver.url)
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])

    [payload] = receiver.verified(secret)  # the first signup referred nobody
    assert payload["type"] == "referral.created"
    data = payload["data"]
    assert data["status"] == "pending" and data["source"] == "code"
    assert data["referrer"] == {"id": alice["id"], "external_id": None}
    assert data["referred"] == {"id": bob["id"], "external_id": None}
    assert data["program"]["name"]
    [(headers, body)] = receiver.requests
    assert alice["email"].encode() not in body and bob["email"].encode() not in body
    assert headers["User-Agent"].startswith("InviteLoop-Webhooks")
    [delivery] = deliveries(app)
    assert delivery.message_id == headers["webhook-id"] and delivery.message_id.startswith("msg_")
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.last_error is None and delivery.delivered_at is not None


def test_a_forged_or_changed_message_fails_the_receivers_check(app, receiver, make_participant):
    _, secret = add_endpoint(app, receiver.url)
    alice = make_participant("Alice Zimmer")
    make_participant("Bob Baker", invited_by=alice["code"])
    [(headers, body)] = receiver.requests
    with pytest.raises(Exception, match="signature"):
        Webhook(outbound.new_signing_secret()).verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(body.replace(b"pending", b"approved"), headers)


def test_a_receiver_answering_500_then_200_gets_the_same_message_again(app, make_participant):
    with Receiver(statuses=[500]) as receiver:
        _, secret = add_endpoint(app, receiver.url)
        alice = make_participant("Alice Zimmer")
        make_participant("Bob Baker", invited_by=alice["code"])
        [delivery] = deliveries(app)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "pending",
            1,
            500,
        )
        assert delivery.last_error == "HTTP 500"

        assert sweep(app, utcnow()) == 0  # its wait is not over yet
        assert sweep(app, utcnow() + LATER) == 1
        first, second = receiver.verified(secret)
    assert first == second
    assert receiver.requests[0][0]["webhook-id"] == receiver.requests[1][0]["webhook-id"]
    [delivery] = deliveries(app)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 2, 200)
    assert delivery.last_error is None
    assert sweep(app, utcnow() + 2 * LATER) == 0  # done: nothing more is sent


def test_the_command_line_sweep_sends_what_is_due(app, runner, make_participant):
    """Without workers, cron runs `flask rewards retry-webhooks` for the later attempts."""
    with Receiver(statuses=[503]) as receiver:
        add_endpoint(app, receiver.url)
        alice = make_participant("Alice Zimmer")
        make_participant("Bob Baker", invited_by=alice["code"])
        assert runner.invoke(args=["rewards", "retry-webhooks"]).output == (
            "Tried 0 webhook delivery(ies) again.\n"  # its wait is not over
        )
        with app.app_context():
            db.session.execute(
                update(WebhookDelivery).values(last_attempt_at=utcnow() - timedelta(hours=1))
            )
            db.session.commit()
        result = runner.invoke(args=["rewards", "retry-webhooks"])
        assert result.output == "Tried 1 webhook delivery(ies) again.\n"
        assert len(receiver.requests) == 2
    assert deliveries(app)[0].status == "succeeded"


def test_a_dead_receiver_ends_failed_after_the_last_attempt_with_the_error(app, make_participant):
    dead = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    add_endpoint(app, dead)
    alice = make_participant("Alice Zimmer")
    make_participant("Bob Baker", invited_by=alice["code"])
    for day in range(1, MAX_ATTEMPTS + 2):
        sweep(app, utcnow() + day * LATER)
    [delivery] = deliveries(app)
    assert (delivery.status, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    assert delivery.last_status_code is None
    assert delivery.last_error.startswith("ConnectionRefusedError")
    assert sweep(app, utcnow() + 10 * LATER) == 0


def test_the_backoff_grows_exponentially():
    waits = [outbound.backoff_seconds(attempts) for attempts in range(1, 10)]
    assert waits[:4] == [5, 20, 80, 320]
    assert waits[-1] == outbound.BACKOFF_MAX_SECONDS


def test_an_event_nobody_subscribed_to_sends_nothing(app, receiver, make_participant):
    add_endpoint(app, receiver.url, events=["reward.paid"])
    disabled, _ = add_endpoint(app, receiver.url, events=["referral.created"])
    with app.app_context():
        integrations.set_endpoint_active(disabled, False)
        db.session.commit()
    alice = make_participant("Alice Zimmer")
    make_participant("Bob Baker", invited_by=alice["code"])
    assert receiver.requests == []
    assert deliveries(app) == []


def test_a_referral_rolled_back_sends_nothing(app, receiver, make_participant):
    add_endpoint(app, receiver.url)
    alice = make_participant("Alice Zimmer")
    with app.app_context():
        from auth.services import register_participant

        register_participant(
            name="Bob Baker",
            email="bob@example.com",
            password=factories.PASSWORD,
            typed_code=alice["code"],
            ip=factories.distinct_ip(),
        )
        db.session.rollback()
    assert receiver.requests == []
    assert deliveries(app) == []


def purchase(email: str, order: str) -> EventIn:
    return EventIn(
        source="api",
        kind="purchase",
        external_id=f"evt-{order}",
        customer_email=email,
        amount=2500,
        currency="USD",
        order_id=order,
    )


def test_qualified_approved_and_paid_events_carry_ids_amounts_and_no_emails(
    app, receiver, make_participant
):
    events = ["referral.qualified", "reward.approved", "reward.paid"]
    _, secret = add_endpoint(app, receiver.url, events=events)
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    with app.app_context():
        record_event(purchase(fred["email"], "order-9"))
        db.session.commit()
        release_held_rewards(utcnow() + timedelta(days=15))
        db.session.commit()
        reward = db.session.scalar(select(Reward).where(Reward.beneficiary_id == rita["id"]))
        ledger.mark_reward_paid(reward, "bank-123", utcnow())
        db.session.commit()
        paid_id = reward.id

    payloads = receiver.verified(secret)
    assert [payload["type"] for payload in payloads] == [
        "referral.qualified",
        "reward.approved",
        "reward.approved",
        "reward.paid",
    ]
    assert payloads[0]["data"]["status"] == "qualified"
    approved = {item["data"]["role"]: item["data"] for item in payloads[1:3]}
    assert approved["referrer"]["amount"] == 1000 and approved["referrer"]["currency"] == "USD"
    assert approved["referee"]["beneficiary"]["id"] == fred["id"]
    paid = payloads[3]["data"]
    assert (paid["id"], paid["status"], paid["amount"]) == (paid_id, "paid", 1000)
    assert paid["conversion"]["order_id"] == "order-9"
    everything = b"".join(body for _, body in receiver.requests)
    assert rita["email"].encode() not in everything and fred["email"].encode() not in everything


def test_redeliver_sends_the_same_message_id_again_and_is_audited(
    app, client, receiver, make_participant
):
    endpoint_id, secret = add_endpoint(app, receiver.url)
    alice = make_participant("Alice Zimmer")
    make_participant("Bob Baker", invited_by=alice["code"])
    [delivery] = deliveries(app)
    with app.app_context():
        admin = factories.staff("admin")
    log_in(client, admin["email"])
    page = f"/admin/integrations/webhooks/{endpoint_id}"
    answer = client.post(
        f"/admin/integrations/deliveries/{delivery.id}/redeliver",
        data={"csrf_token": csrf_token(client, page)},
    )
    assert answer.status_code == 302 and answer.headers["Location"].endswith(page)
    first, second = receiver.requests
    assert first[0]["webhook-id"] == second[0]["webhook-id"] == delivery.message_id
    assert receiver.verified(secret)[0] == receiver.verified(secret)[1]
    [again] = deliveries(app)
    assert (again.status, again.attempts) == ("succeeded", 1)
    assert f"Message {delivery.message_id} queued again." in client.get(page).text
    with app.app_context():
        entry = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "webhook_delivery.redeliver")
        ).one()
        assert entry.actor_id == admin["id"]
        assert entry.before == {"status": "succeeded", "attempts": 1}


def test_a_url_that_turns_private_is_refused_at_delivery(app, receiver, make_participant):
    add_endpoint(app, receiver.url)  # saved while private URLs were allowed
    app.config["WEBHOOK_ALLOW_PRIVATE_URLS"] = False
    alice = make_participant("Alice Zimmer")
    make_participant("Bob Baker", invited_by=alice["code"])
    assert receiver.requests == []
    [delivery] = deliveries(app)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error.startswith("refused: ")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://10.0.0.8/hooks",
        "https://192.168.1.1/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://0.0.0.0/hooks",
        "https://224.0.0.1/hooks",
    ],
)
def test_urls_of_private_addresses_are_refused(url):
    with pytest.raises(outbound.UnsafeUrl, match="non-public address"):
        outbound.check_new_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/hooks", "ftp://93.184.215.14/", "https://user:pw@93.184.215.14/"]
)
def test_plain_http_and_other_forms_are_refused(url):
    with pytest.raises(outbound.UnsafeUrl):
        outbound.check_new_url(url, allow_private=False)


def test_a_public_address_is_accepted():
    url = "https://93.184.215.14:8443/hooks?x=1"
    assert outbound.check_new_url(url, allow_private=False) == url


# A real Celery worker on the local Redis: the retry is an outbox row due after the backoff.


@pytest.mark.server
def test_a_real_worker_retries_a_500_with_backoff_then_succeeds(app, database_url, broker):
    """The web app writes the attempt to the outbox and hints a worker through Redis at commit;
    the worker's first attempt gets 500, it writes the next attempt due in 5 s (and hints
    itself with that countdown), and the second attempt succeeds."""
    with Receiver(statuses=[500]) as receiver:
        _, secret = add_endpoint(app, receiver.url)
        web = {
            "REDIS_URL": broker.url,
            "OUTBOX_DELIVERY": "celery",
            "CELERY_OVERRIDES": {"task_default_queue": broker.queue},
            "WEBHOOK_ALLOW_PRIVATE_URLS": True,
        }
        with other_app(database_url, **web) as web_app, web_app.app_context():
            alice = factories.participant("Alice Zimmer")
            factories.participant("Bob Baker", invited_by=alice["code"])
        assert receiver.requests == []  # queued in Redis, not sent inline
        settings = {"WEBHOOK_ALLOW_PRIVATE_URLS": "true", "WEBHOOK_MAX_ATTEMPTS": "3"}
        with running_worker(database_url, broker, **settings) as worker:
            wait_until(lambda: len(receiver.requests) == 2, worker, "second attempt")
            wait_until(lambda: deliveries(app)[0].status == "succeeded", worker, "success")
            log = worker.log()
    assert "attempt 1: HTTP 500" in log
    first, second = receiver.verified(secret)
    assert first == second
    [delivery] = deliveries(app)
    assert (delivery.attempts, delivery.last_status_code) == (2, 200)


# TLS: the pinned connection still checks the certificate against the URL's host name.


def self_signed(directory) -> tuple[str, str]:
    """A certificate for `localhost` and 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = utcnow()
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_receiver(tmp_path):
    cert, key = self_signed(tmp_path)
    with Receiver() as receiver:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
        receiver.url = receiver.url.replace("http://127.0.0.1", "https://localhost")
        yield receiver, cert


def test_https_delivery_needs_a_certificate_trusted_for_the_host(
    app, tls_receiver, make_participant, monkeypatch
):
    receiver, cert = tls_receiver
    _, secret = add_endpoint(app, receiver.url)
    alice = make_participant("Alice Zimmer")
    make_participant("Bob Baker", invited_by=alice["code"])
    assert receiver.requests == []  # a certificate nobody vouches for: refused
    [delivery] = deliveries(app)
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error

    monkeypatch.setenv("SSL_CERT_FILE", cert)  # now the system trusts it
    sweep(app, utcnow() + LATER)
    [payload] = receiver.verified(secret)
    assert payload["type"] == "referral.created"
    assert receiver.requests[0][0]["Host"].startswith("localhost:")
    assert deliveries(app)[0].status == "succeeded"
