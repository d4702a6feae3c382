"""Which language a page, email or SMS is written in, and the catalogues that hold the words.

The order a request's language is chosen in: the signed-in participant's saved choice, then
the visitor's `locale` cookie (the navbar switcher sets it), then the browser's
Accept-Language, then the installation's DEFAULT_LOCALE. Catalogues live in translations/
(`make messages` extracts and updates them; install compiles them).
"""

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, current_app, has_request_context, request
from flask_babel import get_locale
from flask_login import current_user

from config import LANGUAGES
from extensions import babel

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
LOCALE_COOKIE = "locale"


def select_locale() -> str:
    if not has_request_context():
        return current_app.config["DEFAULT_LOCALE"]
    saved = getattr(current_user, "locale", None) if current_user else None
    if saved in LANGUAGES:
        return saved
    chosen = request.cookies.get(LOCALE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or current_app.config["DEFAULT_LOCALE"]


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
    # {% trans %} blocks read as one line whatever the template's indentation (babel.cfg
    # extracts them the same way).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
