"""Events acknowledged at once (docs/guarantees.md #53): `POST /api/v1/events` with
`Prefer: respond-async` stores the event in one statement and answers 202 with where its
outcome will be; the worker's job runs it through the same intake in batches, exactly once;
`GET /api/v1/events/<id>` shows it queued, then processed with the synchronous answer. Without
the header nothing changes (tests/test_events.py)."""

import json
import time

import pytest
from sqlalchemy import func, select

from core import api_keys
from core.database import reading_only
from extensions import db
from models import Conversion, EventInbox, Reward
from rewards import conversions, tasks
from tests.events_api import SECRET, purchase, sign, signed_delivery

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def config_overrides():
    return {"EVENTS_WEBHOOK_SECRET": SECRET}


@pytest.fixture
def held_for_the_worker(app, monkeypatch):
    """Jobs go to the (unread) broker instead of running at once, as with a real worker: the
    tests run the worker's job themselves."""
    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", False)


def send(client, event: dict, headers: dict | None = None):
    """A signed delivery; sent again, the same message."""
    body, signed = signed_delivery(event)
    return client.post("/api/v1/events", data=body, headers={**signed, **(headers or {})})


def signed_get(client, path: str, secret: str = SECRET):
    """A GET signed like a webhook over an empty body."""
    message_id, timestamp = f"msg_get_{time.monotonic_ns()}", int(time.time())
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(b"", message_id, timestamp, secret),
    }
    return client.get(path, headers=headers)


def run_worker(app) -> int:
    with app.app_context():
        return tasks.process_events.run()


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def rewards_per_order(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(Conversion.order_id, func.count(Reward.id))
            .join(Reward, Reward.conversion_id == Conversion.id)
            .group_by(Conversion.order_id)
        ).all()
    return dict(rows)


def api_key(app, scopes=("events:write",)) -> str:
    with app.app_context():
        _row, key = api_keys.create_api_key("shop", list(scopes))
        db.session.commit()
    return key


def test_a_preferred_async_event_is_acknowledged_with_202_then_processed_by_the_worker(
    app, client, make_participant, held_for_the_worker
):
    rita = make_participant("Rita Referrer")
    answer = send(client, purchase("newbie@example.com", ref_code=rita["code"]), ASYNC)
    assert answer.status_code == 202
    inbox_id = answer.get_json()["id"]
    assert answer.get_json() == {"id": inbox_id, "status": "queued"}
    assert answer.headers["Location"] == f"/api/v1/events/{inbox_id}"
    assert answer.headers["Preference-Applied"] == "respond-async"
    # Stored, not yet worked on: no conversion, no reward.
    assert count(app, Conversion) == count(app, Reward) == 0
    queued = signed_get(client, answer.headers["Location"])
    assert queued.status_code == 200
    assert queued.get_json()["status"] == "queued"
    assert queued.get_json()["outcome"] is None and queued.get_json()["processed_at"] is None

    assert run_worker(app) == 1
    processed = signed_get(client, answer.headers["Location"]).get_json()
    assert processed["status"] == "processed" and processed["processed_at"]
    # The very body the synchronous request answers.
    assert processed["outcome"] == {"outcome": "accepted", "reason": None}
    assert processed["outcome_status"] == 200
    assert rewards_per_order(app) == {"order-1": 2}
    assert run_worker(app) == 0  # nothing is processed twice


def test_without_the_preference_the_answer_is_the_synchronous_one(app, client):
    answer = send(client, purchase("walkin@example.com"))
    assert answer.status_code == 200
    assert answer.get_json() == {"outcome": "unattributed", "reason": "unknown_customer"}
    assert "Preference-Applied" not in answer.headers
    assert count(app, EventInbox) == 0


def test_the_embedded_default_processes_the_event_before_the_202_leaves(
    app, client, make_participant
):
    """No broker (jobs run eagerly): the run asked for after the commit happens at once."""
    rita = make_participant("Rita Referrer")
    answer = send(client, purchase("newbie@example.com", ref_code=rita["code"]), ASYNC)
    assert answer.status_code == 202
    status = signed_get(client, answer.headers["Location"]).get_json()
    assert status["status"] == "processed"
    assert status["outcome"] == {"outcome": "accepted", "reason": None}
    assert rewards_per_order(app) == {"order-1": 2}


def test_a_redelivery_gets_the_same_id_and_the_purchase_is_paid_once(
    app, client, make_participant, held_for_the_worker
):
    rita = make_participant("Rita Referrer")
    event = purchase("newbie@example.com", ref_code=rita["code"])
    first = send(client, event, ASYNC)
    again = send(client, event, ASYNC)
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert count(app, EventInbox) == 1
    run_worker(app)
    # Delivered once more, now processed: the same id, its outcome the first one's.
    third = send(client, event, ASYNC)
    assert third.get_json()["id"] == first.get_json()["id"]
    status = signed_get(client, first.headers["Location"]).get_json()
    assert status["outcome"] == {"outcome": "accepted", "reason": None}
    assert rewards_per_order(app) == {"order-1": 2}


