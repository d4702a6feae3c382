"""A real server process for tests that need one: gunicorn running the app factory, started
from the production configuration (gunicorn.conf.py) as the README's command does.

    with running_server(database_url) as base_url:
        requests.get(f"{base_url}/health")

Only 127.0.0.1, a free port, a bounded wait for /health, and a bounded shutdown. A module
whose tests need no fresh process shares one per database: `shared_servers`.
"""

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests import preloaded
from tests.apps import TEMPLATE_CACHE

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = ROOT / "gunicorn.conf.py"
SERVER_SECRET = "server-test-secret-0123456789abcdef0123456789"
# High enough that no test of concurrency is cut short by the rate limiter.
GENEROUS_LIMITS = "100000/minute"
# A loaded 2-core machine can take 20 s to boot one; a crash ends the wait at once anyway.
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
_LOG_TAIL = 4000


class ServerFailed(RuntimeError):
    """The server process did not come up; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environment(database_url: str, **settings: str) -> dict[str, str]:
    """The process environment: this one's, minus any app settings, plus the test's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "APP_ENV", "PUBLIC_URL")
    }
    env.update(
        APP_ENV="development",
        SECRET_KEY=SERVER_SECRET,
        DATABASE_URL=database_url,
        LOG_LEVEL="WARNING",
        SIGNUP_LIMITS=GENEROUS_LIMITS,
        LOGIN_LIMITS=GENEROUS_LIMITS,
        LOGIN_ACCOUNT_LIMITS=GENEROUS_LIMITS,
        REFERRAL_LINK_LIMITS=GENEROUS_LIMITS,
        # A click is in the database when its 302 arrives, as tests count; the journal's own
        # servers: tests/test_click_journal.py.
        CLICK_JOURNAL="false",
        PYTHONUNBUFFERED="1",
        TEMPLATE_CACHE_DIR=str(TEMPLATE_CACHE),
    )
    env.update(settings)
    return env


@contextlib.contextmanager
def running_server(
    database_url: str,
    *,
    workers: int = 2,
    threads: int = 8,
    wsgi_app: str | None = None,
    output: Path | None = None,
    **settings: str,
) -> Iterator[str]:
    """Start gunicorn on `database_url` (a plain postgresql:// or sqlite:/// URL), yield its
    base URL once /health answers 200, and stop it afterwards. `settings` are extra
    environment variables for the app (e.g. REDIS_URL="redis://127.0.0.1:6379/0");
    `wsgi_app` serves another app under the same settings (a benchmark's bare baseline);
    `output` keeps the server's log (access lines included) in that file for the test to read."""
    port = free_port()
    options = {
        "--workers": workers,
        "--threads": threads,
        "--bind": f"127.0.0.1:{port}",
        "--timeout": 60,
        "--graceful-timeout": int(STOP_TIMEOUT_SECONDS) // 2,
    }
    # The production configuration (the app, the Server header), with this test's options.
    arguments = ["--config", str(GUNICORN_CONFIG), "--no-control-socket"]
    for option, value in options.items():
        arguments += [option, str(value)]
    if wsgi_app:
        arguments.append(wsgi_app)
    with open(output, "w+b") if output else tempfile.TemporaryFile() as log:
        # In its own session: the workers go down with it.
        env = server_environment(database_url, **settings)
        process = preloaded.start("gunicorn", arguments, cwd=ROOT, env=env, output=log)
        try:
            base_url = f"http://127.0.0.1:{port}"
            _wait_until_healthy(process, base_url, log)
            yield base_url
        finally:
            stop_process(process)


class SharedServers:
    """Servers some tests share, one per database and options, started on first use and
    stopped with the fixture that holds them (a module's; a class's when other tests of the
    module use the same database, which a running server's outbox sender would serve too).
    For tests that need a real server but not a fresh one: each still starts from emptied
    tables; a test that stops, restarts or kills its server, or needs what only a new process
    has (cold caches, fresh counters), starts its own."""

    def __init__(self):
        self._running = contextlib.ExitStack()
        self._base_urls: dict[tuple, str] = {}

    def base_url(self, database_url: str, start=None, **options) -> str:
        """The base URL of the module's `start(database_url, **options)` (running_server, or a
        function that calls it with settings of its own)."""
        start = start or running_server
        key = (start, database_url, tuple(sorted(options.items())))
        if key not in self._base_urls:
            self._base_urls[key] = self._running.enter_context(start(database_url, **options))
        return self._base_urls[key]

    def stop_all(self) -> None:
        self._running.close()
        self._base_urls.clear()


@contextlib.contextmanager
def shared_servers() -> Iterator[SharedServers]:
    servers = SharedServers()
    try:
        yield servers
    finally:
        servers.stop_all()


def _wait_until_healthy(process: subprocess.Popen, base_url: str, log) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    last_problem = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(
                f"gunicorn exited with status {process.returncode} before answering /health:\n"
                + _tail(log)
            )
        try:
            response = requests.get(f"{base_url}/health", timeout=2)
        except requests.RequestException as error:
            last_problem = f"{error.__class__.__name__}: {error}"
        else:
            if response.status_code == 200:
                return
            last_problem = f"/health answered {response.status_code}: {response.text[:200]}"
        time.sleep(0.1)
    raise ServerFailed(
        f"gunicorn did not answer /health with 200 within {START_TIMEOUT_SECONDS:.0f} s "
        f"({last_problem}):\n" + _tail(log)
    )


def _tail(log) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-_LOG_TAIL:]


def stop_process(process: "subprocess.Popen | preloaded.PreloadedProcess") -> None:
    """SIGTERM (gunicorn's graceful stop) to the process we started; SIGKILL to its own
    group only if it does not finish in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
    else:
        process.wait()
