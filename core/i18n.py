"""Which language a page, email or SMS is written in, and the catalogues that hold the words.

The order a request's language is chosen in: the signed-in participant's saved choice, then
the visitor's `locale` cookie (the navbar switcher sets it), then the browser's
Accept-Language, then the installation's DEFAULT_LOCALE. A message (an email, an SMS) is
composed inside `writing_to(recipient)`: in the recipient's saved choice, else the language
they are reading if they are the one asking, else DEFAULT_LOCALE, whoever's request or job
caused it. Catalogues live in translations/
(`make messages` extracts and updates them; install compiles them).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import (
    Flask,
    Response,
    after_this_request,
    current_app,
    has_app_context,
    has_request_context,
    request,
)
from flask_babel import force_locale, get_locale
from flask_login import current_user, user_logged_in
from werkzeug.wrappers import Request

from config import LANGUAGES
from extensions import babel

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
LOCALE_COOKIE = "locale"
LOCALE_COOKIE_SECONDS = 365 * 24 * 3600


def _own_name(code: str) -> str:
    name = Locale(code).get_display_name(code)
    return name[:1].upper() + name[1:]


# Each language's name in itself ("English", "Русский"): what the switcher offers, whatever
# the page's language.
LANGUAGE_NAMES = {code: _own_name(code) for code in LANGUAGES}


def select_locale() -> str:
    if not has_request_context():
        return current_app.config["DEFAULT_LOCALE"]
    saved = getattr(current_user, "locale", None) if current_user else None
    if saved in LANGUAGES:
        return saved
    return visitor_language()


def visitor_language(asking: Request | None = None) -> str:
    """The language of a visitor who is not signed in (read without loading a session): the
    switcher's cookie, else the browser's Accept-Language, else DEFAULT_LOCALE. `asking`: the
    request, when read outside Flask's request cycle."""
    asking = request if asking is None else asking
    chosen = asking.cookies.get(LOCALE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return asking.accept_languages.best_match(LANGUAGES) or current_app.config["DEFAULT_LOCALE"]


def current_locale() -> Locale:
    """The language being written in now; English outside an app (a unit test, a script)."""
    if has_app_context():
        locale = get_locale()
        if locale is not None:
            return locale
    return Locale("en")


def current_language() -> str:
    """ "en" or "ru": the code of the language being written in now."""
    return current_locale().language


def recipient_language(user, asked_in: str | None = None) -> str:
    """The language to write to `user` in (a User, or None for someone without an account):
    their saved choice; else, when they are the one asking right now (signed in, or
    `asked_in` given: the page they asked from), the language they are reading; else
    DEFAULT_LOCALE. Never just the language of whoever else's request caused the message."""
    saved = getattr(user, "locale", None)
    if saved in LANGUAGES:
        return saved
    if asked_in in LANGUAGES:
        return asked_in
    if _is_the_reader(user):
        return select_locale()
    return current_app.config["DEFAULT_LOCALE"]


def _is_the_reader(user) -> bool:
    if user is None or not has_request_context() or not current_user.is_authenticated:
        return False
    return getattr(current_user, "id", None) == getattr(user, "id", None)


@contextmanager
def writing_to(user, asked_in: str | None = None) -> Iterator[None]:
    """Compose a message to `user` inside this: everything translated or formatted inside
    (subject, body, amounts, dates) is in their language (recipient_language), whether a
    request or a worker writes it."""
    with force_locale(recipient_language(user, asked_in)):
        yield


def set_locale_cookie(response: Response, language: str) -> Response:
    """Remember the visitor's language for a year, as securely as the session cookie."""
    response.set_cookie(
        LOCALE_COOKIE,
        language,
        max_age=LOCALE_COOKIE_SECONDS,
        samesite="Lax",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
    )
    return response


def _remember_saved_choice(_app, user, **_extra) -> None:
    """Logging in on a new device: the saved choice becomes this browser's too, so the pages
    stay in that language after logging out."""
    if getattr(user, "locale", None) in LANGUAGES and has_request_context():
        after_this_request(lambda response: set_locale_cookie(response, user.locale))


def compile_stale_catalogues() -> list[Path]:
    """Compiles each catalogue whose .mo is missing or older than its .po (what `make` does;
    for a test run or a tool started without it). Returns the catalogues it compiled."""
    compiled = []
    for source in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        target = source.with_suffix(".mo")
        if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        with source.open("rb") as po:
            catalogue = read_po(po)
        with target.open("wb") as mo:
            write_mo(mo, catalogue)
        compiled.append(source)
    return compiled


def register_i18n(app: Flask) -> None:
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["DEFAULT_LOCALE"]
    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(TRANSLATIONS),
    )
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["language_names"] = LANGUAGE_NAMES
    # {% trans %} blocks read as one line whatever the template's indentation (babel.cfg
    # extracts them the same way).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    user_logged_in.connect(_remember_saved_choice, app)
    app.after_request(vary_by_language)


# What a page's words depend on: no shared cache may hand one visitor's language to another.
LANGUAGE_VARY = ("Cookie", "Accept-Language")
_WORDED_TYPES = ("text/html", "application/manifest+json")


def varies_by_language(mimetype: str) -> bool:
    return mimetype in _WORDED_TYPES


def vary_by_language(response: Response) -> Response:
    """Vary by the cookie and Accept-Language when the answer is worded (LANGUAGE_VARY)."""
    if varies_by_language(response.mimetype):
        for header in LANGUAGE_VARY:
            response.vary.add(header)
    return response