def test_an_event_also_sent_synchronously_is_recorded_once(
    app, client, make_participant, held_for_the_worker
):
    """The worker relies on record_event's own exactly-once: the same event sent without the
    header first is answered `duplicate` when the worker reaches it, and pays nothing more."""
    rita = make_participant("Rita Referrer")
    event = purchase("newbie@example.com", ref_code=rita["code"])
    queued = send(client, event, ASYNC)
    assert send(client, event).get_json() == {"outcome": "accepted", "reason": None}
    run_worker(app)
    status = signed_get(client, queued.headers["Location"]).get_json()
    assert status["outcome"] == {"outcome": "duplicate", "reason": "already_received"}
    assert rewards_per_order(app) == {"order-1": 2}
    assert count(app, Conversion) == 1


@pytest.mark.parametrize(
    "event",
    [
        {"type": "purchase", "customer": {"email": "a@example.com"}, "amount": 1},  # no id
        purchase("a@example.com", amount=None),  # a purchase needs an amount
        purchase("a@example.com", currency="DOLLARS"),
        {"type": "refund", "id": "evt-r"},  # a refund needs its order_id
    ],
)
def test_a_malformed_event_is_refused_at_once_and_nothing_is_stored(
    app, client, event, held_for_the_worker
):
    answer = send(client, event, ASYNC)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == "invalid_event"
    assert "Preference-Applied" not in answer.headers
    assert count(app, EventInbox) == count(app, Conversion) == 0


def test_a_bad_signature_is_refused_and_nothing_is_stored(app, client, held_for_the_worker):
    body = json.dumps(purchase("a@example.com")).encode()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + "A" * 44,
        **ASYNC,
    }
    assert client.post("/api/v1/events", data=body, headers=headers).status_code == 401
    assert count(app, EventInbox) == 0


def test_a_type_not_acted_on_is_answered_at_once_as_without_the_preference(app, client):
    answer = send(client, {"type": "customer.updated", "id": "evt-x"}, ASYNC)
    assert answer.status_code == 200
    assert answer.get_json() == {"outcome": "ignored", "reason": "unhandled_event_type"}
    assert "Preference-Applied" not in answer.headers
    assert count(app, EventInbox) == 0


def test_only_its_sender_reads_an_event_and_an_unknown_one_is_404(app, client, held_for_the_worker):
    shop, other_shop = api_key(app), api_key(app)
    body = json.dumps(purchase("a@example.com")).encode()
    headers = {"Authorization": f"Bearer {shop}", "Content-Type": "application/json", **ASYNC}
    answer = client.post("/api/v1/events", data=body, headers=headers)
    assert answer.status_code == 202
    location = answer.headers["Location"]
    own = client.get(location, headers={"Authorization": f"Bearer {shop}"})
    assert own.status_code == 200 and own.get_json()["status"] == "queued"
    # The same event id from another sender is another inbox row.
    for foreign in (
        client.get(location, headers={"Authorization": f"Bearer {other_shop}"}),
        signed_get(client, location),  # the signed sender is another sender too
    ):
        assert foreign.status_code == 404
        assert foreign.get_json()["error"]["code"] == "unknown_event"
    unknown = client.get("/api/v1/events/999999", headers={"Authorization": f"Bearer {shop}"})
    assert unknown.status_code == 404
    assert client.get(location).status_code == 400  # neither key nor signature
    no_scope = api_key(app, scopes=("codes:issue",))
    assert client.get(location, headers={"X-Api-Key": no_scope}).status_code == 403


