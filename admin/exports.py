"""CSV exports: `/admin/export/<table>.csv` streams any registered table with the filters of
its screen.

Each screen declares its tables next to its queries (`CSV_EXPORTS`, a tuple of `CsvExport`):
the permission that guards the screen, the columns, and the same query builder the screen
uses for its filters, so the file holds exactly the rows the page lists. The app factory
registers them (`register`) in the app's own registry. Rows are streamed from the database
in batches; cells that a spreadsheet would run as a formula are defused.

Every export is written in one style, checked when it is registered: headers in snake_case,
money as a decimal amount in its currency's decimals ("12.50", "500" for JPY, never minor
units) with the currency in a column of its own (`money_cell`, `currency_cell`), and people's
details masked exactly as the screen offering the file shows them.
"""

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    render_template,
    request,
    stream_with_context,
)
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from admin.policy import role_can
from core.errors import DomainError
from core.money import exponent
from extensions import db

bp = Blueprint("exports", __name__)

# Spreadsheets run a cell that starts with one of these as a formula (OWASP CSV injection);
# compared after NFKC, so the full-width and small forms ("＝", "﹢", "－", "＠") count too.
_FORMULA_STARTS = frozenset("=+-@")
# Where a spreadsheet may cut a cell in two, whatever list separator its locale uses (",", ";"
# or tab; "，" and "；" after NFKC) or when it ignores quotes around a line break: the piece
# after one is read as a cell of its own, so it must not start a formula either.
_SEPARATORS = frozenset(",;\t\r\n")
# Skipped when looking for a piece's first character: spaces, and the quote around a field.
_SKIPPED = frozenset(' "')
# Every character above is ASCII: plain ASCII text without any of them is left as it is.
_ASCII_RISKS = _FORMULA_STARTS | _SEPARATORS
_BATCH = 1000


_REGISTRY = "csv_exports"

# The one header style of every file: lower-case words joined by underscores.
HEADER_STYLE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


@dataclass(frozen=True)
class CsvExport:
    name: str  # the file's name, and the URL's
    permission: str
    columns: tuple[tuple[str, Callable], ...]  # (header, value of a row)
    query: Callable[[MultiDict], object]  # the screen's filters -> a Select


def register(app: Flask, *groups: Iterable[CsvExport]) -> None:
    """Make each group's exports downloadable in `app`; a misspelt permission, a name used
    twice or a header out of style fails here, when the app is made."""
    exports = app.extensions.setdefault(_REGISTRY, {})
    for export in (export for group in groups for export in group):
        role_can(None, export.permission)
        if export.name in exports:
            raise ValueError(f"two CSV exports are named {export.name!r}")
        headers = [str(header) for header, _ in export.columns]  # lazy titles: the source words
        for header in headers:
            if not HEADER_STYLE.fullmatch(header):
                raise ValueError(f"{export.name}.csv: header {header!r} is not snake_case")
        if len(set(headers)) != len(headers):
            raise ValueError(f"{export.name}.csv names a column twice")
        exports[export.name] = export


def registered(app: Flask) -> dict[str, CsvExport]:
    return dict(app.extensions.get(_REGISTRY, {}))


def money_cell(amount: int | None, currency: str, kind: str | None = None) -> Decimal | int | None:
    """A stored amount as the files show money: 1250 USD -> 12.50, 500 JPY -> 500; points
    (not money) as their whole number."""
    if amount is None:
        return None
    if kind == "points":
        return amount
    return Decimal(amount).scaleb(-exponent(currency))


def currency_cell(currency: str | None, kind: str | None = None) -> str | None:
    """The currency column beside a money cell: empty for points, which have none."""
    return None if kind == "points" else currency


def safe_cell(value) -> str | int | float | Decimal:
    """A value as a CSV cell: numbers stay numbers; text a spreadsheet would evaluate, at its
    start or after any separator inside it, gets an apostrophe there, which spreadsheets show
    as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return defuse(str(value))


def defuse(text: str) -> str:
    """`text` with an apostrophe at the start of each piece a spreadsheet could read as a
    formula: the cell's start (also before a leading tab or line break) and each place right
    after a separator."""
    if text.isascii() and not _ASCII_RISKS.intersection(text):
        return text  # the common case: nothing a spreadsheet could read as a formula
    insert_at = []
    piece_start, looking = 0, True  # where the current piece starts; its first char not seen
    for index, char in enumerate(text):
        plain = char if char.isascii() else unicodedata.normalize("NFKC", char)  # ASCII: itself
        if plain in _SEPARATORS:
            if index == 0:
                insert_at.append(0)
            piece_start, looking = index + 1, True
        elif looking and (plain in _SKIPPED or plain.isspace()):
            continue
        elif looking:
            if plain[:1] in _FORMULA_STARTS:
                insert_at.append(piece_start)
            looking = False
    for index in reversed(insert_at):
        text = text[:index] + "'" + text[index:]
    return text


def csv_lines(export: CsvExport, rows: Iterable) -> Iterable[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        line = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return line

    writer.writerow([header for header, _ in export.columns])
    yield take()
    for row in rows:
        writer.writerow([safe_cell(value(row)) for _, value in export.columns])
        yield take()


@bp.get("/export/<name>.csv")
def export_csv(name: str):
    export = current_app.extensions.get(_REGISTRY, {}).get(name)
    if export is None:
        abort(404)
    if not role_can(current_user.role, export.permission):
        abort(403)
    try:
        query = export.query(request.args)
    except DomainError as error:  # the screen's filters refused: say which, as the screen does
        page = render_template("admin/export_refused.html", name=name, message=error.message)
        return page, error.status
    rows = _rows(query)
    response = Response(stream_with_context(csv_lines(export, rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _rows(query) -> Iterable:
    """Run the query only when streaming starts: the view's app context (and with it the
    session and its server-side cursor) is torn down before the body is sent."""
    rows = db.session.execute(query.execution_options(yield_per=_BATCH))
    yield from rows.scalars() if _is_entity_query(query) else rows


def _is_entity_query(query) -> bool:
    """A select of one mapped class hands rows as objects; a select of columns as rows."""
    descriptions = query.column_descriptions
    return len(descriptions) == 1 and descriptions[0].get("entity") is descriptions[0].get("type")


export_csv.required_permission = "per-table"
