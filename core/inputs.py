"""Input no view can use, refused before it reaches one: a clear 4xx instead of a 500.

- NUL characters in the URL's path, its query string or a submitted form: PostgreSQL cannot
  store or even compare text holding one, SQLite cuts it short. Refused with 400.
- Ids in URLs (`<int:...>`) larger than a database integer: the route does not match (404).
- Page numbers: `parse_page` (core/pagination.py) refuses those past MAX_PAGE.
- JSON bodies: `parse_json` for the signed webhook bodies, and the app's JSON provider for
  `request.get_json()`, refuse nesting deeper than MAX_JSON_DEPTH, NUL and lone surrogates
  (text no database can store) as invalid JSON; each endpoint answers that with its own 4xx.
"""

import json
import math
import re

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import lazy_gettext as _l
from werkzeug.routing import IntegerConverter

from core.errors import DomainError

# The largest id a row can have: every id column is an INTEGER (32 bits on PostgreSQL, which
# refuses a larger number in a query with an error rather than finding no row).
ID_MAX = 2**31 - 1
# Far deeper than any payload a shop or an API client sends (Stripe's are under 10 levels).
MAX_JSON_DEPTH = 64
# What no text column can hold: NUL (PostgreSQL) and halves of a surrogate pair (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_FORM_BODY = "application/x-www-form-urlencoded"


class MalformedInput(DomainError):
    status = 400
    code = "malformed_input"
    message = _l("The request holds a NUL character, which no field accepts.")


class UnusableJson(ValueError):
    """A body that is not JSON this app can store; a ValueError, as json's own errors are."""


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` that matches only what fits in a database id (up to ID_MAX)."""

    def __init__(self, map, fixed_digits=0, min=None, max=ID_MAX, signed=False):  # noqa: A002 - werkzeug's names
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class CheckedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that `request.get_json()` refuses what `parse_json` refuses."""

    def loads(self, s, **kwargs):
        return parse_json(s)


def register_input_checks(app: Flask) -> None:
    """Before the blueprints: the `int` converter applies to the routes they add."""
    app.url_map.converters["int"] = BoundedIntConverter
    app.json = CheckedJSONProvider(app)
    app.before_request(refuse_nul)


def refuse_nul() -> None:
    """400 for a NUL anywhere in the path, the query string or a form, before any view runs."""
    if "\x00" in request.path or _holds_nul(request.args):
        raise MalformedInput()
    if request.mimetype == _FORM_BODY:
        # Keep the raw body readable for the views that verify a signature over it.
        request.get_data(cache=True)
    elif "form" not in request.__dict__:
        # A multipart body not read yet (the CSRF check reads those of every form it guards)
        # is left to its view: an upload view raises the body limit before reading it.
        return
    if _holds_nul(request.form):
        raise MalformedInput()


def _holds_nul(values) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in values.items(multi=True))


def parse_json(body: bytes | str) -> object:
    """The JSON value of `body`; UnusableJson for anything json.loads refuses, for nesting
    deeper than MAX_JSON_DEPTH, for text holding NUL or a lone surrogate, and for a number that
    is not finite."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise UnusableJson(f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.") from None
    except ValueError:
        raise UnusableJson("The body is not valid JSON.") from None
    check_json(value)
    return value


def check_json(value: object) -> None:
    """UnusableJson unless every level is within MAX_JSON_DEPTH, every key and string is
    storable text and every number finite. Walks without recursion, so no depth can exhaust
    the stack here."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise UnusableJson("The JSON holds a NUL character or a lone surrogate.")
            continue
        if isinstance(item, float) and not math.isfinite(item):
            # json reads NaN, Infinity and 1e400 as floats; no JSON column can hold them.
            raise UnusableJson("The JSON holds a number that is not finite (NaN or Infinity).")
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise UnusableJson(f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children)


def whole_number(raw: str | int | None) -> int | None:
    """A filter's id: ASCII digits (or an int) that fit in a database integer; None for
    anything else (absent, "abc", "²", a number no row can have)."""
    text = "" if raw is None else str(raw).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(ID_MAX)):
        return None
    number = int(text)
    return number if number <= ID_MAX else None
