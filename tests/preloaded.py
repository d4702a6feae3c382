"""The commands the tests start again and again (gunicorn, celery, flask), forked from one
process per test worker that has imported the app and gunicorn once.

A new `python -m gunicorn ...` spends about a second of CPU importing the app before it does
anything, and the suite starts about a hundred such processes on a 2-core machine. Forked from
a process that has already imported them, the same command starts in milliseconds:

    process = start("gunicorn", ["--config", "gunicorn.conf.py"], cwd=ROOT, env=env, output=log)

The child is a process of its own (its own pid and session, signals and exit status as usual)
running the module's command-line entry point as `python -m <module>` would, with exactly the
environment, working directory and output it is given; only the interpreter's start and the
imports are shared. create_app reads its configuration when it is called, after the fork.

Not forked (a real `python -m` process instead): anything outside the test session (bench/),
and an environment that a library reads while being imported (PROMETHEUS_MULTIPROC_DIR
decides how prometheus_client stores its counters). The deployment tests run the installed
commands themselves (tests/deployment.py)."""

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Read by libraries at import: a command given one of these starts as a real process.
IMPORT_TIME_SETTINGS = ("PROMETHEUS_MULTIPROC_DIR",)
# What the forking process imports once (what a server, worker or command would import first).
PRELOADED_MODULES = (
    "app",
    "gunicorn.app.wsgiapp",
    "gunicorn.arbiter",
    "core.gunicorn_worker",
    "celery.bin.celery",
    "flask.cli",
)
_MESSAGE_BYTES = 1 << 16
_WAIT_STEP_SECONDS = 0.025  # how often wait() asks whether the command has ended

_enabled = False


def enable() -> None:
    """Fork the commands of this process from now on (the test session's conftest)."""
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def start(module: str, arguments: list[str], *, cwd: Path, env: dict[str, str], output):
    """`python -m <module> <arguments>` in its own session, stdin empty, stdout and stderr to
    the open file `output`: a subprocess.Popen, or a PreloadedProcess with the same methods."""
    if not _enabled or any(name in env for name in IMPORT_TIME_SETTINGS):
        return new_process(
            [sys.executable, "-m", module, *arguments], cwd=cwd, env=env, output=output
        )
    return _forker().start(module, arguments, cwd=cwd, env=env, output=output)


def new_process(command: list[str], *, cwd: Path, env: dict[str, str], output):
    """`command` as a new process in its own session, stdin empty, stdout and stderr to the
    open file `output`."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class Command:
    """A command started in the background, its output kept in a file of its own."""

    def __init__(self, module: str, arguments: list[str], *, cwd: Path, env: dict[str, str]):
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (kept as long as the command)
        self.process = start(module, arguments, cwd=cwd, env=env, output=self._log)

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def finished(self, timeout: float) -> str:
        """Its whole output once it has exited (killed if it has not within `timeout`)."""
        try:
            self.process.wait(timeout=timeout)
            return self.output()
        finally:
            self.stop()

    def __enter__(self) -> "Command":
        return self

    def __exit__(self, *_exception) -> None:
        self.stop()

    def stop(self) -> None:
        """Killed if still running; its output is gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


class PreloadedProcess:
    """A forked command, answering like subprocess.Popen: pid, returncode, poll, wait,
    send_signal, terminate, kill. Its parent is the forking process, which reaps it and keeps
    its exit status for us."""

    def __init__(self, forker: "_Forker", pid: int, args: list[str]):
        self._forker = forker
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._forker.exit_status(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(_WAIT_STEP_SECONDS)
        return self.returncode

    def send_signal(self, signal_number: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal_number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Forker:
    """Our end of the forking process: one request and its answer at a time."""

    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {key: value for key, value in os.environ.items() if key not in IMPORT_TIME_SETTINGS}
        env["PYTHONUNBUFFERED"] = "1"  # the children's output reaches their log at once
        self._process = subprocess.Popen(
            [sys.executable, "-c", f"import tests.preloaded as p; p.serve({theirs.fileno()})"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=[theirs.fileno()],
            start_new_session=True,
        )
        theirs.close()
        self._socket = ours
        self._lock = threading.Lock()

    def _ask(self, request: dict, fds: list[int] = ()) -> dict:
        with self._lock:
            socket.send_fds(self._socket, [json.dumps(request).encode()], list(fds))
            answer = self._socket.recv(_MESSAGE_BYTES)
        if not answer:
            raise RuntimeError(f"the forking process exited ({self._process.wait()})")
        return json.loads(answer)

    def start(self, module, arguments, *, cwd, env, output) -> PreloadedProcess:
        request = {"module": module, "argv": arguments, "cwd": str(cwd), "env": env}
        answer = self._ask(request, [output.fileno()])
        return PreloadedProcess(self, answer["pid"], [sys.executable, "-m", module, *arguments])

    def exit_status(self, pid: int) -> int | None:
        return self._ask({"status": pid})["returncode"]

    def close(self) -> None:
        self._socket.close()  # it sees the end of its input and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)


_forker_of_this_process: _Forker | None = None
_forker_lock = threading.Lock()


def _forker() -> _Forker:
    global _forker_of_this_process
    with _forker_lock:
        if _forker_of_this_process is None:
            _forker_of_this_process = _Forker()
            atexit.register(_forker_of_this_process.close)
        return _forker_of_this_process


# The forking process.


def serve(fd: int) -> None:
    """Import once, then fork a child per request until the test process goes away."""
    import gc
    import importlib

    for name in PRELOADED_MODULES:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # the children share these pages instead of copying them on a collection
    requests = socket.socket(fileno=fd)
    exited: dict[int, int] = {}
    while True:
        # Children that ended wait as zombies until someone asks after them: no wake-ups.
        message, fds, _flags, _address = socket.recv_fds(requests, _MESSAGE_BYTES, 1)
        if not message:
            return
        request = json.loads(message)
        if "status" in request:
            _reap(exited)
            answer = {"returncode": exited.get(request["status"])}
        else:
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    requests.close()
                    _run_child(request, fds[0])
                finally:
                    os._exit(1)  # the child never goes back to serving
            os.close(fds[0])
            answer = {"pid": pid}
        requests.send(json.dumps(answer).encode())


def _reap(exited: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        exited[pid] = os.waitstatus_to_exitcode(status)


def _run_child(request: dict, output: int) -> None:
    """Become `python -m <module> <argv>`: never returns."""
    import runpy

    os.setsid()
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.closerange(3, 1 << 16)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [request["module"], *request["argv"]]
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = _exit_code(exit.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    # As the interpreter's own exit would: the exit functions, then the output.
    try:
        atexit._run_exitfuncs()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
