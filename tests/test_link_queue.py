"""GET /r/<code> with Redis (docs/guarantees.md #48): the click is acknowledged once it is in
the Redis stream, the worker's mover stores each queued click exactly once (a mover that died
after its commit leaves nothing twice), and a change elsewhere holds from the next click."""

import secrets
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select

from admin.people import services as people
from extensions import db
from models import Click, Program, ReferralCode, utcnow
from referral import clicks, links
from tests import databases
from tests.apps import other_app
from tests.helpers import statements_during
from tests.server import free_port

NAMESPACE = f"inviteloop-link-test-{secrets.token_hex(4)}"
WITH_REDIS = {
    "REDIS_URL": databases.REDIS_URL,
    "CELERY_DEFAULT_QUEUE": NAMESPACE,  # the stream's and the generation's key prefix
    "CELERY_ALWAYS_EAGER": True,
}


@pytest.fixture
def config_overrides():
    return WITH_REDIS


@pytest.fixture(autouse=True)
def empty_queue(app):
    with databases.redis_keys_forgotten(f"{NAMESPACE}:*"):  # the stream, generation, links
        yield


def _stored(app) -> list[Click]:
    with app.app_context():
        return list(db.session.scalars(select(Click).order_by(Click.id)))


def _queue(app) -> clicks.ClickQueue:
    return app.extensions["click_queue"]


def _move(app, claim_seconds: float = 30) -> int:
    with app.app_context():
        return clicks.move_queued(_queue(app), claim_seconds)


def test_a_click_is_acknowledged_from_redis_and_moved_to_the_database_once(app, make_participant):
    alice = make_participant()
    visitor = app.test_client()
    assert visitor.get(f"/r/{alice['code']}?utm_source=mail").status_code == 302

    answers = []
    sent = statements_during(app, lambda: answers.append(visitor.get(f"/r/{alice['code']}")))

    assert answers[0].status_code == 302 and "il_ref=" in answers[0].headers["Set-Cookie"]
    assert sent == []  # acknowledged from Redis alone
    assert _stored(app) == [] and _queue(app).waiting() == 2

    assert _move(app) == 2
    stored = _stored(app)
    assert [click.utm_source for click in stored] == ["mail", None]
    assert len({click.queue_id for click in stored}) == 2
    assert _queue(app).waiting() == 0
    assert _move(app) == 0 and len(_stored(app)) == 2


def test_a_batch_whose_mover_died_after_committing_is_stored_once(app, make_participant):
    alice = make_participant()
    visitor = app.test_client()
    for number in range(3):
        visitor.get(f"/r/{alice['code']}?utm_content=visit-{number}")
    queue = _queue(app)
    with app.app_context():
        # A mover reads all three, commits two of them and dies before acknowledging.
        queue.ensure_group()
        read = queue.read_new("mover-that-died", 10)
        clicks._insert_batch([clicks._columns_of(fields) for _id, fields in read[:2]])
    assert len(_stored(app)) == 2

    assert _move(app, claim_seconds=0) == 3  # claims the dead one's entries, all three

    contents = sorted(click.utm_content for click in _stored(app))
    assert contents == ["visit-0", "visit-1", "visit-2"]
    assert queue.waiting() == 0
    assert queue.client.xpending(queue.stream, clicks.MOVER_GROUP)["pending"] == 0
    movers = queue.client.xinfo_consumers(queue.stream, clicks.MOVER_GROUP)
    assert "mover-that-died" in {mover["name"] for mover in movers}  # idle for under an hour


def test_a_code_disabled_elsewhere_is_refused_at_the_next_click(
    app, database_url, make_participant
):
    alice = make_participant()
    visitor = app.test_client()
    visitor.get(f"/r/{alice['code']}")  # cached here, under Redis's generation

    with other_app(database_url, **WITH_REDIS) as staff_app, staff_app.app_context():
        code_id = db.session.scalar(select(ReferralCode.id))
        people.disable_code(alice["id"], code_id)
        db.session.commit()

    assert visitor.get(f"/r/{alice['code']}").headers["Location"].endswith("/")
    assert _queue(app).waiting() == 1


def test_a_generation_bump_redis_missed_is_made_by_the_mover(
    app, database_url, make_participant, monkeypatch
):
    """Redis unreachable for the staff's bump alone: the stale entry serves until the mover's
    next run, which moves Redis's generation on; then the disabled code is refused."""
    alice = make_participant()
    visitor = app.test_client()
    visitor.get(f"/r/{alice['code']}")  # kept in Redis, under its generation

    with other_app(database_url, **WITH_REDIS) as staff_app, staff_app.app_context():
        staff_queue = staff_app.extensions["click_queue"]
        monkeypatch.setattr(staff_queue.client, "incr", _unreachable)
        code_id = db.session.scalar(select(ReferralCode.id))
        people.disable_code(alice["id"], code_id)
        db.session.commit()  # the bump after it fails: logged, not raised

    assert visitor.get(f"/r/{alice['code']}").headers["Location"].startswith("/auth/signup")
    with app.app_context():
        clicks.move_clicks.run()
    assert visitor.get(f"/r/{alice['code']}").headers["Location"].endswith("/")
    assert len(_stored(app)) == 2  # the two before the mover caught up, not the third


