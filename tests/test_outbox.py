"""The outbox's own rules: rows live and die with their transaction, one sender at a time
holds a row, failures back off and end dead with their error, staff can retry, and /health
reports a backlog. docs/guarantees.md no. 20 and 21.

The real senders (the in-process thread, Celery, `flask jobs run`) against real servers:
test_outbox_server.py, test_outbox_faults.py, test_jobs.py."""

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from config import ConfigError
from core import background, outbox
from core.jobs import enqueue
from core.mail import send_email
from extensions import db
from models import AuditLog, OutboxMessage, utcnow
from tests import factories
from tests.apps import app_config, other_app
from tests.helpers import a_request_in_flight, csrf_token, log_in, take_outbox

ANN = "ann.lee@example.com"
MAX_ATTEMPTS = 3


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem", "OUTBOX_MAX_ATTEMPTS": MAX_ATTEMPTS}


def rows() -> list[OutboxMessage]:
    found = db.session.scalars(
        select(OutboxMessage).order_by(OutboxMessage.id).execution_options(populate_existing=True)
    ).all()
    db.session.expunge_all()
    db.session.rollback()  # no transaction (nor SQLite's lock) kept open
    return found


def make_due(*where) -> None:
    db.session.execute(update(OutboxMessage).where(*where).values(next_attempt_at=utcnow()))
    db.session.commit()


# Settings.


def test_inline_delivery_is_refused_outside_tests(sqlite_url):
    from app import create_app

    settings = app_config(sqlite_url, TESTING=False, PASSWORD_HASH_METHOD="scrypt")
    with pytest.raises(ConfigError, match="OUTBOX_DELIVERY=inline is for tests only"):
        create_app({**settings, "OUTBOX_DELIVERY": "inline"})
    with pytest.raises(ConfigError, match="OUTBOX_DELIVERY must be"):
        create_app({**settings, "OUTBOX_DELIVERY": "smoke-signals"})


@pytest.mark.parametrize(
    ("redis_url", "mode"), [(None, "thread"), ("redis://127.0.0.1:6379/0", "celery")]
)
def test_the_sender_follows_the_broker(sqlite_url, redis_url, mode):
    with other_app(sqlite_url, REDIS_URL=redis_url, OUTBOX_DELIVERY=None) as made:
        assert made.config["OUTBOX_DELIVERY"] == mode


# Rows and their transaction.


def test_a_job_that_cannot_be_stored_is_refused_in_the_callers_transaction(app):
    with app.app_context():
        with pytest.raises(TypeError):
            enqueue(send_email, ANN, "Welcome", object())
        db.session.rollback()
        assert rows() == []


def test_a_row_holds_its_job_until_it_ran_and_says_when_it_was_sent(app):
    with app.app_context():
        enqueue(send_email, ANN, "Welcome", "Hello Ann")
        db.session.commit()
        [row] = rows()
    # Sent: whom it was for is kept, the body is not.
    assert (row.job, row.args, row.status, row.attempts) == ("rewards.send_email", [ANN], "sent", 1)
    assert row.sent_at is not None and row.claimed_until is None
    assert len(take_outbox(app)) == 1


# One sender per row.


