"""The public leaderboard: who brought the most people, a page at a time.

"All time" reads the counters on users through a partial index in board order; a month or
week groups that period's referrals. Participants who left the board (User.on_leaderboard)
and deactivated ones are not on it. Ties share a rank ("1, 1, 3"): a count's rank is one
more than the number of people with a higher count, read from the board's standing (how
many people have each count: board_counts, kept by triggers, for all time; grouped from the
period's referrals, once per cache generation, for a month or week), so no request counts
the board.

Cached: the standing and each page's rows, and the answers themselves (the JSON, and the
HTML page an anonymous visitor gets, per language). Every entry carries the generation it
was made in, and a request reads the generation and its entry in one round trip (MGET); a
counted referral or a change of who is on the board starts a new generation, and the cache
timeout bounds staleness where the cache is per process. With Redis, each process also keeps
near copies of the answers (core/caching.py), dropped the moment a new generation or brand is
announced: a repeated public answer costs no round trip.
"""

import bisect
import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Response, current_app, request
from sqlalchemy import bindparam, func, not_, select
from werkzeug.wrappers import Request

from core import branding
from core.caching import announce_change, near_copies
from extensions import cache, db
from models import COUNTED_STATUSES, BoardCount, Referral, User, public_name

PERIODS = ("all", "month", "week")
_GENERATION_KEY = "leaderboard:generation"


@dataclass(frozen=True)
class Row:
    rank: int
    user_id: int
    display_name: str
    referrals: int

    def as_json(self) -> dict:
        return {"rank": self.rank, "display_name": self.display_name, "referrals": self.referrals}


@dataclass(frozen=True)
class Board:
    period: str
    page: int
    pages: int
    total: int
    rows: list[Row]


@dataclass(frozen=True)
class Standing:
    """How many people have each count: `scores` ascending, `at_least[i]` the number of
    people with `scores[i]` referrals or more."""

    scores: tuple[int, ...]
    at_least: tuple[int, ...]

    @classmethod
    def of(cls, people_by_count: dict[int, int]) -> "Standing":
        scores = tuple(sorted(count for count, people in people_by_count.items() if people > 0))
        at_least, running = [], 0
        for count in reversed(scores):
            running += people_by_count[count]
            at_least.append(running)
        return cls(scores, tuple(reversed(at_least)))

    @property
    def total(self) -> int:
        return self.at_least[0] if self.scores else 0

    def rank(self, referrals: int) -> int:
        """One more than the number of people with more referrals."""
        higher = bisect.bisect_right(self.scores, referrals)
        return 1 + (self.at_least[higher] if higher < len(self.scores) else 0)


@dataclass(frozen=True)
class _Stored:
    """A cache entry: what was cached, the generation it belongs to, and whatever else it
    was made from (compared with the current value on reading)."""

    generation: str
    made_from: object
    value: object


@dataclass(frozen=True)
class Answer:
    """A response's bytes as cached, with their ETag."""

    body: bytes
    mimetype: str
    etag: str


def parse_period(raw: str | None) -> str:
    return raw if raw in PERIODS else "all"


def period_start(period: str, now: datetime) -> datetime | None:
    """Calendar periods in UTC: this month from the 1st, this week from Monday."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return midnight.replace(day=1)
    if period == "week":
        return midnight - timedelta(days=midnight.weekday())
    return None


def invalidate() -> None:
    cache.set(_GENERATION_KEY, secrets.token_hex(4), timeout=0)
    announce_change(cache)


def _fetch(key: str, made_from_key: str | None = None) -> tuple[str, object, object | None]:
    """(generation, the current value under `made_from_key`, the entry under `key` if it was
    made in this generation from that value), in one cache round trip."""
    keys = [_GENERATION_KEY, key] + ([made_from_key] if made_from_key else [])
    generation, stored, *made_from = cache.get_many(*keys)
    current = made_from[0] if made_from else None
    if generation is None:
        generation = secrets.token_hex(4)
        cache.set(_GENERATION_KEY, generation, timeout=0)
        announce_change(cache)  # the generation was lost (Redis emptied): copies too
        return generation, current, None
    if not isinstance(stored, _Stored) or stored.generation != generation:
        return generation, current, None
    if stored.made_from != current:
        return generation, current, None
    return generation, current, stored.value


def _store(key: str, generation: str, value, made_from=None) -> None:
    timeout = current_app.config["LEADERBOARD_CACHE_SECONDS"]
    cache.set(key, _Stored(generation, made_from, value), timeout=timeout)


def _period_key(period: str, now: datetime) -> str:
    start = period_start(period, now)
    return f"{period}:{start and start.date()}"


def board_page(period: str, page: int, now: datetime) -> Board:
    """One page of the board; a page past the end shows the last page."""
    key = f"leaderboard:page:{_period_key(period, now)}:{page}"
    generation, _, board = _fetch(key)
    if board is None:
        board = _load_page(period, page, now)
        _store(key, generation, board)
    return board


JSON_ANSWER = "json"  # the API's answer, the same for everyone


def page_answer(language: str, script_root: str) -> str:
    """The kind of answer of the HTML page an anonymous visitor reading `language` gets."""
    return f"html:{language}:{script_root}"


def cached_answer(
    kind: str, period: str, page: int, now: datetime, render: Callable[[], Response] | None
) -> Answer | None:
    """The bytes of a public answer (`kind` names everything besides the period and page
    that changes them: format, language, ...), rendered by `render` when not cached for this
    generation (without `render`: None). HTML answers also depend on the site's brand: they
    are made again once it changes."""
    key = f"leaderboard:answer:{kind}:{_period_key(period, now)}:{page}"
    near = near_copies(cache)
    epoch, copy = near.look(key) if near else (None, None)
    if copy is not None:
        return copy
    html = kind != JSON_ANSWER
    generation, brand, answer = _fetch(key, branding.CACHE_KEY if html else None)
    if answer is None:
        if render is None:
            return None
        response = render()
        body = response.get_data()
        answer = Answer(body, response.mimetype, hashlib.blake2b(body, digest_size=12).hexdigest())
        if html:
            brand = cache.get(branding.CACHE_KEY)  # the brand drawn, as the cache holds it
        _store(key, generation, answer, made_from=brand)
    if epoch is not None:
        near.keep(key, answer, epoch)
    return answer


def public_response(answer: Answer, asking: Request | None = None) -> Response:
    """The cached answer for anyone: `304` when the browser holds these bytes already.
    `asking`: the request, when answered outside Flask's request cycle."""
    asking = request if asking is None else asking
    if asking.if_none_match.contains_weak(answer.etag):
        response = Response(status=304)
    else:
        response = Response(answer.body, mimetype=answer.mimetype)
    response.headers["ETag"] = f'"{answer.etag}"'
    # Kept, but asked about every time (a 304 is cheap): a counted referral shows at once.
    response.headers["Cache-Control"] = "public, no-cache"
    return response


