"""What every HTTP benchmark shares: the real server and a bare one under the same gunicorn
settings, wrk rounds that alternate between them, and the one-line report of a figure.

    with serving(database_url, redis_url) as pair:
        figure = interleaved(pair, lambda base, _target: wrk(base, ["/r/X"], 10), rounds=3)
    print(report_line("postgresql", "100k", "GET /r/<code>", figure, "clicks ... OK"))

The real server is the production configuration (gunicorn.conf.py, APP_ENV=production,
PUBLIC_URL, SECRET_KEY, REDIS_URL when given, DATABASE_URL) with `-w 2 --threads 4`; the bare
one is `bare_app()`, a Flask app answering "ok" to anything, started with the very same
command and settings. Both run while the rounds alternate, so each ratio compares two
measurements taken seconds apart on the same machine: the noise of a shared machine cancels.
"""

import contextlib
import fcntl
import hashlib
import http.client
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis
from flask import Flask

from tests import server
from tests.server import running_server

WORKERS = 2
THREADS = 4
CONNECTIONS = 16
PUBLIC_URL = "http://127.0.0.1"
# No limit may cut a benchmark short: every request comes from 127.0.0.1.
UNLIMITED = "100000000/minute"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CYCLE_SCRIPT = Path(__file__).with_name("cycle.lua")
# A server starting on a machine busy with other work may take longer than tests allow.
server.START_TIMEOUT_SECONDS = max(server.START_TIMEOUT_SECONDS, 90.0)
# One access line: `127.0.0.1 "GET /r/ABC HTTP/1.1" 302 ...` (gunicorn.conf.py's format).
ACCESS_LINE = re.compile(rb'^\S+ "(\w+) (\S+) HTTP/[\d.]+" (\d{3}) ', re.MULTILINE)


def bare_app() -> Flask:
    """The ceiling: "ok" to any method on any path, nothing else."""
    app = Flask("bare")

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def ok(path: str):
        return "ok"

    return app


