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

from celery.signals import setup_logging, worker_process_init

from app import create_app
from core.logs import configure_logging
from extensions import db

flask_app = create_app()
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
