"""How long the analytics home (/admin/) takes to answer from a cold cache on a big program.

    .venv/bin/python -m bench.analytics [--backend postgresql] [--scale 1.0] [--repeat 5]

For each backend: a new database (a temporary SQLite file; a PostgreSQL database
`inviteloop_bench_<random>`, dropped afterwards), migrated like a real installation, filled
by INSERT ... SELECT statements inside the database (generate_series on PostgreSQL, a
recursive series on SQLite), with 5,000,000 clicks, 2,000,000 referrals (so 2,200,000
accounts: a person is referred once), their purchases, refunds and rewards over three years
of growth; then the analytics roll-up of every closed day is built (timed), as the hourly job
keeps it. Then a logged-in admin asks for the page through the test client, the Flask cache
emptied before every timed request, for the default 30 days and for the last year.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta

from flask_migrate import upgrade
from sqlalchemy import func, select, text

from admin.analytics.rollup import rollup_analytics
from bench.leaderboard import (
    SqlClock,
    captured_statements,
    create_database,
    drop_database,
    explain,
    make_app,
    vacuum_analyze,
)
from extensions import cache, db
from models import BOARD_COUNT_SHARDS, COUNTED_STATUSES, AnalyticsDaily, Program, utcnow
from tests import factories
from tests.conftest import log_in

TARGET_MS = 300
HISTORY_DAYS = 3 * 365
P = 1_000_003  # a prime: (n * m) % P / P is an evenly spread, repeatable "random" in [0, 1)


@dataclass(frozen=True)
class Size:
    accounts: int
    referrals: int
    clicks: int

    @classmethod
    def scaled(cls, scale: float) -> "Size":
        referrals = int(2_000_000 * scale)
        return cls(referrals + referrals // 10, referrals, int(5_000_000 * scale))


class Dialect:
    """The few SQL spellings that differ between PostgreSQL and SQLite."""

    def __init__(self, name: str):
        self.pg = name == "postgresql"

    def series(self, count: int) -> tuple[str, str]:
        """(WITH prefix, FROM clause) yielding i = 1..count."""
        if self.pg:
            return "", f"generate_series(1, {count}) AS s(i)"
        recursive = (
            f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) "
        )
        return recursive, "s"

    def ts(self, epoch: str) -> str:
        if self.pg:
            return f"to_timestamp({epoch})"
        return f"(strftime('%Y-%m-%d %H:%M:%S', {epoch}, 'unixepoch') || '.000000')"

    def whole(self, value: str) -> str:
        return f"CAST(floor({value}) AS bigint)" if self.pg else f"CAST({value} AS INTEGER)"

    def least(self, a: str, b: str) -> str:
        return f"least({a}, {b})" if self.pg else f"min({a}, {b})"

    def code(self, n: str) -> str:
        return f"('Z' || upper(lpad(to_hex({n}), 7, '0')))" if self.pg else f"printf('Z%07X', {n})"

    def json(self, value: str) -> str:
        return f"'{value}'::json" if self.pg else f"'{value}'"

    def true(self) -> str:
        return "true" if self.pg else "1"

    def false(self) -> str:
        return "false" if self.pg else "0"


def spread(n: str, salt: int) -> str:
    """A repeatable fraction in [0, 1) from the integer expression `n`."""
    return f"((CAST({n} AS BIGINT) * {7919 + salt * 104729} + {salt * 31}) % {P}) * 1.0 / {P}"


def fill(dialect: Dialect, size: Size, program_id: int, now_epoch: float) -> list[str]:
    """The statements that fill the database, in order."""
    start, span, day = now_epoch - HISTORY_DAYS * 86400, HISTORY_DAYS * 86400, 86400
    joined = f"{start} + {span} * sqrt(i * 1.0 / {size.accounts})"  # growth: busier lately
    with_, series = dialect.series(size.accounts)
    statements = [
        f"{with_}INSERT INTO users (id, email, email_canonical, name, role, active, locale,"
        " referral_count, created_at)"
        f" SELECT i, 'p' || i || '@example.com', 'p' || i || '@example.com',"
        f" 'Participant ' || i, 'member', {dialect.true()}, 'en', 0, {dialect.ts(joined)}"
        f" FROM {series}",
        "INSERT INTO referral_codes (id, code, user_id, program_id, status, is_vanity, created_at)"
        f" SELECT id, {dialect.code('id')}, id, {program_id}, 'active', {dialect.false()},"
        " created_at FROM users",
    ]
    first_referred = size.accounts - size.referrals + 1
    # The inviter: an earlier account, early (long-standing) ones far more often.
    skew = " * ".join([spread("id", 1)] * 3)
    inviter = dialect.whole(f"(id - 1) * {skew}") + " + 1"
    status = (
        f"CASE WHEN {spread('id', 2)} < 0.50 THEN 'pending'"
        f" WHEN {spread('id', 2)} < 0.70 THEN 'qualified'"
        f" WHEN {spread('id', 2)} < 0.88 THEN 'rewarded'"
        f" WHEN {spread('id', 2)} < 0.91 THEN 'approved'"
        f" WHEN {spread('id', 2)} < 0.95 THEN 'review' ELSE 'rejected' END"
    )
    epoch = f"{start} + {span} * sqrt(id * 1.0 / {size.accounts})"
    click_epoch = f"{epoch} - {spread('id', 4)} * 2 * {day}"
    clicked = f"CASE WHEN {spread('id', 3)} < 0.7 THEN {dialect.ts(click_epoch)} END"
    first_purchase = f"{epoch} + 3600 + {spread('id', 5)} * 10 * {day}"
    bought = dialect.ts(dialect.least(first_purchase, str(now_epoch)))
    statements.append(
        "INSERT INTO referrals (id, program_id, code_id, referrer_id, referred_id, source, status,"
        " reason, risk_score, risk_reasons, clicked_at, first_purchase_at, created_at, updated_at)"
        f" SELECT id - {first_referred} + 1, {program_id}, {inviter}, {inviter}, id, 'link',"
        f" {status},"
        f" CASE WHEN {status} = 'rejected' THEN 'self_referral' END,"
        f" CASE {status} WHEN 'rejected' THEN 100 WHEN 'review' THEN 60 WHEN 'approved' THEN 55"
        f" ELSE {dialect.whole(spread('id', 6) + ' * 30')} END, {dialect.json('[]')},"
        f" {clicked}, CASE WHEN {status} IN ('qualified', 'rewarded') THEN {bought} END,"
        f" created_at, created_at FROM users WHERE id >= {first_referred}"
    )
    statements += _purchases(dialect, program_id, size)
    with_, series = dialect.series(size.clicks)
    clicked_at = f"{start} + {span} * sqrt({spread('i', 7)})"
    code = dialect.whole(f"{size.accounts} * {spread('i', 8)} * {spread('i', 8)}") + " + 1"
    statements.append(
        f"{with_}INSERT INTO clicks (id, code_id, visitor_id, created_at)"
        f" SELECT i, {code}, 'v' || i, {dialect.ts(clicked_at)} FROM {series}"
    )
    return statements


def _purchases(dialect: Dialect, program_id: int, size: Size) -> list[str]:
    """A first purchase per qualified or rewarded referral, a refund of every 30th, and the
    rewards: 10.00 to the referrer and 5.00 to the friend (approved once rewarded)."""
    refund_id = size.referrals + 1
    columns = (
        "id, source, kind, external_id, order_id, program_id, participant_id, referral_id,"
        " amount, currency, outcome, risk_score, risk_reasons, payload, occurred_at, created_at"
    )
    empty_list, empty_object = dialect.json("[]"), dialect.json("{}")
    return [
        f"INSERT INTO conversions ({columns}) SELECT id, 'api', 'purchase', 'p' || id,"
        f" 'o' || id, {program_id}, referred_id, id, 2000 + (id * 37) % 8000, 'USD', 'accepted',"
        f" 0, {empty_list}, {empty_object}, first_purchase_at, first_purchase_at"
        " FROM referrals WHERE first_purchase_at IS NOT NULL",
        f"INSERT INTO conversions ({columns}) SELECT {refund_id} + id, 'api', 'refund',"
        f" 'r' || id, 'o' || id, {program_id}, participant_id, referral_id, NULL, 'USD',"
        f" 'accepted', 0, {empty_list}, {empty_object}, occurred_at, occurred_at"
        " FROM conversions WHERE kind = 'purchase' AND id % 30 = 0",
        "INSERT INTO rewards (id, program_id, conversion_id, referral_id, beneficiary_id, role,"
        " level, kind, amount, currency, status, available_at, created_at, updated_at)"
        " SELECT 2 * c.id + role.n, c.program_id, c.id, r.id,"
        " CASE role.n WHEN 0 THEN r.referrer_id ELSE r.referred_id END,"
        " CASE role.n WHEN 0 THEN 'referrer' ELSE 'referee' END, 1, 'credit',"
        " CASE role.n WHEN 0 THEN 1000 ELSE 500 END, 'USD',"
        " CASE r.status WHEN 'rewarded' THEN 'approved' ELSE 'pending' END,"
        " c.occurred_at, c.occurred_at, c.occurred_at"
        " FROM conversions c JOIN referrals r ON r.id = c.referral_id"
        " CROSS JOIN (SELECT 0 AS n UNION ALL SELECT 1) role WHERE c.kind = 'purchase'",
    ]


def load(size: Size) -> None:
    dialect = Dialect(db.engine.dialect.name)
    program_id = db.session.scalar(select(Program.id).where(Program.is_default))
    db.session.rollback()  # on SQLite even a read holds the write lock (BEGIN IMMEDIATE)
    with db.engine.begin() as conn:
        if not dialect.pg:
            conn.exec_driver_sql("PRAGMA cache_size = -500000")
        indexes = _drop_plain_indexes(conn) if dialect.pg else []
        _switch_triggers(conn, dialect, "DISABLE")
        for statement in fill(dialect, size, program_id, utcnow().timestamp()):
            started = time.perf_counter()
            conn.exec_driver_sql(statement.replace("%", "%%") if dialect.pg else statement)
            print(
                f"  {statement.split('INSERT INTO ')[1].split(' ')[0]:<16}"
                f"{time.perf_counter() - started:6.1f} s",
                flush=True,
            )
        if dialect.pg:
            for statement in _counters():
                conn.exec_driver_sql(statement.replace("%", "%%"))
        for definition in indexes:  # building an index once is far faster than row by row
            conn.exec_driver_sql(definition)
        _switch_triggers(conn, dialect, "ENABLE")
        if dialect.pg:
            for table in (
                "users",
                "referral_codes",
                "referrals",
                "conversions",
                "rewards",
                "clicks",
            ):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
    if dialect.pg:
        vacuum_analyze()
    else:
        with db.engine.begin() as conn:  # SQLite's ids continue after the bulk rows by themselves
            conn.exec_driver_sql("ANALYZE")


_FILLED = ("users", "referral_codes", "referrals", "conversions", "rewards", "clicks")


def _counters() -> list[str]:
    """What the switched-off triggers keep on PostgreSQL, from the filled rows: each
    participant's counter of counted referrals, and the board's counts of those counters."""
    counted = ", ".join(f"'{status}'" for status in COUNTED_STATUSES)
    return [
        "UPDATE users SET referral_count = r.n, last_referral_at = r.latest"
        " FROM (SELECT referrer_id, count(*) AS n, max(created_at) AS latest FROM referrals"
        f" WHERE status IN ({counted}) GROUP BY referrer_id) r WHERE users.id = r.referrer_id",
        "INSERT INTO board_counts (referral_count, shard, participants)"
        f" SELECT referral_count, id % {BOARD_COUNT_SHARDS}, count(*) FROM users"
        " WHERE referral_count > 0 AND active AND on_leaderboard"
        f" GROUP BY referral_count, id % {BOARD_COUNT_SHARDS}",
    ]


def _switch_triggers(conn, dialect: Dialect, switch: str) -> None:
    """History is seeded, then rolled up whole: on PostgreSQL the triggers (which mark changed
    days stale, joining tables whose indexes are dropped meanwhile, and keep the counters that
    `_counters` sets at the end) are off."""
    if dialect.pg:
        for table in _FILLED:
            conn.exec_driver_sql(f"ALTER TABLE {table} {switch} TRIGGER USER")


def _drop_plain_indexes(conn) -> list[str]:
    """Drop the filled tables' indexes that back no constraint; returns how to rebuild them."""
    rows = conn.exec_driver_sql(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname IN"
        f" ({', '.join(repr(table) for table in _FILLED)})"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
    ).all()
    for name, _definition in rows:
        conn.exec_driver_sql(f"DROP INDEX {name}")
    return [definition for _name, definition in rows]


