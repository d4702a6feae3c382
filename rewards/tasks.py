"""Periodic jobs of the rewards engine: the hold release, expiry and the outbound webhook
sweep (beat runs each every REWARDS_SWEEP_SECONDS; config.py holds the schedule), and the
events acknowledged at once (`events.process_queued`, below).

Each runs inside an app context (core.jobs), in a worker or inline (eager). The email job is
core.mail.send_email; one webhook attempt is rewards.outbound.deliver_webhook, run from the
outbox (core/outbox.py), which also schedules the retries.
"""

import dataclasses
import logging
import time
from collections.abc import Callable

from flask import Flask, current_app
from sqlalchemy import select, update

from core.background import BackgroundLoop
from core.database import after_commit
from core.errors import DomainError, status_text
from core.jobs import job
from extensions import db
from models import EventInbox, utcnow
from rewards import conversions, outbound
from rewards.events import api_event, unhandled
from rewards.services import expire_rewards, release_held_rewards

log = logging.getLogger(__name__)


@job("rewards.release_held")
def release_held() -> int:
    """Approve the rewards whose hold has ended."""
    released = release_held_rewards(utcnow())
    db.session.commit()
    log.info("released %d held rewards", released)
    return released


@job("rewards.expire")
def expire() -> int:
    """Expire the rewards past their expiry date."""
    expired = expire_rewards(utcnow())
    db.session.commit()
    log.info("expired %d rewards", expired)
    return expired


@job("rewards.retry_webhooks")
def retry_webhooks() -> int:
    """Queue outbound webhook deliveries whose wait is over and that no outbox row carries
    any more (a sender died mid-attempt): the safety net under the outbox's own retries."""
    queued = outbound.retry_due(utcnow(), current_app.config["WEBHOOK_MAX_ATTEMPTS"])
    db.session.commit()
    log.info("queued %d webhook deliveries", queued)
    return queued


# --- events acknowledged at once (POST /api/v1/events with `Prefer: respond-async`) ---
#
# Each event is stored in event_inbox before its 202 (rewards/webhooks.py). A run takes the
# queued rows a batch at a time in one transaction (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so
# two workers never take the same row; SQLite has one writer anyway) and runs each through
# `record_event` in a savepoint of its own, keeping the answer the synchronous request would
# have had. Exactly once: the rewards and the row's "processed" mark commit together, so a
# worker that dies mid-batch leaves its rows queued with nothing of them written, and an event
# already recorded another way (sent again without the header) is answered `duplicate` by
# record_event itself.

# Events per transaction. On PostgreSQL a batch locks only its own rows (SKIP LOCKED): twenty
# share a commit. On SQLite a transaction holds the database's one write lock, which every 202
# needs for its INSERT: one event per transaction lets the 202s in between (bench/events.py
# --async on SQLite: 0.31-0.35x bare with twenty, 0.47x with one; p99 200-325 ms -> 60 ms).
EVENT_BATCH = 20
SQLITE_EVENT_BATCH = 1
# A run stops after this long even if events keep coming; the next hint or beat goes on.
EVENT_BUDGET_SECONDS = 10.0
# Unexpected failures of one event before it is answered as the server error it keeps being.
EVENT_MAX_ATTEMPTS = 5


@job("events.process_queued")
def process_events(max_batches: int | None = None) -> int:
    """Process the queued events, batch after batch (at most `max_batches`); beat runs it
    every few seconds and a 202 asks for a run after its commit. Returns how many were
    processed."""
    return _process_batches(max_batches)


def event_batch() -> int:
    """How many queued events one transaction takes on this database."""
    return SQLITE_EVENT_BATCH if db.engine.dialect.name == "sqlite" else EVENT_BATCH


def _process_batches(
    max_batches: int | None = None, batch_size: Callable[[], int] = event_batch
) -> int:
    processed, batches = 0, 0
    deadline = time.monotonic() + EVENT_BUDGET_SECONDS
    while time.monotonic() < deadline and (max_batches is None or batches < max_batches):
        done, more = process_event_batch(batch_size())
        processed += done
        batches += 1
        if not more:
            break
    if processed:
        log.info("processed %d queued event(s)", processed)
    return processed


