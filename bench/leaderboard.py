"""How long the public leaderboard takes to answer from a cold cache, on a big program.

    .venv/bin/python -m bench.leaderboard [--participants 100000] [--backend both]

For each backend: a new database (a temporary SQLite file; a PostgreSQL database
`inviteloop_bench_<random>`, dropped afterwards), migrated like a real installation, filled
in bulk with participants who invited each other (a few invite many, most invite nobody),
their codes and their referral rows, with the counters on users matching those rows. Then
each page is requested through the app in-process, the cache emptied before every timed
request, and the median of the repeats is printed, with the plan of the page query; last, a
participant's own place (`rank_of`) for the median member of the board and the top one.
"""

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from flask_migrate import upgrade
from psycopg.types.json import Json
from sqlalchemy import event, func, insert, or_, select

from app import create_app
from extensions import cache, db
from models import (
    BOARD_COUNT_SHARDS,
    COUNTED_STATUSES,
    BoardCount,
    Program,
    Referral,
    ReferralCode,
    User,
    utcnow,
)
from referral.leaderboard import rank_of
from tests.factories import numbered_code

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL",
    os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
TARGET_MS = 100
HISTORY_DAYS = 730
REFERRED_SHARE = 0.6  # of participants, joined through someone's link or code
SHARER_SHARE = 0.3  # of participants, share their link at all
STATUSES = ("pending", "qualified", "rewarded", "approved", "review", "rejected")
STATUS_WEIGHTS = (55, 20, 15, 3, 3, 4)
# The trigger that counts a referral into its referrer's counter (migration 0023).
COUNTING_TRIGGER = "referrals_count_referrer"
FIRST = ("Ava", "Liam", "Noah", "Emma", "Mia", "Lucas", "Yuki", "Aarav", "Priya", "Omar", "Ines")
LAST = ("Smith", "Garcia", "Rossi", "Nguyen", "Tanaka", "Okafor", "Silva", "Dubois", "Novak")
REQUESTS = (
    "/referral/leaderboard",
    "/referral/leaderboard?page=500",
    "/api/v1/leaderboard?page=500",
    "/api/v1/leaderboard?period=month",
    "/api/v1/leaderboard?page=500&period=month",
)


@dataclass
class Dataset:
    users: list[dict] = field(default_factory=list)
    codes: list[dict] = field(default_factory=list)
    referrals: list[dict] = field(default_factory=list)


def generate(participants: int, program_id: int, now: datetime, seed: int) -> Dataset:
    """Participants joining over two years, faster lately. A newcomer was referred by an
    earlier sharer picked in proportion to the people they already brought (preferential
    attachment): a long tail of 1-2 referrals, a few with hundreds, most with none."""
    rng = random.Random(seed)
    start = now - timedelta(days=HISTORY_DAYS)
    joined = sorted(start + (now - start) * rng.random() ** 0.6 for _ in range(participants))
    data, pool = Dataset(), []
    for user_id, joined_at in enumerate(joined, start=1):
        referrer = rng.choice(pool) if pool and rng.random() < REFERRED_SHARE else None
        data.users.append(_user(rng, user_id, joined_at))
        data.codes.append(_code(user_id, program_id, joined_at))
        if referrer is not None:
            data.referrals.append(_referral(rng, referrer, user_id, program_id, joined_at))
            pool.append(referrer)
        if rng.random() < SHARER_SHARE:
            pool.append(user_id)
    _set_counters(data)
    return data


def _user(rng: random.Random, user_id: int, joined_at: datetime) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first.lower()}.{user_id}@example.com"
    return {
        "id": user_id,
        "email": email,
        "email_canonical": email,
        "name": f"{first} {last}",
        "display_name": f"{first}{user_id}" if rng.random() < 0.1 else None,
        "password_hash": None,
        "role": "member",
        "active": rng.random() >= 0.005,
        "locale": "en",
        "referred_by_id": None,
        "signup_ip": "192.0.2.1",
        "device_id": secrets.token_hex(16),
        "referral_count": 0,
        "last_referral_at": None,
        "created_at": joined_at,
    }