def standing(period: str, now: datetime) -> Standing:
    """How many people have each count on the period's board (cached per generation)."""
    key = f"leaderboard:standing:{_period_key(period, now)}"
    generation, _, found = _fetch(key)
    if found is None:
        found = _load_standing(period_start(period, now))
        _store(key, generation, found)
    return found


def _load_standing(start: datetime | None) -> Standing:
    query = _standing_query(all_time=start is None)
    return Standing.of({count: people for count, people in db.session.execute(query, _at(start))})


_START = bindparam("start", type_=Referral.created_at.type)


def _at(start: datetime | None) -> dict:
    return {} if start is None else {"start": start}


# The board's statements are built once per kind of board, the period's start, the page's
# size and offset bound at each run: SQLAlchemy keeps a statement's cache key with it, and
# building these selects and their keys again cost a cold page more than its SQL did.
@functools.cache
def _standing_query(all_time: bool):
    if all_time:
        return select(BoardCount.referral_count, func.sum(BoardCount.participants)).group_by(
            BoardCount.referral_count
        )
    ranking = _ranking(_START)
    return select(ranking.c.referrals, func.count()).group_by(ranking.c.referrals)


@functools.cache
def _page_query(all_time: bool):
    ranking = _ranking(None if all_time else _START)
    # The page's ids first, then only those joined to their names.
    chosen = (
        select(ranking)
        .order_by(*_board_order(ranking))
        .limit(bindparam("size"))
        .offset(bindparam("offset"))
        .subquery()
    )
    return (
        select(chosen, User.name, User.display_name)
        .join(User, User.id == chosen.c.user_id)
        .order_by(*_board_order(chosen))
    )


def _ranking(start):
    """(user_id, referrals, reached_at) for everyone on the board, read from indexes only:
    names are fetched afterwards for the one page shown. `start`: None for all time, else
    the period's first moment (a datetime, or the bind parameter of a statement built once)."""
    if start is None:
        return (
            select(
                User.id.label("user_id"),
                User.referral_count.label("referrals"),
                User.last_referral_at.label("reached_at"),
            )
            .where(User.referral_count > 0, User.active, User.on_leaderboard)
            .subquery()
        )
    inactive = select(User.id).where(not_(User.active))  # read from ix_users_inactive
    off_board = select(User.id).where(not_(User.on_leaderboard))  # ix_users_off_leaderboard
    return (
        select(
            Referral.referrer_id.label("user_id"),
            func.count().label("referrals"),
            # When the count was reached: the latest referral inside the period.
            func.max(Referral.created_at).label("reached_at"),
        )
        .where(
            Referral.created_at >= start,
            Referral.status.in_(COUNTED_STATUSES),
            Referral.referrer_id.not_in(inactive),
            Referral.referrer_id.not_in(off_board),
        )
        .group_by(Referral.referrer_id)
        .subquery()
    )


def _board_order(ranking):
    return (ranking.c.referrals.desc(), ranking.c.reached_at.asc(), ranking.c.user_id.asc())


def _load_page(period: str, page: int, now: datetime) -> Board:
    size = current_app.config["LEADERBOARD_PAGE_SIZE"]
    places = standing(period, now)
    pages = max((places.total + size - 1) // size, 1)
    page = min(page, pages)
    start = period_start(period, now)
    found = db.session.execute(
        _page_query(all_time=start is None),
        {"size": size, "offset": (page - 1) * size, **_at(start)},
    ).all()
    rows = [
        Row(
            places.rank(row.referrals),
            row.user_id,
            public_name(row.name, row.display_name),
            row.referrals,
        )
        for row in found
    ]
    return Board(period=period, page=page, pages=pages, total=places.total, rows=rows)


def rank_of(user: User, period: str, now: datetime) -> Row | None:
    """The participant's own place, wherever it is; None while they are not on the board."""
    start = period_start(period, now)
    if start is None:
        if not (user.referral_count > 0 and user.active and user.on_leaderboard):
            return None
        # Everyone with more, from the standing's few rows: no cache round trip needed.
        higher = select(func.coalesce(func.sum(BoardCount.participants), 0)).where(
            BoardCount.referral_count > user.referral_count
        )
        rank = (db.session.scalar(higher) or 0) + 1
        return Row(rank, user.id, user.public_name, user.referral_count)
    ranking = _ranking(start)
    mine = db.session.execute(select(ranking).where(ranking.c.user_id == user.id)).first()
    if mine is None:
        return None
    return Row(
        standing(period, now).rank(mine.referrals), user.id, user.public_name, mine.referrals
    )