def test_the_mover_leaves_the_generation_alone_while_nothing_changed(app, make_participant):
    alice = make_participant()
    visitor = app.test_client()
    with app.app_context():
        clicks.move_clicks.run()  # the first look: what the database holds is new to Redis
    visitor.get(f"/r/{alice['code']}")
    with app.app_context():
        clicks.move_clicks.run()
        clicks.move_clicks.run()

    answers = []
    sent = statements_during(app, lambda: answers.append(visitor.get(f"/r/{alice['code']}")))

    assert answers[0].headers["Location"].startswith("/auth/signup")
    assert sent == []  # its entry is still current: no read


def _unreachable(*args, **kwargs):
    raise redis.ConnectionError("Redis unreachable (in the test)")


def test_with_redis_unreachable_the_click_is_written_to_the_database(
    app, database_url, make_participant
):
    alice = make_participant()
    with other_app(
        database_url, **{**WITH_REDIS, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    ) as down:
        answer = down.test_client().get(f"/r/{alice['code']}")
        assert answer.status_code == 302
        with down.app_context():
            stored = db.session.scalar(
                select(func.count(Click.id)).where(Click.queue_id.is_not(None))
            )
    # Written with the id it would have carried, so one that reached Redis is not doubled.
    assert stored == 1


def test_a_connection_redis_dropped_is_opened_again_and_the_click_still_queued(
    app, make_participant
):
    """Redis closes the click's idle connection (a restart, a client timeout): the next click
    opens a new one and is queued in Redis, not sent to the database with Redis marked down."""
    alice = make_participant()
    visitor = app.test_client()
    visitor.get(f"/r/{alice['code']}")
    queue = _queue(app)
    own_connection = queue._connection()  # this thread's: the test client runs here
    own_connection.send_command("CLIENT", "ID")
    queue.client.client_kill_filter(_id=own_connection.read_response())  # Redis drops it

    assert visitor.get(f"/r/{alice['code']}").status_code == 302

    assert queue.available()  # not marked down
    assert queue.waiting() == 2 and _stored(app) == []


def test_a_click_after_redis_forgot_its_scripts_still_goes_through_redis(app, make_participant):
    """Redis restarted or flushed its scripts: the click's script is loaded again and the
    click queued, not sent to the database with Redis marked down."""
    alice = make_participant()
    visitor = app.test_client()
    visitor.get(f"/r/{alice['code']}")
    queue = _queue(app)
    queue.client.script_flush()  # every client's scripts reload themselves the same way

    assert visitor.get(f"/r/{alice['code']}").status_code == 302

    assert queue.available()
    assert queue.waiting() == 2 and _stored(app) == []


def test_a_link_one_process_read_serves_every_other_without_a_database_read(
    app, database_url, make_participant
):
    alice = make_participant()
    first = statements_during(app, lambda: app.test_client().get(f"/r/{alice['code']}"))
    assert first  # nobody had clicked it: read from the database, kept in Redis

    with other_app(database_url, **WITH_REDIS) as another:
        answers = []
        sent = statements_during(
            another, lambda: answers.append(another.test_client().get(f"/r/{alice['code']}"))
        )
    assert sent == []
    assert answers[0].headers["Location"].endswith(f"ref={alice['code']}")
    assert _queue(app).waiting() == 2


def test_a_program_past_its_end_refuses_clicks_though_redis_keeps_its_link(app, make_participant):
    """An end date passing changes no generation: the script checks it at every click."""
    alice = make_participant()
    with app.app_context():
        program = db.session.get(Program, db.session.scalar(select(ReferralCode.program_id)))
        program.ends_at = utcnow() + timedelta(hours=1)
        links.invalidate()
        db.session.commit()
    assert app.test_client().get(f"/r/{alice['code']}").status_code == 302  # kept in Redis

    visit = clicks.Visit("v" * 32, None, None, None, {})
    with app.app_context():
        in_an_hour = utcnow() + timedelta(hours=1, seconds=1)
        assert clicks.record_click(alice["code"], lambda: visit, now=in_an_hour) is None
        assert clicks.record_click(alice["code"], lambda: visit) is not None
    assert _queue(app).waiting() == 2


def test_a_generation_moving_at_every_read_still_ends_with_the_click_stored(
    app, make_participant, monkeypatch
):
    """A change committed right after every read of the link: the click is stored after a
    bounded number of reads, for an anonymous visitor and for a signed-in one alike."""
    alice = make_participant()
    queue = _queue(app)
    reads = []
    read = links.read

    def read_then_changed(connection, code):
        reads.append(code)
        found = read(connection, code)
        queue.bump_generation()
        return found

    monkeypatch.setattr(links, "read", read_then_changed)
    visit = clicks.Visit("v" * 32, None, None, None, {})
    with app.app_context():
        assert clicks.record_click(alice["code"], lambda: visit) is not None
        assert len(reads) == clicks.ATTEMPTS
        someone_else = alice["id"] + 1
        assert clicks.record_click(alice["code"], lambda: visit, owner_excluded=someone_else)
        assert clicks.record_click(alice["code"], lambda: visit, owner_excluded=alice["id"]) is None
    assert len(reads) <= 5 * clicks.ATTEMPTS
    assert queue.waiting() == 2
