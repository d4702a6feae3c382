"""How many signed events a real server accepts per second, beside a bare Flask endpoint.

    .venv/bin/python -m bench.events [--events 2000] [--senders 16] [--referrers 100]
        [--backend postgresql|sqlite] [--rounds 3] [--async]

A new database (PostgreSQL `inviteloop_bench_<random>`, dropped afterwards, with Redis; or a
SQLite file without) is migrated like a real installation and given R referrers. Then N
qualifying purchases (25.00 each, by a new customer carrying one of the referrers' codes) are
each delivered twice, signed per Standard Webhooks: 2N requests, half of them duplicates, some
racing their original and some arriving later. S sender threads post them as fast as the
answers come back, in rounds that alternate between InviteLoop under gunicorn (the
production settings of bench/harness.py) and a bare Flask app under the same settings, each
round sending the next share of the deliveries to both. Afterwards the database must hold
exactly N purchase conversions and 2N rewards, and InviteLoop must have answered N
`accepted` and N `duplicate`.

With `--async` every delivery asks `Prefer: respond-async`: InviteLoop answers 202 once the
event is stored (a redelivery the same id). On PostgreSQL no worker runs beside the servers
(with Redis, jobs go to a broker nobody reads), so the events are processed after the rounds,
as the worker's job would; on SQLite without a broker each 202 runs the job before it leaves,
as the embedded default does. Afterwards every delivery must have been answered 202, the inbox
must hold N events, each processed `accepted`, and the database N purchases and 2N rewards.
"""

import argparse
import json
import queue
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from sqlalchemy import func, select

from bench import harness
from bench.leaderboard import create_database, drop_database, make_app
from extensions import db
from models import Conversion, EventInbox, OutboxMessage, Reward, utcnow
from rewards import customers, tasks
from tests.databases import migrate
from tests.events_api import SECRET, sign

PATH = "/api/v1/events"
ASYNC = {"Prefer": "respond-async"}
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
    # (HTTP status, outcome, seconds) each; a 202's "outcome" is its status, "queued".
    answers: list[tuple[int, str | None, float]]
    # Deliveries answered 5xx (SQLite busy past its timeout: 503), which a shop sends again.
    refused: list[Delivery] = field(default_factory=list)
    retried: "Result | None" = None  # their second sending, after the rounds

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

    def as_round(self) -> harness.Round:
        return harness.Round(
            self.requests,
            self.seconds,
            self.latency_ms(0.50),
            self.latency_ms(0.99),
            self.statuses,
        )


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


def schedule(codes: list[str], events: int, seed: int, first: int = 0) -> list[Delivery]:
    """Each purchase twice: the original in order, its duplicate 0..DUPLICATE_SPREAD later.
    Purchases are numbered from `first` (another run's start after this one's)."""
    rng = random.Random(seed)
    slots: list[tuple[float, Delivery]] = []
    for number in range(first, first + events):
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


def send(
    base_url: str,
    deliveries: list[Delivery],
    senders: int,
    target: str,
    prefer_async: bool = False,
) -> Result:
    """`senders` threads, each with its own keep-alive connection, take the next delivery
    as soon as their previous answer arrives. Each is signed as it is sent."""
    work: queue.SimpleQueue = queue.SimpleQueue()
    for delivery in deliveries:
        work.put(delivery)
    started: list[float] = []
    barrier = threading.Barrier(senders, action=lambda: started.append(time.perf_counter()))

    def sender() -> list[tuple[tuple[int, str | None, float], Delivery]]:
        answers = []
        with requests.Session() as session:
            barrier.wait()
            while True:
                try:
                    delivery = work.get_nowait()
                except queue.Empty:
                    return answers
                answer = _post(session, f"{base_url}{PATH}", delivery, prefer_async)
                answers.append((answer, delivery))

    with ThreadPoolExecutor(senders) as pool:
        done = [
            pair for answers in pool.map(lambda _: sender(), range(senders)) for pair in answers
        ]
    elapsed = time.perf_counter() - started[0]
    refused = [delivery for answer, delivery in done if answer[0] >= 500]
    return Result(target, elapsed, [answer for answer, _ in done], refused)


def _post(
    session, url: str, delivery: Delivery, prefer_async: bool = False
) -> tuple[int, str | None, float]:
    """One signed delivery (tests/events_api.py's signature); the outcome InviteLoop gave
    (a 202's status), None from the bare app's plain "ok"."""
    body, timestamp = delivery.body.encode(), int(time.time())
    headers = {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(body, delivery.message_id, timestamp),
        "Content-Type": "application/json",
        **(ASYNC if prefer_async else {}),
    }
    began = time.perf_counter()
    response = session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT)
    seconds = time.perf_counter() - began
    json_answer = response.headers.get("Content-Type", "").startswith("application/json")
    answer = response.json() if json_answer else {}
    outcome = answer.get("outcome") or answer.get("status") if isinstance(answer, dict) else None
    return response.status_code, outcome, seconds


