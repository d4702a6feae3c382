"""The board without counting it, and its public answers served whole from the cache
(docs/guarantees.md #50): board_counts always agrees with the counters on users, whatever
changed them, and keeps no row for a count nobody holds; a cold page and one's own rank read
a few rows; a cached answer costs one cache round trip and no SQL, answers 304 to a browser
that holds it, and is never someone else's (a signed-in participant's page, a waiting
message, another language or brand)."""

import random
import threading
from datetime import timedelta
from unittest import mock

from sqlalchemy import delete, func, select, update

from admin.settings.services import save_branding
from extensions import cache, db
from models import BOARD_COUNT_SHARDS, BoardCount, User, utcnow
from referral.services import recount_referrals
from tests import factories
from tests.helpers import statements_during


def _counts_from_the_counters() -> dict[int, int]:
    on_board = (User.referral_count > 0, User.active, User.on_leaderboard)
    query = select(User.referral_count, func.count()).where(*on_board).group_by(User.referral_count)
    return dict(db.session.execute(query).all())


def _counts_kept() -> dict[int, int]:
    query = select(BoardCount.referral_count, func.sum(BoardCount.participants)).group_by(
        BoardCount.referral_count
    )
    # Zeros included: a count nobody holds any more must leave no row behind.
    return dict(db.session.execute(query).all())


def _selects(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]


def _set(user_id: int, **values) -> None:
    db.session.execute(update(User).where(User.id == user_id).values(**values))
    db.session.commit()


def test_board_counts_follow_every_change_of_who_is_on_the_board(app):
    with app.app_context():
        people = [factories.participant(f"Count Person{index:02d}") for index in range(4)]
        for index, person in enumerate(people[:3]):  # 1, 2 and 3 referrals, counted as usual
            for guest in range(index + 1):
                factories.participant(f"Guest P{index}x{guest}", invited_by=person["code"])
        assert _counts_kept() == _counts_from_the_counters() == {1: 1, 2: 1, 3: 1}

        _set(people[2]["id"], active=False)  # deactivated: off the board
        _set(people[1]["id"], on_leaderboard=False)  # left it
        _set(people[3]["id"], referral_count=7, last_referral_at=utcnow())  # a bulk import
        _set(people[0]["id"], referral_count=0)  # a referral taken back
        assert _counts_kept() == _counts_from_the_counters() == {7: 1}

        _set(people[2]["id"], active=True)
        _set(people[1]["id"], on_leaderboard=True)
        recount_referrals()  # every counter set from the rows again, in one statement
        db.session.commit()
        assert _counts_kept() == _counts_from_the_counters() == {1: 1, 2: 1, 3: 1}

        db.session.execute(delete(User).where(User.id == people[0]["id"]))
        db.session.execute(  # what a bulk load does: rows arrive with their counters set
            User.__table__.insert(),
            [{"name": "Loaded One", "referral_count": 2, "active": True}],
        )
        db.session.commit()
        assert _counts_kept() == _counts_from_the_counters() == {2: 2, 3: 1}


def test_counts_moving_both_ways_at_once_keep_board_counts_exact(app):
    """Six writers at once, each moving one participant's count up or down (or off and back
    on the board) per transaction, all of them sharing the same count rows: nobody deadlocks
    or waits forever, and afterwards the rows agree with the counters."""
    ids = [10_000 + BOARD_COUNT_SHARDS * index for index in range(10)]  # one shard's rows
    with app.app_context():
        people = [
            {"id": user_id, "name": f"Busy P{user_id}", "referral_count": 2} for user_id in ids
        ]
        db.session.execute(User.__table__.insert(), people)
        db.session.commit()
        engine = db.engine
    failures = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(20):
                user_id = rng.choice(ids)
                with engine.begin() as connection:
                    if rng.random() < 0.15:
                        change = {"active": ~User.active}
                    elif rng.random() < 0.5:
                        change = {"referral_count": User.referral_count + 1}
                    else:
                        change = {"referral_count": func.max(User.referral_count - 1, 0)}
                        if engine.dialect.name == "postgresql":
                            change = {"referral_count": func.greatest(User.referral_count - 1, 0)}
                    connection.execute(update(User).where(User.id == user_id).values(**change))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    with app.app_context():
        assert _counts_kept() == _counts_from_the_counters()


