"""Background jobs: emails leave only after their transaction commits (through the outbox), a
real Celery worker on Redis sends them, the periodic sweeps are scheduled, and a flaky mail
server gets retried. The outbox's own guarantees: test_outbox*.py."""

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core import outbox
from core.jobs import enqueue
from core.mail import send_email
from extensions import db
from models import Conversion, OutboxMessage, Referral, Reward, User, utcnow
from referral.services import default_program
from rewards.notifications import friend_joined, reward_approved
from rewards.tasks import release_held
from tests import factories
from tests.apps import other_app
from tests.helpers import take_outbox
from tests.smtp_server import SmtpServer
from tests.workers import queue_job, running_celery, running_worker, wait_until

PUBLIC_URL = "https://refer.example.com"
SWEEP_SECONDS = 120
ANN = "ann.lee@example.com"
HOLD = timedelta(days=14)
_orders = itertools.count(1)


@pytest.fixture
def config_overrides():
    return {
        "MAIL_BACKEND": "locmem",
        "PUBLIC_URL": PUBLIC_URL,
        "REWARDS_SWEEP_SECONDS": SWEEP_SECONDS,
    }


# The tests' inline delivery: the job runs right after the commit, and only then.


def test_an_email_queued_in_a_transaction_that_rolls_back_is_never_sent(app):
    with app.app_context():
        db.session.add(User(name="Ann Lee", email=ANN))
        enqueue(send_email, ANN, "Welcome", "Hello Ann")
        db.session.rollback()
        db.session.commit()  # a later transaction does not pick the dropped job up
        assert db.session.scalar(select(User).where(User.name == "Ann Lee")) is None
    assert take_outbox(app) == []


def test_an_email_queued_in_a_transaction_that_commits_is_sent_once_after_it(app):
    with app.app_context():
        db.session.add(User(name="Ann Lee", email=ANN))
        enqueue(send_email, ANN, "Welcome", "Hello Ann")
        assert take_outbox(app) == []  # not while the transaction is open
        db.session.commit()
        db.session.commit()
    [message] = take_outbox(app)
    assert (message.to, message.subject, message.body) == (
        [ANN],
        "Welcome",
        "Hello Ann",
    )
    assert message.from_email == app.config["MAIL_DEFAULT_SENDER"]


def test_a_job_runs_with_the_settings_of_the_app_that_queued_it(app, database_url):
    with other_app(database_url, MAIL_BACKEND="locmem") as newer:
        with app.app_context():
            enqueue(send_email, ANN, "Welcome", "Hello Ann")
            db.session.commit()
        assert take_outbox(newer) == []
    assert len(take_outbox(app)) == 1


# The emails themselves.


@pytest.fixture
def alice_and_bob(app, make_participant):
    """Alice, and Bob who joined through her code; any email the signup sent is dropped."""
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    take_outbox(app)
    return alice, bob


def test_the_referrer_hears_that_a_friend_joined_without_seeing_the_friends_address(
    app, alice_and_bob
):
    alice, bob = alice_and_bob
    with app.app_context():
        friend_joined(factories.referral_of(bob["id"]))
        assert take_outbox(app) == []
        db.session.commit()
    [message] = take_outbox(app)
    assert message.to == [alice["email"]]
    assert message.subject == "A friend joined InviteLoop through you"
    assert "Bob B. (b***@example.com) just joined InviteLoop" in message.body
    assert bob["email"] not in message.body
    assert f"{PUBLIC_URL}/referral/dashboard" in message.body


def test_signing_up_through_a_code_emails_the_referrer_once(app, make_participant):
    alice = make_participant("Alice Zimmer")
    take_outbox(app)
    make_participant("Bob Baker", invited_by=alice["code"])
    [message] = take_outbox(app)
    assert (message.to, message.subject) == (
        [alice["email"]],
        "A friend joined InviteLoop through you",
    )


@pytest.mark.parametrize("status", ["review", "rejected"])
def test_no_friend_joined_email_for_a_referral_that_does_not_count(app, alice_and_bob, status):
    _, bob = alice_and_bob
    with app.app_context():
        referral = factories.referral_of(bob["id"])
        referral.status, referral.reason = status, "same_device"
        friend_joined(referral)
        db.session.commit()
    assert take_outbox(app) == []


def test_no_email_for_a_participant_without_an_address(app, alice_and_bob):
    alice, bob = alice_and_bob
    with app.app_context():
        db.session.get(User, alice["id"]).email = None
        friend_joined(factories.referral_of(bob["id"]))
        db.session.commit()
    assert take_outbox(app) == []


