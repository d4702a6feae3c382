"""The transactional outbox: every side effect a change causes (an email, a text, a webhook
attempt) is a row of `outbox_messages`, written in the same transaction as the change.

Why. Handing a job to a broker or a mail server while a person waits has two failures: the
request is as slow as the slowest of them (a hanging SMTP server, a hanging webhook
receiver), and when the hand-over fails after the commit the job is gone while the page says
"sent". A row committed with the change cannot be lost that way: the commit is the promise,
and delivery is retried until it succeeds or the row is declared dead for staff to see.

Delivery (OUTBOX_DELIVERY):
- `celery` (a broker is configured): after the commit a Celery task is *hinted* with the new
  rows' ids, from a thread of its own (a dead broker takes seconds to refuse). A lost hint
  (broker down) only delays: beat's `outbox.sweep` delivers every due row once a minute.
- `thread` (the embedded default, no broker): one daemon thread per process drains due rows.
  It is woken right after a commit that wrote rows, and looks for due retries every
  OUTBOX_POLL_SECONDS. No request waits on it.
- `inline` (tests only): the rows a transaction wrote are delivered right after its commit,
  in the committing thread, so a test can look at the mail right after a request.
`flask jobs run` delivers what is due from the command line, whatever the mode.

A sender claims a row before running it: a conditional UPDATE (still pending, due, and not
held by another sender's lease) that counts the attempt and sets `claimed_until`. On
PostgreSQL the candidate is picked `FOR UPDATE SKIP LOCKED`, so senders do not queue on one
row; SQLite has one writer at a time anyway. The job then runs, and its own database writes
commit together with the row's "sent" mark. A sender that dies mid-job leaves its lease to
expire, and the row is run again: delivery is *at least once*. Receivers tell a repeat by
its key: emails carry a Message-ID made from the row (`message_key`), webhooks the
`webhook-id` of their delivery.

A failed run waits 5 s, doubling up to 30 minutes, before the next; after
OUTBOX_MAX_ATTEMPTS it is `dead` with its last error, listed in the staff panel with a
"retry now" action.
"""

import contextlib
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app, has_request_context, request
from sqlalchemy import Text, cast, delete, event, func, insert, or_, select, update
from sqlalchemy.orm import Session

from core import counters
from core.background import BackgroundLoop
from core.database import after_commit, values_given_later
from core.logs import current_request_id, request_id_bound
from extensions import db
from models import OutboxMessage, utcnow

log = logging.getLogger(__name__)

PENDING, SENT, DEAD = "pending", "sent", "dead"
BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 30 * 60
DRAIN_BATCH = 200  # rows one drain takes at most before it looks again (and lets others in)
_ERROR_LENGTH = 500
_NEW_IDS = "outbox_new_ids"  # session.info: the rows this transaction wrote

# The row being run, for jobs that derive an idempotency key from it (core.mail).
_running: ContextVar["Claimed | None"] = ContextVar("outbox_running", default=None)
# Which request wrote a row, for the log lines of its delivery by this process's sender
# (thread mode); Celery hints carry it themselves. Only the latest are kept.
_origins: dict[int, str] = {}
_origins_lock = threading.Lock()
_ORIGINS_KEPT = 10_000
# Set while made-up data is written (`flask demo seed`): its side effects are not kept.
_discarding: ContextVar[bool] = ContextVar("outbox_discarding", default=False)


@contextlib.contextmanager
def discarding() -> Iterator[None]:
    """Within this block nothing is written to the outbox: for demo data, whose emails and
    webhooks must never leave, not even later."""
    token = _discarding.set(True)
    try:
        yield
    finally:
        _discarding.reset(token)


def is_discarding() -> bool:
    """Whether this is inside a `discarding` block."""
    return _discarding.get()


# --- writing ------------------------------------------------------------------------------


# Core, built once: one statement, none of a flush's bookkeeping.
_NEW_MESSAGE = (
    insert(OutboxMessage.__table__)
    .values(
        values_given_later(
            "job", "args", "status", "attempts", "next_attempt_at", "created_at", "link_root"
        )
    )
    .returning(OutboxMessage.__table__.c.id)
)


