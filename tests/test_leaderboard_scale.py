"""The leaderboard reads one page from the database, never the whole board, and that page is
right: most referrals first, ties listed by whoever reached the count first and sharing a
rank ("1, 1, 3": one more than the number with more referrals), also across a page break."""

import contextlib
import random
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from extensions import cache, db
from models import Referral, ReferralCode, User, utcnow
from referral.leaderboard import period_start
from referral.services import default_program
from tests.apps import start_afresh
from tests.databases import sequences_past_their_rows
from tests.factories import numbered_code

BOARD_SIZE = 3_100  # participants with referrals; every 97th is deactivated
PAGE_SIZE = 20
MOST_ROWS_PER_REQUEST = 100
ROW = re.compile(r'<td class="rank">(\d+)</td><td>([^<]*)</td><td class="text-end">(\d+)</td>')


def _referral_times(rng: random.Random, count: int, now: datetime, month: datetime) -> list:
    """Mostly months ago, about one in five this month; a few share the same instant."""
    times = []
    for _ in range(count):
        if rng.random() < 0.2:
            times.append(month + (now - month) * rng.random() * 0.9)
        else:
            times.append(month - timedelta(days=400 * rng.random(), seconds=1))
    return times


def _seed_users(rng: random.Random, now: datetime, month: datetime) -> tuple[list, list]:
    """Board members with skewed counts, one new participant per referral they made."""
    tie = month - timedelta(days=3)  # 40 members reach three referrals at the same instant
    users, referrals = [], []
    for member in range(1, BOARD_SIZE + 1):
        count = 3 if member <= 40 else min(int(rng.paretovariate(1.5)), 100)
        times = [tie] * 3 if member <= 40 else _referral_times(rng, count, now, month)
        users.append({"id": member, "name": f"P{member:05d} Seed", "active": member % 97 != 0})
        for created_at in times:
            referrals.append({"referrer_id": member, "created_at": created_at})
    for friend, referral in enumerate(referrals, start=BOARD_SIZE + 1):
        users.append({"id": friend, "name": f"F{friend:05d} Friend", "active": True})
        referral.update(id=friend, referred_id=friend, status="pending", reason=None)
    for referral in referrals[120::50]:  # caught as self-referrals: kept, never counted
        referral.update(status="rejected", reason="self_referral")
    return users, referrals


def _bulk_insert(model, rows: list[dict]) -> None:
    db.session.execute(insert(model.__table__), rows)  # executemany


def _insert(users: list, referrals: list, now: datetime) -> None:
    program_id = default_program().id
    for user in users:
        user.update(
            email=f"u{user['id']}@example.com",
            role="member",
            locale="en",
            created_at=now - timedelta(days=500),
        )
    _bulk_insert(User, users)
    codes = [
        {
            "id": user["id"],
            "code": numbered_code(user["id"]),
            "user_id": user["id"],
            "program_id": program_id,
            "status": "active",
            "is_vanity": False,
            "created_at": now,
        }
        for user in users[:BOARD_SIZE]
    ]
    _bulk_insert(ReferralCode, codes)
    for referral in referrals:
        referral.update(
            program_id=program_id,
            code_id=referral["referrer_id"],
            source="link",
            risk_score=0,
            risk_reasons=[],
            updated_at=referral["created_at"],
        )
    _bulk_insert(Referral, referrals)  # the database counts them into their referrers' counters
    sequences_past_their_rows(db, "users", "referral_codes", "referrals")
    db.session.commit()


def _expected_board(users: list, referrals: list, start: datetime | None) -> list[dict]:
    """The board worked out in Python from the seeded rows alone."""
    tally: dict[int, list] = {}
    for referral in referrals:
        if referral["status"] == "rejected" or (start and referral["created_at"] < start):
            continue
        entry = tally.setdefault(referral["referrer_id"], [0, referral["created_at"]])
        entry[0] += 1
        entry[1] = max(entry[1], referral["created_at"])
    board = sorted(
        (
            (count, reached_at, member)
            for member, (count, reached_at) in tally.items()
            if users[member - 1]["active"]
        ),
        key=lambda entry: (-entry[0], entry[1], entry[2]),
    )
    rows, rank = [], 0
    for position, (count, _, member) in enumerate(board, start=1):
        if position == 1 or count != board[position - 2][0]:
            rank = position  # competition ranking: a tie keeps the rank of its first row
        rows.append({"rank": rank, "display_name": f"P{member:05d} S.", "referrals": count})
    return rows


