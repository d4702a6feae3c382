"""One place that turns errors into answers: JSON for API clients, a page for people."""

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, TooManyRequests

from extensions import db

log = logging.getLogger(__name__)

_PAGES = {400, 403, 404, 405, 429, 500, 503}
# app.extensions key: the paths only machines call (core/openapi.py registers its document's).
JSON_ONLY_PATHS = "inviteloop.json_only_paths"

# What an error says to people when nothing more precise was given: on its page and as a JSON
# error's `message` (werkzeug's own descriptions are English only).
STATUS_TEXTS = {
    400: _l(
        "We could not understand that request. If you submitted a form, go back, reload the "
        "page and try again."
    ),
    401: _l("Log in to see this page."),
    403: _l("Your account does not have access to this page."),
    404: _l("There is nothing at this address. It may have moved, or the link may be mistyped."),
    405: _l("This address does not accept that kind of request."),
    409: _l("Someone changed this at the same time. Reload the page and try again."),
    413: _l("What you sent is too large."),
    415: _l("This address does not accept that kind of content."),
    429: _l("You are going a little fast. Wait a minute, then try again."),
    500: _l("Something went wrong on our side."),
    503: _l("We cannot reach our database right now. Please try again in a few minutes."),
}


class DomainError(Exception):
    """A rule of the product refused the request; `code` is stable, `message` is for people."""

    status = 400
    code = "bad_request"
    message = _l("The request could not be processed.")
    field: str | None = None  # the form field the message belongs to, if any

    def __init__(self, message: str | None = None):
        # A lazy translation (the class's own message) becomes text in the language of the
        # request that raised it: flash, JSON and the session take only plain text.
        text = str(message or self.message)
        super().__init__(text)
        self.message = text


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


def status_text(status: int) -> str:
    return str(STATUS_TEXTS.get(status) or _("The request could not be processed."))


def error_response(status: int, code: str, message: str, detail: str | None = None):
    """`message` for API clients; people get the status's page, with `detail` when the
    refusal said something more precise (a domain error)."""
    message = str(message)  # a lazy translation becomes text in the current language
    if wants_json():
        return jsonify(error={"code": code, "message": message}), status
    template = f"errors/{status if status in _PAGES else 'generic'}.html"
    return render_template(
        template, status=status, message=message, detail=str(detail) if detail else None
    ), status


# Descriptions libraries write for machines (Flask-Limiter's "5 per 1 minute", Flask-WTF's
# CSRF reasons): people get the status's own text instead.
_LIBRARY_WORDED = (CSRFError, TooManyRequests)


def _described(error: HTTPException) -> str:
    """The error's own description when our code wrote one, else the status's text."""
    own = error.description and error.description != type(error).description
    if own and not isinstance(error, _LIBRARY_WORDED):
        return str(error.description)
    return status_text(error.code or 500)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        db.session.rollback()
        return error_response(error.status, error.code, error.message, detail=error.message)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        response = error_response(error.code or 500, code, _described(error))
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            body, status = response
            return body, status, {"Allow": ", ".join(error.valid_methods)}
        return response

    @app.errorhandler(OperationalError)
    def handle_database_down(error: OperationalError):
        # Unreachable or locked database: 503 tells senders to retry; nothing was committed.
        _safe_rollback()
        log.error("database unavailable: %s", error.orig.__class__.__name__)
        return error_response(503, "database_unavailable", status_text(503))

    @app.errorhandler(InternalServerError)
    def handle_server_error(error: InternalServerError):
        _safe_rollback()
        original = getattr(error, "original_exception", None)
        if isinstance(original, DBAPIError) and original.connection_invalidated:
            return error_response(503, "database_unavailable", status_text(503))
        return error_response(500, "internal_error", status_text(500))


def _safe_rollback() -> None:
    try:
        db.session.rollback()
    except DBAPIError:
        log.warning("rollback failed: the connection is already gone")
