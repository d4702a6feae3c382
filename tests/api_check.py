"""`make api-check`: schemathesis's command line against a real gunicorn server.

    python -m tests.api_check [--database sqlite|postgresql] [--max-examples N]

On a throwaway database (a SQLite file, or a PostgreSQL database it creates and drops), with
the data and the API key of tests/api_fuzz.py's `seed`, every webhook secret configured and a
stand-in Saleor serving its keys on 127.0.0.1. Schemathesis reads /api/openapi.json from the
server and sends generated requests to every operation; the run fails on any 5xx, any answer
whose status, content type, headers or body the document does not describe, and any webhook
post without a valid signature answered 2xx (docs/guarantees.md #22). Exit status: schemathesis's.
"""

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import requests

from app import create_app
from tests import api_fuzz, databases, events_api
from tests.apps import app_config, close
from tests.jwks_server import JwksServer
from tests.server import GENEROUS_LIMITS, running_server
from tests.webhook_signing import SigningKey

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
STRIPE_SECRET = "whsec_api-check-stripe-secret"
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--max-examples", type=int, default=50, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis's random seed")
    args = parser.parse_args(argv)
    with throwaway_database(args.database) as database_url:
        seeded = seed(database_url)
        with (
            JwksServer([SigningKey().public_jwk()]) as shop,
            running_server(
                database_url,
                EVENTS_WEBHOOK_SECRET=events_api.SECRET,
                STRIPE_WEBHOOK_SECRET=STRIPE_SECRET,
                SALEOR_API_URL=shop.api_url,
                EVENTS_LIMITS=GENEROUS_LIMITS,
            ) as base_url,
        ):
            session = session_cookie(base_url, seeded["email"], seeded["password"])
            return run_schemathesis(base_url, seeded["api_key"], session, args)


@contextlib.contextmanager
def throwaway_database(kind: str) -> Iterator[str]:
    if kind == "postgresql":
        url = databases.create_postgres_database()
        try:
            yield url
        finally:
            databases.drop_postgres_database(url)
        return
    with tempfile.TemporaryDirectory(prefix="inviteloop-api-check-") as folder:
        yield f"sqlite:///{Path(folder) / 'inviteloop.db'}"


def seed(database_url: str) -> dict:
    app = create_app(app_config(database_url, MAIL_BACKEND="dummy"))
    try:
        databases.migrate(app)
        with app.app_context():
            return api_fuzz.seed()
    finally:
        close(app)


def session_cookie(base_url: str, email: str, password: str) -> str:
    """Sign in through the real login form, as a browser would."""
    browser = requests.Session()
    page = browser.get(f"{base_url}/auth/login", timeout=10)
    token = CSRF_FIELD.search(page.text).group(1)
    form = {"csrf_token": token, "email": email, "password": password}
    answer = browser.post(f"{base_url}/auth/login", data=form, allow_redirects=False, timeout=10)
    if answer.status_code != 302 or "session" not in browser.cookies:
        raise SystemExit(f"api-check: the seeded participant's login got {answer.status_code}")
    return browser.cookies["session"]


def run_schemathesis(base_url: str, api_key: str, session: str, args) -> int:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{base_url}/api/openapi.json",
        "--checks",
        ",".join(api_fuzz.CHECK_NAMES),
        "--max-examples",
        str(args.max_examples),
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--no-color",
    ]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.api_fuzz",
        "API_CHECK_KEY": api_key,
        "API_CHECK_SESSION": session,
    }
    print("api-check:", " ".join(command), flush=True)
    return subprocess.run(command, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