@dataclass
class Timing:
    label: str
    p50_ms: float
    max_ms: float
    sql_ms: float


def time_page(app, client, label: str, args: dict, repeat: int) -> Timing:
    client.get("/admin/", query_string=args)  # warm-up: templates, connections
    samples, sql = [], []
    for _ in range(repeat):
        with app.app_context():
            cache.clear()
            engine = db.engine
        with SqlClock(engine) as clock:
            started = time.perf_counter()
            response = client.get("/admin/", query_string=args)
            samples.append((time.perf_counter() - started) * 1000)
        sql.append(clock.seconds * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"/admin/ {args} answered {response.status_code}")
    return Timing(label, statistics.median(samples), max(samples), statistics.median(sql))


def slowest_statements(app, client, args: dict, count: int = 4) -> list[tuple[float, str]]:
    """The cold request's statements, timed one by one with EXPLAIN ANALYZE / QUERY PLAN."""
    statements = captured_statements(
        app, client, "/admin/?" + "&".join(f"{k}={v}" for k, v in args.items())
    )
    timed = []
    with app.app_context():
        for statement, params in statements:
            started = time.perf_counter()
            plan = explain(statement, params)
            timed.append(((time.perf_counter() - started) * 1000, statement, plan))
    timed.sort(key=lambda item: item[0], reverse=True)
    return timed[:count]


