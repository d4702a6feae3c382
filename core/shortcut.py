"""Answers to the requests the site gets most, given before Flask's request cycle.

A plain click through a referral link and a cached leaderboard are most of a site's traffic,
and their own work is small; much of their CPU went to what every request pays for in the
app (the request context, routing, a dozen before- and after-request steps, the session).
A `Shortcut` is a WSGI layer in front of the app's own `wsgi_app` that answers such a request
itself, through the same functions the app's view and hooks use, and hands everything else to
the app unchanged: a request it is unsure of, from a visitor with a session or a remember-me
cookie (someone may be signed in, a message may wait), under another host, with a NUL in its
query (the app's 400), or below a SCRIPT_NAME.

What the app's hooks give every answer it gives too: the host check, the request id, the
security headers and `Vary` for the answer's type, the request metrics and the outbox sender's
start. tests/test_click_shortcut.py and tests/test_board_shortcut.py list each hook of the
app, so a hook added to the app fails them until it is accounted for here, and they check
that a shortcut and the app answer the same.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask
from werkzeug.wrappers import Request, Response

from core.hosts import is_allowed_host
from core.i18n import LANGUAGE_VARY, varies_by_language
from core.logs import REQUEST_ID_HEADER, request_id_for
from core.metrics import count_request
from core.security import default_security_headers

_REQUEST_ID_KEY = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")  # in the WSGI environ

Answer = tuple[str, list[tuple[str, str]], bytes]  # status, WSGI headers, body


@dataclass(slots=True)
class Made:
    """An answer as the view makes it, before the app's hooks add their headers."""

    status: str
    status_code: int
    mimetype: str
    headers: list[tuple[str, str]]  # WSGI's
    body: bytes

    @classmethod
    def of(cls, response: Response, environ) -> "Made":
        headers = response.get_wsgi_headers(environ).to_wsgi_list()
        return cls(
            response.status, response.status_code, response.mimetype, headers, response.get_data()
        )


class HandOver(Exception):
    """This request is the app's to answer."""


class Shortcut:
    """WSGI middleware in front of the app's own `wsgi_app`: `answer` gives what it answers."""

    def __init__(self, app: Flask, behind) -> None:
        self.app = app
        self.behind = behind  # the app's request cycle: every request not answered here
        self.production = app.config["APP_ENV"] == "production"
        self.session_cookie = app.config["SESSION_COOKIE_NAME"]  # outside the framed pages
        self.remember_cookie = app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
        self._headers_of_every: dict[str, list[tuple[str, str]]] = {}
        # Started by every request in thread mode, as core/outbox.py's init_outbox has it.
        thread_mode = app.config["OUTBOX_DELIVERY"] == "thread"
        self.outbox_sender = app.extensions["outbox_sender"] if thread_mode else None

    def takes(self, environ) -> bool:
        """Whether the request may be one to answer here: a quick look at its method and path."""
        raise NotImplementedError

    def answer(self, environ, started: float) -> Answer | None:
        """The answer, or None (or HandOver raised) for the app to give it."""
        raise NotImplementedError

    def __call__(self, environ, start_response):
        if self.takes(environ):
            started = time.perf_counter()
            try:
                answer = self.answer(environ, started)
            except HandOver:
                answer = None
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
        return self.behind(environ, start_response)

    def anonymous_request(self, environ) -> tuple[Request, dict[str, str]] | None:
        """(the request, its cookies) when it is one to answer here: at the site's root, from a
        visitor without a session, no NUL in its query, under an allowed host; else None."""
        if environ.get("SCRIPT_NAME"):
            return None
        query = environ.get("QUERY_STRING", "")
        if "\x00" in query or "%00" in query:
            return None
        request = Request(environ)
        # A plain dict: a lookup of a missing key in Werkzeug's raises (and catches).
        cookies = request.cookies.to_dict()
        if (
            self.session_cookie in cookies
            or self.remember_cookie in cookies
            or not is_allowed_host(request.host, self.app.config["ALLOWED_HOSTS_LIST"])
        ):
            return None
        return request, cookies

    @staticmethod
    def request_id(environ) -> str:
        return request_id_for(environ.get(_REQUEST_ID_KEY, ""))

    def finish(
        self,
        made: Made,
        endpoint: str,
        started: float,
        request_id: str,
        more_headers: Iterable[tuple[str, str]] = (),
    ) -> Answer:
        """The WSGI answer of `made` with what the app's hooks would add to it."""
        if self.outbox_sender is not None:
            self.outbox_sender.ensure_started()
        headers = made.headers
        headers.extend(more_headers)
        headers.extend(self._headers_of_every_answer(made.mimetype))
        headers.append((REQUEST_ID_HEADER, request_id))
        count_request(endpoint, "GET", made.status_code, started)
        return made.status, headers, made.body

    def _headers_of_every_answer(self, mimetype: str) -> list[tuple[str, str]]:
        """What the app's hooks give every answer of this type (core/security.py, core/i18n.py),
        worked out once per type."""
        headers = self._headers_of_every.get(mimetype)
        if headers is None:
            headers = default_security_headers(mimetype, self.production)
            # The app reads the session on every request (Flask-Login's remember-me hook), and
            # Flask then adds `Vary: Cookie`.
            vary = LANGUAGE_VARY if varies_by_language(mimetype) else ("Cookie",)
            headers.append(("Vary", ", ".join(vary)))
            self._headers_of_every[mimetype] = headers
        return headers
