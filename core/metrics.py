"""Prometheus metrics at /metrics (docs/guarantees.md #36).

Two kinds of series:
- counters (core/counters.py), moved where the thing happens: requests (by Flask endpoint,
  never the raw path, so a code in /r/<code> cannot create a series per code), clicks,
  signups, conversion events, job failures, outbound webhook attempts. What a request's
  transaction did is counted once it commits (`count_on_commit`): a rolled-back signup is not
  a signup.
- gauges read from the database at scrape time by a few grouped COUNT/SUM queries: referrals
  and rewards by status, the outbox's depth and the age of its oldest due message, /health.

Under gunicorn every worker is a process of its own. With PROMETHEUS_MULTIPROC_DIR set (a
writable directory whose counter files are removed before each start: deploy/entrypoint.sh)
the counters live in files there and a scrape adds up every worker's, and those in the
folder's subfolders too: compose.yaml gives the Celery worker one, so its failed jobs and
webhook attempts are in the same scrape (a folder of its own, since two containers may have
the same process ids). gunicorn.conf.py's `child_exit` tells the client when a worker is
gone. Without it the counters are this process's only (the development server, tests).

Access: with METRICS_TOKEN set, only `Authorization: Bearer <token>`. Without it the page is
open in development and answers 404 in production.
"""

import contextlib
import functools
import hmac
import logging
import os
import time
from pathlib import Path

from flask import Flask, Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from core import health, outbox
from core.counters import HTTP_LATENCY, HTTP_REQUESTS
from extensions import db
from models import OutboxMessage, Referral, Reward

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_STARTED = "inviteloop.metrics.started"  # request.environ: when the request began
UNMATCHED = "unmatched"  # the endpoint label of a request no route answered (404, 405)

# --- the page ------------------------------------------------------------------------------


def register_metrics(app: Flask) -> None:
    """Time and count every request, and serve /metrics."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)
    app.after_request(_count_request)
    app.add_url_rule("/metrics", "metrics", show_metrics)


def _start_clock() -> None:
    request.environ[_STARTED] = time.perf_counter()


def _count_request(response):
    endpoint = request.url_rule.endpoint if request.url_rule else UNMATCHED
    count_request(endpoint, request.method, response.status_code, request.environ.get(_STARTED))
    return response


def count_request(endpoint: str, method: str, status: int, started: float | None) -> None:
    """One answered request, and how long it took since `started` (time.perf_counter())."""
    requests, latency = _series_of(endpoint, method, status)
    requests.inc()
    if started is not None:
        latency.observe(time.perf_counter() - started)


@functools.lru_cache(maxsize=2048)  # each labels() call takes a lock and builds a key
def _series_of(endpoint: str, method: str, status: int):
    return HTTP_REQUESTS.labels(endpoint, method, str(status)), HTTP_LATENCY.labels(endpoint)


def show_metrics():
    _authorize()
    return Response(scrape(), mimetype=CONTENT_TYPE_LATEST)


def _authorize() -> None:
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        if current_app.config["APP_ENV"] == "production":
            abort(404)
        return
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), token.encode()
    ):
        response = Response("A bearer token is required.\n", 401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        abort(response)


def scrape() -> bytes:
    """The text exposition: every process's counters, then the state read now."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if folder:
        counters = CollectorRegistry(auto_describe=False)
        counters.register(CountersOfEveryProcess(Path(folder)))
    else:
        counters = REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector())
    return generate_latest(counters) + generate_latest(state)


class CountersOfEveryProcess:
    """The counter files of every process: the folder's own and its subfolders'."""

    def __init__(self, folder: Path):
        self.folder = folder

    def collect(self):
        files = [*self.folder.glob("*.db"), *self.folder.glob("*/*.db")]
        return multiprocess.MultiProcessCollector.merge([str(f) for f in files], accumulate=True)


# --- gauges read at scrape time ------------------------------------------------------------


class StateCollector:
    """Gauges from the database and /health's probes, computed on each scrape."""

    def collect(self):
        try:
            yield from _database_gauges()
        except SQLAlchemyError as error:
            # The counters are still worth a scrape; the health gauge says "error".
            log.error("metrics: database unreadable (%s)", error.__class__.__name__)
        finally:
            with contextlib.suppress(SQLAlchemyError):
                db.session.rollback()  # read-only: end the transaction the queries began
        yield _health_gauge()


def _database_gauges():
    referrals = GaugeMetricFamily("inviteloop_referrals", "Referrals by status.", labels=["status"])
    for status, count in db.session.execute(
        select(Referral.status, func.count()).group_by(Referral.status)
    ):
        referrals.add_metric([status], count)
    rewards = GaugeMetricFamily(
        "inviteloop_rewards", "Reward entries by status and kind.", labels=["status", "kind"]
    )
    amounts = GaugeMetricFamily(
        "inviteloop_rewards_amount",
        "Sum of reward amounts in minor units (points for points), by status, kind and currency.",
        labels=["status", "kind", "currency"],
    )
    rows = db.session.execute(
        select(
            Reward.status, Reward.kind, Reward.currency, func.count(), func.sum(Reward.amount)
        ).group_by(Reward.status, Reward.kind, Reward.currency)
    ).all()
    by_status_kind: dict[tuple[str, str], int] = {}
    for status, kind, currency, count, amount in rows:
        by_status_kind[(status, kind)] = by_status_kind.get((status, kind), 0) + count
        amounts.add_metric([status, kind, currency], amount or 0)
    for (status, kind), count in by_status_kind.items():
        rewards.add_metric([status, kind], count)
    yield referrals
    yield rewards
    yield amounts
    yield from _outbox_gauges()


def _outbox_gauges():
    messages = GaugeMetricFamily(
        "inviteloop_outbox_messages",
        "Outbox messages by status (pending: waiting to be delivered; dead: given up).",
        labels=["status"],
    )
    counts = dict(
        db.session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.status.in_((outbox.PENDING, outbox.DEAD)))
            .group_by(OutboxMessage.status)
        ).all()
    )
    for status in (outbox.PENDING, outbox.DEAD):
        messages.add_metric([status], counts.get(status, 0))
    yield messages
    yield GaugeMetricFamily(
        "inviteloop_outbox_oldest_due_seconds",
        "How long the longest-waiting due outbox message has been due (0: none is due).",
        value=outbox.oldest_due_age() or 0,
    )


def _health_gauge():
    gauge = GaugeMetricFamily(
        "inviteloop_health_status",
        "What /health reports now: 1 for the current status (ok, degraded, error).",
        labels=["status"],
    )
    current = health.check().status
    for status in ("ok", "degraded", "error"):
        gauge.add_metric([status], 1 if status == current else 0)
    return gauge
