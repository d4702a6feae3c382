"""The commands the containers run, in one place. compose.yaml's services run exactly these
(tests/test_compose.py parses it and compares) and the production-topology test starts exactly
these as processes (tests/test_deployment.py), so the two cannot drift apart."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.server import ROOT, stop_process

COMMANDS = {
    "migrate": ["sh", "-c", "flask --app app db upgrade && flask --app app admin ensure-admin"],
    "web": ["gunicorn", "--config", "gunicorn.conf.py"],
    "worker": ["celery", "-A", "worker", "worker", "--loglevel", "INFO"],
    "beat": ["celery", "-A", "worker", "beat", "--loglevel", "INFO"],
}
# The services that wait for the migrations to have succeeded.
AFTER_MIGRATE = ("web", "worker", "beat")
# The app's settings that a test's own environment must not leak into the processes.
APP_SETTINGS = ("APP_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PUBLIC_URL", "LOG_LEVEL")


# --- running them as processes ------------------------------------------------------------

BIN = str(Path(sys.executable).parent)  # where gunicorn, celery and flask are installed


@dataclass(frozen=True)
class Running:
    name: str
    process: subprocess.Popen
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def command_environment(**settings: str) -> dict[str, str]:
    """What compose's env_file gives every container: the settings, and the tools on PATH."""
    env = {key: value for key, value in os.environ.items() if key not in APP_SETTINGS}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


def run_once(name: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        COMMANDS[name], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@contextlib.contextmanager
def running(name: str, env: dict[str, str], folder: Path) -> Iterator[Running]:
    """One long-running service's command as its own process (group), its output kept."""
    output = folder / f"{name}.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            COMMANDS[name],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield Running(name, process, output)
        finally:
            stop_process(process)
