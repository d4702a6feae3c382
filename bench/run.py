"""Every figure of issue 15 in one run: `make bench` (full) and `make bench-quick` (CI smoke).

    .venv/bin/python -m bench.run                       # 100k and 1M participants, both databases
    .venv/bin/python -m bench.run --quick               # small data, under 2 minutes

For each database (PostgreSQL with Redis, SQLite without) and each size: a fresh database
seeded by bench/leaderboard.py's generator (COPY on PostgreSQL), the real server and a bare
Flask app started side by side (bench/harness.py), loaded from this process with wrk (16
connections) in rounds that alternate between the two; on PostgreSQL the installation's
Celery worker and beat then do what the rounds left for them, and the worker's memory is
read; then the in-process figures on the same data. Last, the analytics home on its own
bigger data (bench/analytics.py).

One line per figure. The exit status is 1 when a count is wrong (a click stored for every
302 sent, two rewards per unique purchase, every answer as expected), never because of speed.
"""

import argparse
import functools
import ipaddress
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from flask_migrate import upgrade
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from bench import analytics, events, harness, leaderboard
from bench.leaderboard import Dataset, create_database, drop_database, make_app
from core import outbox
from extensions import cache, db
from models import Click, OutboxMessage, Program, Referral, User, utcnow
from referral import clicks
from referral.leaderboard import rank_of
from tests.conftest import csrf_token
from tests.events_api import SECRET

LINK_CODES = 20_000  # distinct codes wrk cycles through
BENCHMARK_ADDRESSES = ipaddress.ip_address("198.18.0.1")  # RFC 2544: for benchmarks
PASSWORD = "correct horse battery staple"  # noqa: S105 - a benchmark account's
SIGNUP_PAIRS_PER_REPEAT = 4  # timed signups per --repeat (20 by default)


@dataclass(frozen=True)
class Plan:
    """How much of everything one run does."""

    sizes: tuple[int, ...]
    backends: tuple[str, ...]
    rounds: int
    seconds: float  # per round and server
    warm_up: float  # seconds per server before a figure's rounds
    event_warm_up: int  # ignored events sent to each server before the events' rounds
    events: int
    referrers: int
    repeat: int  # in-process timings per figure
    analytics_scale: float  # PostgreSQL; 0: skipped
    sqlite_analytics_scale: float


QUICK = Plan(
    sizes=(2_000,),
    backends=("postgresql", "sqlite"),
    rounds=1,
    seconds=2,
    warm_up=0,
    event_warm_up=16,
    events=20,
    referrers=5,
    repeat=1,
    analytics_scale=0.0005,
    sqlite_analytics_scale=0.0005,
)


class Outcome:
    """The count checks of the whole run."""

    def __init__(self):
        self.wrong: list[str] = []

    def check(self, ok: bool, line: str) -> str:
        if not ok:
            self.wrong.append(line)
        return line


def size_label(participants: int) -> str:
    if participants >= 1_000_000 and participants % 1_000_000 == 0:
        return f"{participants // 1_000_000}M"
    if participants >= 1_000:
        return f"{participants // 1_000}k"
    return str(participants)


def say(line: str) -> None:
    print(line, flush=True)


def seed(url: str, participants: int, seed_value: int, datasets: dict) -> Dataset:
    """Migrate and bulk-load the generated participants (made once per size, shared by the
    databases); returns the data."""
    app = make_app(url)
    try:
        with app.app_context():
            upgrade(directory=os.path.join(app.root_path, "migrations"), revision="head")
            program_id = db.session.scalar(select(Program.id).where(Program.is_default))
            db.session.rollback()  # SQLite: let go of the write lock before the bulk load
            key = (participants, program_id)
            if key not in datasets:
                datasets.clear()  # one size in memory at a time
                datasets[key] = leaderboard.generate(participants, program_id, utcnow(), seed_value)
            data = datasets[key]
            leaderboard.load(data)
            leaderboard.check_counters()
            db.session.remove()
    finally:
        _dispose(app)
    return data


