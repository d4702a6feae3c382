"""The plain click through a referral link, answered before Flask's request cycle.

A click is the request the site gets most, and with Redis its own work is one script call;
about a third of its CPU went to what every request pays for in the app (the request
context, routing, a dozen before- and after-request steps, the session, the limiter's
bookkeeping). This WSGI layer answers the plain click itself and hands everything else to
the app unchanged:

- `GET /r/<code>` with a code of the right form, at the site's root, under an allowed host;
- from a visitor with no session, no remember-me and no attribution cookie (so nobody is
  signed in, and no earlier first-touch attribution has to be looked up);
- when the click's Redis script counts the link's limits, or the limiter keeps them in this
  process's memory (no Redis), or is off (referral/link_limits.py).

It does what the app would, through the same functions: the host check, the request id, the
click stored by `clicks.record_click`, the redirect target, the cookies, the security headers,
`Vary`, the request metrics and the outbox sender's start. Nothing else of the app's hooks
applies to such a request; tests/test_click_shortcut.py lists them all, so a hook added to the
app fails that test until it is accounted for here, and it checks that both answer the same.

A visitor over a limit, and a click the database refused, are handed to the app, which counts
and answers them its own way (its 429 headers, its error page). Nothing was stored for them.
"""

import time

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.utils import redirect
from werkzeug.wrappers import Request

from core.hosts import is_allowed_host
from core.i18n import LANGUAGE_VARY, varies_by_language
from core.logs import REQUEST_ID_HEADER, request_id_bound, request_id_for
from core.metrics import count_request
from core.security import default_security_headers
from extensions import limiter
from referral import attribution, clicks, link_limits, links
from referral.codes import normalize_code

PREFIX = "/r/"
ENDPOINT = "referral.follow_link"  # the view it stands in for: its limits' keys, its metrics
_REQUEST_ID_KEY = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")  # in the WSGI environ


class HandOver(Exception):
    """This click is the app's to answer."""


class _ShortcutLimits(link_limits.LinkLimits):
    def exceeded(self, index: int):
        raise HandOver  # the app counts the request again and answers its own 429


class ClickShortcut:
    """WSGI middleware in front of the app's own `wsgi_app`."""

    def __init__(self, app: Flask, behind) -> None:
        self.app = app
        self.behind = behind  # the app's request cycle: every request not answered here
        self.production = app.config["APP_ENV"] == "production"
        self.session_cookie = app.config["SESSION_COOKIE_NAME"]  # outside the framed pages
        self.remember_cookie = app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
        self._paths: tuple[str, str] | None = None
        # A click's answer is a redirect with an HTML body: the headers the app's hooks give
        # every such answer (core/security.py, core/i18n.py).
        mimetype = "text/html"
        self.headers_of_every_click = default_security_headers(mimetype, self.production)
        if varies_by_language(mimetype):
            self.headers_of_every_click.append(("Vary", ", ".join(LANGUAGE_VARY)))
        # Started by every request in thread mode, as core/outbox.py's init_outbox has it.
        thread_mode = app.config["OUTBOX_DELIVERY"] == "thread"
        self.outbox_sender = app.extensions["outbox_sender"] if thread_mode else None

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO", "").startswith(
            PREFIX
        ):
            started = time.perf_counter()
            try:
                answer = self._answer(environ, started)
            except HandOver:
                answer = None
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
        return self.behind(environ, start_response)

    def _answer(self, environ, started: float):
        """The answer to a plain click (status, WSGI headers, body); None for any other
        request."""
        code = self._plain_code(environ)
        if code is None:
            return None
        request = Request(environ)
        # A plain dict: a lookup of a missing key in Werkzeug's raises (and catches).
        cookies = request.cookies.to_dict()
        if (
            self.session_cookie in cookies
            or self.remember_cookie in cookies
            or attribution.ATTRIBUTION_COOKIE in cookies
            or "\x00" in environ.get("QUERY_STRING", "")
            or "%00" in environ.get("QUERY_STRING", "")
            or not is_allowed_host(request.host, self.app.config["ALLOWED_HOSTS_LIST"])
        ):
            return None
        request_id = request_id_for(environ.get(_REQUEST_ID_KEY, ""))
        known_visitor = attribution.known_visitor_id(cookies.get(attribution.VISITOR_COOKIE))
        with self.app.app_context(), request_id_bound(request_id):
            limits = self._limits(request)
            if limits is False:
                return None
            visitor = known_visitor or attribution.new_visitor_id()
            try:
                found = clicks.record_click(
                    code,
                    lambda: clicks.Visit.of_request(request, visitor, _address(request)),
                    limits=limits or None,
                )
            except SQLAlchemyError:
                return None  # nothing stored: the app tries again and answers the error
            signup_path, landing_path = self._targets()
            set_cookies = []
            target = landing_path if found is None else links.target_of(found, signup_path)
            response = redirect(target, 302, self.app.response_class)
            if found is not None:
                set_cookies.append(
                    attribution.attribution_cookie(found.code, found.attribution_window_days)
                )
                if known_visitor is None:
                    set_cookies.append(attribution.visitor_cookie(visitor))
            if self.outbox_sender is not None:
                self.outbox_sender.ensure_started()
            # Werkzeug's redirect gives the body, its type and the Location; the rest is
            # appended as the app's hooks would set it, without their lookups of each header.
            headers = response.get_wsgi_headers(environ).to_wsgi_list()
        headers.extend(("Set-Cookie", cookie) for cookie in set_cookies)
        headers.extend(self.headers_of_every_click)
        headers.append((REQUEST_ID_HEADER, request_id))
        count_request(ENDPOINT, "GET", 302, started)
        return response.status, headers, response.get_data()

    @staticmethod
    def _plain_code(environ) -> str | None:
        """The code of `/r/<code>` at the site's root, when it is one a code can be."""
        if environ.get("SCRIPT_NAME"):
            return None
        raw = environ["PATH_INFO"][len(PREFIX) :]
        if "/" in raw or "\x00" in raw:
            return None
        return normalize_code(raw)

    def _limits(self, request: Request):
        """The limits the click's script is to count; None when they are counted already (in
        this process's memory) or the limiter is off; False when only the app can count them.
        A visitor over a limit is handed over: the app counts the visit again and answers 429."""
        if not (limiter.enabled and limiter.initialized):
            return None
        limits, address = self.app.config["REFERRAL_LINK_LIMITS"], _address(request)
        counted = link_limits.limits_for_the_script(limits, address, ENDPOINT, _ShortcutLimits)
        if counted is not None:
            return counted
        within = link_limits.counted_in_memory(limits, address, ENDPOINT)
        if within is None:
            return False
        if not within:
            raise HandOver
        return None

    def _targets(self) -> tuple[str, str]:
        """Where a click leads: the signup page, or the landing page for an unusable link."""
        if self._paths is None:
            adapter = self.app.url_map.bind("localhost")
            self._paths = (adapter.build("auth.signup"), adapter.build("referral.landing"))
        return self._paths


def _address(request: Request) -> str:
    """The client's address as Flask-Limiter's get_remote_address reads it."""
    return request.remote_addr or "127.0.0.1"


def install(app: Flask) -> None:
    """Put the shortcut in front of the app's request cycle (inside ProxyFix, which must
    wrap it: the shortcut reads the client's address and host as ProxyFix corrects them)."""
    app.wsgi_app = ClickShortcut(app, app.wsgi_app)
