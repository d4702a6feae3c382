"""Work a process does on a thread of its own in embedded mode (no broker): the outbox's
sender and the runner of events acknowledged with 202. Each is woken right after a commit
that gave it work, and looks by itself every few seconds for work left behind (a retry that
came due, or a previous process that stopped before doing it). No request waits on it."""

import logging
import os
import threading
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)


class BackgroundLoop:
    """One daemon thread per process and app that calls `run` in an app context when woken,
    and at least every `poll_seconds`. Started on first use in each process (a forked
    gunicorn worker starts its own)."""

    def __init__(self, app: Flask, name: str, run: Callable[[], object], poll_seconds: float):
        self.app = app
        self.name = name
        self._run = run
        self._poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def ensure_started(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self.ensure_started()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """End this process's thread (an app being closed, as in tests); the next
        `ensure_started` starts a new one."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)
        self._stopping.clear()

    def _loop(self) -> None:
        while True:
            self._wake.wait(timeout=self._poll_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                with self.app.app_context():
                    self._run()
            except Exception:  # noqa: BLE001 - a database outage: try again on the next poll
                log.exception("%s: could not run", self.name)


# How long background work waits for a moment without requests before it takes a single item.
GIVE_WAY_SECONDS = 1.0


class RequestsInFlight:
    """How many requests this process is serving, so background work can give way to them."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def counting(self, wsgi_app) -> "_Counted":
        """`wsgi_app`, each request counted from its start until its body is returned."""
        return _Counted(wsgi_app, self)

    def enter(self) -> None:
        with self._changed:
            self._count += 1

    def leave(self) -> None:
        with self._changed:
            self._count -= 1
            if not self._count:
                self._changed.notify_all()

    def wait_for_none(self, seconds: float) -> bool:
        """True once no request is in flight; False if `seconds` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._count, timeout=seconds)

    def batch_size(self, full: int) -> int:
        """How much background work to take now: `full` once no request is in flight, a
        single item when GIVE_WAY_SECONDS pass without such a moment (on SQLite a batch holds
        the one write lock the requests need), so a rush is served first and its side
        effects follow as it allows, at least one a second."""
        return full if self.wait_for_none(GIVE_WAY_SECONDS) else 1


class _Counted:
    """WSGI middleware (its app in `app`, as Werkzeug's have it) counting requests in flight."""

    def __init__(self, app, in_flight: RequestsInFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    def __call__(self, environ, start_response):
        self.in_flight.enter()
        try:
            return self.app(environ, start_response)
        finally:
            self.in_flight.leave()