def _dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def link_paths(data: Dataset, seed_value: int) -> list[str]:
    """Distinct codes of active participants: each GET stores a click and answers 302."""
    active = [
        code["code"] for code, user in zip(data.codes, data.users, strict=True) if user["active"]
    ]
    rng = random.Random(seed_value)
    return [f"/r/{code}" for code in rng.sample(active, min(LINK_CODES, len(active)))]


def http_figures(url, backend, label, data, plan: Plan, outcome: Outcome, seed_value: int):
    """The figures measured over HTTP: the link, the board (API and HTML), signed events."""
    redis_url = harness.REDIS_URL if backend == "postgresql" else None
    codes = events.seed_referrers(url, plan.referrers)
    deliveries = events.schedule(codes, plan.events, seed_value)
    # The same load again, other purchases, each asking `Prefer: respond-async`.
    async_deliveries = events.schedule(codes, plan.events, seed_value + 1, first=plan.events)
    figures = {}
    celery_memory: list[int] = []
    after_stop = functools.partial(_left_for_the_worker, url, redis_url, celery_memory)
    with harness.serving(
        url, redis_url, after_stop=after_stop, EVENTS_WEBHOOK_SECRET=SECRET
    ) as pair:
        links = link_paths(data, seed_value)
        # Each code clicked once first, as on a running site: the rounds measure clicks
        # through codes clicked lately; the first clicks, each a database read, are shown apart.
        first_clicks = harness.visit_each(pair.real, links)
        for name, paths in (
            ("GET /r/<code>", links),
            ("GET /api/v1/leaderboard (cached)", ["/api/v1/leaderboard"]),
            ("GET /referral/leaderboard (cached)", ["/referral/leaderboard"]),
        ):
            figures[name] = _wrk_figure(pair, paths, plan)
        event_figure, inviteloop, _bare = events.measure(
            pair, deliveries, 16, plan.rounds, warm_up=plan.event_warm_up
        )
        if not redis_url:
            # Without a broker the server sends the rewards' emails itself (its outbox
            # sender): done before the next figure's rounds, not during the first of them.
            events.wait_until_sent(url)
        # Without a broker the server processes what it acknowledged by itself (its event
        # runner): that work is done before the bare app's round, not during it.
        drained = functools.partial(events.wait_until_processed, url) if not redis_url else None
        async_figure, async_inviteloop, _bare = events.measure(
            pair,
            async_deliveries,
            16,
            plan.rounds,
            warm_up=0,
            prefer_async=True,
            after_real=drained,
        )
        memory = harness.worker_memory(pair.real)
    # The server has stopped: its access log is complete, every click it acknowledged stored.
    link = figures["GET /r/<code>"]
    sent = pair.answered("GET", "/r/", 302)
    ok, clicks_line = harness.check_ok("clicks stored", _stored_clicks(url, sent), sent)
    stray = sum(
        n for status, n in (link.statuses() + first_clicks.statuses).items() if status != 302
    )
    ok = ok and stray == 0 and link.statuses()[302] + first_clicks.statuses[302] <= sent
    say(
        harness.report_line(
            backend, label, "GET /r/<code>", link, outcome.check(ok, f"{clicks_line} (302s sent)")
        )
    )
    say(
        f"{'':<10} {'':>5}  {'':<34} before the rounds, each of {first_clicks.requests:,} "
        f"codes clicked once: {first_clicks.per_second:,.0f} req/s "
        f"(p50 {first_clicks.p50_ms:.1f}ms, Python's client)"
    )
    for name in ("GET /api/v1/leaderboard (cached)", "GET /referral/leaderboard (cached)"):
        answers = figures[name].statuses()
        ok = set(answers) == {200}
        line = f"answers {', '.join(f'{n:,} x {s}' for s, n in sorted(answers.items()))}"
        say(harness.report_line(backend, label, name, figures[name], outcome.check(ok, line)))
    stored_ok, stored = events.count_check(url, 2 * plan.events)
    answered_ok, answered = events.answers_check(inviteloop, plan.events)
    name = "signed purchase events (16 senders)"
    say(harness.report_line(backend, label, name, event_figure, outcome.check(stored_ok, stored)))
    say(f"{'':<10} {'':>5}  {'':<34} {outcome.check(answered_ok, answered)}")
    queued_ok, queued = events.queued_check(url, async_inviteloop, plan.events)
    name = "events, Prefer: respond-async"
    say(harness.report_line(backend, label, name, async_figure, outcome.check(queued_ok, queued)))
    resident = ", ".join(f"{size / 2**20:.0f}" for size in sorted(memory))
    answered = sum(pair.sent.values())
    line = f"{resident} MB resident, after {answered:,} requests of all the kinds above"
    say(harness.report_line(backend, label, "gunicorn workers' memory", None, line))
    if celery_memory:
        main, *pool = (f"{size / 2**20:.0f}" for size in celery_memory)
        line = (
            f"{', '.join(pool)} MB resident (its pool's processes; {main} MB the main one), "
            f"after the {plan.events:,} events acknowledged with 202 and "
            f"{_sent_messages(url):,} outbox messages"
        )
        say(harness.report_line(backend, label, "Celery worker's memory", None, line))


