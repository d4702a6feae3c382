"""gunicorn.conf.py, the production server's settings (docs/guarantees.md #34): workers from the
CPU count or WEB_CONCURRENCY, access lines on standard output that never carry the token of a
reset or one-click link (JSON lines with the request id under LOG_FORMAT=json), and forwarded
headers trusted by the app alone, for exactly
TRUSTED_PROXY_COUNT proxies."""

import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import requests
import yaml

from app import create_app
from extensions import db
from tests.apps import TEST_SECRET
from tests.helpers import scheme_seen
from tests.server import (
    GUNICORN_CONFIG,
    ROOT,
    START_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    free_port,
    running_server,
    server_environment,
    stop_process,
)

SECRETS = {
    "reset": "/auth/reset/IjEyMyI.reset-secret-1",
    "unsubscribe": "/auth/emails/unsubscribe/unsubscribe-secret-2",
    "stop": "/invitations/stop/stop-secret-3",
}


def load_settings(monkeypatch, web_concurrency: str | None):
    if web_concurrency is None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("WEB_CONCURRENCY", web_concurrency)
    spec = importlib.util.spec_from_file_location("gunicorn_settings", GUNICORN_CONFIG)
    settings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings)
    return settings


def test_workers_follow_the_cpus_unless_web_concurrency_says(monkeypatch):
    settings = load_settings(monkeypatch, None)
    assert settings.workers == max(2, settings._cpu_count())
    assert (settings.worker_class, settings.threads) == ("core.gunicorn_worker.FreeThreadWorker", 4)
    # Docker waits longer than gunicorn gives requests in flight, so it does not kill them.
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert int(compose["services"]["web"]["stop_grace_period"].rstrip("s")) > (
        settings.graceful_timeout
    )
    assert load_settings(monkeypatch, "7").workers == 7
    # (A value that is no number at all gunicorn itself refuses, before reading this file.)
    for wrong in ("0", "-2"):
        with pytest.raises(SystemExit, match="WEB_CONCURRENCY must be a whole number"):
            load_settings(monkeypatch, wrong)


def test_the_app_is_made_before_the_fork_without_opening_a_connection(monkeypatch):
    """preload_app forks the workers from the master's app: any database or Redis connection
    made by create_app would be one socket shared by every worker. Made against addresses
    where nothing listens, it must still come up, holding no connection."""
    assert load_settings(monkeypatch, None).preload_app is True
    app = create_app(
        {
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/nothing",
            "REDIS_URL": "redis://127.0.0.1:9/0",
        }
    )
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
        assert db.engine.pool.checkedin() == 0


# Threads doing SQLite's work outside the GIL at once, as a worker's do, then glibc's count
# of its malloc arenas (malloc_stats writes one "Arena N:" block each to standard error).
_ARENAS_SCRIPT = textwrap.dedent(
    """
    import ctypes, runpy, sqlite3, sys, threading
    if sys.argv[1] == "with-settings":
        runpy.run_path(sys.argv[2])

    def work():
        connection = sqlite3.connect(":memory:")
        connection.execute("CREATE TABLE t (x TEXT)")
        for _ in range(200):
            connection.executemany("INSERT INTO t VALUES (?)", [("x" * 300,)] * 200)
            connection.execute("SELECT group_concat(x) FROM t").fetchone()
            connection.execute("DELETE FROM t")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ctypes.CDLL(None).malloc_stats()
    """
)


def _malloc_arenas(how: str) -> int:
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", _ARENAS_SCRIPT, how, str(GUNICORN_CONFIG)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
def test_workers_keep_two_malloc_arenas_where_glibc_would_make_one_per_busy_thread():
    assert _malloc_arenas("plain") > 2  # glibc's default, which held 12 MB more per worker
    assert 1 <= _malloc_arenas("with-settings") <= 2


def test_masking_keeps_the_path_and_drops_the_token(monkeypatch):
    mask = load_settings(monkeypatch, None).mask_secret_paths
    assert (
        mask("GET /auth/reset/abc.DEF-123?x=1 HTTP/1.1") == "GET /auth/reset/<token>?x=1 HTTP/1.1"
    )
    assert (
        mask("/auth/login?next=%2Fauth%2Freset%2Fabc")
        == "/auth/login?next=%2Fauth%2Freset%2F<token>"
    )
    assert mask("/auth/reset") == "/auth/reset"  # the request form itself has no token
    assert mask("/referral/dashboard") == "/referral/dashboard"


@pytest.fixture(scope="module")
def server_log(sqlite_url, tmp_path_factory):
    """One server without a trusted proxy; its whole log, read after the requests below."""
    output = tmp_path_factory.mktemp("gunicorn") / "server.log"
    with running_server(sqlite_url, workers=1, output=output, TRUSTED_PROXY_COUNT="0") as base_url:
        yield base_url, output