def process_event_batch(limit: int) -> tuple[int, bool]:
    """One batch, committed: (events processed, whether a full batch was found). An
    unexpected error in one event stops the run (raised again, as a crash would): the events
    before it are committed, it is counted as failed and queued behind the others, and those
    after it stay queued."""
    rows = db.session.execute(
        select(EventInbox.id, EventInbox.payload, EventInbox.received_at, EventInbox.attempts)
        .where(EventInbox.processed_at.is_(None))
        .order_by(EventInbox.attempts, EventInbox.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    processed = 0
    for row in rows:
        try:
            body, status = _intake_answer(row)
        except Exception as error:
            _note_failure(row, error)
            db.session.commit()
            raise
        _mark_processed(row.id, body, status)
        processed += 1
    db.session.commit()
    return processed, len(rows) == limit


def _intake_answer(row) -> tuple[dict, int]:
    """What POST /api/v1/events would have answered the stored event: the outcome, or the
    refusal of a rule (its error body and status). The event's work is in a savepoint, so a
    refusal or a failure leaves nothing of it behind."""
    try:
        with db.session.begin_nested():
            event = api_event(row.payload)
            if event is None:
                return unhandled("api").as_json(), 200
            # An event that did not say when it happened happened when it was received.
            event = dataclasses.replace(event, occurred_at=event.occurred_at or row.received_at)
            return conversions.record_event(event).as_json(), 200
    except DomainError as error:
        return {"error": {"code": error.code, "message": error.message}}, error.status


def _mark_processed(inbox_id: int, body: dict, status: int) -> None:
    db.session.execute(
        update(EventInbox)
        .where(EventInbox.id == inbox_id)
        .values(processed_at=utcnow(), outcome=body, outcome_status=status)
    )


def _note_failure(row, error: Exception) -> None:
    log.error("queued event %s failed", row.id, exc_info=error)
    values = {"attempts": row.attempts + 1, "last_error": f"{type(error).__name__}: {error}"[:500]}
    if row.attempts + 1 >= EVENT_MAX_ATTEMPTS:
        # The answer the synchronous request would have got each time.
        message = status_text(500)
        values |= {
            "processed_at": utcnow(),
            "outcome": {"error": {"code": "internal_error", "message": message}},
            "outcome_status": 500,
        }
    db.session.execute(update(EventInbox).where(EventInbox.id == row.id).values(values))


def process_events_soon() -> None:
    """Once the current transaction (which queued an event) commits, ask for a run. Without
    a broker (the embedded default) this process's event runner is woken: a thread of its
    own that takes every queued event in batches while the 202 goes out, and looks again every
    EVENT_POLL_SECONDS for events a stopped process left (there is no beat). In tests (inline
    delivery) the run happens right there, one batch. With a broker a process asks at most
    once per HINT_INTERVAL_SECONDS: a run takes every event queued by then, and beat's run
    (every few seconds) finds any a skipped request left."""
    app = current_app._get_current_object()
    eager = app.extensions["celery"].conf.task_always_eager

    def ask() -> None:
        global _last_hint
        if eager and app.config["OUTBOX_DELIVERY"] == "thread":
            event_runner(app).wake()
            return
        now = time.monotonic()
        if not eager and now - _last_hint < HINT_INTERVAL_SECONDS:
            return
        _last_hint = now
        try:
            task = app.extensions["celery"].tasks[process_events.name]
            task.apply_async(kwargs={"max_batches": 1} if eager else {}, retry=False)
        except Exception:  # noqa: BLE001 - stored already: beat's run processes it
            log.exception("could not run the queued events now; beat's run will")

    after_commit(ask)


def event_runner(app: Flask) -> BackgroundLoop:
    return app.extensions["event_runner"]


def init_event_runner(app: Flask) -> None:
    """Give the app its event runner; in thread mode every request makes sure it runs, so
    events left queued by a previous process are processed once this one serves. The runner
    gives way to the process's requests (RequestsInFlight.batch_size): a rush of events is
    acknowledged at the pace of its 202s and processed as the rush allows."""
    in_flight = app.extensions["requests_in_flight"]

    def process_giving_way() -> int:
        return _process_batches(batch_size=lambda: in_flight.batch_size(event_batch()))

    app.extensions["event_runner"] = BackgroundLoop(
        app, "event-runner", process_giving_way, EVENT_POLL_SECONDS
    )
    if app.config["OUTBOX_DELIVERY"] == "thread":
        app.before_request(app.extensions["event_runner"].ensure_started)


# Embedded mode: how often the event runner looks for queued events nobody woke it for.
EVENT_POLL_SECONDS = 5.0
# With a broker, the shortest time between two requests for a run from one process: each
# request costs the 202 a broker round trip, and one run serves every event queued before it.
HINT_INTERVAL_SECONDS = 0.25
_last_hint = float("-inf")