def test_a_failing_event_stops_the_run_and_a_rerun_pays_each_purchase_once(
    app, client, make_participant, monkeypatch, held_for_the_worker
):
    """A run that fails on its third event (here: the intake raising on one order, as a bug
    would) keeps the two before it, leaves the failing one and those after it queued; the
    next run finishes the rest without paying anything twice, and the failing event, still
    failing, is answered as the server error it is after EVENT_MAX_ATTEMPTS runs."""
    rita = make_participant("Rita Referrer")
    orders = [f"order-{number}" for number in range(1, 6)]
    locations = {}
    for order in orders:
        event = purchase(f"{order}@example.com", order=order, ref_code=rita["code"])
        locations[order] = send(client, event, ASYNC).headers["Location"]
    record_event = conversions.record_event

    def failing_on_order_3(event, now=None):
        outcome = record_event(event, now)  # its statements ran: the savepoint must undo them
        if event.order_id == "order-3":
            raise RuntimeError("the intake failed on order-3")
        return outcome

    monkeypatch.setattr(conversions, "record_event", failing_on_order_3)
    with pytest.raises(RuntimeError, match="order-3"):
        run_worker(app)
    assert rewards_per_order(app) == {"order-1": 2, "order-2": 2}
    states = {order: signed_get(client, locations[order]).get_json() for order in orders}
    assert [states[order]["status"] for order in orders] == [
        "processed",
        "processed",
        "queued",
        "queued",
        "queued",
    ]

    # The next run takes the others first, then fails on order-3 again.
    with pytest.raises(RuntimeError, match="order-3"):
        run_worker(app)
    assert rewards_per_order(app) == {order: 2 for order in orders if order != "order-3"}
    for _attempt in range(tasks.EVENT_MAX_ATTEMPTS - 2):
        with pytest.raises(RuntimeError):
            run_worker(app)
    failed = signed_get(client, locations["order-3"]).get_json()
    assert failed["status"] == "processed" and failed["outcome_status"] == 500
    assert failed["outcome"]["error"]["code"] == "internal_error"
    assert run_worker(app) == 0

    # Fixed, the order is paid once when sent again (a 500 tells the sender to retry).
    monkeypatch.setattr(conversions, "record_event", record_event)
    retried = purchase("order-3@example.com", order="order-3", ref_code=rita["code"])
    assert send(client, retried).get_json() == {"outcome": "accepted", "reason": None}
    assert rewards_per_order(app) == {order: 2 for order in orders}
    assert count(app, Conversion) == len(orders)


def test_more_than_a_batch_is_processed_in_one_run_and_beat_runs_it(
    app, client, held_for_the_worker
):
    for number in range(tasks.EVENT_BATCH + 3):
        send(client, purchase(f"buyer{number}@example.com", order=f"order-{number}"), ASYNC)
    assert run_worker(app) == tasks.EVENT_BATCH + 3
    with app.app_context():
        statuses = db.session.scalars(select(EventInbox.outcome_status)).all()
    assert statuses == [200] * (tasks.EVENT_BATCH + 3)
    schedule = app.extensions["celery"].conf.beat_schedule["process-events"]
    assert schedule["task"] == tasks.process_events.name
    assert schedule["task"] in app.extensions["celery"].tasks


def test_on_sqlite_each_event_commits_before_the_next_is_taken(
    app, client, held_for_the_worker, monkeypatch
):
    """On SQLite a transaction holds the one write lock every 202 needs, so the runner
    commits each event before it takes the next: a 202 waits behind one event at most, and
    each outcome is readable as soon as it is reached. On PostgreSQL a batch commits
    together (its rows alone are locked)."""
    for number in range(3):
        send(client, purchase(f"buyer{number}@example.com", order=f"order-{number}"), ASYNC)
    record_event = conversions.record_event
    processed_seen_by_others = []

    def record_watched(event):
        with reading_only(), db.engine.connect() as other:
            processed_seen_by_others.append(
                other.scalar(
                    select(func.count())
                    .select_from(EventInbox)
                    .where(EventInbox.processed_at.is_not(None))
                )
            )
        return record_event(event)

    monkeypatch.setattr(conversions, "record_event", record_watched)
    assert run_worker(app) == 3
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
    assert processed_seen_by_others == ([0, 1, 2] if sqlite else [0, 0, 0])


# SKIP LOCKED is PostgreSQL's; on SQLite one writer at a time means runs take turns.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_workers_never_take_the_same_events(app, client, held_for_the_worker):
    """A batch another worker holds is skipped, neither waited for nor run twice."""
    for number in range(3):
        send(client, purchase(f"buyer{number}@example.com", order=f"order-{number}"), ASYNC)
    with app.app_context():
        other_worker = db.engine.connect()
        try:
            held = other_worker.execute(
                select(EventInbox.id).order_by(EventInbox.id).limit(2).with_for_update()
            ).all()
            assert len(held) == 2
            assert tasks.process_events.run() == 1  # only the one nobody holds
        finally:
            other_worker.rollback()
            other_worker.close()
    assert run_worker(app) == 2
    assert rewards_per_order(app) == {}  # nobody was referred: unattributed, no rewards
    assert count(app, Conversion) == 3


def test_without_a_broker_each_202_runs_one_batch_oldest_first(app, client, monkeypatch):
    """A request never works off a whole backlog: one batch, then its answer."""
    celery_conf = app.extensions["celery"].conf
    monkeypatch.setitem(celery_conf, "task_always_eager", False)
    with app.app_context():
        batch = tasks.event_batch()
    for number in range(batch + 5):
        send(client, purchase(f"buyer{number}@example.com", order=f"order-{number}"), ASYNC)
    monkeypatch.setitem(celery_conf, "task_always_eager", True)
    latest = send(client, purchase("late@example.com", order="order-late"), ASYNC)
    assert latest.status_code == 202
    with app.app_context():
        queued = db.session.scalars(
            select(EventInbox.external_id).where(EventInbox.processed_at.is_(None))
        ).all()
    assert sorted(queued) == sorted(
        [f"evt-order-{n}" for n in range(batch, batch + 5)] + ["evt-order-late"]
    )
