"""gunicorn's settings for InviteLoop: `gunicorn --config gunicorn.conf.py`.

Options given on the command line (or in GUNICORN_CMD_ARGS) override these; tests/server.py
sets its own bind, workers and timeouts that way. docs/guarantees.md #34.
"""

import gc

# Collecting garbage while the master imports the app and makes it finds none, at about a
# fifth of a second of CPU per start: off until the app is made (`when_ready`).
gc.disable()

import os  # noqa: E402
import re  # noqa: E402

from gunicorn.glogging import Logger, SafeAtoms  # noqa: E402

from core.logs import REQUEST_ID_HEADER, make_formatter  # noqa: E402

wsgi_app = "app:create_app()"

# glibc gives a thread that finds malloc busy (SQLite, hashing and I/O run outside the GIL) an
# arena of its own, up to 8 per CPU, and memory freed in one stays resident there: after the
# benchmark's loads a worker held 150-152 MB with glibc's default, 138 MB with two arenas, at
# the same speed. Set in the master, so every forked worker has it; an operator's
# MALLOC_ARENA_MAX wins. M_ARENA_MAX is glibc's; elsewhere nothing is changed.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8


def _limit_malloc_arenas() -> None:
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.gnu_get_libc_version  # noqa: B018 - glibc's alone: elsewhere -8 means another thing
    except (OSError, AttributeError):
        return
    libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


_limit_malloc_arenas()

bind = "0.0.0.0:8000"


def _cpu_count() -> int:
    """The CPUs this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _workers() -> int:
    configured = os.environ.get("WEB_CONCURRENCY", "").strip()
    if not configured:
        # One process per CPU runs the Python; at least two, so a worker being restarted
        # never leaves the machine without one.
        return max(2, _cpu_count())
    if not configured.isdigit() or int(configured) < 1:
        raise SystemExit(f"WEB_CONCURRENCY must be a whole number of workers, not {configured!r}")
    return int(configured)


workers = _workers()
# gunicorn's gthread worker, which leaves a new connection to another worker while its threads
# are all busy (gunicorn's own takes it and makes it wait).
worker_class = "core.gunicorn_worker.FreeThreadWorker"
# Threads overlap the waits on PostgreSQL, Redis and the password hash within a worker; each
# worker's connection pool (5 + 10 overflow, config.py) covers them.
threads = 4

# The app is made once, in the master, and the workers are forked from it: a worker starts in
# milliseconds instead of importing everything again (about a second of CPU each), they share
# that memory, and an app that cannot start stops the master at once rather than failing worker
# after worker. create_app opens no connection (database, Redis, broker), so no socket is shared
# across the fork (tests/test_gunicorn_config.py). A deploy restarts gunicorn; HUP reloads
# the settings, not the code.
preload_app = True

# A worker that stops answering its master for this long is killed and replaced.
timeout = 30
# After SIGTERM (a deploy, `docker compose stop`), requests in flight get this long to finish;
# compose.yaml's stop_grace_period is longer, so Docker does not kill them first.
graceful_timeout = 25
# Idle keep-alive connections from the proxy in front are held this long.
keepalive = 5
# The workers' heartbeat files: /dev/shm is memory, a container's disk can stall them.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# No runtime control socket (gunicornc): a container is restarted, not steered, and its
# default path under $HOME is not writable there (nor shared by two servers on one machine).
control_socket_disable = True

# Forwarded headers are the app's business alone: it trusts exactly TRUSTED_PROXY_COUNT hops
# (ProxyFix, app.py). gunicorn must not also believe X-Forwarded-Proto from anyone, or a client
# could claim https where the app was told there is no proxy.
forwarded_allow_ips = ""

# One line per request on standard output, with the time taken in milliseconds and the
# request id the app answered with (X-Request-ID: the app's own lines for that request carry it).
accesslog = "-"
errorlog = "-"
_REQUEST_ID_ATOM = "{" + REQUEST_ID_HEADER.lower() + "}o"
access_log_format = f'%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s" %({_REQUEST_ID_ATOM})s'
# LOG_FORMAT=json (as for the app's own lines, core/logs.py): gunicorn's lines are JSON too.
_JSON_LOGS = os.environ.get("LOG_FORMAT", "text") == "json"
# The fields of a JSON access line besides the readable message: {field: gunicorn's atom}.
_ACCESS_FIELDS = {
    "remote_addr": "h",
    "method": "m",
    "path": "U",
    "query": "q",
    "status": "s",
    "bytes": "B",
    "duration_ms": "M",
    "referrer": "f",
    "user_agent": "a",
}

# Paths whose last part is a secret: a password reset, an email's unsubscribe link, an
# invitation's stop link (the slashes may come percent-encoded, e.g. in a `next` parameter).
_SLASH = r"(?:/|%2f)"
_SECRET_PATH = re.compile(
    rf"({_SLASH}(?:auth{_SLASH}reset|auth{_SLASH}emails{_SLASH}unsubscribe|"
    rf"invitations{_SLASH}stop){_SLASH})[^/?&#\s\"]+",
    re.IGNORECASE,
)


def mask_secret_paths(text: str) -> str:
    return _SECRET_PATH.sub(r"\1<token>", text)


def _masked(value):
    return mask_secret_paths(value) if isinstance(value, str) else value


class _MaskedAtoms(SafeAtoms):
    """gunicorn's atoms of a line, each masked as the line's format reads it: a line uses a
    few of its forty-odd atoms, and masking them all was a tenth of a click's CPU."""

    def __getitem__(self, name):
        return _masked(super().__getitem__(name))