def test_without_public_url_the_link_comes_from_the_request_or_is_left_out(app, alice_and_bob):
    _, bob = alice_and_bob
    app.config["PUBLIC_URL"] = None
    with app.test_request_context(base_url="http://shop.example.org"):
        friend_joined(factories.referral_of(bob["id"]))
        db.session.commit()
    with app.app_context():  # a worker or the CLI: no request to take the host from
        friend_joined(factories.referral_of(bob["id"]))
        db.session.commit()
    from_request, from_worker = (message.body for message in take_outbox(app))
    assert "http://shop.example.org/referral/dashboard" in from_request
    assert "http://" not in from_worker
    assert "Sign in to InviteLoop to see everyone you have invited" in from_worker


def add_reward(beneficiary: dict, referral: Referral | None, **fields) -> Reward:
    """A ledger entry with the conversion it came from, as the rewards engine writes them."""
    conversion = Conversion(
        source="manual",
        kind="purchase",
        external_id=f"order-{next(_orders)}",
        participant_id=referral.referred_id if referral else beneficiary["id"],
        referral_id=referral.id if referral else None,
        outcome="accepted",
        currency="USD",
        amount=2500,
    )
    db.session.add(conversion)
    db.session.flush()
    reward = Reward(
        program_id=default_program().id,
        conversion_id=conversion.id,
        referral_id=referral.id if referral else None,
        beneficiary_id=beneficiary["id"],
        role=fields.pop("role", "referrer"),
        kind="credit",
        amount=fields.pop("amount", 1000),
        currency="USD",
        **fields,
    )
    db.session.add(reward)
    db.session.flush()
    return reward


def test_the_beneficiary_hears_that_a_reward_is_approved(app, alice_and_bob):
    alice, bob = alice_and_bob
    with app.app_context():
        reward = add_reward(alice, factories.referral_of(bob["id"]), status="approved")
        reward_approved(reward)
        assert take_outbox(app) == []
        db.session.commit()
    [message] = take_outbox(app)
    assert message.to == [alice["email"]]
    assert message.subject == "Your reward of $10.00 is approved"
    assert "Your credit reward of $10.00 is approved: thanks to Bob B." in message.body
    assert bob["email"] not in message.body
    assert f"{PUBLIC_URL}/rewards/" in message.body


def test_no_approval_email_for_a_reward_still_on_hold(app, alice_and_bob):
    alice, bob = alice_and_bob
    with app.app_context():
        reward_approved(add_reward(alice, factories.referral_of(bob["id"]), status="pending"))
        db.session.commit()
    assert take_outbox(app) == []


# The periodic sweeps.


def test_hold_release_and_expiry_are_scheduled_under_names_the_workers_know(app):
    celery_app = app.extensions["celery"]
    schedule = {
        name: entry
        for name, entry in celery_app.conf.beat_schedule.items()
        if entry["task"].startswith("rewards.")  # the analytics roll-up: test_admin_rollup
    }
    assert sorted(entry["task"] for entry in schedule.values()) == [
        "rewards.expire",
        "rewards.release_held",
        "rewards.retry_webhooks",
    ]
    assert {entry["schedule"] for entry in schedule.values()} == {SWEEP_SECONDS}
    assert {"rewards.expire", "rewards.release_held", "rewards.retry_webhooks"} <= set(
        celery_app.tasks
    )


def run_sweep(app, name: str) -> int:
    """Run a periodic task as a worker would on beat's signal (inline: eager mode)."""
    return app.extensions["celery"].tasks[name].delay().get()


def statuses(app, *reward_ids: int) -> list[str]:
    with app.app_context():
        return [db.session.get(Reward, reward_id).status for reward_id in reward_ids]


def test_the_release_sweep_approves_rewards_whose_hold_ended_and_mails_once(app, alice_and_bob):
    alice, bob = alice_and_bob
    now = utcnow()
    with app.app_context():
        referral = factories.referral_of(bob["id"])
        ended = add_reward(alice, referral, status="pending", available_at=now).id
        held = add_reward(alice, referral, status="pending", available_at=now + HOLD).id
        db.session.commit()
    assert run_sweep(app, "rewards.release_held") == 1
    assert statuses(app, ended, held) == ["approved", "pending"]
    [message] = take_outbox(app)
    assert (message.to, message.subject) == ([alice["email"]], "Your reward of $10.00 is approved")
    assert run_sweep(app, "rewards.release_held") == 0  # a second sweep changes nothing
    assert take_outbox(app) == []


def test_the_expiry_sweep_expires_approved_rewards_past_their_date(app, alice_and_bob):
    alice, bob = alice_and_bob
    now = utcnow()
    with app.app_context():
        referral = factories.referral_of(bob["id"])
        past = add_reward(alice, referral, status="approved", expires_at=now).id
        future = add_reward(alice, referral, status="approved", expires_at=now + HOLD).id
        db.session.commit()
    assert run_sweep(app, "rewards.expire") == 1
    assert statuses(app, past, future) == ["expired", "approved"]
    assert run_sweep(app, "rewards.expire") == 0


# Retries: a mail server that hangs up is tried again later.