def _code(user_id: int, program_id: int, created_at: datetime) -> dict:
    return {
        "id": user_id,
        "code": numbered_code(user_id),
        "user_id": user_id,
        "program_id": program_id,
        "status": "active",
        "is_vanity": False,
        "created_at": created_at,
    }


def _referral(rng, referrer: int, referred: int, program_id: int, at: datetime) -> dict:
    status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
    return {
        "id": referred,
        "program_id": program_id,
        "code_id": referrer,  # code ids are user ids here
        "referrer_id": referrer,
        "referred_id": referred,
        "source": rng.choice(("link", "code")),
        "status": status,
        "reason": "self_referral" if status == "rejected" else None,
        "risk_score": 100 if status == "rejected" else 0,
        "risk_reasons": [],
        "created_at": at,
        "updated_at": at,
    }


def _set_counters(data: Dataset) -> None:
    """referral_count and last_referral_at exactly as the referral rows say (rows come in
    time order, so the last one seen is the latest)."""
    for referral in data.referrals:
        if referral["status"] in COUNTED_STATUSES:
            referrer = data.users[referral["referrer_id"] - 1]
            referrer["referral_count"] += 1
            referrer["last_referral_at"] = referral["created_at"]
            data.users[referral["referred_id"] - 1]["referred_by_id"] = referral["referrer_id"]


def create_database(backend: str, workdir: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir}/bench.db"
    name = f"inviteloop_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_app(url: str):
    return create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_hex(32),
            "REDIS_URL": None,
            "CACHE_TYPE": "SimpleCache",
            "RATELIMIT_ENABLED": False,
            "LOG_LEVEL": "WARNING",
            # What a run queues (emails of new sign-ups) stays queued: the hint goes to an
            # in-memory broker nobody reads, so no thread of this process reads the database
            # the benchmark drops at its end.
            "MAIL_BACKEND": "dummy",
            "OUTBOX_DELIVERY": "celery",
            "CELERY_ALWAYS_EAGER": False,
        }
    )


def load(data: Dataset) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany on SQLite; then fresh planner stats.

    The database counts referrals into their referrer's counter (a trigger on referrals). On
    PostgreSQL that trigger is off during the COPY and the participants come with their
    counters; SQLite cannot switch a trigger off, so there they come without and the trigger
    counts them, as it would have live."""
    postgresql = db.engine.dialect.name == "postgresql"
    users = data.users if postgresql else [_uncounted(user) for user in data.users]
    tables = [
        (model, rows)
        for model, rows in (
            (User, users),
            (ReferralCode, data.codes),
            (Referral, data.referrals),
        )
        if rows
    ]
    if postgresql:
        _copy_postgresql(tables)
        vacuum_analyze()
    else:
        with db.engine.begin() as conn:
            for model, rows in tables:
                conn.execute(insert(model.__table__), rows)


def _uncounted(user: dict) -> dict:
    return {**user, "referral_count": 0, "last_referral_at": None}


def vacuum_analyze() -> None:
    """PostgreSQL: fresh planner statistics and visibility map for every table, as
    autovacuum soon would after a bulk write."""
    with psycopg.connect(_plain_url(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _plain_url() -> str:
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _copy_postgresql(tables) -> None:
    """COPY with the counting triggers off, then the board's standing counted in one go.
    With the trigger on users, each of the 116k participants on the board at 1M upserted its
    count's row in one transaction: 600-odd pages of dead rows for 1.5k live ones, which the
    standing query then read (1.5 ms). A live board counts one referral at a time, each
    update's old row pruned soon after, as this leaves it."""
    with psycopg.connect(_plain_url()) as conn, conn.cursor() as cursor:
        cursor.execute(f"ALTER TABLE referrals DISABLE TRIGGER {COUNTING_TRIGGER}")
        cursor.execute("ALTER TABLE users DISABLE TRIGGER USER")
        for model, rows in tables:
            table, columns = model.__tablename__, list(rows[0])
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([_pg_value(row[column]) for column in columns])
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
        cursor.execute("DELETE FROM board_counts")
        cursor.execute(
            "INSERT INTO board_counts (referral_count, shard, participants) "
            f"SELECT referral_count, id % {BOARD_COUNT_SHARDS}, count(*) FROM users "
            "WHERE referral_count > 0 AND active AND on_leaderboard "
            f"GROUP BY referral_count, id % {BOARD_COUNT_SHARDS}"
        )
        cursor.execute("ALTER TABLE users ENABLE TRIGGER USER")
        cursor.execute(f"ALTER TABLE referrals ENABLE TRIGGER {COUNTING_TRIGGER}")


