"""How long a participant with a big referral tree waits for their dashboard and their tree.

    .venv/bin/python -m bench.tree [--descendants 10000] [--backend sqlite|postgresql|both]

For each backend: a new database (a temporary SQLite file; a PostgreSQL database
`inviteloop_bench_<random>`, dropped afterwards), migrated like a real installation. Rita
signs up through the real service, then her tree is bulk-loaded below her: N descendants on
levels 1-3 (1 % / 19 % / 80 %, each newcomer's inviter drawn with a heavy tail, so some have
hundreds of invitees and most none), a fifth as many again on level 4 (past the default depth
of 3: the queries must not pay for them), and a forest of other participants around (noise).
About 40 % of everyone bought once: each purchase pays its buyer's inviter and, as level
shares, the two above, with a mix of statuses, some refunds reversed. Then Rita logs in through
the login form, an admin too, and each page is requested through the test client: one warm-up,
then `--repeat` timed requests, the Flask cache emptied before each.
"""

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_migrate import upgrade
from sqlalchemy import event, func, insert, select, text, update

from bench.leaderboard import SqlClock, create_database, drop_database, explain, make_app
from extensions import cache, db
from models import Conversion, Program, Referral, ReferralCode, Reward, User, utcnow
from tests import factories
from tests.conftest import log_in
from tests.factories import numbered_code

TARGET_MS = 1000
LEVEL_SHARES = (0.01, 0.19, 0.80)  # of the descendants, on levels 1, 2, 3
BEYOND_DEPTH = 0.2  # level 4, as a share of the descendants
BUYERS = 0.4
LEVEL_AMOUNTS = (1000, 500, 200)  # what a purchase pays 1, 2 and 3 levels up
STATUSES = ("pending", "approved", "paid", "review", "cancelled")
STATUS_WEIGHTS = (30, 40, 20, 5, 5)
REVERSED = 0.03  # of the approved and paid entries: refunded after the hold
FIRST = ("Ava", "Liam", "Noah", "Emma", "Mia", "Lucas", "Yuki", "Aarav", "Priya", "Omar", "Ines")
LAST = ("Smith", "Garcia", "Rossi", "Nguyen", "Tanaka", "Okafor", "Silva", "Dubois", "Novak")


@dataclass
class Dataset:
    users: list[dict] = field(default_factory=list)
    codes: list[dict] = field(default_factory=list)
    referrals: list[dict] = field(default_factory=list)
    conversions: list[dict] = field(default_factory=list)
    rewards: list[dict] = field(default_factory=list)
    inviter: dict[int, int] = field(default_factory=dict)  # user id -> inviter id
    levels: dict[int, list[int]] = field(default_factory=dict)  # Rita's levels 1..4


@dataclass(frozen=True)
class World:
    """What the generator was given: ids to start from and the fixed points."""

    root_id: int
    first_id: int
    program_id: int
    now: datetime


def generate(world: World, descendants: int, noise: int, seed: int) -> Dataset:
    rng = random.Random(seed)
    data = Dataset()
    sizes = [max(1, round(descendants * share)) for share in LEVEL_SHARES[:2]]
    sizes.append(descendants - sum(sizes))
    sizes.append(round(descendants * BEYOND_DEPTH))
    next_id, parents = world.first_id, [world.root_id]
    for level, size in enumerate(sizes, start=1):
        weights = [rng.paretovariate(1.1) for _ in parents]
        members = list(range(next_id, next_id + size))
        for user_id, inviter in zip(members, rng.choices(parents, weights, k=size), strict=True):
            _add_person(data, rng, world, user_id, inviter, level)
        data.levels[level] = members
        next_id, parents = next_id + size, members
    for user_id in range(next_id, next_id + noise):
        # Other trees: a few tops, everyone else invited by an earlier noise participant.
        inviter = rng.randrange(next_id, user_id) if user_id > next_id + 50 else None
        _add_person(data, rng, world, user_id, inviter, 1)
    _set_counters(data)
    _purchases(data, rng, world)
    return data