def _wrk_figure(pair: harness.Pair, paths: list[str], plan: Plan) -> harness.Figure:
    if plan.warm_up:
        for base in (pair.real, pair.bare):
            harness.wrk(base, paths, plan.warm_up)
    return harness.interleaved(
        pair, lambda base, _target: harness.wrk(base, paths, plan.seconds), plan.rounds
    )


def _left_for_the_worker(
    url: str, redis_url: str | None, memory: list[int], settings: dict[str, str]
) -> None:
    """With a broker, the servers stopped: the installation's Celery worker and beat (not run
    during the rounds, which they would take CPU from) process the events acknowledged with
    202 and send the outbox's messages, as they would have meanwhile; `memory` gets the
    worker's processes' resident memory once they are done. Then the clicks left queued."""
    if redis_url:
        with harness.celery_worker(url, settings) as worker:
            events.wait_until_processed(url)
            events.wait_until_sent(url)
            memory.extend(harness.celery_memory(worker))
    _move_queued_clicks(url, redis_url)


def _sent_messages(url: str) -> int:
    app = make_app(url)
    try:
        with app.app_context():
            return db.session.scalar(
                select(func.count()).where(OutboxMessage.status == outbox.SENT)
            )
    finally:
        _dispose(app)


def _move_queued_clicks(url: str, redis_url: str | None) -> None:
    """What the worker's mover does, for the clicks the real server left queued in Redis
    (beat asks for it every few seconds; these are what its last run left)."""
    if not redis_url:
        return
    app = make_app(url)
    try:
        with app.app_context():
            queue = clicks.ClickQueue(redis_url, app.config["CELERY_DEFAULT_QUEUE"], 5)
            clicks.move_queued(queue, claim_seconds=0, budget_seconds=60)
            queue.client.close()
    finally:
        _dispose(app)


def _stored_clicks(url: str, expected: int, patience: float = 30.0) -> int:
    """Clicks in the database, waiting a little while the count still grows toward what was
    acknowledged (a click may be queued before it is written)."""
    app = make_app(url)
    try:
        deadline = time.monotonic() + patience
        while True:
            with app.app_context():
                stored = db.session.scalar(select(func.count()).select_from(Click))
                db.session.remove()
            if stored >= expected or time.monotonic() > deadline:
                return stored
            time.sleep(0.5)
    finally:
        _dispose(app)


