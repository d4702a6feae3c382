"""The commands the containers run, in one place. compose.yaml's services run exactly these,
through the image's entrypoint (tests/test_compose.py parses both files and compares), and the
production-topology test starts exactly these as processes, through the same entrypoint
(tests/test_deployment.py), so the two cannot drift apart. Also a browser
as the app sees it behind a TLS proxy, for the tests of the deployed topology."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from tests import preloaded
from tests.helpers import CSRF_FIELD
from tests.server import ROOT, stop_process

COMMANDS = {
    "migrate": ["sh", "-c", "flask --app app db upgrade && flask --app app admin ensure-admin"],
    "web": ["gunicorn", "--config", "gunicorn.conf.py"],
    "worker": ["celery", "-A", "worker", "worker", "--loglevel", "INFO"],
    "beat": ["celery", "-A", "worker", "beat", "--loglevel", "INFO"],
}
# The Dockerfile's ENTRYPOINT: every command above starts through it.
ENTRYPOINT = ["sh", "deploy/entrypoint.sh"]
# The services whose counters /metrics adds up (PROMETHEUS_MULTIPROC_DIR), each in a folder
# of its own, relative to the shared one: web's is the shared folder itself.
METRICS_FOLDERS = {"web": ".", "worker": "worker"}
# The services that wait for the migrations to have succeeded.
AFTER_MIGRATE = ("web", "worker", "beat")
# The app's settings that a test's own environment must not leak into the processes.
APP_SETTINGS = ("APP_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PUBLIC_URL", "LOG_LEVEL")


def metrics_setting(name: str, shared_folder: str) -> dict[str, str]:
    """A service's PROMETHEUS_MULTIPROC_DIR under the folder web and worker share (none for
    the others)."""
    if name not in METRICS_FOLDERS:
        return {}
    return {
        "PROMETHEUS_MULTIPROC_DIR": os.path.normpath(
            os.path.join(shared_folder, METRICS_FOLDERS[name])
        )
    }


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
        [*ENTRYPOINT, *COMMANDS[name]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def running(name: str, env: dict[str, str], folder: Path) -> Iterator[Running]:
    """One long-running service's command as its own process (group), its output kept."""
    output = folder / f"{name}.log"
    with output.open("wb") as log:
        process = preloaded.new_process(
            [*ENTRYPOINT, *COMMANDS[name]], cwd=ROOT, env=env, output=log
        )
        try:
            yield Running(name, process, output)
        finally:
            stop_process(process)


# --- a browser behind the TLS proxy -------------------------------------------------------


class Browser:
    """A person's browser behind the TLS proxy: the proxy adds X-Forwarded-For and -Proto.
    The browser speaks HTTPS to the proxy and so sends its Secure cookies back; the test
    speaks HTTP to what the proxy reaches, where requests would keep them back, so they are
    sent by hand."""

    def __init__(self, base_url: str, address: str, session: requests.Session | None = None):
        self.base_url = base_url
        self.session = session or requests.Session()
        self.session.headers.update({"X-Forwarded-For": address, "X-Forwarded-Proto": "https"})

    def via(self, base_url: str) -> "Browser":
        """The same browser (cookies, address) reaching another server behind the proxy."""
        return Browser(base_url, self.session.headers["X-Forwarded-For"], self.session)

    def _send(self, method: str, url: str, **options) -> requests.Response:
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        headers = {**options.pop("headers", {}), "Cookie": cookies}
        return self.session.request(
            method, url, headers=headers, allow_redirects=False, timeout=30, **options
        )

    def get(self, path: str, follow_redirects: bool = True) -> requests.Response:
        """The page at `path` (after any redirects, unless told otherwise)."""
        answer = self._send("GET", self.base_url + path)
        for _ in range(5 if follow_redirects else 0):
            if not answer.is_redirect:
                break
            answer = self._send("GET", urljoin(answer.url, answer.headers["Location"]))
        return answer

    def submit(self, path: str, **fields: str) -> requests.Response:
        """Fill in the form on `path` and send it, as the page's own browser would."""
        return self.post(path, path, **fields)

    def post(self, path: str, from_page: str, **fields: str) -> requests.Response:
        """Send a form to `path` from the page at `from_page` (its CSRF token and address)."""
        page = self.get(from_page)
        assert page.status_code == 200, page.text[:300]
        token = CSRF_FIELD.search(page.text).group(1)
        secure_origin = "https://" + self.base_url.split("//", 1)[1]
        referer = page.url.replace(self.base_url, secure_origin)
        data = {"csrf_token": token, **fields}
        return self._send("POST", self.base_url + path, data=data, headers={"Referer": referer})