def test_a_claimed_row_is_nobody_elses_until_its_lease_ends(app):
    with app.app_context():
        db.session.add(OutboxMessage(job="rewards.send_email", args=[ANN, "Hi", "Hello"]))
        db.session.commit()
        first = outbox.claim_next()
        assert first is not None and first.attempt == 1
        with app.app_context():  # a second sender, with its own session
            assert outbox.claim_next() is None
            assert not outbox.retry_now(first.id)  # nor can staff hand it to another
            db.session.rollback()
        # The first sender dies; once its lease is over the row is taken over.
        db.session.execute(
            update(OutboxMessage).values(claimed_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        with app.app_context():
            second = outbox.claim_next()
            assert second is not None and second.attempt == 2
            assert outbox.run(second)
        # The first sender, back from the dead, cannot overwrite the second's result.
        assert outbox.run(first)
        [row] = rows()
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(take_outbox(app)) == 2  # at least once: the Message-ID tells the copies apart


# Failures.


@pytest.mark.usefixtures("app")  # empty tables
def test_failures_back_off_then_the_row_is_dead_with_its_error_and_staff_can_retry(
    database_url,
):
    refusing = {"MAIL_BACKEND": "smtp", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": 1}
    with (
        other_app(database_url, OUTBOX_MAX_ATTEMPTS=MAX_ATTEMPTS, **refusing) as down,
        down.app_context(),
    ):
        enqueue(send_email, ANN, "Welcome", "Hello Ann")
        db.session.commit()
        waits = []
        for _ in range(MAX_ATTEMPTS - 1):
            [row] = rows()
            assert row.status == "pending"
            waits.append(round((row.next_attempt_at - utcnow()).total_seconds()))
            make_due()
            assert outbox.drain() == 1
        [dead] = rows()
        assert outbox.drain() == 0  # dead rows wait for staff
    assert (dead.status, dead.attempts) == ("dead", MAX_ATTEMPTS)
    assert "ConnectionRefusedError" in dead.last_error
    assert waits == [5, 10]
    with other_app(database_url, MAIL_BACKEND="locmem") as back, back.app_context():
        assert outbox.retry_now(dead.id)
        db.session.commit()  # the tests' inline sender runs it at once
        [sent] = rows()
        assert [message.to for message in take_outbox(back)] == [[ANN]]
    assert (sent.status, sent.attempts) == ("sent", MAX_ATTEMPTS + 1)


def test_sent_messages_are_pruned_daily_after_the_kept_days_and_nothing_else_is(app):
    long_ago = utcnow() - timedelta(days=31)
    celery_app = app.extensions["celery"]
    schedule = {
        entry["task"]: entry["schedule"] for entry in celery_app.conf.beat_schedule.values()
    }
    assert schedule["outbox.prune"] == 86400
    with app.app_context():
        old = {"job": "rewards.send_email", "created_at": long_ago, "next_attempt_at": long_ago}
        db.session.add_all(
            [
                OutboxMessage(
                    **old, args=["old.sent@example.com"], status="sent", sent_at=long_ago
                ),
                OutboxMessage(**old, args=["old.dead@example.com"], status="dead", attempts=20),
                OutboxMessage(**old, args=["old.waiting@example.com"], status="pending"),
            ]
        )
        enqueue(send_email, ANN, "Welcome", "Hello Ann")  # sent now, by the inline sender
        db.session.commit()
        assert celery_app.tasks["outbox.prune"].delay().get() == 1
        left = sorted((row.args[0], row.status) for row in rows())
    # The command runs the same job: nothing more is old enough.
    result = app.test_cli_runner().invoke(args=["jobs", "prune"])
    assert result.exit_code == 0 and "Deleted 0 sent outbox message(s)." in result.output
    assert left == [
        (ANN, "sent"),
        ("old.dead@example.com", "dead"),
        ("old.waiting@example.com", "pending"),
    ]


def test_the_backoff_doubles_from_5_seconds_up_to_half_an_hour():
    waits = [outbox.backoff_seconds(attempt) for attempt in range(1, 12)]
    assert waits[:5] == [5, 10, 20, 40, 80]
    assert max(waits) == outbox.BACKOFF_MAX_SECONDS == 1800


# Health.


def test_health_is_degraded_while_a_due_message_waits_too_long(app, client):
    with app.app_context():
        long_ago = utcnow() - timedelta(seconds=app.config["OUTBOX_BACKLOG_SECONDS"] + 60)
        db.session.add(
            OutboxMessage(
                job="rewards.send_email", args=[ANN, "Hi", "Hello"], next_attempt_at=long_ago
            )
        )
        db.session.commit()
    stuck = client.get("/health")
    assert stuck.status_code == 200
    assert (stuck.json["status"], stuck.json["dependencies"]["outbox"]) == ("degraded", "backlog")
    with app.app_context():
        assert outbox.drain() == 1
    assert client.get("/health").json["dependencies"]["outbox"] == "ok"


# The staff screen (admins; every role's access: test_admin_roles.py).


def test_staff_see_a_dead_message_with_its_error_and_retry_it_after_confirming(app, client):
    with app.app_context():
        admin = factories.staff("admin")
        dead = OutboxMessage(job="rewards.send_email", args=[ANN, "Welcome", "Hello Ann"])
        dead.status, dead.attempts, dead.last_error = "dead", MAX_ATTEMPTS, "OSError: refused"
        db.session.add(dead)
        db.session.commit()
        dead_id = dead.id
    log_in(client, admin["email"])
    listed = client.get("/admin/outbox?status=dead")
    assert listed.status_code == 200
    assert "rewards.send_email" in listed.text and "OSError: refused" in listed.text
    retry = f"/admin/outbox/{dead_id}/retry"
    assert retry in listed.text
    assert retry not in client.get("/admin/outbox?status=sent").text
    assert "Retry message" in client.get(retry).text
    token = csrf_token(client, retry)
    unconfirmed = client.post(retry, data={"csrf_token": token})
    assert unconfirmed.status_code == 400
    with app.app_context():
        assert rows()[0].status == "dead"
    assert take_outbox(app) == []
    confirmed = client.post(retry, data={"csrf_token": token, "confirm": "y"})
    assert confirmed.status_code == 302
    with app.app_context():
        [sent] = rows()
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "outbox.retry"))
        assert (entry.target_id, entry.actor_id) == (str(dead_id), admin["id"])
    assert sent.status == "sent"
    assert [message.to for message in take_outbox(app)] == [[ANN]]
    again = client.post(retry, data={"csrf_token": token, "confirm": "y"})
    assert again.status_code == 409  # sent: nothing to retry


def test_the_in_process_sender_gives_way_to_requests_one_row_a_moment(app, monkeypatch):
    """Embedded mode's sender takes its batch when no request is in flight; while one is,
    a single row each time GIVE_WAY_SECONDS pass, so a rush's emails follow it."""
    monkeypatch.setattr(background, "GIVE_WAY_SECONDS", 0.5)
    with app.app_context():
        for number in range(3):
            db.session.add(OutboxMessage(job="rewards.send_email", args=[ANN, f"#{number}", "Hi"]))
        db.session.commit()
    sender = threading.Thread(target=lambda: _drain_in(app))
    with a_request_in_flight(app), app.app_context():
        sender.start()
        deadline = time.monotonic() + 10
        while not _sent():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)  # less than the next wait
        sent_while_busy = _sent()
    sender.join(30)
    assert sent_while_busy == 1  # the next only after another half second
    with app.app_context():
        assert _sent() == 3  # the rest at once when the request ended


def _sent() -> int:
    return [row.status for row in rows()].count("sent")


def _drain_in(app) -> None:
    with app.app_context():
        outbox.drain_everything_due()