def in_process_figures(url, backend, label, data: Dataset, plan: Plan) -> None:
    """Server time inside one process: the cold board, one's own rank, signup vs a hash."""
    app = make_app(url)
    try:
        client = app.test_client()
        for path, name in (
            ("/api/v1/leaderboard?page=1", "board cold, page 1"),
            ("/api/v1/leaderboard?page=500", "board cold, page 500"),
        ):
            t = leaderboard.time_request(app, client, path, plan.repeat)
            say(
                harness.report_line(
                    backend,
                    label,
                    name,
                    None,
                    f"{t.median_ms:>7.1f}ms median (SQL {t.sql_ms:.1f}ms; {t.answer})",
                )
            )
        say(
            harness.report_line(
                backend,
                label,
                "own rank (median / top member)",
                None,
                _own_rank(app, data, plan.repeat),
            )
        )
        say(
            harness.report_line(
                backend, label, "signup ÷ one password hash", None, _signup(app, data, plan.repeat)
            )
        )
    finally:
        _dispose(app)


def _own_rank(app, data: Dataset, repeat: int) -> str:
    board = sorted(
        (u for u in data.users if u["referral_count"] > 0 and u["active"]),
        key=lambda u: -u["referral_count"],
    )
    if not board:
        return "nobody on the board"
    timings = {}
    for who, user in (("median", board[len(board) // 2]), ("top", board[0])):
        samples, place = [], None
        for _ in range(repeat + 1):  # the first warms up
            with app.app_context():
                cache.clear()
                member = db.session.get(User, user["id"])
                started = time.perf_counter()
                place = rank_of(member, "all", utcnow())
                samples.append((time.perf_counter() - started) * 1000)
                db.session.remove()
        timings[who] = (statistics.median(samples[1:]), place.rank if place else None)
    (median_ms, median_rank), (top_ms, top_rank) = timings["median"], timings["top"]
    return (
        f"{median_ms:>7.1f}ms / {top_ms:.1f}ms median "
        f"(rank {median_rank:,} of {len(board):,} / rank {top_rank})"
    )


def _signup(app, data: Dataset, repeat: int) -> str:
    """Sign-ups through the form with a member's code (fresh client each, CSRF and all),
    each against the same password hashed alone just before it: the median of the pairs'
    ratios, so the machine's pace at the moment slows both sides of a pair alike. Each comes
    from an address of its own (RFC 2544's benchmarking block), so each is the common case:
    a referral counted at once, not one held by the per-address limit. SIGNUP_PAIRS_PER_REPEAT
    pairs per repeat: each side of a pair moves by a few ms from one to the next, as much as
    the figure's margin, and a median of five moved the ratio by 0.03-0.05 between runs."""
    inviter = next(c["code"] for c, u in zip(data.codes, data.users, strict=True) if u["active"])
    method = app.config["PASSWORD_HASH_METHOD"]
    stamp, pairs, signups = time.time_ns(), [], repeat * SIGNUP_PAIRS_PER_REPEAT
    for number in range(signups + 1):  # the first warms up
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = str(BENCHMARK_ADDRESSES + number)
        form = {
            "csrf_token": csrf_token(client, "/auth/signup"),
            "name": "Bench Signup",
            "email": f"signup.{stamp}.{number}@example.com",
            "password": PASSWORD,
            "referral_code": inviter,
        }
        started = time.perf_counter()
        generate_password_hash(PASSWORD, method=method)
        hashed = time.perf_counter()
        response = client.post("/auth/signup", data=form)
        pairs.append(((time.perf_counter() - hashed) * 1000, (hashed - started) * 1000))
        if response.status_code != 302:
            raise RuntimeError(f"signup answered {response.status_code}")
    _check_counted(app, stamp, signups + 1)
    pairs = pairs[1:]
    ratio = statistics.median(signup / hash_ for signup, hash_ in pairs)
    signup_ms = statistics.median(signup for signup, _hash in pairs)
    hash_ms = statistics.median(hash_ for _signup, hash_ in pairs)
    return f"{ratio:>7.2f}x  ({signup_ms:.1f}ms signup, {hash_ms:.1f}ms {method} hash)"


def _check_counted(app, stamp: int, expected: int) -> None:
    """Every timed signup made a referral counted at once (none held for review)."""
    with app.app_context():
        counted = db.session.scalar(
            select(func.count())
            .select_from(Referral)
            .join(User, User.id == Referral.referred_id)
            .where(User.email.like(f"signup.{stamp}.%"), Referral.status == "pending")
        )
        db.session.remove()
    if counted != expected:
        raise RuntimeError(f"{expected - counted} of {expected} signups were not counted at once")


def run_size(backend: str, participants: int, plan: Plan, outcome: Outcome, datasets, seed_value):
    label = size_label(participants)
    with tempfile.TemporaryDirectory(prefix="inviteloop-bench-") as workdir:
        url = create_database(backend, workdir)
        try:
            started = time.perf_counter()
            data = seed(url, participants, seed_value, datasets)
            say(
                f"[{backend} {label}] seeded in {time.perf_counter() - started:.0f} s: "
                f"{len(data.users):,} participants, {len(data.referrals):,} referrals"
            )
            http_figures(url, backend, label, data, plan, outcome, seed_value)
            in_process_figures(url, backend, label, data, plan)
        finally:
            drop_database(url)


def run_analytics(backend: str, scale: float, repeat: int) -> None:
    """The analytics home, cold, on bench/analytics.py's own data (2.2M participants at 1)."""
    for t in analytics.run_backend(backend, scale, repeat, plans=False):
        name = f"/admin/ analytics cold, {'30 days' if '30 days' in t.label else '1 year'}"
        say(
            harness.report_line(
                backend,
                f"x{scale:g}",
                name,
                None,
                f"{t.p50_ms:>7.1f}ms median (SQL {t.sql_ms:.1f}ms)",
            )
        )


def machine() -> str:
    """The machine line: CPUs, CPU model, memory, and the versions that matter."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    memory = Path("/proc/meminfo").read_text().split()[1] if Path("/proc/meminfo").exists() else "0"
    with psycopg.connect(leaderboard.ADMIN_URL, connect_timeout=5) as conn:
        postgresql = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True
    ).stdout.split()[:2]
    cpus, ram = len(os.sched_getaffinity(0)), int(memory) / 1024**2
    return (
        f"machine: {cpus} CPUs ({model}), {ram:.0f} GB RAM; Python {platform.python_version()}, "
        f"PostgreSQL {postgresql}, SQLite {sqlite3.sqlite_version}, {' '.join(wrk_version)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data, one short round")
    parser.add_argument("--participants", default="100000,1000000", help="comma-separated")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--analytics-scale", type=float, default=1.0, help="0 skips it")
    parser.add_argument("--sqlite-analytics-scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=20261121)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install -y wrk)")
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    if args.quick:
        plan = replace(QUICK, backends=backends)
    else:
        plan = Plan(
            sizes=tuple(int(n) for n in args.participants.split(",")),
            backends=backends,
            rounds=args.rounds,
            seconds=args.seconds,
            warm_up=2,
            event_warm_up=events.WARM_UP_REQUESTS,
            events=args.events,
            referrers=100,
            repeat=args.repeat,
            analytics_scale=args.analytics_scale,
            sqlite_analytics_scale=args.sqlite_analytics_scale,
        )
    say(machine())
    say(
        f"load {os.getloadavg()[0]:.1f} at the start; gunicorn -w "
        f"{harness.WORKERS} --threads {harness.THREADS}; wrk {harness.CONNECTIONS} connections"
        f"; {plan.rounds} round(s) of {plan.seconds:g} s per server and figure"
    )
    outcome, datasets, started = Outcome(), {}, time.perf_counter()
    for participants in plan.sizes:
        for backend in plan.backends:
            run_size(backend, participants, plan, outcome, datasets, args.seed)
    for backend in plan.backends:
        scale = plan.analytics_scale if backend == "postgresql" else plan.sqlite_analytics_scale
        if scale:
            run_analytics(backend, scale, plan.repeat)
    if outcome.wrong:
        say("\nWRONG COUNTS:\n" + "\n".join(outcome.wrong))
        return 1
    say(f"\nevery count check: OK ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
