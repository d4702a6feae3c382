"""A sender killed mid-delivery loses nothing: the row it held is taken over once its lease
ends and delivered again, with the same Message-ID, so the repeat can be told apart
(at least once, with a documented idempotency key). docs/guarantees.md no. 21.

Real processes: `flask jobs run` against a real SMTP server on 127.0.0.1, killed with SIGKILL
after the server took the message but before it confirmed (so before the row was marked sent).
"""

import re
import signal
import time

import pytest
from sqlalchemy import select

from extensions import db
from models import OutboxMessage, utcnow
from tests import preloaded
from tests.server import ROOT, server_environment
from tests.smtp_server import SmtpServer

pytestmark = [pytest.mark.server]

LEASE_SECONDS = 10  # longer than a `flask` process takes to start on a busy machine
ANN = "ann.lee@example.com"
MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE)


def jobs_run(database_url: str, port: int) -> preloaded.Command:
    environment = server_environment(
        database_url,
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(port),
        OUTBOX_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    return preloaded.Command("flask", ["--app", "app", "jobs", "run"], cwd=ROOT, env=environment)


def finished(command: preloaded.Command) -> str:
    output = command.finished(timeout=30)
    assert command.process.returncode == 0, output
    return output


def the_row(app) -> OutboxMessage:
    with app.app_context():
        row = db.session.scalars(select(OutboxMessage)).one()
        db.session.expunge(row)
        return row


def wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.05)


def test_a_sender_killed_before_marking_sent_is_taken_over_and_the_mail_keeps_its_id(
    app, database_url
):
    with app.app_context():  # a committed email, waiting in the outbox
        db.session.add(OutboxMessage(job="rewards.send_email", args=[ANN, "Welcome", "Hello Ann"]))
        db.session.commit()
    with SmtpServer("hang_after_data") as mail_server:
        first = jobs_run(database_url, mail_server.port)
        try:
            wait_for(lambda: mail_server.messages, "message at the server")
        finally:
            first.process.send_signal(signal.SIGKILL)  # after the server took it, before "sent"
            first.finished(timeout=10)
        held = the_row(app)
        assert (held.status, held.attempts) == ("pending", 1)
        assert held.claimed_until > utcnow()

        mail_server.mode = "accept"
        # While the dead sender's lease runs, nobody else sends the row.
        assert "ran 0 outbox message(s)" in finished(jobs_run(database_url, mail_server.port))
        assert len(mail_server.messages) == 1
        time.sleep(max((held.claimed_until - utcnow()).total_seconds(), 0) + 0.2)
        assert "ran 1 outbox message(s)" in finished(jobs_run(database_url, mail_server.port))

    sent = the_row(app)
    assert (sent.status, sent.attempts) == ("sent", 2)
    first_copy, second_copy = mail_server.messages
    assert b"Hello Ann" in first_copy and b"Hello Ann" in second_copy
    # The repeat carries the first copy's Message-ID: the receiver's key to drop it.
    first_id = MESSAGE_ID.search(first_copy).group(1)
    assert first_id == MESSAGE_ID.search(second_copy).group(1)
    assert first_id.startswith(f"<outbox.{sent.id}.".encode())
