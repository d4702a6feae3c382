"""Background jobs: declared with `@job(name)`, registered by the app factory.

A module declares its jobs with `@job(name)`, which only describes them; the app factory
registers every job with the app (`register_jobs`): with its own Celery, for beat's periodic
jobs and for workers, and by name for the outbox. Jobs that a change causes are written to the
outbox in its transaction (`enqueue`, core/outbox.py) and delivered after it commits: a
rolled-back change sends nothing, and a committed one is never lost to a broker or mail outage.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from celery import Celery, Task
from flask import Flask, current_app

from core import counters, outbox
from core.logs import request_id_bound
from extensions import db
from models import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Job:
    """A background job as declared: the name workers and beat know it by, what it runs, and
    Celery's task options (retries, bind)."""

    name: str
    run: Callable
    options: Mapping = field(default_factory=dict)


def job(name: str, **options) -> Callable[[Callable], Job]:
    """Declare the decorated function a background job named `name`; registers nothing."""

    def declare(run: Callable) -> Job:
        return Job(name, run, options)

    return declare


def init_celery(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                try:
                    return self.run(*args, **kwargs)
                except Exception:
                    counters.JOB_FAILURES.labels(self.name).inc()
                    raise

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def register_jobs(app: Flask, jobs: Iterable[Job]) -> None:
    """Make `jobs` tasks of this app's Celery only (not shared: other apps in the process, as
    in tests, register their own), and known to its outbox by name."""
    celery_app = app.extensions["celery"]
    jobs = tuple(jobs)
    for declared in jobs:
        celery_app.task(
            declared.run, name=declared.name, shared=False, lazy=False, **declared.options
        )
    app.extensions["jobs"] = {declared.name: declared for declared in jobs}


def enqueue(task: Job, *args, delay_seconds: float = 0) -> None:
    """Run `task(*args)` once the current transaction commits (not before `delay_seconds`),
    retried until it succeeds: a row of the outbox, written in this transaction, so it is
    dropped if it rolls back. Arguments must be JSON values."""
    if task.name not in current_app.extensions["jobs"]:
        raise LookupError(f"{task.name} is not a registered job")
    outbox.add(task.name, args, delay_seconds)


# The outbox's own tasks, for Celery workers: the hint after a commit, and beat's sweep.


@job("outbox.deliver")
def deliver_outbox(message_ids: list[int], request_id: str | None = None) -> int:
    """Deliver the rows a commit just wrote (those still due and unclaimed); their log lines
    carry the id of the request that wrote them."""
    with request_id_bound(request_id):
        return outbox.drain(only=message_ids)


@job("outbox.sweep")
def sweep_outbox() -> int:
    """Deliver every due row: retries, and rows whose hint never reached a worker."""
    delivered = 0
    while True:
        ran = outbox.drain()
        delivered += ran
        if ran < outbox.DRAIN_BATCH:
            return delivered


@job("outbox.prune")
def prune_outbox() -> int:
    """Delete sent messages older than OUTBOX_KEEP_SENT_DAYS (daily, by beat); waiting and
    dead ones stay until they are sent or staff deal with them."""
    days = current_app.config["OUTBOX_KEEP_SENT_DAYS"]
    pruned = outbox.prune_sent(utcnow() - timedelta(days=days))
    db.session.commit()
    log.info("deleted %d sent outbox message(s) older than %d days", pruned, days)
    return pruned
