"""What /health reports: each dependency's state and whether the app can serve.

- `ok`: everything configured answers.
- `degraded` (still 200: the app serves): Redis, the broker or the mail server is down, or the
  outbox has a backlog (a due message waiting longer than OUTBOX_BACKLOG_SECONDS: no sender
  runs, or every attempt fails). Pages are computed without the cache, rate limits are
  counted per process, mail waits in the outbox.
- `error` (503): the database cannot be reached; nothing useful can be served.

Every probe has a short timeout (HEALTH_PROBE_TIMEOUT_SECONDS), so a hanging dependency cannot
hang the health check that a load balancer waits for.
"""

import logging
import smtplib
from dataclasses import dataclass

import redis
from flask import current_app
from kombu import Connection
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core import outbox
from extensions import db

log = logging.getLogger(__name__)

OK = "ok"
DOWN = "down"
NOT_CONFIGURED = "not_configured"
INLINE = "inline"  # background jobs run in the process (no broker)
BACKLOG = "backlog"  # the outbox holds messages due for longer than its threshold

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class Health:
    status: str  # ok | degraded | error
    dependencies: dict[str, str]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "error" else 200


def check() -> Health:
    config = current_app.config
    timeout = config["HEALTH_PROBE_TIMEOUT_SECONDS"]
    states = {"database": _database()}
    redis_url = config["REDIS_URL"]
    states["redis"] = _redis(redis_url, timeout) if redis_url else NOT_CONFIGURED
    states["broker"] = _broker(states["redis"], redis_url, timeout)
    states["mail"] = _mail(config, timeout) if config["MAIL_BACKEND"] == "smtp" else NOT_CONFIGURED
    if states["database"] == OK:
        states["outbox"] = _outbox(config["OUTBOX_BACKLOG_SECONDS"])
    if states["database"] != OK:
        status = "error"
    elif DOWN in states.values() or states.get("outbox") == BACKLOG:
        status = "degraded"
    else:
        status = "ok"
    return Health(status, states)


def _database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except SQLAlchemyError as error:
        log.error("health check: database unreachable (%s)", error.__class__.__name__)
        _forget_session()
        return DOWN
    return OK


def _outbox(threshold_seconds: int) -> str:
    try:
        waited = outbox.oldest_due_age()
        db.session.rollback()
    except SQLAlchemyError as error:
        log.error("health check: outbox unreadable (%s)", error.__class__.__name__)
        _forget_session()
        return DOWN
    if waited is not None and waited > threshold_seconds:
        log.warning("health check: the outbox has a message due for %d s", waited)
        return BACKLOG
    return OK


def _forget_session() -> None:
    try:
        db.session.rollback()
    except SQLAlchemyError:
        log.warning("health check: rollback failed, the connection is already gone")


def _redis(url: str, timeout: float) -> str:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        log.warning("health check: Redis unreachable (%s)", error.__class__.__name__)
        return DOWN
    finally:
        client.close()
    return OK


def _broker(redis_state: str, redis_url: str | None, timeout: float) -> str:
    celery_app = current_app.extensions["celery"]
    if celery_app.conf.task_always_eager:
        return INLINE
    url = celery_app.conf.broker_url or ""
    if redis_url and url == redis_url:
        return redis_state  # the same Redis: probed once
    if url.startswith(_REDIS_SCHEMES):
        return _redis(url, timeout)
    try:
        with Connection(url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as error:  # noqa: BLE001 - any transport's failure means "down"
        log.warning("health check: broker unreachable (%s)", error.__class__.__name__)
        return DOWN
    return OK


def _mail(config, timeout: float) -> str:
    """Connect, read the greeting, say QUIT: a server that accepts but never greets is down."""
    try:
        with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=timeout) as smtp:
            smtp.noop()
    except (smtplib.SMTPException, OSError) as error:
        log.warning("health check: mail server unreachable (%s)", error.__class__.__name__)
        return DOWN
    return OK
