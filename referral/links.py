"""What a referral link resolves to, served from a cache: Redis's, shared by every process,
when REDIS_URL is set (read by referral/clicks.py's script); else each process's own.

A click must not ask the database what its code means: the cache keeps the answer per
code, tagged with the *generation* it was read at. Every change to what a link resolves to
(a code disabled, a participant deactivated or deleted, a program edited, started or stopped)
calls `invalidate()` in its own transaction, which increases the generation kept in the
database (link_cache_generation) and, once committed, the one kept in Redis (should Redis
be unreachable just then, the worker's mover catches it up within a second). A click is stored
only if the generation is still the one its answer was read at: referral/clicks.py checks it
in the very statement (or Redis script) that stores the click, and reads the answer again if
not. So a change takes effect at once on every process, and a cached click costs no read.

Codes nobody has are not cached (new codes appear with every signup); a found code is cached
whatever its state, since any change to that state moves the generation.
"""

import json
import time
from dataclasses import astuple, dataclass, fields, replace
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import bindparam, func, literal_column, select
from sqlalchemy.engine import Connection

from core.database import after_commit, dialect_insert
from extensions import db
from models import LinkCacheGeneration, Program, ReferralCode, User

# Entries kept per process at most; when full the cache starts empty again (a rare reload
# costs one read, an exact LRU would cost every hit).
MAX_ENTRIES = 100_000
# How long an entry lives, in each process and in Redis: it bounds memory to the codes
# clicked lately, not staleness. In a process, the database's generation is checked by the
# very statement that stores a click. In Redis, should a web process miss a generation bump
# (Redis unreachable at that moment), the worker's mover makes it within CLICK_MOVE_SECONDS
# (clicks.ClickQueue.catch_up_generation). A code clicked all day long is read this often.
ENTRY_SECONDS = 600


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


def shared_entry(generation: str, link: Link) -> str:
    """The link as Redis keeps it for every process (referral/clicks.py's script reads it):
    the generation it was read at, when it is usable (from, until: epoch seconds; from is
    empty for a link never usable, until for one with no end), its code id, the link."""
    usable = link.code_active and link.owner_active and link.program_active
    usable_from = _epoch(link.starts_at) if usable else ""
    usable_until = _epoch(link.ends_at) if usable and link.ends_at is not None else ""
    return "\t".join((generation, usable_from, usable_until, str(link.code_id), link_to_json(link)))


def _epoch(moment: datetime) -> str:
    if moment.tzinfo is None:  # stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.timestamp():.6f}"


def link_to_json(link: Link) -> str:
    """The link as a JSON array, its fields in order (kept in Redis for every process)."""
    return json.dumps(astuple(link), default=datetime.isoformat, separators=(",", ":"))


def link_from_json(text: str) -> Link:
    values = json.loads(text)
    for index in _DATE_FIELDS:
        if values[index] is not None:
            values[index] = datetime.fromisoformat(values[index])
    return Link(*values)


_DATE_FIELDS = tuple(
    index for index, field in enumerate(fields(Link)) if field.name in ("starts_at", "ends_at")
)


def target_of(link: Link, signup_path: str) -> str:
    """Where a click through `link` leads: the program's landing page, else the signup page
    (at `signup_path`), with the code to carry along."""
    if link.landing_url:
        separator = "&" if "?" in link.landing_url else "?"
        return f"{link.landing_url}{separator}ref={link.code}"
    return f"{signup_path}?ref={link.code}"


@dataclass(frozen=True, slots=True)
class Cached:
    generation: str
    link: Link
    read_at: float  # time.monotonic()


class LinkCache:
    """One app's cache in this process, code -> Cached, for clicks stored without Redis (with
    Redis, every process shares the entries Redis keeps: `shared_entry`)."""

    def __init__(self) -> None:
        self._entries: dict[str, Cached] = {}
        # One object per value for what many entries hold alike (the generation, a program's
        # dates, landing page and model): each read makes new ones, ~150 bytes an entry.
        self._alike: dict[object, object] = {}

    def get(self, code: str) -> Cached | None:
        cached = self._entries.get(code)
        if cached is None or time.monotonic() - cached.read_at > ENTRY_SECONDS:
            return None
        return cached

    def put(self, code: str, generation: str, link: Link) -> Cached:
        if len(self._entries) >= MAX_ENTRIES:
            self.clear()
        link = replace(
            link,
            starts_at=self._one(link.starts_at),
            ends_at=self._one(link.ends_at),
            landing_url=self._one(link.landing_url),
            attribution_model=self._one(link.attribution_model),
        )
        cached = Cached(self._one(generation), link, time.monotonic())
        self._entries[code] = cached
        return cached

    def _one(self, value):
        return self._alike.setdefault(value, value)

    def clear(self) -> None:
        self._entries.clear()
        self._alike.clear()


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
    # The 0 written out, not bound: the clicks' raw statement binds only what it names.
    return func.coalesce(select(LinkCacheGeneration.value).scalar_subquery(), literal_column("0"))


# Built once: SQLAlchemy keeps a statement's cache key with it, and building this select and
# its key again for every read took longer than the database took to answer it.
READ = (
    select(*_COLUMNS, database_generation())
    .join(User, User.id == ReferralCode.user_id)
    .join(Program, Program.id == ReferralCode.program_id)
    .where(ReferralCode.code == bindparam("code"))
)


def read(connection: Connection, code: str) -> tuple[str, Link] | None:
    """The code's link and the database generation, read in one statement; None if no
    participant has the code."""
    row = connection.execute(READ, {"code": code}).one_or_none()
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
