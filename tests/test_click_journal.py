"""Clicks journaled on SQLite without Redis (docs/guarantees.md #54): the 302 leaves once the
click is in its process's journal; the process's mover stores it within seconds, once,
whatever kills what; a link changed elsewhere holds from the next click, as without the
journal; a journal that cannot be written sends clicks straight to the database."""

import os
import random
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from admin.people import services as people
from extensions import db
from models import Click, Program, ReferralCode, User
from referral import links, services
from rewards import programs
from tests import factories
from tests.apps import other_app, start_afresh
from tests.link_load import LOAD_THREADS, Load, gunicorn_workers, stored_marks
from tests.server import running_server

STORED_WITHIN_SECONDS = 8.0
WORKER_KILLS = 2


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url  # the journal is for SQLite; with Redis clicks queue there


@pytest.fixture
def config_overrides():
    return {"CLICK_JOURNAL": True}


def _journal(app):
    return app.extensions["click_journal"]


def _clicks(app) -> list:
    """The stored clicks: (code_id, visitor_id, utm_source) each."""
    with app.app_context():
        found = db.session.execute(
            select(Click.code_id, Click.visitor_id, Click.utm_source).order_by(Click.id)
        ).all()
        db.session.rollback()
        return found


def _move(app) -> int:
    return _journal(app).journal.move_now()


def test_a_click_is_answered_from_the_journal_and_stored_once_when_moved(app, make_participant):
    alice = make_participant()
    visitor = app.test_client()

    answer = visitor.get(f"/r/{alice['code']}?utm_source=newsletter")

    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/auth/signup?ref={alice['code']}")
    assert _clicks(app) == []  # in the journal, not yet in the database
    assert _move(app) == 1
    [click] = _clicks(app)
    assert click.utm_source == "newsletter"
    assert click.visitor_id in answer.headers.get_all("Set-Cookie")[1]
    assert _move(app) == 0 and len(_clicks(app)) == 1


def test_the_mover_stores_clicks_within_seconds_unasked(app, make_participant):
    alice = make_participant()
    app.test_client().get(f"/r/{alice['code']}")

    deadline = time.monotonic() + STORED_WITHIN_SECONDS
    while True:
        with app.app_context():
            shown = services.participant_stats(db.session.get(User, alice["id"])).clicks
            db.session.rollback()
        if shown == 1:
            break
        assert time.monotonic() < deadline, "the dashboard never showed the click"
        time.sleep(0.1)


def test_a_code_disabled_by_another_process_stops_at_the_next_click(
    app, database_url, make_participant
):
    alice = make_participant()
    visitor = app.test_client()
    assert visitor.get(f"/r/{alice['code']}").status_code == 302  # now cached here
    _move(app)

    with other_app(database_url) as staff_app, staff_app.app_context():
        code_id = db.session.scalar(select(Click.code_id))
        people.disable_code(alice["id"], code_id)
        db.session.commit()

    answer = visitor.get(f"/r/{alice['code']}")
    assert answer.headers["Location"].endswith("/")  # the home page, crediting nobody
    assert "il_ref" not in answer.headers.get("Set-Cookie", "")
    assert _move(app) == 0 and len(_clicks(app)) == 1


def test_a_program_edited_elsewhere_sends_the_next_click_to_its_new_landing_page(
    app, database_url, make_participant
):
    alice = make_participant()
    visitor = app.test_client()
    assert "/auth/signup" in visitor.get(f"/r/{alice['code']}").headers["Location"]

    with other_app(database_url) as staff_app, staff_app.app_context():
        program = db.session.scalar(select(Program).where(Program.is_default))
        programs.update_program(program, {"landing_url": "https://shop.example/welcome"})
        db.session.commit()

    answer = visitor.get(f"/r/{alice['code']}")
    assert answer.headers["Location"] == f"https://shop.example/welcome?ref={alice['code']}"
    assert _move(app) == 2