def _rank_of(board: list[dict], referrals: int) -> int:
    return 1 + sum(1 for row in board if row["referrals"] > referrals)


# The tests only read the board: it is seeded once per database for the module.
pytestmark = pytest.mark.module_data


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request):
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="module")
def seeded(database_url, shared_apps):
    app = shared_apps.get(database_url, {})
    start_afresh(app)
    rng = random.Random(20261121)
    now = utcnow()
    month = period_start("month", now)
    users, referrals = _seed_users(rng, now, month)
    with app.app_context():
        _insert(users, referrals, now)
    return {
        "all": _expected_board(users, referrals, None),
        "month": _expected_board(users, referrals, month),
    }


@contextlib.contextmanager
def counting_rows():
    """Every row any Session hands back while inside the block, counted."""
    seen = {"rows": 0}

    def count(state):
        if not state.is_select:
            return None
        frozen = state.invoke_statement().freeze()
        seen["rows"] += len(frozen.data)
        return frozen()

    event.listen(Session, "do_orm_execute", count)
    try:
        yield seen
    finally:
        event.remove(Session, "do_orm_execute", count)


def _fetch(app, client, url: str):
    with app.app_context():
        cache.clear()  # a cold cache: the page is read from the database
    with counting_rows() as seen:
        response = client.get(url)
    assert response.status_code == 200
    assert 0 < seen["rows"] < MOST_ROWS_PER_REQUEST, f"{url} read {seen['rows']} rows"
    return response


def _page(board: list[dict], page: int) -> list[dict]:
    return board[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]


def _html_rows(response) -> list[dict]:
    rows = ROW.findall(response.get_data(as_text=True))
    return [
        {"rank": int(rank), "display_name": name, "referrals": int(count)}
        for rank, name, count in rows
    ]


def test_all_time_pages_read_one_page_and_are_in_board_order(app, client, seeded):
    board = seeded["all"]
    assert len(board) >= 150 * PAGE_SIZE  # page 150 is a real page, not the last one clamped

    first = _html_rows(_fetch(app, client, "/referral/leaderboard?page=1"))
    hundredth = _html_rows(_fetch(app, client, "/referral/leaderboard?page=100"))

    assert first == _page(board, 1)
    assert first[0]["referrals"] == max(row["referrals"] for row in board)
    assert hundredth == _page(board, 100)
    assert [row["rank"] for row in hundredth] == [
        _rank_of(board, row["referrals"]) for row in hundredth
    ]
    assert len({row["rank"] for row in hundredth}) < PAGE_SIZE  # ties deep in the board


def test_api_pages_read_one_page_and_are_in_board_order(app, client, seeded):
    for period, page in (("all", 150), ("month", 150), ("month", 1)):
        expected = seeded[period]
        pages = max((len(expected) + PAGE_SIZE - 1) // PAGE_SIZE, 1)
        body = _fetch(app, client, f"/api/v1/leaderboard?page={page}&period={period}").json

        shown = min(page, pages)  # a page past the end shows the last page
        assert (body["total"], body["pages"], body["page"]) == (len(expected), pages, shown)
        assert body["rows"] == _page(expected, shown)
        ranks = [row["rank"] for row in body["rows"]]
        assert ranks == [_rank_of(expected, row["referrals"]) for row in body["rows"]]
        assert len(ranks) == PAGE_SIZE or shown == pages


def test_equal_counts_rank_whoever_got_there_first(app, client, seeded):
    """Members 1-40 reached three referrals at the same instant; others reached three
    earlier or later. Earlier goes first; at the same instant, the lower account id."""
    board = seeded["all"]
    threes = [row for row in board if row["referrals"] == 3]
    pages = sorted(
        {index // PAGE_SIZE + 1 for index, row in enumerate(board) if row["referrals"] == 3}
    )
    shown = []
    for page in pages:
        shown += _html_rows(_fetch(app, client, f"/referral/leaderboard?page={page}"))
    shown_threes = [row for row in shown if row["referrals"] == 3]

    assert shown_threes == threes
    assert {row["rank"] for row in shown_threes} == {_rank_of(board, 3)}  # one shared rank
    names = [row["display_name"] for row in shown_threes]
    tied = [f"P{member:05d} S." for member in range(1, 41)]
    start = names.index(tied[0])
    assert names[start : start + 40] == tied
