"""Background jobs with Celery: inline (eager) by default, on Redis workers when configured.

Jobs that a request causes are queued only after its transaction commits (`enqueue`), so a
rolled-back request never sends an email or calls out.
"""

import logging

from celery import Celery, Task
from flask import Flask, current_app

from core.database import after_commit

log = logging.getLogger(__name__)


def init_celery(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    # Task modules register themselves with @shared_task when imported.
    import admin.analytics.tasks  # noqa: F401
    import rewards.tasks  # noqa: F401

    app.extensions["celery"] = celery_app
    return celery_app


def enqueue(task, *args, **kwargs) -> None:
    """Queue `task` once the current transaction commits; drop it if it rolls back."""
    # This app's own Celery: a @shared_task alone resolves to the process's newest Celery app,
    # which in a process with several apps (tests) runs it under another app's settings.
    bound = current_app.extensions["celery"].tasks[task.name]

    def send():
        try:
            bound.apply_async(args, kwargs)
        except Exception:  # the commit stands; a lost job is logged, not turned into a 500
            log.exception("could not queue %s", task.name)

    after_commit(send)
