"""How many signed events a real server accepts per second, beside a bare Flask endpoint.

    .venv/bin/python -m bench.events [--events 2000] [--senders 16] [--referrers 100]

A new PostgreSQL database (`inviteloop_bench_<random>`, dropped afterwards) is migrated like a
real installation and given R referrers. Then N qualifying purchases (25.00 each, by a new
customer carrying one of the referrers' codes) are each delivered twice, signed per Standard
Webhooks: 2N requests, half of them duplicates, some racing their original and some arriving
later. S sender threads post them as fast as the answers come back to InviteLoop under
gunicorn (the settings of tests/server.py), and then the same requests to a bare Flask
endpoint under the same gunicorn settings. Afterwards the database must hold exactly N
purchase conversions and 2N rewards.
"""

import argparse
import base64
import json
import queue
import random
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from flask import Flask, jsonify, request
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from bench.leaderboard import create_database, drop_database, make_app
from extensions import db
from models import Conversion, Reward, utcnow
from rewards import customers
from tests.databases import migrate
from tests.server import (
    GENEROUS_LIMITS,
    running_server,
)

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
PATH = "/api/v1/events"
WARM_UP_REQUESTS = 200
REQUEST_TIMEOUT = 60
# Where a duplicate lands after its original in the send order: at once (racing it on
# another sender) up to a few hundred requests later.
DUPLICATE_SPREAD = 400


@dataclass(frozen=True)
class Delivery:
    message_id: str
    body: str


@dataclass
class Result:
    target: str
    seconds: float
    answers: list[tuple[int, str | None, float]]  # (HTTP status, outcome, seconds) each

    @property
    def requests(self) -> int:
        return len(self.answers)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def statuses(self) -> Counter:
        return Counter(status for status, _, _ in self.answers)

    @property
    def outcomes(self) -> Counter:
        return Counter(outcome for _, outcome, _ in self.answers)

    def latency_ms(self, share: float, outcome: str | None = None) -> float:
        """The latency `share` of the requests (of one outcome, if given) stayed under."""
        ordered = sorted(
            seconds for _, answer, seconds in self.answers if outcome in (None, answer)
        )
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def bare_app() -> Flask:
    """The floor: one POST route answering JSON, no database, no signature check."""
    app = Flask("bare")

    @app.post(PATH)
    def receive():
        request.get_data()
        return jsonify(outcome="accepted", reason=None)

    @app.get("/health")  # for the readiness wait of tests.server
    def health():
        return jsonify(status="ok")

    return app


def bare_server(database_url: str):
    """bare_app() under the gunicorn command and settings tests.server uses for the app."""
    return running_server(database_url, wsgi_app="bench.events:bare_app()")


def seed_referrers(url: str, count: int) -> list[str]:
    """`count` participants as a shop's code issuing makes them; returns their codes."""
    app = make_app(url)
    try:
        with app.app_context():
            now = utcnow()
            users = [
                customers.find_or_create(None, f"referrer{n}@example.com", now)
                for n in range(count)
            ]
            db.session.commit()
            return [user.codes[0].code for user in users]
    finally:
        _dispose(app)


def _dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def schedule(codes: list[str], events: int, seed: int) -> list[Delivery]:
    """Each purchase twice: the original in order, its duplicate 0..DUPLICATE_SPREAD later."""
    rng = random.Random(seed)
    slots: list[tuple[float, Delivery]] = []
    for number in range(events):
        event = {
            "type": "purchase",
            "id": f"evt-bench-{number}",
            "order_id": f"order-{number}",
            "customer": {"email": f"friend{number}@example.com"},
            "ref_code": codes[number % len(codes)],
            "amount": 2500,
            "currency": "USD",
        }
        delivery = Delivery(f"msg_{event['id']}", json.dumps(event))
        slots.append((number, delivery))
        slots.append((number + rng.uniform(0, DUPLICATE_SPREAD), delivery))
    return [delivery for _, delivery in sorted(slots, key=lambda slot: slot[0])]


def warm_up_deliveries(count: int) -> list[Delivery]:
    """Signed events of a type InviteLoop does not act on: answered, nothing stored."""
    return [
        Delivery(f"msg_warm_{n}", json.dumps({"type": "ping", "id": f"warm-{n}"}))
        for n in range(count)
    ]


def send(base_url: str, deliveries: list[Delivery], senders: int, target: str) -> Result:
    """`senders` threads, each with its own keep-alive connection, take the next delivery
    as soon as their previous answer arrives. Each is signed as it is sent."""
    work: queue.SimpleQueue = queue.SimpleQueue()
    for delivery in deliveries:
        work.put(delivery)
    started: list[float] = []
    barrier = threading.Barrier(senders, action=lambda: started.append(time.perf_counter()))
    signer = Webhook(SECRET)

    def sender() -> list[tuple[int, str | None, float]]:
        answers = []
        with requests.Session() as session:
            barrier.wait()
            while True:
                try:
                    delivery = work.get_nowait()
                except queue.Empty:
                    return answers
                answers.append(_post(session, signer, f"{base_url}{PATH}", delivery))

    with ThreadPoolExecutor(senders) as pool:
        done = list(pool.map(lambda _: sender(), range(senders)))
    elapsed = time.perf_counter() - started[0]
    return Result(target, elapsed, [answer for answers in done for answer in answers])


