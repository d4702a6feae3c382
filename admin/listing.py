"""What every list screen of the panel does with its query string: a page of rows, and the
filters to carry into page links, exports and redirects."""

from flask import current_app, request

from core.pagination import parse_page
from extensions import db


def page_size() -> int:
    return current_app.config["ADMIN_PAGE_SIZE"]


def paginate(query, page_argument: str = "page"):
    """The page the query string asks for (past the end: an empty page, never a 404)."""
    page = parse_page(request.args.get(page_argument))
    return db.paginate(query, page=page, per_page=page_size(), error_out=False)


def kept_filters(*names: str) -> dict[str, str]:
    """The filters among `names` that the query string gives a value."""
    return {name: request.args[name] for name in names if request.args.get(name)}
