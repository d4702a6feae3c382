"""What a referral link resolves to, served from a small cache in each process.

A click must not ask the database what its code means: each process keeps the answer per
code, tagged with the *generation* it was read at. Every change to what a link resolves to
(a code disabled, a participant deactivated or deleted, a program edited, started or stopped)
calls `invalidate()` in its own transaction, which increases the generation kept in the
database (link_cache_generation) and, once committed, the one kept in Redis. A click is stored
only if the generation is still the one its answer was read at: referral/clicks.py checks it
in the very statement (or Redis script) that stores the click, and reads the answer again if
not. So a change takes effect at once on every process, and a cached click costs no read.

Codes nobody has are not cached (new codes appear with every signup); a found code is cached
whatever its state, since any change to that state moves the generation.
"""

import time
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from core.database import after_commit, dialect_insert
from extensions import db
from models import LinkCacheGeneration, Program, ReferralCode, User

# Entries kept per process at most; when full the cache starts empty again (a rare reload
# costs one read, an exact LRU would cost every hit).
MAX_ENTRIES = 100_000
# A backstop only: should Redis miss a generation bump (down at that moment), an entry read
# under the old Redis generation still ages out.
ENTRY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Link:
    """A code with what a click through it needs, as read at one generation."""

    code_id: int
    code: str
    owner_id: int
    program_id: int
    code_active: bool
    owner_active: bool
    program_active: bool
    starts_at: datetime
    ends_at: datetime | None
    landing_url: str | None
    attribution_window_days: int
    attribution_model: str

    def usable(self, now: datetime) -> bool:
        """What services.find_active_code requires: an active code of an active participant,
        in a program running now."""
        return (
            self.code_active
            and self.owner_active
            and self.program_active
            and self.starts_at <= now
            and (self.ends_at is None or now < self.ends_at)
        )


@dataclass(frozen=True, slots=True)
class Cached:
    generation: str
    link: Link
    read_at: float  # time.monotonic()


class LinkCache:
    """One app's cache in this process: (where its generation came from, code) -> Cached.
    The source is "database" or "redis": the two generations are counted separately."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Cached] = {}

    def get(self, source: str, code: str) -> Cached | None:
        cached = self._entries.get((source, code))
        if cached is None or time.monotonic() - cached.read_at > ENTRY_SECONDS:
            return None
        return cached

    def put(self, source: str, code: str, generation: str, link: Link) -> Cached:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        cached = Cached(generation, link, time.monotonic())
        self._entries[(source, code)] = cached
        return cached

    def clear(self) -> None:
        self._entries.clear()


def init_link_cache(app) -> None:
    app.extensions["link_cache"] = LinkCache()


def cache() -> LinkCache:
    return current_app.extensions["link_cache"]


_COLUMNS = (
    ReferralCode.id,
    ReferralCode.code,
    ReferralCode.user_id,
    ReferralCode.program_id,
    ReferralCode.status == "active",
    User.active,
    Program.active,
    Program.starts_at,
    Program.ends_at,
    Program.landing_url,
    Program.attribution_window_days,
    Program.attribution_model,
)


def database_generation():
    """The database's generation as a scalar subquery (0 while its row is missing)."""
    return func.coalesce(select(LinkCacheGeneration.value).scalar_subquery(), 0)


# Built once: SQLAlchemy keeps a statement's cache key with it, and building this select and
# its key again for every read took longer than the database took to answer it.
_READ = (
    select(*_COLUMNS, database_generation())
    .join(User, User.id == ReferralCode.user_id)
    .join(Program, Program.id == ReferralCode.program_id)
    .where(ReferralCode.code == bindparam("code"))
)


def read(connection: Connection, code: str) -> tuple[str, Link] | None:
    """The code's link and the database generation, read in one statement; None if no
    participant has the code."""
    row = connection.execute(_READ, {"code": code}).one_or_none()
    if row is None:
        return None
    return str(row[-1]), Link(*row[:-1])


def invalidate() -> None:
    """Every process's cached links are stale from the moment the current transaction commits.
    Call it in any transaction that changes a code's status, a participant's `active` or a
    program's dates, activity, landing page or attribution."""
    table = LinkCacheGeneration.__table__
    # One statement that also recreates the row should it be missing.
    db.session.execute(
        dialect_insert(table)
        .values(id=1, value=1)
        .on_conflict_do_update(index_elements=["id"], set_={"value": table.c.value + 1})
    )
    after_commit(_bump_redis_generation)


def _bump_redis_generation() -> None:
    queue = current_app.extensions.get("click_queue")
    if queue is not None:
        queue.bump_generation()