def production_settings(redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a production installation on this machine."""
    settings = {
        "APP_ENV": "production",
        "PUBLIC_URL": PUBLIC_URL,
        "SECRET_KEY": secrets.token_hex(32),
        "LOG_LEVEL": "WARNING",
        "MAIL_BACKEND": "dummy",  # emails are composed and queued, not delivered
        "REFERRAL_LINK_LIMITS": UNLIMITED,
        "SIGNUP_LIMITS": UNLIMITED,
        "EVENTS_LIMITS": UNLIMITED,
        "CLICK_JOURNAL": "true",  # the default (tests' servers turn it off)
    }
    if redis_url:
        settings["REDIS_URL"] = redis_url
    settings.update(extra)
    return settings


@contextlib.contextmanager
def redis_database_of_our_own(redis_url: str | None) -> Iterator[None]:
    """The benchmark's Redis database held for the block: a second benchmark on this machine
    would empty it, and the clicks still queued there, under this one. Refused at once."""
    if not redis_url:
        yield
        return
    name = hashlib.sha256(redis_url.encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"inviteloop-bench-redis-{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"Another benchmark is using {redis_url} on this machine: wait for it to end, "
                "or give this one another Redis database (BENCH_REDIS_URL)."
            ) from None
        yield


def empty_redis(redis_url: str | None) -> None:
    """The benchmark's own Redis database starts empty: a cold cache, fresh counters."""
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        try:
            client.flushdb()
        finally:
            client.close()


@dataclass
class Pair:
    """The real server and the bare one, running side by side."""

    real: str
    bare: str
    log: Path
    sent: Counter = field(default_factory=Counter)  # (method, path, status) the real one answered

    def answered(self, method: str, prefix: str, status: int) -> int:
        """How many answers of `status` the real server sent to `method prefix...`, from its
        access log (read once it has stopped, so every line is there)."""
        return sum(
            n
            for (m, path, code), n in self.sent.items()
            if m == method and path.startswith(prefix) and code == status
        )


@contextlib.contextmanager
def serving(
    database_url: str,
    redis_url: str | None,
    after_stop: Callable[[dict[str, str]], None] | None = None,
    **extra: str,
) -> Iterator[Pair]:
    """Both servers up for the `with` block (started together); afterwards `pair.sent` holds
    what the real one answered, counted from its access log. `after_stop(settings)` runs once
    both have stopped, before their Redis database is emptied (clicks and jobs still queued
    there), with the environment they ran with."""
    with redis_database_of_our_own(redis_url):
        empty_redis(redis_url)
        settings = production_settings(redis_url, **extra)
        workdir = Path(tempfile.mkdtemp(prefix="inviteloop-bench-log-"))
        log = workdir / "access.log"
        shape = {"workers": WORKERS, "threads": THREADS}
        starting = [
            running_server(database_url, output=log, **shape, **settings),
            running_server(database_url, wsgi_app="bench.harness:bare_app()", **shape, **settings),
        ]
        try:
            with contextlib.ExitStack() as stack:
                with ThreadPoolExecutor(2) as pool:
                    started = [pool.submit(server.__enter__) for server in starting]
                for server, future in zip(starting, started, strict=True):
                    if future.exception() is None:
                        stack.push(server)  # stopped when the block ends, whatever happens
                real, bare = (future.result() for future in started)
                pair = Pair(real, bare, log)
                yield pair
            pair.sent = Counter(
                (method.decode(), path.decode(), int(status))
                for method, path, status in ACCESS_LINE.findall(log.read_bytes())
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            try:
                if after_stop is not None:
                    after_stop(settings)
            finally:
                empty_redis(redis_url)


@dataclass
class Round:
    """One load run against one server."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: Counter
    errors: int = 0  # connection errors and timeouts

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Figure:
    """Alternating rounds: the real server's and the bare one's, in pairs."""

    real: list[Round]
    bare: list[Round]
    load: list[float]  # the 1-minute load average after each pair

    @property
    def ratio(self) -> float:
        """Median of the per-pair ratios, each real ÷ bare measured seconds apart."""
        return statistics.median(
            r.per_second / b.per_second for r, b in zip(self.real, self.bare, strict=True)
        )

    def statuses(self) -> Counter:
        return sum((r.statuses for r in self.real), Counter())


def interleaved(pair: Pair, run: Callable[[str, str], Round], rounds: int) -> Figure:
    """`rounds` pairs of runs, `run(base_url, target)` with target "real" or "bare"; the
    order flips every pair, so neither side always runs on a machine warmed by the other."""
    real, bare, load = [], [], []
    for number in range(rounds):
        order = (("real", pair.real), ("bare", pair.bare))
        for target, base in order if number % 2 == 0 else reversed(order):
            (real if target == "real" else bare).append(run(base, target))
        load.append(os.getloadavg()[0])
    return Figure(real, bare, load)


def wrk(base_url: str, paths: list[str], seconds: float, connections: int = CONNECTIONS) -> Round:
    """wrk with `connections` keep-alive connections over two threads, cycling through
    `paths` (cycle.lua), for `seconds`."""
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as listing:
        listing.write("\n".join(paths) + "\n")
    try:
        command = [
            shutil.which("wrk") or "wrk",
            "--threads",
            "2",
            "--connections",
            str(connections),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "--script",
            str(CYCLE_SCRIPT),
            base_url,
            "--",
            listing.name,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    finally:
        os.unlink(listing.name)
    return _parse_wrk(done.stdout)


def visit_each(base_url: str, paths: list[str], connections: int = CONNECTIONS) -> Round:
    """GET each path once, over `connections` keep-alive connections (Python's http.client,
    one thread each): a warm-up that leaves the server as a running site would be, with
    every one of `paths` asked lately. Timed, though the client's own Python is part of it."""
    address = urlsplit(base_url)
    pending = iter(paths)
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()

    def visit_some() -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            while True:
                with lock:
                    path = next(pending, None)
                if path is None:
                    return
                started = time.perf_counter()
                connection.request("GET", path)
                answer = connection.getresponse()
                answer.read()
                with lock:
                    latencies.append(time.perf_counter() - started)
                    statuses[answer.status] += 1
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        for visitor in [pool.submit(visit_some) for _ in range(connections)]:
            visitor.result()
    seconds = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Round(
        requests=len(latencies),
        seconds=seconds,
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        statuses=statuses,
    )


def worker_memory(base_url: str) -> list[int]:
    """The resident memory, in bytes, of each gunicorn worker serving `base_url`: the
    processes started with its --bind whose parent is one of them too (Linux's /proc)."""
    bind = f"127.0.0.1:{urlsplit(base_url).port}".encode()
    statuses = {}
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            if bind in (process / "cmdline").read_bytes().split(b"\0"):
                statuses[int(process.name)] = (process / "status").read_text()
        except OSError:  # it ended meanwhile
            continue

    return [
        _status_field(status, "VmRSS:") * 1024
        for status in statuses.values()
        if _status_field(status, "PPid:") in statuses
    ]


def _status_field(status: str, name: str) -> int:
    """A number from a /proc/<pid>/status text (VmRSS in kB, PPid)."""
    return int(next(line for line in status.splitlines() if line.startswith(name)).split()[1])


def _resident_bytes(pid: int) -> int:
    return _status_field(Path(f"/proc/{pid}/status").read_text(), "VmRSS:") * 1024


def celery_memory(worker: subprocess.Popen) -> list[int]:
    """The resident memory, in bytes, of a Celery worker's main process, then of each process
    of its pool (its children, which run the jobs)."""
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    return [_resident_bytes(worker.pid), *(_resident_bytes(int(child)) for child in children)]


@contextlib.contextmanager
def celery_worker(database_url: str, settings: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`celery -A worker worker` and `celery -A worker beat` as compose.yaml starts them, with
    a production installation's `settings` (its REDIS_URL the broker), for the block, which
    gets the worker's process; their output and beat's schedule go to a folder removed
    afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="inviteloop-bench-worker-"))
    env = server.server_environment(
        database_url, **settings, CELERY_BEAT_SCHEDULE=str(workdir / "beat-schedule")
    )
    started: list[subprocess.Popen] = []
    try:
        with open(workdir / "celery.log", "wb") as log:
            for command in ("worker", "beat"):
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "celery", "-A", "worker", command],
                        cwd=server.ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            yield started[0]
    finally:
        for process in started:
            server.stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _parse_wrk(output: str) -> Round:
    """cycle.lua's `done` lines: `bench <key> <value>`, `bench status <code> <count>`."""
    values, statuses = {}, Counter()
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["bench", "status"]:
            statuses[int(parts[2])] += int(parts[3])
        elif parts[:1] == ["bench"]:
            values[parts[1]] = float(parts[2])
    if "requests" not in values:
        raise RuntimeError("wrk gave no figures:\n" + output)
    return Round(
        requests=int(values["requests"]),
        seconds=values["duration_us"] / 1e6,
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        statuses=statuses,
        errors=int(values["errors"]),
    )


def check_ok(what: str, got: int, expected: int) -> tuple[bool, str]:
    ok = got == expected
    return ok, f"{what} {got:,} = {expected:,} {'OK' if ok else 'WRONG'}"


def report_line(backend: str, size: str, name: str, figure: Figure | None, extra: str = "") -> str:
    """One figure: req/s, p50/p99, ratio to bare in the same rounds, load average, and
    whatever the caller adds (a count check, or an in-process time)."""
    head = f"{backend:<10} {size:>5}  {name:<34}"
    if figure is None:
        return f"{head} {extra}"
    real_rps = statistics.median(r.per_second for r in figure.real)
    bare_rps = statistics.median(b.per_second for b in figure.bare)
    p50 = statistics.median(r.p50_ms for r in figure.real)
    p99 = statistics.median(r.p99_ms for r in figure.real)
    return (
        f"{head} {real_rps:>7,.0f} req/s  p50 {p50:>7.1f}ms  p99 {p99:>7.1f}ms  "
        f"{figure.ratio:>5.2f}x bare ({bare_rps:,.0f} req/s)  "
        f"load {max(figure.load):.1f}  {extra}"
    ).rstrip()
