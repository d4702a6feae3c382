"""Issue 12 row 12: responses do not name the server software (docs/guarantees.md #24).

gunicorn writes `Server: gunicorn` on every response and has no setting for it; the hook in
gunicorn.conf.py, which the README's production command and tests/server.py both load,
empties it. Checked against a real gunicorn process: pages, errors, static files, a refused
form, and a request too malformed to reach the app.
"""

import socket

import pytest
import requests

from tests.server import running_server

pytestmark = pytest.mark.server

SOFTWARE_NAMES = ("gunicorn", "werkzeug", "python", "flask")


def names_software(headers) -> list[str]:
    server = headers.get("Server", "").lower()
    return [name for name in SOFTWARE_NAMES if name in server]


def raw_answer(base_url: str, request: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_no_response_names_the_server_software(app, database_url):
    with running_server(database_url) as base_url, requests.Session() as browser:
        answers = {
            "/health": browser.get(f"{base_url}/health", timeout=10),
            "/": browser.get(f"{base_url}/", timeout=10),
            "404": browser.get(f"{base_url}/no-such-page", timeout=10),
            "static": browser.get(f"{base_url}/static/css/app.css", timeout=10),
            "refused form": browser.post(f"{base_url}/auth/login", data={}, timeout=10),
        }
        assert [answer.status_code for answer in answers.values()] == [200, 200, 404, 200, 400]
        for what, answer in answers.items():
            assert names_software(answer.headers) == [], (what, answer.headers.get("Server"))

        # HTTP/1.0 and a request gunicorn itself refuses before the app sees it.
        old = raw_answer(base_url, b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        refused = raw_answer(base_url, b"NOT A REQUEST\r\n\r\n")
    for answer in (old, refused):
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        assert head.startswith("http/1."), head
        assert not [name for name in SOFTWARE_NAMES if name in head], head
