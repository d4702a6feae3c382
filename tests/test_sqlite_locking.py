"""SQLite's one write lock (docs/guarantees.md #52): a request that only reads never queues
for it, a long read holds back neither the writer nor other readers (WAL), and writers still
wait their turn on busy_timeout instead of failing with "database is locked".

In-process, one thread holding a transaction open while the test client makes requests."""

import fcntl
import os
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, update

from core.database import WriteInReadOnlyWork, reading_only
from extensions import db
from models import Click, User
from tests import factories
from tests.helpers import csrf_token, log_in

# Far below the busy timeout (15 s): an answer this quick did not wait for the lock.
QUICK_SECONDS = 3
HOLD_SECONDS = 0.5


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


@contextmanager
def transaction_held_open(app, work, *, read_only: bool):
    """Run `work` in a transaction of another thread (as another request would) and keep
    that transaction open until the block ends; yields what `work` returned."""
    started, release, result = threading.Event(), threading.Event(), {}

    def hold():
        with app.app_context():
            try:
                if read_only:
                    with reading_only():
                        result["value"] = work()
                        started.set()
                        release.wait(30)
                        result["again"] = work()
                        db.session.rollback()
                else:
                    result["value"] = work()
                    started.set()
                    release.wait(30)
                    db.session.commit()
            finally:
                started.set()
                db.session.remove()

    thread = threading.Thread(target=hold)
    thread.start()
    assert started.wait(10)
    try:
        yield result
    finally:
        release.set()
        thread.join(30)


def _count_users():
    return db.session.scalar(select(func.count()).select_from(User))


def _rename(user_id: int, name: str):
    def work():
        db.session.execute(update(User).where(User.id == user_id).values(name=name))

    return work


def _sign_up(client, email: str, **extra):
    token = csrf_token(client, "/auth/signup")
    data = {"csrf_token": token, "name": "Bob Baker", "email": email}
    data.update(password=factories.PASSWORD, **extra)
    return client.post("/auth/signup", data=data)


def _timed(action):
    started = time.monotonic()
    answer = action()
    return answer, time.monotonic() - started


def test_a_long_read_holds_back_neither_a_writer_nor_another_reader(app, make_participant):
    alice = make_participant("Alice Zimmer")
    signup_client, reader_client = app.test_client(), app.test_client()

    with transaction_held_open(app, _count_users, read_only=True) as reader:
        signed_up, signup_seconds = _timed(lambda: _sign_up(signup_client, "bob@example.com"))
        page, page_seconds = _timed(lambda: reader_client.get("/referral/leaderboard"))

    assert signed_up.status_code == 302
    assert signup_seconds < QUICK_SECONDS
    assert page.status_code == 200 and page_seconds < QUICK_SECONDS
    # The long read kept its snapshot while the signup committed beside it.
    assert reader["value"] == reader["again"] == 1
    with app.app_context():
        assert _count_users() == 2
        assert factories.user_by_email("bob@example.com").name == "Bob Baker"
    assert alice["id"]


def test_a_reader_is_not_held_back_by_a_writer_and_sees_the_last_commit(app, make_participant):
    alice = make_participant("Alice Zimmer")
    client = app.test_client()
    assert log_in(client, alice["email"]).status_code == 302

    with transaction_held_open(app, _rename(alice["id"], "Renamed Meanwhile"), read_only=False):
        page, seconds = _timed(lambda: client.get("/auth/profile"))

    assert page.status_code == 200
    assert seconds < QUICK_SECONDS
    text = page.get_data(as_text=True)
    assert "Alice Zimmer" in text and "Renamed Meanwhile" not in text


def test_two_writers_queue_for_the_lock_instead_of_failing(app, make_participant):
    alice = make_participant("Alice Zimmer")
    client = app.test_client()

    with transaction_held_open(app, _rename(alice["id"], "Alice Renamed"), read_only=False):
        answer = {}
        signup = threading.Thread(
            target=lambda: answer.update(response=_sign_up(client, "bob@example.com"))
        )
        signup.start()
        time.sleep(HOLD_SECONDS)
        assert "response" not in answer  # waiting for the lock, not refused
    signup.join(30)

    assert answer["response"].status_code == 302
    with app.app_context():
        assert db.session.get(User, alice["id"]).name == "Alice Renamed"
        assert factories.user_by_email("bob@example.com") is not None


