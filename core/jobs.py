"""Background jobs with Celery: inline (eager) by default, on Redis workers when configured.

A module declares its jobs with `@job(name)`, which only describes them; the app factory
registers every job with the app's own Celery (`register_jobs`). Jobs that a request causes are
queued only after its transaction commits (`enqueue`), so a rolled-back request never sends an
email or calls out.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from celery import Celery, Task
from flask import Flask, current_app

from core.database import after_commit

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
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def register_jobs(celery_app: Celery, jobs: Iterable[Job]) -> None:
    """Make `jobs` tasks of this Celery app only (not shared: other apps in the process, as in
    tests, register their own)."""
    for declared in jobs:
        celery_app.task(
            declared.run, name=declared.name, shared=False, lazy=False, **declared.options
        )


def enqueue(task: Job, *args, **kwargs) -> None:
    """Queue `task` once the current transaction commits; drop it if it rolls back."""
    bound = current_app.extensions["celery"].tasks[task.name]

    def send():
        try:
            bound.apply_async(args, kwargs)
        except Exception:  # the commit stands; a lost job is logged, not turned into a 500
            log.exception("could not queue %s", task.name)

    after_commit(send)
