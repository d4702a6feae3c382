"""The production worker (core/gunicorn_worker.py) leaves a new connection to a worker with a
free thread: a real gunicorn from gunicorn.conf.py, one of whose two workers is kept busy."""

import http.client
import os
import threading
import time
from urllib.parse import parse_qs, urlparse

from tests.server import running_server

BUSY_SECONDS = 4.0


def probe_app(environ, start_response):
    """Answers with the worker's pid; `/busy?seconds=s` first holds its thread that long."""
    if environ["PATH_INFO"] == "/busy":
        time.sleep(float(parse_qs(environ["QUERY_STRING"])["seconds"][0]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


def _get(base_url: str, path: str, timeout: float) -> tuple[int, float]:
    """(the answering worker's pid, seconds taken), on a connection of its own."""
    address = urlparse(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        answer = connection.getresponse()
        assert answer.status == 200
        return int(answer.read()), time.monotonic() - started
    finally:
        connection.close()


def test_a_new_connection_is_served_at_once_while_another_worker_is_busy(tmp_path):
    database_url = f"sqlite:///{tmp_path}/unused.db"  # the probe reads none
    with running_server(
        database_url, workers=2, threads=1, wsgi_app="tests.test_gunicorn_worker:probe_app"
    ) as base_url:
        busy = {}
        holder = threading.Thread(
            target=lambda: busy.update(
                answer=_get(base_url, f"/busy?seconds={BUSY_SECONDS}", BUSY_SECONDS + 10)
            )
        )
        holder.start()
        time.sleep(0.5)  # the busy request has its worker's only thread by now

        # gunicorn's own threaded worker takes about half of these while its thread is busy,
        # and they wait for it: 12 land on the free worker only once in 4,096 runs.
        visits = [_get(base_url, "/pid", BUSY_SECONDS + 10) for _ in range(12)]
        holder.join()

    busy_worker, _ = busy["answer"]
    assert max(seconds for _, seconds in visits) < 1.0, visits
    assert busy_worker not in {pid for pid, _ in visits}