def _pg_value(value):
    return Json(value) if isinstance(value, list) else value  # JSON columns


def check_counters() -> None:
    """Every counter and latest-referral time must agree with the referral rows."""
    mine = (Referral.referrer_id == User.id, Referral.status.in_(COUNTED_STATUSES))
    count = select(func.count()).where(*mine).correlate(User).scalar_subquery()
    latest = select(func.max(Referral.created_at)).where(*mine).correlate(User).scalar_subquery()
    wrong = db.session.scalar(
        select(func.count()).where(
            or_(User.referral_count != count, User.last_referral_at.is_distinct_from(latest))
        )
    )
    if wrong:
        raise RuntimeError(f"{wrong} participants' counters disagree with their referrals")
    on_board = select(User.referral_count, func.count()).where(
        User.referral_count > 0, User.active, User.on_leaderboard
    )
    expected = dict(db.session.execute(on_board.group_by(User.referral_count)).all())
    standing = select(BoardCount.referral_count, func.sum(BoardCount.participants))
    kept = dict(db.session.execute(standing.group_by(BoardCount.referral_count)).all())
    if kept != expected:
        raise RuntimeError("board_counts disagrees with the participants' counters")


@dataclass
class Timing:
    path: str
    median_ms: float
    min_ms: float
    max_ms: float
    sql_ms: float  # median time inside the database driver
    answer: str


class SqlClock:
    """Adds up the time statements spend in the database driver while it is running."""

    def __init__(self, engine):
        self.engine, self.seconds = engine, 0.0

    def _before(self, conn, *_args):
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, *_args):
        self.seconds += time.perf_counter() - conn.info.pop("bench_started")

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_exc):
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


def time_request(app, client, path: str, repeat: int) -> Timing:
    """The first request only warms up (templates, connections); then every timed request
    starts from an empty cache, so each reads the database."""
    client.get(path)
    samples, sql, response = [], [], None
    for _ in range(repeat):
        with app.app_context():
            cache.clear()
            engine = db.engine
        with SqlClock(engine) as clock:
            started = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
        sql.append(clock.seconds * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
    median, low, high = statistics.median(samples), min(samples), max(samples)
    return Timing(path, median, low, high, statistics.median(sql), _shown(response))


def _shown(response) -> str:
    if response.is_json:
        body = response.json
        return f"page {body['page']}/{body['pages']}, {len(body['rows'])} rows"
    rows = response.get_data(as_text=True).count('<td class="rank">')
    return f"{rows} rows"


def captured_statements(app, client, path: str) -> list[tuple[str, object]]:
    """The SQL a cold request for `path` runs, with its parameters."""
    seen = []

    def capture(_conn, _cursor, statement, parameters, _context, _executemany):
        seen.append((statement, parameters))

    with app.app_context():
        cache.clear()
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        client.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith("SELECT")]


def explain(statement: str, parameters) -> list[str]:
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            return [row[0] for row in rows]
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return [detail for _id, _parent, _unused, detail in rows]


def run_backend(backend: str, participants: int, repeat: int, seed: int) -> list[Timing]:
    with tempfile.TemporaryDirectory(prefix="inviteloop-bench-") as workdir:
        url = create_database(backend, workdir)
        try:
            app = make_app(url)
            try:
                return _measure(app, backend, participants, repeat, seed)
            finally:
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
        finally:
            drop_database(url)


