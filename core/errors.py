"""One place that turns errors into answers: JSON for API clients, a page for people."""

import logging

from flask import Flask, current_app, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from extensions import db

log = logging.getLogger(__name__)

_PAGES = {400, 403, 404, 405, 429, 500, 503}
# app.extensions key: the paths only machines call (core/openapi.py registers its document's).
JSON_ONLY_PATHS = "inviteloop.json_only_paths"


class DomainError(Exception):
    """A rule of the product refused the request; `code` is stable, `message` is for people."""

    status = 400
    code = "bad_request"
    message = "The request could not be processed."
    field: str | None = None  # the form field the message belongs to, if any

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message


class InvalidFilter(DomainError):
    """A filter of a staff screen (a day, a range) cannot be used; `field` names it."""

    code = "invalid_filter"

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def wants_json() -> bool:
    if request.path.startswith("/api/") or request.is_json:
        return True
    if request.path in current_app.extensions.get(JSON_ONLY_PATHS, ()):
        return True  # a partner's form post or a webhook gets the documented JSON error
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str):
    if wants_json():
        return jsonify(error={"code": code, "message": message}), status
    template = f"errors/{status if status in _PAGES else 'generic'}.html"
    return render_template(template, status=status, message=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        db.session.rollback()
        return error_response(error.status, error.code, error.message)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        response = error_response(error.code or 500, code, error.description or error.name)
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            body, status = response
            return body, status, {"Allow": ", ".join(error.valid_methods)}
        return response

    @app.errorhandler(OperationalError)
    def handle_database_down(error: OperationalError):
        # Unreachable or locked database: 503 tells senders to retry; nothing was committed.
        _safe_rollback()
        log.error("database unavailable: %s", error.orig.__class__.__name__)
        return error_response(503, "database_unavailable", ServiceUnavailable.description)

    @app.errorhandler(InternalServerError)
    def handle_server_error(error: InternalServerError):
        _safe_rollback()
        original = getattr(error, "original_exception", None)
        if isinstance(original, DBAPIError) and original.connection_invalidated:
            return error_response(503, "database_unavailable", ServiceUnavailable.description)
        return error_response(500, "internal_error", "Something went wrong on our side.")


def _safe_rollback() -> None:
    try:
        db.session.rollback()
    except DBAPIError:
        log.warning("rollback failed: the connection is already gone")
