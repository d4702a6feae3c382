"""The cached leaderboard for anyone, answered before Flask's request cycle (core/shortcut.py).

After the link, the public board is what the site serves most: the JSON of `/api/v1/leaderboard`
(shown on other sites) and the page `/referral/leaderboard` a visitor who is not signed in
gets. Both are kept whole per generation (referral/leaderboard.py) and, with Redis, as near
copies in each process: answering one is a lookup, and most of its CPU went to the request
cycle around it. This shortcut answers them when they are cached:

- `GET` of either path at the site's root, under an allowed host, a page number the app takes;
- from a visitor with no session and no remember-me cookie;
- with the bytes cached for this generation, the brand and, for the page, the visitor's
  language (the switcher's cookie, else Accept-Language); `304` when the browser has them.

Anything else, a cache miss included, is the app's: its views render, cache and answer it.
"""

from flask import Flask

from core.i18n import visitor_language
from core.logs import request_id_bound
from core.pagination import PageOutOfRange, parse_page
from core.shortcut import Made, Shortcut
from models import utcnow
from referral import leaderboard
from referral.api import PUBLIC_HEADERS

# The paths answered here, and the views they stand in for (their metrics).
API_PATH, PAGE_PATH = "/api/v1/leaderboard", "/referral/leaderboard"
ENDPOINTS = {API_PATH: "referral.api.get_leaderboard", PAGE_PATH: "referral.show_leaderboard"}
_API_HEADERS = list(PUBLIC_HEADERS.items())


class BoardShortcut(Shortcut):
    def takes(self, environ) -> bool:
        return environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") in ENDPOINTS

    def answer(self, environ, started: float):
        anonymous = self.anonymous_request(environ)
        if anonymous is None:
            return None
        request, _cookies = anonymous
        period = leaderboard.parse_period(request.args.get("period"))
        try:
            page = parse_page(request.args.get("page"))
        except PageOutOfRange:
            return None  # the app's 400
        path = environ["PATH_INFO"]
        request_id = self.request_id(environ)
        with self.app.app_context(), request_id_bound(request_id):
            if path == API_PATH:
                kind, more_headers = leaderboard.JSON_ANSWER, _API_HEADERS
            else:
                kind, more_headers = leaderboard.page_answer(visitor_language(request), ""), []
            cached = leaderboard.cached_answer(kind, period, page, utcnow(), render=None)
            if cached is None:
                return None  # rendered and cached by the app's view
            response = leaderboard.public_response(cached, request)
            made = Made.of(response, environ)
            return self.finish(made, ENDPOINTS[path], started, request_id, more_headers)


def install(app: Flask) -> None:
    """Put the shortcut in front of the app's request cycle (inside ProxyFix, which must wrap
    it: the host is read as ProxyFix corrects it)."""
    app.wsgi_app = BoardShortcut(app, app.wsgi_app)