def _post(session, signer: Webhook, url: str, delivery: Delivery) -> tuple[int, str | None, float]:
    now = datetime.now(UTC)
    headers = {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(delivery.message_id, now, delivery.body),
        "Content-Type": "application/json",
    }
    began = time.perf_counter()
    response = session.post(
        url, data=delivery.body.encode(), headers=headers, timeout=REQUEST_TIMEOUT
    )
    seconds = time.perf_counter() - began
    outcome = response.json().get("outcome") if response.status_code == 200 else None
    return response.status_code, outcome, seconds


def count_check(url: str, events: int) -> tuple[bool, str]:
    """What the database holds against what the run sent."""
    app = make_app(url)
    try:
        with app.app_context():
            conversions = db.session.scalar(
                select(func.count()).where(Conversion.kind == "purchase")
            )
            rewards = db.session.scalar(select(func.count()).select_from(Reward))
            referrer = db.session.scalar(select(func.count()).where(Reward.role == "referrer"))
    finally:
        _dispose(app)
    ok = conversions == events and rewards == 2 * events and referrer == events
    line = (
        f"purchase conversions {conversions:,} (unique events {events:,}), rewards {rewards:,} "
        f"(2 x {events:,} = {2 * events:,}; {referrer:,} to referrers)"
    )
    return ok, line


def run(events: int, senders: int, referrers: int, seed: int) -> tuple[list[Result], bool, str]:
    with tempfile.TemporaryDirectory(prefix="inviteloop-bench-") as workdir:
        url = create_database("postgresql", workdir)
        try:
            migrate(make_app(url))
            codes = seed_referrers(url, referrers)
            deliveries = schedule(codes, events, seed)
            print(
                f"[setup] {url.rsplit('/', 1)[1]}: migrated, {len(codes)} referrers; "
                f"{len(deliveries):,} deliveries of {events:,} unique purchases"
            )
            results = [
                _run_inviteloop(url, deliveries, senders),
                _run_bare(url, deliveries, senders),
            ]
            ok, line = count_check(url, events)
            return results, ok, line
        finally:
            drop_database(url)


def _run_inviteloop(url: str, deliveries: list[Delivery], senders: int) -> Result:
    settings = {
        "EVENTS_WEBHOOK_SECRET": SECRET,
        "EVENTS_LIMITS": GENEROUS_LIMITS,
        "MAIL_BACKEND": "dummy",  # the friend-joined emails are composed, not delivered
    }
    with running_server(url, **settings) as base_url:
        return _timed(base_url, deliveries, senders, "inviteloop")


def _run_bare(url: str, deliveries: list[Delivery], senders: int) -> Result:
    with bare_server(url) as base_url:
        return _timed(base_url, deliveries, senders, "bare flask")


def _timed(base_url: str, deliveries: list[Delivery], senders: int, target: str) -> Result:
    send(base_url, warm_up_deliveries(WARM_UP_REQUESTS), senders, target)
    print(f"[{target}] {base_url}: warmed up with {WARM_UP_REQUESTS} requests; sending...")
    result = send(base_url, deliveries, senders, target)
    print(f"[{target}] {result.requests:,} requests in {result.seconds:.1f} s")
    return result


def print_table(results: list[Result], senders: int) -> None:
    print(f"\nsigned events, {senders} concurrent senders, half of them duplicates")
    print(f"{'target':<25}{'requests':>9}{'seconds':>9}{'req/s':>8}{'p50':>10}{'p95':>10}  answers")
    for r in results:
        statuses = ", ".join(f"{n:,} x {status}" for status, n in sorted(r.statuses.items()))
        outcomes = ", ".join(f"{n:,} {o}" for o, n in sorted(r.outcomes.items(), key=str))
        print(
            f"{r.target:<25}{r.requests:>9,}{r.seconds:>9.1f}{r.per_second:>8.0f}"
            f"{r.latency_ms(0.50):>8.1f}ms{r.latency_ms(0.95):>8.1f}ms  "
            f"HTTP {statuses}; {outcomes}"
        )
        if len(r.outcomes) > 1:
            _print_by_outcome(r)


def _print_by_outcome(result: Result) -> None:
    for outcome, count in sorted(result.outcomes.items(), key=str):
        print(
            f"{'  of which ' + str(outcome):<25}{count:>9,}{'':>26}"
            f"{result.latency_ms(0.50, outcome):>8.1f}ms{result.latency_ms(0.95, outcome):>8.1f}ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__)
    parser.add_argument(
        "--events", type=int, default=2000, help="unique purchases (each sent twice)"
    )
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--referrers", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261121)
    args = parser.parse_args(argv)
    if args.events < 1 or args.senders < 1 or args.referrers < 1:
        parser.error("--events, --senders and --referrers must be at least 1")
    results, ok, line = run(args.events, args.senders, args.referrers, args.seed)
    print_table(results, args.senders)
    inviteloop = results[0]
    expected = {"accepted": args.events, "duplicate": args.events}
    answered = inviteloop.statuses == Counter({200: 2 * args.events})
    outcomes = dict(inviteloop.outcomes) == expected
    print(f"\ncount check: {line} -> {'OK' if ok else 'WRONG'}")
    print(
        f"answers: every request 200 -> {'OK' if answered else 'WRONG'}; "
        f"{args.events:,} accepted + {args.events:,} duplicate -> {'OK' if outcomes else 'WRONG'}"
    )
    return 0 if ok and answered and outcomes else 1


if __name__ == "__main__":
    sys.exit(main())