def measure(
    pair: harness.Pair,
    deliveries: list[Delivery],
    senders: int,
    rounds: int,
    warm_up: int = WARM_UP_REQUESTS,
    prefer_async: bool = False,
    after_real: Callable[[], None] | None = None,
):
    """Warm both servers up (`warm_up` ignored events each), then `rounds` alternating pairs,
    each sending the next share of the deliveries to InviteLoop and the same share to the bare
    app (`Prefer: respond-async` on each with `prefer_async`); `after_real` runs, untimed,
    after each of InviteLoop's rounds. Returns the figure, and InviteLoop's and the bare app's
    answers of all rounds."""
    for base in (pair.real, pair.bare):
        send(base, warm_up_deliveries(warm_up), senders, "warm-up", prefer_async)
    share = -(-len(deliveries) // rounds)
    parts = [deliveries[n : n + share] for n in range(0, len(deliveries), share)]
    left = {"real": iter(parts), "bare": iter(parts)}
    results: dict[str, list[Result]] = {"real": [], "bare": []}

    def run(base_url: str, target: str) -> harness.Round:
        result = send(base_url, next(left[target]), senders, target, prefer_async)
        results[target].append(result)
        if target == "real" and after_real is not None:
            after_real()
        return result.as_round()

    figure = harness.interleaved(pair, run, len(parts))
    answers = [answer for result in results["real"] for answer in result.answers]
    refused = [delivery for result in results["real"] for delivery in result.refused]
    inviteloop = Result("inviteloop", sum(r.seconds for r in results["real"]), answers, refused)
    if refused:  # as a shop would, once the rush is over
        inviteloop.retried = send(pair.real, refused, 1, "retried", prefer_async)
    bare_answers = [answer for result in results["bare"] for answer in result.answers]
    bare = Result("bare flask", sum(r.seconds for r in results["bare"]), bare_answers)
    return figure, inviteloop, bare


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
        f"purchases stored {conversions:,} = unique {events:,}, rewards {rewards:,} = "
        f"2 x {events:,} ({referrer:,} to referrers) {'OK' if ok else 'WRONG'}"
    )
    return ok, line


def process_queued(url: str) -> int:
    """What the worker's job does, for the events acknowledged with 202 and left queued (no
    worker runs beside the benchmark's servers)."""
    app = make_app(url)
    try:
        with app.app_context():
            processed = 0
            while ran := tasks.process_events.run():
                processed += ran
            return processed
    finally:
        _dispose(app)


def wait_until_processed(url: str, patience: float = 300.0) -> None:
    """Wait while the server's own event runner (the embedded default: no broker) works
    through the events it acknowledged, so that work does not run into the bare app's round."""

    def queued():
        return select(func.count()).where(EventInbox.processed_at.is_(None))

    _wait_until_none_left(url, queued, "events still queued", patience)


def wait_until_sent(url: str, patience: float = 300.0) -> None:
    """Wait while the server's own outbox sender (the embedded default: no broker) delivers
    the emails and webhooks of the rounds before (the synchronous events' rewards leave ~1,700),
    so that work does not run into the next figure's rounds."""

    def due():
        return select(func.count()).where(
            OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= utcnow()
        )

    _wait_until_none_left(url, due, "outbox messages still due", patience)


def _wait_until_none_left(url: str, count: Callable, what: str, patience: float) -> None:
    """Poll `count()` (a statement counting what is left) until it counts none."""
    app = make_app(url)
    deadline = time.monotonic() + patience
    try:
        while True:
            with app.app_context():
                left = db.session.scalar(count())
                db.session.remove()
            if not left:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{left} {what} after {patience:.0f} s")
            time.sleep(0.1)
    finally:
        _dispose(app)


def queued_check(url: str, inviteloop: Result, events: int) -> tuple[bool, str]:
    """Every delivery answered 202 in the end, and the inbox holds each purchase once,
    processed `accepted`."""
    final = [answer for answer in inviteloop.answers if answer[0] < 500]
    if inviteloop.retried:
        final += inviteloop.retried.answers
    statuses = Counter(status for status, _, _ in final)
    app = make_app(url)
    try:
        with app.app_context():
            outcomes = Counter(
                outcome["outcome"] if outcome else "queued"
                for outcome in db.session.scalars(select(EventInbox.outcome))
            )
    finally:
        _dispose(app)
    ok = statuses == Counter({202: 2 * events}) and outcomes == Counter({"accepted": events})
    line = _statuses_line(inviteloop)
    kinds = ", ".join(f"{n:,} {o}" for o, n in sorted(outcomes.items(), key=str))
    return ok, f"{line}; inbox: {kinds} {'OK' if ok else 'WRONG'}"


