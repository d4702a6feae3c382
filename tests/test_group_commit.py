"""Clicks arriving together are written together (core/group_commit.py): each request is
answered only once the transaction carrying its write has committed, with its own outcome;
a transaction that fails fails every request of it and no other."""

import threading
import time

import pytest
from sqlalchemy import func, select

from core.group_commit import GroupCommit
from extensions import db
from models import Click

WAIT_SECONDS = 10


class SlowWriter:
    """Writes a batch by doubling each item; the first batch waits until let go."""

    def __init__(self, failing: set[int] = frozenset()):
        self.batches: list[list[int]] = []
        self.let_go = threading.Event()
        self.failing = failing

    def __call__(self, items):
        first = not self.batches
        self.batches.append(list(items))
        if first:
            assert self.let_go.wait(WAIT_SECONDS)
        if self.failing & set(items):
            raise RuntimeError(f"batch {sorted(items)} refused")
        return [item * 2 for item in items]


def _submit_in_threads(group: GroupCommit, items) -> tuple[list[threading.Thread], dict]:
    answers: dict[int, object] = {}

    def submit(item):
        try:
            answers[item] = group.submit(item)
        except RuntimeError as error:
            answers[item] = error

    threads = [threading.Thread(target=submit, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads, answers


def _until(condition) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_requests_arriving_during_a_write_share_the_next_transaction():
    writer = SlowWriter()
    group = GroupCommit(writer)
    first, answers = _submit_in_threads(group, [1])
    _until(lambda: writer.batches)  # the first request is writing its own batch
    later, later_answers = _submit_in_threads(group, [2, 3, 4, 5])
    _until(lambda: len(group._waiting) == 4)
    assert not answers and not later_answers  # nobody answered before their commit

    writer.let_go.set()
    for thread in first + later:
        thread.join(WAIT_SECONDS)

    assert writer.batches[0] == [1]
    assert sorted(writer.batches[1]) == [2, 3, 4, 5] and len(writer.batches) == 2
    assert answers == {1: 2}
    assert later_answers == {2: 4, 3: 6, 4: 8, 5: 10}  # each its own outcome


def test_a_failed_transaction_fails_each_of_its_requests_and_the_next_goes_on():
    writer = SlowWriter(failing={2})
    group = GroupCommit(writer)
    first, answers = _submit_in_threads(group, [1])
    _until(lambda: writer.batches)
    refused, refused_answers = _submit_in_threads(group, [2, 3])
    _until(lambda: len(group._waiting) == 2)
    writer.let_go.set()
    for thread in first + refused:
        thread.join(WAIT_SECONDS)

    assert answers == {1: 2}
    assert {item: str(answer) for item, answer in refused_answers.items()} == {
        2: "batch [2, 3] refused",
        3: "batch [2, 3] refused",
    }
    # Nobody is left writing: the next request writes at once.
    assert group.submit(7) == 14


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


def test_concurrent_clicks_are_each_answered_and_stored_once(app, make_participant, monkeypatch):
    monkeypatch.setitem(app.config, "REFERRAL_LINK_LIMITS", "100000/minute")  # one address
    codes = [make_participant(f"Person {n}")["code"] for n in range(4)]
    for code in codes:  # each code's link read once: the clicks below only write
        assert app.test_client().get(f"/r/{code}").status_code == 302
    answers = []

    def click(code):
        client = app.test_client()
        for _ in range(25):
            answers.append(client.get(f"/r/{code}").status_code)

    threads = [threading.Thread(target=click, args=(code,)) for code in codes * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert answers == [302] * 200
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Click)) == 4 + 200
        per_code = db.session.execute(
            select(Click.code_id, func.count()).group_by(Click.code_id)
        ).all()
    assert sorted(count for _code, count in per_code) == [51] * 4
