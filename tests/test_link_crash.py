"""Clicks through Redis survive crashes (docs/guarantees.md #48): a real gunicorn and a real
Celery worker (with beat, moving clicks every second) on PostgreSQL and Redis, under load,
killed with SIGKILL at random moments: a gunicorn worker process mid-request, the whole Celery
worker mid-batch. Afterwards every click that got its 302 is in the database exactly once,
within seconds of the last one."""

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from extensions import db
from models import Click, User
from referral import services
from tests import factories
from tests.apps import other_app, start_afresh
from tests.server import running_server
from tests.workers import running_celery

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.postgres_only]

LOAD_THREADS = 4
CHAOS_SECONDS = 6.0
# Every acknowledged click must be in the database this soon after the load stops (the mover
# runs every second; entries of a killed mover are claimed after 2 s idle).
STORED_WITHIN_SECONDS = 15.0


class Load:
    """Threads following referral links, each request marked with its own utm_content; the
    marks of the requests answered 302 are the acknowledged clicks."""

    def __init__(self, base_url: str, codes: list[str]) -> None:
        self.base_url = base_url
        self.codes = codes
        self.acknowledged: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(number,)) for number in range(LOAD_THREADS)
        ]

    def _run(self, number: int) -> None:
        sent = 0
        with requests.Session() as browser:
            while not self._stop.is_set():
                mark = f"t{number}-{sent}"
                sent += 1
                code = self.codes[sent % len(self.codes)]  # see _code_index
                try:
                    answer = browser.get(
                        f"{self.base_url}/r/{code}?utm_content={mark}",
                        allow_redirects=False,
                        timeout=5,
                    )
                except requests.RequestException:
                    self.failed += 1  # the worker was killed under it: never acknowledged
                    continue
                if answer.status_code == 302:
                    self.acknowledged.append(mark)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _gunicorn_workers(port: int) -> list[int]:
    """The worker processes of the gunicorn we started on `port` (its master's children)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"gunicorn" in command and f"127.0.0.1:{port}".encode() in command:
            found[int(entry.name)] = parent
    return [pid for pid, parent in found.items() if parent in found]


def _mover(database_url: str, broker, schedule: Path, settings: dict):
    """A Celery worker with beat inside (`--beat`), so it moves clicks every second."""
    arguments = ["worker", "--beat", "--schedule", str(schedule), "--pool", "solo"]
    arguments += ["--queues", broker.queue, "--hostname", f"{broker.queue}@%h"]
    arguments += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return running_celery(arguments, database_url, **settings)


def _stored_marks(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(Click.utm_content, func.count()).group_by(Click.utm_content)
        ).all()
        db.session.rollback()
    return dict(rows)


def test_every_acknowledged_click_is_stored_once_through_random_kills(
    postgresql_url, broker, tmp_path
):
    rng = random.Random()
    with other_app(postgresql_url) as app, app.app_context():
        start_afresh(app)
        people = [factories.participant(f"Clicker{n} Person") for n in range(LOAD_THREADS)]
    codes = [person["code"] for person in people]
    settings = {
        "REDIS_URL": broker.url,
        "CELERY_DEFAULT_QUEUE": broker.queue,
        "CLICK_MOVE_SECONDS": "1",
        "CLICK_CLAIM_SECONDS": "2",
    }
    kills = {"web": 0, "mover": 0}
    with running_server(postgresql_url, workers=2, threads=4, **settings) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with Load(base_url, codes) as load:
            deadline = time.monotonic() + CHAOS_SECONDS
            while time.monotonic() < deadline:
                with _mover(postgresql_url, broker, tmp_path / "beat", settings) as mover:
                    time.sleep(rng.uniform(1.5, 3.0))  # started, moving some batches
                    workers = _gunicorn_workers(port)
                    if workers:
                        os.kill(rng.choice(workers), signal.SIGKILL)
                        kills["web"] += 1
                    time.sleep(rng.uniform(0.2, 1.0))
                    os.killpg(mover.process.pid, signal.SIGKILL)  # mid-batch, likely
                    mover.process.wait()
                    kills["mover"] += 1
        stopped_at = time.monotonic()
        acknowledged = list(load.acknowledged)

        # A fresh mover claims what the killed ones left and moves the rest.
        with other_app(postgresql_url) as app:
            with _mover(postgresql_url, broker, tmp_path / "beat", settings) as mover:
                while True:
                    stored = _stored_marks(app)
                    if all(mark in stored for mark in acknowledged):
                        break
                    if time.monotonic() - stopped_at > STORED_WITHIN_SECONDS:
                        missing = [mark for mark in acknowledged if mark not in stored]
                        pytest.fail(f"{len(missing)} acknowledged clicks missing:\n{mover.log()}")
                    time.sleep(0.2)
                within = time.monotonic() - stopped_at
            with app.app_context():
                # The participant's dashboard counts them: what the clicks table holds.
                first = db.session.get(User, people[0]["id"])
                dashboard_clicks = services.participant_stats(first).clicks

    assert kills["web"] >= 1 and kills["mover"] >= 2
    assert len(acknowledged) > 100, "too little load to prove anything"
    assert len(set(acknowledged)) == len(acknowledged)
    doubled = {mark: count for mark, count in stored.items() if count > 1}
    assert doubled == {}
    assert within < STORED_WITHIN_SECONDS
    # Requests cut off after Redis had their click are stored too, without a 302.
    assert dashboard_clicks >= sum(1 for mark in acknowledged if _code_index(mark) == 0)


def _code_index(mark: str) -> int:
    """Which of the codes the request marked `mark` followed (Load._run's rotation)."""
    return (int(mark.rsplit("-", 1)[1]) + 1) % LOAD_THREADS