def answers_check(inviteloop: Result, events: int) -> tuple[bool, str]:
    """Every delivery answered 200 in the end (a 5xx is sent again after the rounds, as a shop
    would), N of them `accepted` and N `duplicate`."""
    final = [answer for answer in inviteloop.answers if answer[0] < 500]
    if inviteloop.retried:
        final += inviteloop.retried.answers
    statuses = Counter(status for status, _, _ in final)
    outcomes = Counter(outcome for _, outcome, _ in final)
    ok = statuses == Counter({200: 2 * events}) and outcomes == Counter(
        {"accepted": events, "duplicate": events}
    )
    line = _statuses_line(inviteloop)
    kinds = ", ".join(f"{n:,} {o}" for o, n in sorted(outcomes.items(), key=str))
    return ok, f"{line}; {kinds} {'OK' if ok else 'WRONG'}"


def _statuses_line(inviteloop: Result) -> str:
    """The answers' HTTP statuses, and those of the deliveries sent again after the rounds."""
    line = "HTTP " + _counted(inviteloop.statuses)
    if inviteloop.retried:
        again = _counted(inviteloop.retried.statuses)
        line += f" (the {len(inviteloop.refused):,} sent again: {again})"
    return line


def _counted(statuses: Counter) -> str:
    return ", ".join(f"{n:,} x {status}" for status, n in sorted(statuses.items()))


def run(args) -> int:
    with tempfile.TemporaryDirectory(prefix="inviteloop-bench-") as workdir:
        url = create_database(args.backend, workdir)
        try:
            migrate(make_app(url))
            codes = seed_referrers(url, args.referrers)
            deliveries = schedule(codes, args.events, args.seed)
            print(
                f"[setup] {args.backend}: migrated, {len(codes)} referrers; "
                f"{len(deliveries):,} deliveries of {args.events:,} unique purchases",
                flush=True,
            )
            redis_url = harness.REDIS_URL if args.backend == "postgresql" else None
            with harness.serving(url, redis_url, EVENTS_WEBHOOK_SECRET=SECRET) as pair:
                figure, inviteloop, bare = measure(
                    pair, deliveries, args.senders, args.rounds, prefer_async=args.prefer_async
                )
            if args.prefer_async:
                process_queued(url)
                answered_ok, answered = queued_check(url, inviteloop, args.events)
            else:
                answered_ok, answered = answers_check(inviteloop, args.events)
            stored_ok, stored = count_check(url, args.events)
        finally:
            drop_database(url)
    print_table([inviteloop, bare], args.senders)
    print()
    name = "signed purchase events" + (" (202, respond-async)" if args.prefer_async else "")
    print(harness.report_line(args.backend, "", name, figure, stored))
    print(f"answers: {answered}")
    return 0 if stored_ok and answered_ok else 1


def print_table(results: list[Result], senders: int) -> None:
    print(f"\nsigned events, {senders} concurrent senders, half of them duplicates")
    print(f"{'target':<25}{'requests':>9}{'seconds':>9}{'req/s':>8}{'p50':>10}{'p99':>10}  answers")
    for r in results:
        statuses = ", ".join(f"{n:,} x {status}" for status, n in sorted(r.statuses.items()))
        outcomes = ", ".join(f"{n:,} {o}" for o, n in sorted(r.outcomes.items(), key=str))
        print(
            f"{r.target:<25}{r.requests:>9,}{r.seconds:>9.1f}{r.per_second:>8.0f}"
            f"{r.latency_ms(0.50):>8.1f}ms{r.latency_ms(0.99):>8.1f}ms  "
            f"HTTP {statuses}; {outcomes}"
        )
        if len(r.outcomes) > 1:
            _print_by_outcome(r)


def _print_by_outcome(result: Result) -> None:
    for outcome, count in sorted(result.outcomes.items(), key=str):
        print(
            f"{'  of which ' + str(outcome):<25}{count:>9,}{'':>26}"
            f"{result.latency_ms(0.50, outcome):>8.1f}ms{result.latency_ms(0.99, outcome):>8.1f}ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__)
    parser.add_argument(
        "--events", type=int, default=2000, help="unique purchases (each sent twice)"
    )
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--referrers", type=int, default=100)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rounds", type=int, default=3, help="alternating pairs of rounds")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--async",
        dest="prefer_async",
        action="store_true",
        help="send `Prefer: respond-async`: acknowledged with 202, processed afterwards",
    )
    args = parser.parse_args(argv)
    if min(args.events, args.senders, args.referrers, args.rounds) < 1:
        parser.error("--events, --senders, --referrers and --rounds must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