def run_backend(backend: str, scale: float, repeat: int, plans: bool) -> list[Timing]:
    with tempfile.TemporaryDirectory(prefix="inviteloop-bench-") as workdir:
        url = create_database(backend, workdir)
        try:
            app = make_app(url)
            try:
                return _measure(app, backend, Size.scaled(scale), repeat, plans)
            finally:
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
        finally:
            drop_database(url)


def _measure(app, backend: str, size: Size, repeat: int, plans: bool) -> list[Timing]:
    with app.app_context():
        upgrade(directory=os.path.join(app.root_path, "migrations"), revision="head")
        started = time.perf_counter()
        print(
            f"\n[{backend}] filling: {size.accounts:,} accounts, {size.referrals:,} referrals,"
            f" {size.clicks:,} clicks",
            flush=True,
        )
        load(size)
        counts = {
            table: db.session.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in ("users", "referrals", "clicks", "conversions", "rewards")
        }
        print(
            f"[{backend}] filled in {time.perf_counter() - started:.0f} s: "
            + ", ".join(f"{table} {n:,}" for table, n in counts.items())
        )
        started = time.perf_counter()
        days = rollup_analytics(utcnow().date())
        db.session.commit()
        print(
            f"[{backend}] rolled up {days:,} days in {time.perf_counter() - started:.1f} s"
            f" (analytics_daily: {db.session.scalar(select(func.count(AnalyticsDaily.day))):,}"
            " rows)",
            flush=True,
        )
        admin = factories.staff("admin")
        db.session.remove()
        if backend == "postgresql":
            vacuum_analyze()  # the roll-up's new rows too: no timed request races autovacuum
    client = app.test_client()
    log_in(client, admin["email"])
    today = utcnow().date()
    ranges = [
        ("default (last 30 days)", {}),
        (
            "last year (365 days)",
            {"start": (today - timedelta(days=364)).isoformat(), "end": today.isoformat()},
        ),
    ]
    if plans:
        for label, args in ranges:
            print(f"\n-- slowest statements, {label}")
            for ms, statement, plan in slowest_statements(app, client, args):
                print(f"{ms:8.1f} ms  {' '.join(statement.split())[:160]}")
                print("\n".join("            " + line for line in plan))
    return [time_page(app, client, label, args, repeat) for label, args in ranges]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="postgresql")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 2M referrals, 5M clicks")
    parser.add_argument("--sqlite-scale", type=float, default=None, help="default: --scale")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plans", action="store_true", help="print the slowest statements' plans")
    args = parser.parse_args(argv)
    if args.repeat < 1 or not 0 < args.scale <= 10:
        parser.error("--repeat must be at least 1 and --scale in (0, 10]")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = {}
    for backend in backends:
        scale = args.sqlite_scale if backend == "sqlite" and args.sqlite_scale else args.scale
        results[(backend, scale)] = run_backend(backend, scale, args.repeat, args.plans)
    print(
        f"\nGET /admin/, server time, cold cache, {args.repeat} runs"
        f" (target < {TARGET_MS} ms on PostgreSQL)"
    )
    print(f"{'backend':<11}{'scale':>6}  {'range':<24}{'p50':>9}{'max':>9}{'SQL p50':>9}")
    missed = False
    for (backend, scale), timings in results.items():
        for t in timings:
            flag = ""
            if backend == "postgresql" and t.p50_ms >= TARGET_MS:
                flag, missed = "  MISSES TARGET", True
            print(
                f"{backend:<11}{scale:>6g}  {t.label:<24}{t.p50_ms:>7.0f}ms{t.max_ms:>7.0f}ms"
                f"{t.sql_ms:>7.0f}ms{flag}"
            )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