def _add_person(data, rng, world: World, user_id: int, inviter: int | None, level: int):
    joined = world.now - timedelta(days=400 - 90 * level + rng.random() * 30)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first.lower()}.{user_id}@example.com"
    data.users.append(
        {
            "id": user_id,
            "email": email,
            "email_canonical": email,
            "name": f"{first} {last}",
            "referred_by_id": inviter,  # role, locale, active...: the column defaults
            "signup_ip": "192.0.2.1",
            "referral_count": 0,
            "last_referral_at": None,
            "created_at": joined,
        }
    )
    data.codes.append(
        {
            "id": user_id,
            "code": numbered_code(user_id),
            "user_id": user_id,
            "program_id": world.program_id,
            "created_at": joined,
        }
    )
    if inviter is None:
        return
    data.inviter[user_id] = inviter
    status = rng.choice(("pending", "qualified", "rewarded"))
    data.referrals.append(
        {
            "id": len(data.referrals) + 1,
            "program_id": world.program_id,
            "code_id": inviter if inviter != world.root_id else None,  # Rita's: set on load
            "referrer_id": inviter,
            "referred_id": user_id,
            "source": "link",
            "status": status,
            "created_at": joined,
            "updated_at": joined,
        }
    )


def _set_counters(data: Dataset) -> None:
    joined = {user["id"]: user for user in data.users}
    for referral in data.referrals:
        inviter = joined.get(referral["referrer_id"])
        if inviter is not None:
            inviter["referral_count"] += 1
            inviter["last_referral_at"] = max(
                inviter["last_referral_at"] or referral["created_at"], referral["created_at"]
            )


def _purchases(data: Dataset, rng: random.Random, world: World) -> None:
    """One purchase by 40 % of everyone; its rewards to up to three inviters above."""
    for user in data.users:
        if rng.random() >= BUYERS or user["id"] not in data.inviter:
            continue
        at = user["created_at"] + timedelta(days=rng.random() * 60)
        conversion = _conversion(data, world, user["id"], "purchase", at)
        beneficiary = user["id"]
        for level, amount in enumerate(LEVEL_AMOUNTS, start=1):
            beneficiary = data.inviter.get(beneficiary)  # None above a tree's top
            if beneficiary is None:
                break
            _reward(data, rng, world, conversion, beneficiary, level, amount, at)


def _conversion(data: Dataset, world: World, buyer: int, kind: str, at: datetime) -> int:
    conversion_id = len(data.conversions) + 1
    data.conversions.append(
        {
            "id": conversion_id,
            "source": "api",
            "kind": kind,
            "external_id": f"bench-{conversion_id}",
            "order_id": f"order-{buyer}",
            "program_id": world.program_id,
            "participant_id": buyer,
            "amount": 2500 if kind == "purchase" else None,
            "currency": "USD",
            "outcome": "accepted",
            "occurred_at": at,
            "created_at": at,
        }
    )
    return conversion_id


def _reward(data, rng, world, conversion_id, beneficiary, level, amount, at) -> None:
    status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
    row = _reward_row(data, world, conversion_id, beneficiary, level, amount, at)
    row.update(
        status=status,
        reason="refunded" if status == "cancelled" else None,
        paid_at=at + timedelta(days=30) if status == "paid" else None,
    )
    data.rewards.append(row)
    if status in ("approved", "paid") and rng.random() < REVERSED:
        later = at + timedelta(days=40)
        buyer = data.conversions[conversion_id - 1]["participant_id"]
        refund = _conversion(data, world, buyer, "refund", later)
        reversal = _reward_row(data, world, refund, beneficiary, level, -amount, later)
        reversal.update(status="approved", reason="refunded", reverses_id=row["id"])
        data.rewards.append(reversal)


