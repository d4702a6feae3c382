"""CSV exports: `/admin/export/<table>.csv` streams any registered table with the filters of
its screen.

A screen registers its table once (`register`) with the permission that guards the screen,
the columns, and the same query builder the screen uses for its filters, so the file holds
exactly the rows the page lists. Rows are streamed from the database in batches; cells that
a spreadsheet would run as a formula are defused.
"""

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from flask import Blueprint, Response, abort, request, stream_with_context
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from admin.policy import role_can
from extensions import db

bp = Blueprint("exports", __name__)

# Spreadsheets run a cell that starts with one of these as a formula (OWASP CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_BATCH = 1000


@dataclass(frozen=True)
class Export:
    permission: str
    columns: tuple[tuple[str, Callable], ...]  # (header, value of a row)
    query: Callable[[MultiDict], object]  # the screen's filters -> a Select


_exports: dict[str, Export] = {}


def register(name: str, permission: str, columns, query) -> None:
    role_can(None, permission)  # a misspelt permission fails at import
    _exports[name] = Export(permission, tuple(columns), query)


def registered() -> dict[str, Export]:
    return dict(_exports)


def safe_cell(value) -> str | int:
    """A value as a CSV cell: numbers stay numbers; text a spreadsheet would evaluate gets a
    leading apostrophe, which spreadsheets show as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def csv_lines(export: Export, rows: Iterable) -> Iterable[str]:
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
    export = _exports.get(name)
    if export is None:
        abort(404)
    if not role_can(current_user.role, export.permission):
        abort(403)
    rows = _rows(export.query(request.args))
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
