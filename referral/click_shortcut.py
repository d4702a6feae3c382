"""The plain click through a referral link, answered before Flask's request cycle
(core/shortcut.py).

A click is the request the site gets most, and with Redis its own work is one script call.
This shortcut answers:

- `GET /r/<code>` with a code of the right form, at the site's root, under an allowed host;
- from a visitor with no session, no remember-me and no attribution cookie (so nobody is
  signed in, and no earlier first-touch attribution has to be looked up);
- when the click's Redis script counts the link's limits, or the limiter keeps them in this
  process's memory (no Redis), or is off (referral/link_limits.py).

It does what the app would, through the same functions: the click stored by
`clicks.record_click`, the redirect target, the cookies, and what core/shortcut.py does for
every shortcut. A visitor over a limit, and a click the database refused, are handed to the
app, which counts and answers them its own way (its 429 headers, its error page). Nothing was
stored for them.
"""

import re

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.utils import redirect
from werkzeug.wrappers import Request

from core.logs import request_id_bound
from core.shortcut import HandOver, Made, Shortcut
from extensions import limiter
from referral import attribution, clicks, link_limits, links
from referral.codes import normalize_code

PREFIX = "/r/"
ENDPOINT = "referral.follow_link"  # the view it stands in for: its limits' keys, its metrics


class _ShortcutLimits(link_limits.LinkLimits):
    def exceeded(self, index: int):
        raise HandOver  # the app counts the request again and answers its own 429


class ClickShortcut(Shortcut):
    def __init__(self, app: Flask, behind) -> None:
        super().__init__(app, behind)
        self._to_signup: _SignupRedirect | None = None  # made on the first click
        self._landing_path = ""

    def takes(self, environ) -> bool:
        return environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO", "").startswith(
            PREFIX
        )

    def answer(self, environ, started: float):
        """The answer to a plain click; None for any other request."""
        code = self._plain_code(environ)
        if code is None:
            return None
        anonymous = self.anonymous_request(environ)
        if anonymous is None:
            return None
        request, cookies = anonymous
        if attribution.ATTRIBUTION_COOKIE in cookies:
            return None
        request_id = self.request_id(environ)
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
            set_cookies = []
            if found is not None:
                set_cookies.append(
                    attribution.attribution_cookie(found.code, found.attribution_window_days)
                )
                if known_visitor is None:
                    set_cookies.append(attribution.visitor_cookie(visitor))
            # The cookies are appended as the view would set them, without its lookups of
            # each header.
            return self.finish(
                self._redirect(found, environ),
                ENDPOINT,
                started,
                request_id,
                [("Set-Cookie", cookie) for cookie in set_cookies],
            )

    @staticmethod
    def _plain_code(environ) -> str | None:
        """The code of `/r/<code>`, when it is one a code can be."""
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

    def _redirect(self, found: links.Link | None, environ) -> Made:
        """The view's 302: to the signup page with the code, or the program's landing page,
        or the site's for an unusable link."""
        if self._to_signup is None:
            adapter = self.app.url_map.bind("localhost")
            self._to_signup = _SignupRedirect(
                adapter.build("auth.signup"), self.app.response_class, environ
            )
            self._landing_path = adapter.build("referral.landing")
        if found is None:
            target = self._landing_path
        else:
            made = None if found.landing_url else self._to_signup.filled(found.code)
            if made is not None:
                return made
            target = links.target_of(found, self._to_signup.signup_path)
        return Made.of(redirect(target, 302, self.app.response_class), environ)


class _SignupRedirect:
    """Werkzeug's 302 to the signup page with a code, made once around a stand-in and filled
    in for each click (a tenth of the click's own time less than making it anew): a code of
    letters, digits and dashes is written alike in the Location and in the HTML body, where
    Werkzeug escapes it."""

    _STAND_IN = "STANDIN4CODE"
    _FILLABLE = re.compile(r"[A-Za-z0-9-]+")
    _PER_CODE = frozenset({"Location", "Content-Length"})

    def __init__(self, signup_path: str, response_class, environ) -> None:
        self.signup_path = signup_path
        self.prefix = f"{signup_path}?ref="
        made = Made.of(redirect(self.prefix + self._STAND_IN, 302, response_class), environ)
        self.shape = made
        self.body_parts = made.body.split(self._STAND_IN.encode())
        self.headers = [(name, value) for name, value in made.headers if name not in self._PER_CODE]

    def filled(self, code: str) -> Made | None:
        """The redirect for `code`; None for a code it cannot be filled with."""
        if not self._FILLABLE.fullmatch(code):
            return None
        body = code.encode().join(self.body_parts)
        headers = [
            *self.headers,
            ("Content-Length", str(len(body))),
            ("Location", self.prefix + code),
        ]
        return Made(self.shape.status, self.shape.status_code, self.shape.mimetype, headers, body)


def _address(request: Request) -> str:
    """The client's address as Flask-Limiter's get_remote_address reads it."""
    return request.remote_addr or "127.0.0.1"


def install(app: Flask) -> None:
    """Put the shortcut in front of the app's request cycle (inside ProxyFix, which must
    wrap it: the shortcut reads the client's address and host as ProxyFix corrects them)."""
    app.wsgi_app = ClickShortcut(app, app.wsgi_app)