def _reward_row(data, world, conversion_id, beneficiary, level, amount, at) -> dict:
    return {
        "id": len(data.rewards) + 1,
        "program_id": world.program_id,
        "conversion_id": conversion_id,
        "beneficiary_id": beneficiary,
        "role": "referrer",
        "level": level,
        "kind": "credit",
        "amount": amount,
        "currency": "USD",
        "status": "approved",
        "reason": None,
        "reverses_id": None,
        "paid_at": None,
        "available_at": at + timedelta(days=14),
        "created_at": at,
        "updated_at": at,
    }


def load(data: Dataset, root_code_id: int, root_id: int) -> None:
    """Bulk insert in one transaction per backend; PostgreSQL gets fresh planner statistics
    (as autovacuum would soon give), SQLite none (the app never runs ANALYZE)."""
    for referral in data.referrals:
        referral["code_id"] = referral["code_id"] or root_code_id
    with db.engine.begin() as conn:
        for model, rows in (
            (User, data.users),
            (ReferralCode, data.codes),
            (Referral, data.referrals),
            (Conversion, data.conversions),
            (Reward, data.rewards),
        ):
            conn.execute(insert(model.__table__), rows)
        direct = [r["created_at"] for r in data.referrals if r["referrer_id"] == root_id]
        conn.execute(
            update(User)
            .where(User.id == root_id)
            .values(referral_count=len(direct), last_referral_at=max(direct))
        )
        if conn.dialect.name == "postgresql":
            for table in ("users", "referral_codes", "referrals", "conversions", "rewards"):
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                conn.execute(text(f"SELECT setval({sequence}, max(id)) FROM {table}"))
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


@dataclass
class Timing:
    label: str
    p50_ms: float
    max_ms: float
    sql_ms: float
    statements: int
    answer: str


def time_request(app, client, label: str, path: str, repeat: int) -> Timing:
    client.get(path).close()  # warm-up: templates compiled, connection open
    samples, sql, counts, body = [], [], [], ""
    for _ in range(repeat):
        with app.app_context():
            cache.clear()
            engine = db.engine
        with SqlMeter(engine) as clock:
            started = time.perf_counter()
            response = client.get(path)
            body = response.get_data(as_text=True)
            samples.append((time.perf_counter() - started) * 1000)
        sql.append(clock.seconds * 1000)
        counts.append(clock.count)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
        response.close()
    return Timing(
        label,
        statistics.median(samples),
        max(samples),
        statistics.median(sql),
        counts[-1],
        _answer(response, body),
    )


class SqlMeter(SqlClock):
    """The time inside the driver, and how many statements ran."""

    def __init__(self, engine):
        super().__init__(engine)
        self.count = 0

    def _before(self, conn, *args):
        self.count += 1
        super()._before(conn, *args)


def _answer(response, body: str) -> str:
    if response.is_json:
        levels = response.get_json()["levels"]
        return "levels " + " / ".join(
            f"{level['count']:,} (p{level['page']}, {len(level['members'])} shown)"
            for level in levels
        )
    counts = re.findall(r'id="level-\d+-count">(\d+)<', body)
    shown = body.count('class="tree-member')
    return (f"levels {' / '.join(f'{int(n):,}' for n in counts)}; " if counts else "") + (
        f"{shown} people listed"
    )