def add(job_name: str, args: Iterable, delay_seconds: float = 0) -> int | None:
    """Write one row in the current transaction and return its id; once it commits, delivery
    is hinted. The arguments must be JSON values (refused here, not later in a sender). None
    while `discarding`."""
    args = list(args)
    json.dumps(args)  # TypeError now, in the caller's transaction, for what cannot be stored
    if _discarding.get():
        return None
    now = utcnow()
    row = {
        "job": job_name,
        "args": args,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now + timedelta(seconds=delay_seconds),
        "created_at": now,
        "link_root": _link_root(),
    }
    message_id = db.session.execute(_NEW_MESSAGE, row).scalar_one()
    _hint_after_commit(message_id, delay_seconds)
    return message_id


def forget_addressed_to(*addresses: str | None) -> int:
    """Delete every message naming one of these addresses (an email or a phone number) among
    its arguments, sent or not: for an account being deleted, whose mail must neither stay
    on record nor still go out. Returns how many rows went."""
    named = [
        cast(OutboxMessage.args, Text).contains(json.dumps(address), autoescape=True)
        for address in addresses
        if address
    ]
    if not named:
        return 0
    result = db.session.execute(
        delete(OutboxMessage).where(or_(*named)).execution_options(synchronize_session=False)
    )
    return result.rowcount


def prune_sent(before: datetime) -> int:
    """Delete the messages sent before `before`: their work is done, and a sent row keeps only
    its first argument (a recipient or an id) to show staff what left. Returns how many went."""
    result = db.session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.status == SENT, OutboxMessage.sent_at < before)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def _hint_after_commit(message_id: int, delay_seconds: float = 0) -> None:
    new = db.session.info.setdefault(_NEW_IDS, [])
    if not new:
        after_commit(_hint)
    new.append((message_id, delay_seconds))


def _link_root() -> str | None:
    """Where the causing request was answered, for links a job builds later; only needed in
    development without PUBLIC_URL (core.hosts has checked the host)."""
    if current_app.config["PUBLIC_URL"] or not has_request_context():
        return None
    return request.url_root


def _hint() -> None:
    new = db.session.info.pop(_NEW_IDS, [])
    if not new:
        return
    app = current_app._get_current_object()
    mode = app.config["OUTBOX_DELIVERY"]
    request_id = current_request_id()
    if mode == "inline":
        with app.app_context():  # a session of its own: the caller's has just committed
            drain(only=[message_id for message_id, _ in new])
    elif mode == "thread":
        _remember_origin([message_id for message_id, _ in new], request_id)
        sender(app).wake()  # rows due later: its poll finds them
    else:
        by_delay: dict[float, list[int]] = {}
        for message_id, delay in new:
            by_delay.setdefault(delay, []).append(message_id)
        for delay, ids in by_delay.items():
            hinter(app).hint(ids, delay, request_id)


def _remember_origin(ids: list[int], request_id: str | None) -> None:
    if request_id is None:
        return
    with _origins_lock:
        for message_id in ids:
            _origins[message_id] = request_id
        while len(_origins) > _ORIGINS_KEPT:
            _origins.pop(next(iter(_origins)))


def _origin_of(message_id: int) -> str | None:
    with _origins_lock:
        return _origins.pop(message_id, None)


def _hint_workers(
    app: Flask, ids: list[int], countdown: float, request_id: str | None = None
) -> None:
    """Tell a Celery worker to deliver `ids` (in `countdown` seconds), for the request
    `request_id` (its log lines carry it). Best effort: when the broker cannot take it,
    beat's sweep delivers them instead."""
    try:
        app.extensions["celery"].tasks["outbox.deliver"].apply_async(
            (ids, request_id), countdown=countdown or None, retry=False
        )
    except Exception as error:  # noqa: BLE001 - any broker failure: beat's sweep delivers
        log.warning(
            "outbox: could not hint the workers (%s); the sweep will deliver %d message(s)",
            type(error).__name__,
            len(ids),
        )


@event.listens_for(db.session, "after_rollback")
def _forget_new(session: Session) -> None:
    """The transaction rolled back: its rows are gone, and so is the need to hint."""
    if not session.in_nested_transaction():
        session.info.pop(_NEW_IDS, None)