def test_a_cold_page_and_ones_own_rank_read_a_few_rows_and_never_count_the_board(
    app, client, login
):
    with app.app_context():
        leaders = [factories.participant(f"Lead Person{index:02d}") for index in range(3)]
        for index, leader in enumerate(leaders):
            for guest in range(3 - index):
                factories.participant(f"Guest L{index}x{guest}", invited_by=leader["code"])
        cache.clear()
    cold = _selects(statements_during(app, lambda: client.get("/api/v1/leaderboard?page=1")))
    assert len(cold) == 2, cold  # the standing (board_counts), then the page's rows and names
    assert "board_counts" in cold[0] and not any("count(*)" in sql.lower() for sql in cold)
    assert [row["rank"] for row in client.get("/api/v1/leaderboard").json["rows"]] == [1, 2, 3]

    login(leaders[2]["email"])
    with app.app_context():
        cache.clear()
    page = statements_during(app, lambda: client.get("/referral/leaderboard"))
    assert "You are <strong>#3</strong> with 1 referral" in client.get("/referral/leaderboard").text
    own_rank = [sql for sql in page if "board_counts" in sql and "sum(" in sql.lower()]
    assert len(own_rank) == 2  # the standing of the page, and the people above me
    assert not any("count(*)" in sql.lower() for sql in page)


def test_a_cached_answer_is_one_cache_read_no_sql_and_304_when_unchanged(
    app, client, make_participant
):
    alice = make_participant("Alice Zimmer")
    factories_guest = ("Aa Friend", alice["code"])
    with app.app_context():
        factories.participant(factories_guest[0], invited_by=factories_guest[1])
    for path in ("/api/v1/leaderboard", "/referral/leaderboard?period=month"):
        first = client.get(path)
        assert first.status_code == 200 and "Alice Z." in first.text
        assert first.headers["Cache-Control"] == "public, no-cache"
        assert "Set-Cookie" not in first.headers
        with (
            mock.patch.object(cache, "get", wraps=cache.get) as single,
            mock.patch.object(cache, "get_many", wraps=cache.get_many) as many,
        ):
            sql = statements_during(app, lambda path=path: client.get(path))
            again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
        assert sql == [] and single.call_count == 0 and many.call_count == 2
        assert again.status_code == 304 and again.data == b""
        assert again.headers["ETag"] == first.headers["ETag"]

    etag = client.get("/api/v1/leaderboard").headers["ETag"]
    bob = make_participant("Bob Young")
    with app.app_context():
        factories.participant("Bb Friend", invited_by=bob["code"], now=utcnow() - timedelta(1))
    changed = client.get("/api/v1/leaderboard", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert [row["display_name"] for row in changed.json["rows"]] == ["Bob Y.", "Alice Z."]


def test_cached_pages_are_per_language_and_brand_and_never_a_members_own(
    app, client, login, make_participant
):
    alice = make_participant("Alice Zimmer")
    with app.app_context():
        factories.participant("Aa Friend", invited_by=alice["code"])
    english = client.get("/referral/leaderboard", headers={"Accept-Language": "en"})
    russian = client.get("/referral/leaderboard", headers={"Accept-Language": "ru"})
    assert 'lang="en"' in english.text and 'lang="ru"' in russian.text
    assert english.headers["ETag"] != russian.headers["ETag"]
    client.set_cookie("locale", "ru")  # the switcher's choice beats the browser's
    assert '<html lang="ru">' in client.get("/referral/leaderboard").text
    client.delete_cookie("locale")

    with app.app_context():
        save_branding(site_name="Acme Rewards", support_email=None, primary_color=None)
        db.session.commit()
    assert "Acme Rewards" in client.get("/referral/leaderboard").text  # not the old bytes

    with client.session_transaction() as session:  # a message waiting for this visitor
        session["_flashes"] = [("info", "Waiting for you alone")]
    assert "Waiting for you alone" in client.get("/referral/leaderboard").text
    assert "Waiting for you alone" not in app.test_client().get("/referral/leaderboard").text

    login(alice["email"])
    mine = client.get("/referral/leaderboard")
    assert "You are <strong>#1</strong>" in mine.text and ">You<" in mine.text
    assert mine.headers["Cache-Control"] == "private" and "ETag" not in mine.headers
    visitor = app.test_client().get("/referral/leaderboard")
    assert ">You<" not in visitor.text and "You are <strong>" not in visitor.text
    assert "Log out" not in visitor.text