def requests_for(data: Dataset, root_id: int) -> list[tuple[str, str, str]]:
    """(who, label, path): Rita's pages, and the staff page of her."""
    level_one = data.levels[1]
    biggest = max(
        level_one, key=lambda uid: sum(1 for u in data.levels[2] if data.inviter[u] == uid)
    )
    deep_page = max(1, len(data.levels[3]) // 20 // 2)
    return [
        ("rita", "dashboard", "/referral/dashboard"),
        ("rita", "api tree", "/api/v1/me/tree"),
        ("rita", f"api level 3 p{deep_page}", f"/api/v1/me/tree?level=3&page={deep_page}"),
        (
            "rita",
            f"level 3 p{deep_page} fragment",
            f"/referral/tree?level=3&page={deep_page}&partial=1",
        ),
        ("rita", "branch of biggest L1", f"/referral/tree?node={biggest}&partial=1"),
        ("admin", "staff participant page", f"/admin/participants/{root_id}"),
    ]


def print_plans(app, client, path: str) -> None:
    """EXPLAIN of the tree's recursive statements as a request for `path` ran them."""
    seen = []

    def capture(_conn, _cursor, statement, parameters, _context, _executemany):
        if "downline" in statement or "inviters_of_node" in statement:
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        client.get(path).close()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    with app.app_context():
        for statement, parameters in seen:
            print(f"\n-- {' '.join(statement.split())[:150]}...")
            print("\n".join(explain(statement, parameters)))


def run_backend(backend: str, args) -> list[Timing]:
    with tempfile.TemporaryDirectory(prefix="inviteloop-bench-") as workdir:
        url = create_database(backend, workdir)
        try:
            app = make_app(url)
            try:
                return _measure(app, backend, args)
            finally:
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
        finally:
            drop_database(url)


def _measure(app, backend: str, args) -> list[Timing]:
    with app.app_context():
        upgrade(directory=os.path.join(app.root_path, "migrations"), revision="head")
        program_id = db.session.scalar(select(Program.id).where(Program.is_default))
        rita = factories.participant("Rita Root")
        admin = factories.staff("admin")
        started = time.perf_counter()
        root_code = db.session.scalar(
            select(ReferralCode.id).where(ReferralCode.user_id == rita["id"])
        )
        taken = max(db.session.scalar(select(func.max(ReferralCode.id))), admin["id"])
        world = World(rita["id"], taken + 1, program_id, utcnow())
        data = generate(world, args.descendants, args.noise, args.seed)
        db.session.rollback()
        load(data, root_code, rita["id"])
        mine = db.session.scalar(select(func.count()).where(Reward.beneficiary_id == rita["id"]))
        print(
            f"\n[{backend}] seeded in {time.perf_counter() - started:.1f} s: "
            f"{len(data.users) + 2:,} users (Rita's levels 1-4: "
            + " / ".join(f"{len(data.levels[n]):,}" for n in (1, 2, 3, 4))
            + f"), {len(data.conversions):,} conversions, {len(data.rewards):,} rewards "
            f"({mine:,} of them Rita's)",
            flush=True,
        )
        db.session.remove()
    clients = {"rita": app.test_client(), "admin": app.test_client()}
    log_in(clients["rita"], rita["email"])
    log_in(clients["admin"], admin["email"])
    if args.plans:
        print_plans(app, clients["rita"], "/referral/dashboard")
    return [
        time_request(app, clients[who], label, path, args.repeat)
        for who, label, path in requests_for(data, rita["id"])
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tree", description=__doc__)
    parser.add_argument("--descendants", type=int, default=10_000, help="on levels 1-3")
    parser.add_argument("--noise", type=int, default=20_000, help="participants in other trees")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--plans", action="store_true", help="EXPLAIN the tree's statements")
    args = parser.parse_args(argv)
    if args.descendants < 100 or args.noise < 100 or args.repeat < 1:
        parser.error("--descendants and --noise must be at least 100, --repeat at least 1")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = {backend: run_backend(backend, args) for backend in backends}
    print(f"\nserver time per request, cold cache, {args.repeat} runs (target < {TARGET_MS} ms)")
    print(f"{'backend':<11}{'request':<31}{'p50':>8}{'max':>8}{'SQL p50':>9}{'stmts':>6}  answer")
    missed = False
    for backend, timings in results.items():
        for t in timings:
            flag = ""
            if t.p50_ms >= TARGET_MS:
                flag, missed = "  MISSES TARGET", True
            print(
                f"{backend:<11}{t.label:<31}{t.p50_ms:>6.1f}ms{t.max_ms:>6.1f}ms"
                f"{t.sql_ms:>7.1f}ms{t.statements:>6}  {t.answer}{flag}"
            )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
