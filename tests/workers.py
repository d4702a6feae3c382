"""Real Celery processes for the tests that need one: a Redis broker with a queue of the test's
own, a worker or beat in its own process, and a bounded wait for what they should do."""

import contextlib
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from core.jobs import enqueue
from extensions import db
from tests import databases, preloaded
from tests.apps import other_app
from tests.server import ROOT, server_environment, stop_process

# Celery tests use a Redis database of their own, and each run a queue of its own in it.
CELERY_REDIS_DB = 7
WORKER_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Broker:
    url: str
    queue: str


@dataclass(frozen=True)
class CeleryProcess:
    process: "subprocess.Popen | preloaded.PreloadedProcess"
    log: Callable[[], str]


@contextlib.contextmanager
def redis_broker():
    """The Redis URL and a queue of the caller's own; skips or fails like the other services."""
    parts = urlsplit(databases.REDIS_URL)
    url = urlunsplit(parts._replace(path=f"/{CELERY_REDIS_DB}"))
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        databases.service_missing("Redis", error)
    queue = f"inviteloop-test-{secrets.token_hex(4)}"
    yield Broker(url, queue)
    for key in client.scan_iter(f"*{queue}*"):
        client.delete(key)
    client.close()


def queue_job(database_url: str, broker: Broker, task, *args) -> None:
    """Queue a job as the web app does: in a transaction, handed to Redis at commit."""
    web = {
        "REDIS_URL": broker.url,
        "OUTBOX_DELIVERY": "celery",
        "CELERY_OVERRIDES": {"task_default_queue": broker.queue},
    }
    with other_app(database_url, **web) as app, app.app_context():
        assert not app.extensions["celery"].conf.task_always_eager
        enqueue(task, *args)
        db.session.commit()


@contextlib.contextmanager
def running_celery(arguments: list[str], database_url: str, **settings: str):
    """`celery -A worker <arguments>` with `settings` as its environment, its output kept.
    Stopped with SIGTERM (a warm shutdown), killed only if it lingers."""
    arguments = ["-A", "worker", *arguments, "--loglevel", "INFO"]
    env = server_environment(database_url, LOG_LEVEL="INFO", **settings)
    # In its own session, so a kill reaches any child too.
    with preloaded.Command("celery", arguments, cwd=ROOT, env=env) as command:
        try:
            yield CeleryProcess(command.process, command.output)
        finally:
            stop_process(command.process)


def running_worker(database_url: str, broker: Broker, **settings: str):
    """A worker consuming this test's queue only, one task at a time, in its own process."""
    arguments = ["worker", "--pool", "solo", "--concurrency", "1", "--queues", broker.queue]
    arguments += ["--hostname", f"{broker.queue}@%h"]
    arguments += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    # Its own hints (an outbox retry) go to the test's queue too.
    queue = {"CELERY_DEFAULT_QUEUE": broker.queue}
    return running_celery(arguments, database_url, REDIS_URL=broker.url, **queue, **settings)


def wait_until(condition: Callable[[], object], celery: CeleryProcess, what: str) -> None:
    deadline = time.monotonic() + WORKER_WAIT_SECONDS
    while not condition():
        if celery.process.poll() is not None:
            pytest.fail(f"celery exited ({celery.process.returncode}):\n{celery.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WORKER_WAIT_SECONDS:.0f} s; its log:\n{celery.log()}")
        time.sleep(0.1)