def _measure(app, backend: str, participants: int, repeat: int, seed: int) -> list[Timing]:
    with app.app_context():
        upgrade(directory=os.path.join(app.root_path, "migrations"), revision="head")
        program_id = db.session.scalar(select(Program.id).where(Program.is_default))
        db.session.rollback()  # on SQLite even a read holds the write lock (BEGIN IMMEDIATE)
        started = time.perf_counter()
        data = generate(participants, program_id, utcnow(), seed)
        load(data)
        check_counters()
        print(
            f"\n[{backend}] {len(data.users):,} participants, {len(data.referrals):,} "
            f"referrals, seeded in {time.perf_counter() - started:.1f} s; "
            f"on the board: {_board_size():,}"
        )
        db.session.remove()
    client = app.test_client()
    _print_plans(app, client)
    timings = [time_request(app, client, path, repeat) for path in REQUESTS]
    return timings + time_own_rank(app, repeat)


def time_own_rank(app, repeat: int) -> list[Timing]:
    """A signed-in participant's own place on the all-time board (what their board page and
    dashboard show), for the median member of the board and for the top one; cold cache."""
    with app.app_context():
        on_board = (User.referral_count > 0, User.active, User.on_leaderboard)
        size = db.session.scalar(select(func.count()).where(*on_board)) or 0
        in_order = select(User.id).where(*on_board).order_by(User.referral_count.desc())
        chosen = {
            "median member": db.session.scalar(in_order.offset(size // 2).limit(1)),
            "top member": db.session.scalar(in_order.limit(1)),
        }
        db.session.remove()
    timings = []
    for who, user_id in chosen.items():
        if user_id is None:
            continue
        samples, sql, place = [], [], None
        for attempt in range(repeat + 1):  # the first warms up
            with app.app_context():
                cache.clear()
                member = db.session.get(User, user_id)
                with SqlClock(db.engine) as clock:
                    started = time.perf_counter()
                    place = rank_of(member, "all", utcnow())
                    elapsed = (time.perf_counter() - started) * 1000
                if attempt:
                    samples.append(elapsed)
                    sql.append(clock.seconds * 1000)
                db.session.remove()
        answer = f"rank {place.rank:,} of {size:,}" if place else "not on the board"
        timings.append(
            Timing(
                f"own rank, {who}",
                statistics.median(samples),
                min(samples),
                max(samples),
                statistics.median(sql),
                answer,
            )
        )
    return timings


def _board_size() -> int:
    query = select(func.count()).where(User.referral_count > 0, User.active)
    return db.session.scalar(query) or 0


def _print_plans(app, client) -> None:
    first = captured_statements(app, client, "/api/v1/leaderboard?page=1")
    all_time = captured_statements(app, client, "/api/v1/leaderboard?page=500")
    month = captured_statements(app, client, "/api/v1/leaderboard?page=1&period=month")
    wanted = [
        ("all-time page (page 1)", first, "LIMIT"),
        ("all-time page (page 500)", all_time, "LIMIT"),
        ("all-time standing", all_time, "board_counts"),
        ("month page", month, "LIMIT"),
        ("month standing", month, "GROUP BY anon_1.referrals"),
    ]
    with app.app_context():
        for title, statements, marker in wanted:
            found = next(((s, p) for s, p in statements if marker in s), None)
            if found:
                print(f"\n-- plan: {title}\n" + "\n".join(explain(*found)))


def print_table(results: dict[str, list[Timing]], repeat: int) -> None:
    print(f"\nserver time per request, cold cache, median of {repeat} (target < {TARGET_MS} ms)")
    print(f"{'backend':<11}{'request':<43}{'median':>8}{'min':>8}{'max':>8}{'SQL':>8}  answer")
    for backend, timings in results.items():
        for t in timings:
            flag = "" if t.median_ms < TARGET_MS else "  MISSES TARGET"
            figures = "".join(f"{ms:>6.1f}ms" for ms in (t.median_ms, t.min_ms, t.max_ms, t.sql_ms))
            print(f"{backend:<11}{t.path:<43}{figures}  {t.answer}{flag}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.leaderboard", description=__doc__)
    parser.add_argument("--participants", type=int, default=100_000, help="at least 2")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261121)
    args = parser.parse_args(argv)
    if args.participants < 2 or args.repeat < 1:
        parser.error("--participants must be at least 2 and --repeat at least 1")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = {
        backend: run_backend(backend, args.participants, args.repeat, args.seed)
        for backend in backends
    }
    print_table(results, args.repeat)
    missed = any(t.median_ms >= TARGET_MS for timings in results.values() for t in timings)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
