"""Helpers the test modules share: acting like a browser."""

import re

from tests import factories

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str) -> str:
    page = client.get(path)
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(client, email, password=factories.PASSWORD, query=None, **extra):
    """Log `client` in through the real form; returns the response."""
    token = csrf_token(client, "/auth/login")
    data = {"csrf_token": token, "email": email, "password": password, **extra}
    return client.post("/auth/login", data=data, query_string=query)