class AccessLogWithoutTokens(Logger):
    """gunicorn's logger, with the token of a reset or one-click link masked in every field of
    an access line (request line, path, query, referrer, headers). With LOG_FORMAT=json its
    error and access lines are JSON objects like the app's, through the same redaction; an
    access line has the request's fields and its request_id."""

    atoms_wrapper_class = _MaskedAtoms

    def setup(self, cfg):
        super().setup(cfg)
        if _JSON_LOGS:
            for handler in (*self.error_log.handlers, *self.access_log.handlers):
                handler.setFormatter(make_formatter("json"))

    def access(self, resp, req, environ, request_time):
        if not _JSON_LOGS:
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {field: _masked(atoms.get(atom)) for field, atom in _ACCESS_FIELDS.items()}
        fields["status"] = int(fields["status"]) if str(fields["status"]).isdigit() else None
        fields["request_id"] = _masked(atoms.get(_REQUEST_ID_ATOM))
        # The readable message is the text line, quotes escaped as gunicorn does.
        line_atoms = self.atoms_wrapper_class(atoms)
        try:
            self.access_log.info(self.cfg.access_log_format, line_atoms, extra=fields)
        except Exception:  # noqa: BLE001 - as gunicorn's own: a bad line must not fail the request
            self.exception("access log line could not be written")


logger_class = AccessLogWithoutTokens


def on_starting(server):
    """Answer without naming the server software: gunicorn has no setting for its `Server:
    gunicorn` header and writes it from `gunicorn.http.wsgi.SERVER`. Set here in the master,
    before any worker is forked, so every worker inherits the empty value."""
    import gunicorn.http.wsgi

    gunicorn.http.wsgi.SERVER = ""


def when_ready(server):
    """The app is made (preload_app), no worker forked yet: the objects made so far are frozen,
    so no collection in master or worker walks them again, and a worker's collections do not
    write to (and so copy) the pages it shares with the master."""
    gc.freeze()
    gc.enable()


def child_exit(server, worker):
    """Tell prometheus-client a worker is gone, so its live gauges drop out of /metrics
    (multiprocess mode: PROMETHEUS_MULTIPROC_DIR, core/metrics.py)."""
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _leave_now(status: int) -> None:
    """End this process without Python's teardown. A preloaded app's objects live in memory
    forked from the master; tearing them down at exit writes to every one of their pages,
    which copies each page first: about a second of CPU per process, and as long again before
    a stop or a deploy completes, for nothing. The logs are flushed first; nothing else runs
    at exit in these processes (outbox mail is in the database and survives any exit)."""
    import logging
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def post_worker_init(worker):
    """The worker's click mover starts now: it moves what workers gone left in the clicks'
    journal (SQLite without Redis; referral/clicks.py's ClickJournal)."""
    from referral.clicks import start_click_mover

    start_click_mover(worker.wsgi)


def worker_exit(server, worker):
    """Called while the worker's sys.exit (or an error) is on its way out: the clicks it
    journaled are moved to the database; then its status, which tells the master, e.g.,
    that the worker failed to boot, is kept."""
    import sys

    leaving = sys.exc_info()[1]
    app = getattr(worker, "wsgi", None)
    if app is not None:
        from referral.clicks import close_click_journal

        try:
            close_click_journal(app)
        except Exception:  # noqa: BLE001 - the journal stays on disk for the next worker
            server.log.exception("worker %s: could not move its journaled clicks", worker.pid)
    code = leaving.code if isinstance(leaving, SystemExit) else leaving
    _leave_now(code if isinstance(code, int) else (0 if code is None else 1))


def on_exit(server):
    """The master's last step (Arbiter.halt), with the status it is about to exit with (e.g.
    3 when a worker failed to boot). Read from halt's frame; if gunicorn ever calls this from
    elsewhere, the status is unknown and the ordinary exit runs instead."""
    import sys

    halt = sys._getframe(1)
    if halt.f_code.co_name == "halt" and isinstance(halt.f_locals.get("exit_status"), int):
        _leave_now(halt.f_locals["exit_status"])
