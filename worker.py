"""The Celery entry point for workers and beat:

    celery -A worker worker --loglevel INFO     # runs emails, hold release, expiry
    celery -A worker beat --loglevel INFO       # queues hold release and expiry on schedule

Settings come from the environment exactly as for the web app (REDIS_URL is the broker;
PUBLIC_URL gives emails their links, since a worker has no request to take the host from).

This is the one module that makes an app at import. It is a process entry point, like
gunicorn's `app:create_app()`: Celery's -A option needs a module attribute that already holds
the Celery instance, and the instance is built by the app factory (core.jobs.init_celery), so
its tasks run inside this app's context. Nothing in the application imports this module.
"""

import gc
import logging
import os
import sys
import threading

from celery.signals import setup_logging, worker_process_init, worker_shutdown

from app import create_app
from core.logs import configure_logging
from extensions import db

flask_app = create_app()
# The app's objects live as long as the worker: frozen, no collection walks them again, and
# the pool processes forked from here share their pages instead of copying them.
gc.freeze()
# The name Celery looks for; not `app`, which -A would take for the Celery instance.
celery = flask_app.extensions["celery"]


def _keep_our_logging(**_):
    """LOG_FORMAT=json: Celery's lines go through the app's JSON handler too (a receiver of
    setup_logging stops Celery from installing its own)."""
    configure_logging(flask_app.config)


if flask_app.config["LOG_FORMAT"] == "json":
    setup_logging.connect(_keep_our_logging)


@worker_process_init.connect
def _own_database_connections(**_):
    """A forked pool process must not share the parent's pooled database connections."""
    with flask_app.app_context():
        db.engine.dispose(close=False)


@worker_shutdown.connect
def _leave_now(sender, **_):
    """A stopped worker ends without Python's teardown: its tasks are done and acknowledged,
    its connections closed, and tearing down the app's objects would take about half a
    second of CPU, for nothing, at every deploy (as gunicorn.conf.py's workers do). Only the
    `celery worker` process itself, whose main thread stops it; the logs are flushed first."""
    if threading.current_thread() is not threading.main_thread():
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    code = sender.exitcode
    os._exit(code if isinstance(code, int) else 0)