def test_a_link_read_for_the_journal_is_the_link_the_database_holds(app, make_participant):
    alice = make_participant()
    bob = make_participant("Bob Baker")
    with app.app_context():
        program = db.session.scalar(select(Program).where(Program.is_default))
        programs.update_program(program, {"landing_url": "https://shop.example/?from=us"})
        bob_code = db.session.scalar(select(ReferralCode).where(ReferralCode.user_id == bob["id"]))
        people.disable_code(bob["id"], bob_code.id)
        db.session.commit()
        with db.engine.connect() as connection:
            expected = {code: links.read(connection, code) for code in ("", alice["code"])}
            expected[bob["code"]] = links.read(connection, bob["code"])

    read = {code: _journal(app).reads.link(code) for code in expected}

    assert read == expected
    assert read[alice["code"]][1].landing_url == "https://shop.example/?from=us"
    assert read[bob["code"]][1].code_active is False and read[""] is None


def test_clicks_of_a_code_deleted_before_the_move_are_dropped_and_the_rest_stored(
    app, make_participant
):
    alice = make_participant()
    bob = make_participant("Bob Baker")
    app.test_client().get(f"/r/{alice['code']}")
    app.test_client().get(f"/r/{bob['code']}")
    with app.app_context():
        db.session.execute(delete(ReferralCode).where(ReferralCode.user_id == alice["id"]))
        db.session.commit()

    _move(app)

    [stored] = _clicks(app)
    with app.app_context():
        assert db.session.get(ReferralCode, stored.code_id).user_id == bob["id"]


@pytest.mark.own_app  # its journal is left out of order
def test_a_journal_that_cannot_be_written_sends_clicks_straight_to_the_database(
    app, make_participant, tmp_path, caplog
):
    alice = make_participant()
    blocked = tmp_path / "journal"
    blocked.write_text("a file where the journal's folder should be")
    _journal(app).journal.directory = blocked

    answer = app.test_client().get(f"/r/{alice['code']}")

    assert answer.status_code == 302
    assert len(_clicks(app)) == 1  # stored at once, without a move
    assert "writing clicks to the database" in caplog.text


@pytest.mark.server
@pytest.mark.slow
def test_every_acknowledged_click_is_stored_once_through_killed_workers(sqlite_url):
    """A real gunicorn on SQLite under load, a worker killed with SIGKILL now and then: every
    click that got its 302 is in the database within seconds while the server runs (the
    living workers claim a killed one's journal), once; a stopped server leaves no journal."""
    rng = random.Random()
    with other_app(sqlite_url) as app, app.app_context():
        start_afresh(app)
        people_ = [factories.participant(f"Clicker{n} Person") for n in range(LOAD_THREADS)]
    codes = [person["code"] for person in people_]
    folder = Path(sqlite_url.removeprefix("sqlite:///") + "-clicks")
    kills = 0
    serving = running_server(sqlite_url, CLICK_JOURNAL="true")
    with serving as base_url, other_app(sqlite_url) as app:
        port = int(base_url.rsplit(":", 1)[1])
        with Load(base_url, codes) as load:
            for _ in range(WORKER_KILLS):
                time.sleep(rng.uniform(0.5, 1.5))
                workers = gunicorn_workers(port)
                if workers:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    kills += 1
            time.sleep(rng.uniform(0.2, 0.8))
        acknowledged = list(load.acknowledged)
        stopped_at = time.monotonic()
        while True:
            stored = stored_marks(app)
            if all(mark in stored for mark in acknowledged):
                break
            missing = [mark for mark in acknowledged if mark not in stored]
            assert time.monotonic() - stopped_at < STORED_WITHIN_SECONDS, (
                f"{len(missing)} acknowledged clicks missing, e.g. {missing[:5]}"
            )
            time.sleep(0.2)
    with other_app(sqlite_url) as app:
        stored = stored_marks(app)
        with app.app_context():
            total = db.session.scalar(select(func.count(Click.id)))

    assert kills == WORKER_KILLS
    assert len(acknowledged) > 100, "too little load to prove anything"
    assert {mark: count for mark, count in stored.items() if count > 1} == {}
    assert all(mark in stored for mark in acknowledged)
    assert list(folder.glob("*.journal")) == []  # the workers moved theirs as they left
    assert total == sum(stored.values())