def test_a_click_on_a_link_waits_for_the_writer_and_is_stored(app, make_participant):
    alice = make_participant("Alice Zimmer")
    visitor = app.test_client()

    with transaction_held_open(app, _rename(alice["id"], "Alice Renamed"), read_only=False):
        answer = {}
        click = threading.Thread(
            target=lambda: answer.update(response=visitor.get(f"/r/{alice['code']}"))
        )
        click.start()
        time.sleep(HOLD_SECONDS)
        assert "response" not in answer  # queued behind the writer, not refused
    click.join(30)

    assert answer["response"].status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Click)) == 1


@contextmanager
def another_process_writing(app):
    """Another process's turn to write: it holds "<database>-write.lock" for the block."""
    with app.app_context():
        lock_file = f"{os.path.abspath(db.engine.url.database)}-write.lock"
    other = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        yield
    finally:
        os.close(other)  # lets go of the lock


def _in_a_thread(work) -> tuple[threading.Thread, dict]:
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(response=work()))
    thread.start()
    return thread, answer


def test_writers_of_other_processes_take_turns_on_a_lock_file_beside_the_database(
    app, make_participant
):
    """Another gunicorn worker is writing: this request waits for its turn on the file (not
    in SQLite's busy handler, which polls in steps up to 100 ms) and is stored once the other
    one ends."""
    visitor = app.test_client()
    with another_process_writing(app):
        thread, answer = _in_a_thread(lambda: _sign_up(visitor, "bob@example.com"))
        time.sleep(HOLD_SECONDS)
        assert "response" not in answer  # its turn has not come
    started = time.monotonic()
    thread.join(QUICK_SECONDS)
    assert time.monotonic() - started < 0.5  # went on at once, not after a long sleep

    assert answer["response"].status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(User.email == "bob@example.com")) == 1


def test_a_click_takes_no_turn_its_one_statement_holds_sqlites_lock_alone(app, make_participant):
    """A click is one INSERT, its own transaction, holding SQLite's lock only while SQLite
    runs it: it does not wait for a turn another process holds while that one has not yet
    asked SQLite for the lock (it waits for SQLite's lock itself:
    test_a_click_on_a_link_waits_for_the_writer_and_is_stored)."""
    alice = make_participant("Alice Zimmer")
    visitor = app.test_client()
    with another_process_writing(app):
        thread, answer = _in_a_thread(lambda: visitor.get(f"/r/{alice['code']}"))
        thread.join(QUICK_SECONDS)
        assert answer["response"].status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Click)) == 1


def test_a_writer_waiting_past_the_busy_timeout_gets_a_503_and_nothing_is_stored(
    app, make_participant, monkeypatch
):
    alice = make_participant("Alice Zimmer")
    turns = app.extensions["sqlite_write_turns"]
    monkeypatch.setattr(turns, "timeout_seconds", HOLD_SECONDS)
    visitor = app.test_client()
    with another_process_writing(app):
        response = _sign_up(visitor, "bob@example.com")
    assert response.status_code == 503
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(User.email == "bob@example.com")) == 0
    # The turn came back: the next writer goes straight on.
    assert visitor.get(f"/r/{alice['code']}").status_code == 302


def test_read_only_work_that_writes_after_reading_is_refused_in_tests(app, make_participant):
    alice = make_participant("Alice Zimmer")
    with app.app_context(), reading_only():
        _count_users()
        with pytest.raises(WriteInReadOnlyWork):
            _rename(alice["id"], "Never Saved")()
        db.session.rollback()
    with app.app_context():
        assert db.session.get(User, alice["id"]).name == "Alice Zimmer"
