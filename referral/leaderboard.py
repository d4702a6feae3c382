"""The public leaderboard: who brought the most people, a page at a time.

"All time" reads the counters on users through a partial index in board order; a month or
week groups that period's referrals. Participants who left the board (User.on_leaderboard)
and deactivated ones are not on it. Ties share a rank ("1, 1, 3"): a count's rank is one
more than the number of people with a higher count. Pages are cached; a landing referral
starts a new cache generation, and the cache timeout bounds staleness where the cache is per
process.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, not_, select

from extensions import cache, db
from models import COUNTED_STATUSES, Referral, User, public_name

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


def _generation() -> str:
    generation = cache.get(_GENERATION_KEY)
    if generation is None:
        generation = secrets.token_hex(4)
        cache.set(_GENERATION_KEY, generation, timeout=0)
    return generation


def board_page(period: str, page: int, now: datetime) -> Board:
    """One page of the board; a page past the end shows the last page."""
    start = period_start(period, now)
    key = f"leaderboard:{_generation()}:{period}:{start and start.date()}:{page}"
    board = cache.get(key)
    if board is None:
        board = _load_page(period, start, page)
        cache.set(key, board, timeout=current_app.config["LEADERBOARD_CACHE_SECONDS"])
    return board


def _ranking(start: datetime | None):
    """(user_id, referrals, reached_at) for everyone on the board, read from indexes only:
    names are fetched afterwards for the one page shown."""
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


def _load_page(period: str, start: datetime | None, page: int) -> Board:
    size = current_app.config["LEADERBOARD_PAGE_SIZE"]
    ranking = _ranking(start)
    total = db.session.scalar(select(func.count()).select_from(ranking)) or 0
    pages = max((total + size - 1) // size, 1)
    page = min(page, pages)
    offset = (page - 1) * size
    # The page's ids first (with the row before it, to see whether a tie runs across the
    # page break), then only those joined to their names.
    before = 1 if offset else 0
    chosen = (
        select(ranking)
        .order_by(*_board_order(ranking))
        .limit(size + before)
        .offset(offset - before)
        .subquery()
    )
    found = db.session.execute(
        select(chosen, User.name, User.display_name)
        .join(User, User.id == chosen.c.user_id)
        .order_by(*_board_order(chosen))
    ).all()
    previous = found[0].referrals if before and found else None
    shown = found[before:]
    rows, rank = [], 0
    for index, row in enumerate(shown):
        if index == 0 and row.referrals == previous:
            rank = _rank_of_count(ranking, row.referrals)  # a tie from the previous page
        elif index == 0 or row.referrals != shown[index - 1].referrals:
            rank = offset + index + 1
        name = public_name(row.name, row.display_name)
        rows.append(Row(rank, row.user_id, name, row.referrals))
    return Board(period=period, page=page, pages=pages, total=total, rows=rows)


def _rank_of_count(ranking, referrals: int) -> int:
    """Competition ranking: one more than the number of people with more referrals (a range
    of ix_users_leaderboard on the all-time board)."""
    higher = select(func.count()).select_from(ranking).where(ranking.c.referrals > referrals)
    return (db.session.scalar(higher) or 0) + 1


def rank_of(user: User, period: str, now: datetime) -> Row | None:
    """The participant's own place, wherever it is; None while they are not on the board."""
    ranking = _ranking(period_start(period, now))
    mine = db.session.execute(select(ranking).where(ranking.c.user_id == user.id)).first()
    if mine is None:
        return None
    return Row(_rank_of_count(ranking, mine.referrals), user.id, user.public_name, mine.referrals)
