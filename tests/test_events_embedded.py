"""Events acknowledged at once in the embedded default (no broker; docs/guarantees.md #53):
the 202 goes out without waiting for the event's processing, and the process's event runner,
a thread of its own woken by the commit, processes it right after."""

import time

import pytest

from core import background
from tests.events_api import SECRET, purchase
from tests.helpers import a_request_in_flight
from tests.test_events_async import ASYNC, rewards_per_order, send, signed_get

PATIENCE_SECONDS = 10


@pytest.fixture
def config_overrides():
    # The embedded default: eager jobs and the outbox's own thread, no broker.
    return {"EVENTS_WEBHOOK_SECRET": SECRET, "OUTBOX_DELIVERY": "thread"}


def _outcome_when_processed(client, location: str) -> dict:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        status = signed_get(client, location).get_json()
        if status["status"] == "processed" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_the_202_leaves_at_once_and_the_event_runner_processes_the_event(
    app, client, make_participant, monkeypatch
):
    rita = make_participant("Rita Referrer")
    runner = app.extensions["event_runner"]
    woken = []
    monkeypatch.setattr(runner, "wake", lambda: woken.append(1))  # held back for a moment

    answer = send(client, purchase("newbie@example.com", ref_code=rita["code"]), ASYNC)

    assert answer.status_code == 202
    assert woken == [1]  # after its commit, the request woke the runner, and did no more
    assert signed_get(client, answer.headers["Location"]).get_json()["status"] == "queued"
    monkeypatch.undo()
    runner.wake()
    status = _outcome_when_processed(client, answer.headers["Location"])
    assert status["status"] == "processed"
    assert status["outcome"] == {"outcome": "accepted", "reason": None}
    assert rewards_per_order(app) == {"order-1": 2}


def test_the_runner_gives_way_to_requests_and_goes_on_once_none_is_in_flight(
    app, client, make_participant, monkeypatch
):
    monkeypatch.setattr(background, "GIVE_WAY_SECONDS", 30)  # no event taken regardless
    rita = make_participant("Rita Referrer")
    with a_request_in_flight(app):
        answer = send(client, purchase("newbie@example.com", ref_code=rita["code"]), ASYNC)
        assert answer.status_code == 202
        time.sleep(0.5)  # the runner was woken by the commit, and waits
        assert signed_get(client, answer.headers["Location"]).get_json()["status"] == "queued"
    status = _outcome_when_processed(client, answer.headers["Location"])
    assert status["outcome"] == {"outcome": "accepted", "reason": None}


def test_a_runner_that_never_finds_a_quiet_moment_still_takes_an_event_at_a_time(
    app, client, make_participant, monkeypatch
):
    monkeypatch.setattr(background, "GIVE_WAY_SECONDS", 0.2)
    rita = make_participant("Rita Referrer")
    with a_request_in_flight(app):
        answers = [
            send(
                client,
                purchase(f"buyer{n}@example.com", f"order-{n}", ref_code=rita["code"]),
                ASYNC,
            )
            for n in range(3)
        ]
        outcomes = [_outcome_when_processed(client, a.headers["Location"]) for a in answers]
        assert [o["status"] for o in outcomes] == ["processed"] * 3  # all while still busy
    assert rewards_per_order(app) == {f"order-{n}": 2 for n in range(3)}