@pytest.mark.server
def test_access_log_lines_never_carry_a_link_token(server_log):
    base_url, output = server_log
    with requests.Session() as browser:
        for path in SECRETS.values():
            assert browser.get(base_url + path, timeout=10).status_code < 500
        referred = {"Referer": f"{base_url}/auth/reset/referer-secret-4"}
        assert browser.get(f"{base_url}/static/css/app.css", headers=referred).status_code == 200
        login = f"{base_url}/auth/login?next=%2Fauth%2Freset%2Fnext-secret-5"
        assert browser.get(login, timeout=10).status_code == 200
    log = wait_for_lines(output, "/auth/login?next=")
    for secret in ("reset-secret-1", "unsubscribe-secret-2", "stop-secret-3", "referer-secret-4"):
        assert secret not in log
    assert "next-secret-5" not in log
    access = [line for line in log.splitlines() if '"GET ' in line]
    assert any('"GET /auth/reset/<token> HTTP/1.1" ' in line for line in access), access
    assert any("/auth/emails/unsubscribe/<token>" in line for line in access), access
    assert any("/invitations/stop/<token>" in line for line in access), access
    assert any(f'"{base_url}/auth/reset/<token>"' in line for line in access), access


def wait_for_lines(output, text: str) -> str:
    deadline = time.monotonic() + 5
    while text not in (log := output.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


@pytest.mark.server
def test_without_a_trusted_proxy_a_forwarded_scheme_is_ignored(server_log):
    base_url, _ = server_log
    # (Behind a trusted proxy the app believes it: tests/test_several_machines.py.)
    assert scheme_seen(base_url) == "http"


@pytest.mark.server
def test_with_json_logs_gunicorn_writes_json_lines_with_the_request_id(sqlite_url, tmp_path):
    """LOG_FORMAT=json: gunicorn's own lines (start-up, workers, access) are JSON objects as
    the app's are; an access line carries the request's id and fields, link tokens masked
    (docs/guarantees.md #34, #36)."""
    output = tmp_path / "server.log"
    with running_server(sqlite_url, workers=1, output=output, LOG_FORMAT="json") as base_url:
        reset = requests.get(
            base_url + SECRETS["reset"] + "?page=2",
            headers={"X-Request-ID": "req-access-1", "User-Agent": 'agent "quoted"'},
            timeout=10,
        )
        assert reset.headers["X-Request-ID"] == "req-access-1"
        requests.get(base_url + SECRETS["unsubscribe"], timeout=10)
        log = wait_for_lines(output, "/auth/emails/unsubscribe/<token>")
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert any(
        line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in lines
    )
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    [reset_line] = [line for line in access if line["request_id"] == "req-access-1"]
    assert reset_line["method"] == "GET"
    assert reset_line["path"] == "/auth/reset/<token>"
    assert reset_line["query"] == "page=2"
    assert reset_line["status"] == reset.status_code
    assert reset_line["user_agent"] == 'agent "quoted"'
    assert isinstance(reset_line["duration_ms"], int)
    assert '"GET /auth/reset/<token>?page=2 HTTP/1.1"' in reset_line["message"]
    assert reset_line["message"].endswith(" req-access-1")
    [unsubscribe_line] = [
        line
        for line in access
        if line["request_id"] != "req-access-1" and line["path"].startswith("/auth/emails")
    ]
    assert unsubscribe_line["path"] == "/auth/emails/unsubscribe/<token>"
    assert len(unsubscribe_line["request_id"]) == 32  # the one the app made up
    for secret in ("reset-secret-1", "unsubscribe-secret-2"):
        assert secret not in log


def start_gunicorn(config, database_url: str, output, workers: int = 2) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "--config", str(config)]
    command += ["--workers", str(workers)]
    command += ["--bind", f"127.0.0.1:{free_port()}"]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=server_environment(database_url),
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.server
def test_a_stop_is_quick_and_clean_and_a_failed_boot_keeps_its_status(sqlite_url, tmp_path):
    """Workers and master leave without Python's teardown of the forked app (gunicorn.conf.py
    `worker_exit`, `on_exit`): a stop takes a fraction of a second, says so in the log and exits
    0; a worker that cannot boot still stops the master with gunicorn's status 3."""
    # A worker killed between "Booting worker" and installing its signal handlers dies of the
    # signal instead of exiting: the stop is asked once both say they are ready.
    announcing = tmp_path / "announcing.conf.py"
    announcing.write_text(
        f"exec(open({str(GUNICORN_CONFIG)!r}).read())\n\n"
        "def post_worker_init(worker):\n"
        "    worker.log.info('worker ready')\n"
    )
    log_path = tmp_path / "stop.log"
    with open(log_path, "wb") as output:
        server = start_gunicorn(announcing, sqlite_url, output)
        try:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while log_path.read_text().count("worker ready") < 2:
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
            asked = time.monotonic()
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=STOP_TIMEOUT_SECONDS) == 0
            assert time.monotonic() - asked < 2.0
        finally:
            stop_process(server)
    log = log_path.read_text()
    assert log.count("Worker exiting") == 2 and "Shutting down: Master" in log, log

    failing = tmp_path / "failing.conf.py"
    failing.write_text(
        f"exec(open({str(GUNICORN_CONFIG)!r}).read())\n\n"
        "def post_worker_init(worker):\n"
        "    raise RuntimeError('this worker cannot start')\n"
    )
    with open(tmp_path / "failing.log", "wb") as output:
        # One worker: when two fail at once, gunicorn itself may end on its own traceback (1).
        server = start_gunicorn(failing, sqlite_url, output, workers=1)
        try:
            assert server.wait(timeout=START_TIMEOUT_SECONDS) == 3
        finally:
            stop_process(server)
    assert "Worker failed to boot" in (tmp_path / "failing.log").read_text()
