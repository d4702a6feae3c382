"""Following referral links under load, each request marked, and the gunicorn worker
processes to kill under it: what the crash tests of the clicks' queues share
(tests/test_link_crash.py for Redis, tests/test_click_journal.py for the journal)."""

import os
import threading
from pathlib import Path

import requests
from sqlalchemy import func, select

from extensions import db
from models import Click

LOAD_THREADS = 4


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
                code = self.codes[sent % len(self.codes)]  # see code_index
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


def gunicorn_workers(port: int) -> list[int]:
    """The worker processes of the gunicorn serving `port`: those holding its listening socket
    whose parent (the master) holds it too."""
    listening = listening_socket_inode(port)
    holders = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            held = any(
                os.readlink(fd) == f"socket:[{listening}]" for fd in (entry / "fd").iterdir()
            )
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if held:
            holders[int(entry.name)] = parent
    return [pid for pid, parent in holders.items() if parent in holders]


def listening_socket_inode(port: int) -> str:
    listen_state = "0A"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == listen_state:
            return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def stored_marks(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(Click.utm_content, func.count()).group_by(Click.utm_content)
        ).all()
        db.session.rollback()
    return dict(rows)


def code_index(mark: str) -> int:
    """Which of the codes the request marked `mark` followed (Load._run's rotation)."""
    return (int(mark.rsplit("-", 1)[1]) + 1) % LOAD_THREADS