def smtp_settings(port: int) -> dict:
    return {"MAIL_BACKEND": "smtp", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port}


def the_row() -> OutboxMessage:
    """The one outbox row, read without keeping a transaction (SQLite's lock) open."""
    row = db.session.scalars(select(OutboxMessage).execution_options(populate_existing=True)).one()
    db.session.expunge(row)
    db.session.rollback()
    return row


@pytest.mark.usefixtures("app")  # empty tables
def test_a_failed_send_stays_in_the_outbox_and_goes_out_on_the_next_attempt(database_url):
    with (
        SmtpServer(drops=1) as server,
        other_app(database_url, OUTBOX_DELIVERY="inline", **smtp_settings(server.port)) as app,
        app.app_context(),
    ):
        db.session.add(User(name="Ann Lee", email=ANN))
        enqueue(send_email, ANN, "Welcome", "Hello Ann")
        db.session.commit()  # the commit stands; the hung-up send is kept for later
        assert db.session.scalar(select(User).where(User.name == "Ann Lee"))
        failed = the_row()
        assert (failed.status, failed.attempts, server.messages) == ("pending", 1, [])
        assert "SMTPServerDisconnected" in failed.last_error
        wait = (failed.next_attempt_at - utcnow()).total_seconds()
        assert 0 < wait <= outbox.BACKOFF_BASE_SECONDS
        assert outbox.drain() == 0  # not due yet
        db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        db.session.commit()
        assert outbox.drain() == 1
        sent = the_row()
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, None)
    assert server.connections == 2
    [message] = server.messages
    assert b"Hello Ann" in message


# A real worker on the local Redis.


def smtp_environment(port: int) -> dict[str, str]:
    return {name: str(value) for name, value in smtp_settings(port).items()}


@pytest.mark.server
def test_a_real_worker_sends_an_email_queued_by_a_committed_transaction(database_url, broker):
    with SmtpServer(drops=0) as server:
        queue_job(database_url, broker, send_email, ANN, "Welcome", "Hello Ann")  # waits in Redis
        with running_worker(database_url, broker, **smtp_environment(server.port)) as worker:
            wait_until(lambda: server.messages, worker, "email")
            assert "rewards.release_held" in worker.log()  # its banner lists the sweeps
        assert worker.process.returncode == 0  # SIGTERM's warm shutdown, not the kill
    [message] = server.messages
    assert b"To: ann.lee@example.com" in message
    assert b"Subject: Welcome" in message
    assert b"Hello Ann" in message


@pytest.mark.server
def test_a_real_worker_tries_again_after_the_mail_server_hung_up(sqlite_url, broker):
    with SmtpServer(drops=1) as server:
        queue_job(sqlite_url, broker, send_email, ANN, "Welcome", "Hello Ann")
        with running_worker(sqlite_url, broker, **smtp_environment(server.port)) as worker:
            wait_until(lambda: server.messages, worker, "email")
            log = worker.log()
    assert server.connections == 2
    assert len(server.messages) == 1
    assert "attempt 1 failed, next in 5 s" in log
    assert "SMTPServerDisconnected" in log


@pytest.mark.server
def test_a_real_worker_releases_held_rewards_in_the_database(
    app, make_participant, database_url, broker
):
    # Known to the shop by external id only: the sweep has nobody to email, so it queues no
    # email job (which would go to the default queue, not this test's).
    carol = make_participant("Carol Chen")
    with app.app_context():
        db.session.get(User, carol["id"]).email = None
        reward_id = add_reward(carol, None, status="pending", available_at=utcnow()).id
        db.session.commit()
    queue_job(database_url, broker, release_held)  # as beat does every REWARDS_SWEEP_SECONDS

    def status() -> str:
        with app.app_context():
            return db.session.scalar(select(Reward.status).where(Reward.id == reward_id))

    with running_worker(database_url, broker) as worker:
        wait_until(lambda: status() == "approved", worker, "release")
        wait_until(lambda: "released 1 held rewards" in worker.log(), worker, "log line")


@pytest.mark.server
def test_beat_sends_both_sweeps_on_schedule(sqlite_url, tmp_path):
    # No broker to leave messages in: beat hands them to Celery's in-memory transport.
    beat = ["beat", "--schedule", str(tmp_path / "beat-schedule"), "--max-interval", "1"]
    settings = {"REWARDS_SWEEP_SECONDS": "1", "CELERY_ALWAYS_EAGER": "false"}
    with running_celery(beat, sqlite_url, **settings) as beat_process:
        for entry, task in [
            ("release-held-rewards", "rewards.release_held"),
            ("expire-rewards", "rewards.expire"),
        ]:
            line = f"Sending due task {entry} ({task})"
            wait_until(lambda line=line: line in beat_process.log(), beat_process, line)
    assert beat_process.process.returncode == 0