# --- claiming and running -----------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    job: str
    args: list
    attempt: int  # this run's number, 1 for the first
    created_at: datetime
    link_root: str | None


def backoff_seconds(attempts: int) -> int:
    """The wait after the `attempts`-th failed run: 5 s, 10 s, 20 s, ... up to 30 minutes."""
    return min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)


def _claimable(now: datetime):
    return (
        OutboxMessage.status == PENDING,
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )


def claim_next(only: list[int] | None = None) -> Claimed | None:
    """Take the next due row (of `only`, when given) for this sender and commit the claim;
    None when nothing is due."""
    lease = timedelta(seconds=current_app.config["OUTBOX_LEASE_SECONDS"])
    while True:
        now = utcnow()
        query = select(OutboxMessage).where(*_claimable(now))
        if only is not None:
            query = query.where(OutboxMessage.id.in_(only))
        query = query.order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(1)
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = db.session.scalar(query.execution_options(populate_existing=True))
        if row is None:
            db.session.commit()
            return None
        taken = db.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row.id, OutboxMessage.attempts == row.attempts, *_claimable(now)
            )
            .values(claimed_until=now + lease, attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        claimed = Claimed(
            row.id, row.job, list(row.args), row.attempts + 1, row.created_at, row.link_root
        )
        db.session.commit()
        if taken:
            return claimed


def run(claimed: Claimed) -> bool:
    """Run a claimed row's job; mark it sent in the transaction of the job's own writes, or
    schedule the next attempt. Returns whether it succeeded."""
    declared = current_app.extensions["jobs"].get(claimed.job)
    token = _running.set(claimed)
    origin = _origin_of(claimed.id) or current_request_id()
    try:
        with request_id_bound(origin):
            if declared is None:
                raise LookupError(f"no job named {claimed.job!r} in this app")
            declared.run(*claimed.args)
            _mark_sent(claimed)
            db.session.commit()
            log.info("outbox %s (%s) done, attempt %d", claimed.id, claimed.job, claimed.attempt)
    except Exception as error:  # noqa: BLE001 - every failure is retried, then kept as dead
        db.session.rollback()
        with request_id_bound(origin):
            _record_failure(claimed, error)
        return False
    finally:
        _running.reset(token)
    return True


def _owned(claimed: Claimed):
    # Still ours: pending, and no other sender has claimed it since (its attempt would differ).
    return (
        OutboxMessage.id == claimed.id,
        OutboxMessage.status == PENDING,
        OutboxMessage.attempts == claimed.attempt,
    )


def _mark_sent(claimed: Claimed) -> None:
    """Sent: only the first argument (whom or what it was for) is kept; bodies, links and
    one-time codes are not needed any more and are not kept."""
    now = utcnow()
    db.session.execute(
        update(OutboxMessage)
        .where(*_owned(claimed))
        .values(
            status=SENT, sent_at=now, claimed_until=None, last_error=None, args=claimed.args[:1]
        )
        .execution_options(synchronize_session=False)
    )


def _record_failure(claimed: Claimed, error: Exception) -> None:
    now = utcnow()
    text = f"{type(error).__name__}: {error}".strip()[:_ERROR_LENGTH]
    dead = claimed.attempt >= current_app.config["OUTBOX_MAX_ATTEMPTS"]
    wait = backoff_seconds(claimed.attempt)
    db.session.execute(
        update(OutboxMessage)
        .where(*_owned(claimed))
        .values(
            status=DEAD if dead else PENDING,
            claimed_until=None,
            last_error=text,
            next_attempt_at=now if dead else now + timedelta(seconds=wait),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    counters.JOB_FAILURES.labels(claimed.job).inc()
    app = current_app._get_current_object()
    if not dead and app.config["OUTBOX_DELIVERY"] == "celery":
        # Else the poll (thread) or a drain finds it.
        _hint_workers(app, [claimed.id], wait, current_request_id())
    if dead:
        log.error(
            "outbox %s (%s) is dead after %d attempts: %s",
            claimed.id,
            claimed.job,
            claimed.attempt,
            text,
        )
    else:
        log.warning(
            "outbox %s (%s) attempt %d failed, next in %d s: %s",
            claimed.id,
            claimed.job,
            claimed.attempt,
            wait,
            text,
        )


def drain(only: list[int] | None = None, limit: int = DRAIN_BATCH) -> int:
    """Run due rows (of `only`, when given) until none is due or `limit` ran; returns how
    many ran, successful or not."""
    ran = 0
    while ran < limit:
        claimed = claim_next(only)
        if claimed is None:
            break
        run(claimed)
        ran += 1
    return ran


def running() -> Claimed | None:
    """The row whose job is running in this context, if any."""
    return _running.get()


def message_key(domain: str) -> str | None:
    """A Message-ID for the email the running row sends: the same on every attempt of that
    row, so a receiver (or a mail server) can drop a repeat after a sender died mid-send."""
    claimed = running()
    if claimed is None:
        return None
    secret = current_app.config["SECRET_KEY"].encode()
    stamp = f"{claimed.id}:{claimed.created_at.isoformat()}".encode()
    digest = hmac.new(secret, stamp, hashlib.sha256).hexdigest()[:16]
    return f"<outbox.{claimed.id}.{digest}@{domain}>"


# --- staff and health ---------------------------------------------------------------------


def retry_now(message_id: int) -> bool:
    """Make a pending or dead row due at once (staff's "retry now"); the caller commits.
    False when it is sent, gone, or held by a sender right now (its lease is left alone, so
    the row is never sent twice at once)."""
    now = utcnow()
    changed = db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.status.in_((PENDING, DEAD)),
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )
        .values(status=PENDING, next_attempt_at=now, claimed_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed:
        _hint_after_commit(message_id)
    return bool(changed)


def oldest_due_age(now: datetime | None = None) -> float | None:
    """Seconds the longest-waiting due row has been due, None when nothing is due."""
    now = now or utcnow()
    oldest = db.session.scalar(
        select(func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now
        )
    )
    if oldest is None:
        return None
    if oldest.tzinfo is None:  # SQLite's aggregate comes back without the column type
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=now.tzinfo)
    return (now - oldest).total_seconds()


# --- the in-process sender (embedded mode) ------------------------------------------------


def drain_everything_due() -> None:
    """The in-process sender's run (embedded mode): every due row, batch after batch, giving
    way to the process's requests (RequestsInFlight.batch_size)."""
    in_flight = current_app.extensions["requests_in_flight"]
    while True:
        size = in_flight.batch_size(DRAIN_BATCH)
        if drain(limit=size) < size:
            return


def sender(app: Flask) -> BackgroundLoop:
    return app.extensions["outbox_sender"]


class Hinter:
    """Hands hints to the broker from a thread of its own (celery mode), so a broker that is
    down or slow (a publish can take seconds to fail) never holds up the request that
    committed. Hints beyond HINT_BACKLOG are dropped: the rows stay due for the sweep."""

    HINT_BACKLOG = 1000

    def __init__(self, app: Flask):
        self.app = app
        self._hints: queue.Queue = queue.Queue(maxsize=self.HINT_BACKLOG)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def hint(self, ids: list[int], countdown: float, request_id: str | None = None) -> None:
        self._ensure_started()
        try:
            self._hints.put_nowait((ids, countdown, request_id))
        except queue.Full:
            log.warning("outbox: %d hint(s) dropped, the sweep will deliver them", len(ids))

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="outbox-hints", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            ids, countdown, request_id = self._hints.get()
            _hint_workers(self.app, ids, countdown, request_id)


def hinter(app: Flask) -> Hinter:
    return app.extensions["outbox_hinter"]


def init_outbox(app: Flask) -> None:
    """Give the app its sender; in thread mode every request makes sure it runs, so rows
    left by a previous process are delivered once this one serves."""
    app.extensions["outbox_sender"] = BackgroundLoop(
        app, "outbox-sender", drain_everything_due, app.config["OUTBOX_POLL_SECONDS"]
    )
    app.extensions["outbox_hinter"] = Hinter(app)
    if app.config["OUTBOX_DELIVERY"] == "thread":
        app.before_request(app.extensions["outbox_sender"].ensure_started)
