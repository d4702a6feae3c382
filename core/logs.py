"""Where log lines go, what they look like, and what they may never say.

One handler on standard output, at the level LOG_LEVEL names. With LOG_LEVEL unset,
development keeps the lines written once per message sent (each email, each job Celery runs,
each outbox delivery) at WARNING: a developer's console, and `make run` with its demo seed,
show what happened rather than hundreds of deliveries of mail nobody receives. Production's
default, and any LOG_LEVEL set on purpose, writes them at that level.

LOG_FORMAT=json writes one JSON object per line (time, level, logger, message, request_id and
any `extra` fields) for a log collector; `text` (the default) one readable line.

Every request has an id: the caller's X-Request-ID when it is sane (letters, digits and
`._:-`, at most 128), else a new one. It is sent back in the X-Request-ID header, is on every
line logged while the request runs, and goes with the outbox messages the request wrote, so
the lines of the email or webhook it caused carry it too (core/outbox.py).

Whatever the format, every line passes through `redact` last: passwords, tokens, API keys,
webhook secrets and the token of a reset link never reach the output (docs/guarantees.md #36).
"""

import contextlib
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

from flask import Flask, request
from pythonjsonlogger.json import JsonFormatter

DEFAULT_LEVEL = "INFO"
LOG_FORMATS = ("text", "json")
# One line per email, per job run or per delivery attempt.
PER_MESSAGE_LOGGERS = ("core.mail", "core.outbox", "celery.app.trace", "celery.worker.strategy")
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
_JSON_FIELDS = ["levelname", "name", "message", "request_id"]
_JSON_NAMES = {"levelname": "level", "name": "logger"}

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


# --- what may never be written -------------------------------------------------------------

REDACTED = "[redacted]"
_SENSITIVE_NAMES = r"password|passwd|secret|token|api[_-]?key|authorization|credentials?"
_REDACTIONS = (
    # The token of a password reset link, whatever the host: the path alone is enough to use it.
    (re.compile(r"(/reset/)[^\s\"'<>?#/]+"), r"\1" + REDACTED),
    # An API key keeps its public prefix (which key it was), never its secret.
    (re.compile(r"\b(il_[0-9a-f]{8}_)[A-Za-z0-9_\-]+"), r"\1" + REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"), "whsec_" + REDACTED),
    (re.compile(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=\-]+"), REDACTED),
    # name=value, name: value, "name": "value" for any name that says it is a secret; the
    # value runs to the next quote or separator, spaces included (a passphrase has them).
    (
        re.compile(
            rf"(?i)((?:[\w-]*(?:{_SENSITIVE_NAMES})[\w-]*)\\?[\"']?\s*[:=]\s*\\?[\"']?)"
            r"(?!\[redacted\])[^\s\"'\\&,;}\]][^\"'\\&,;}\]\n]*"
        ),
        r"\1" + REDACTED,
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def shows_a_secret(text: str) -> bool:
    """Whether `text` still holds something `redact` would take out (what tests/log_scan.py
    looks for in every line the suite's log handlers write)."""
    return redact(text) != text


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then takes secrets out of the whole line (tracebacks too)."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


class RequestIdFilter(logging.Filter):
    """Puts the current request id (None outside a request or its jobs) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        # "time": ISO 8601 in UTC, which collectors parse without a format string.
        inner = JsonFormatter(_JSON_FIELDS, rename_fields=_JSON_NAMES, timestamp="time")
    else:
        inner = logging.Formatter(_TEXT_FORMAT)
    return RedactingFormatter(inner)


def configure_logging(config) -> None:
    root = logging.getLogger()
    handler = _app_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler.addFilter(RequestIdFilter())
        handler._inviteloop = True
        root.addHandler(handler)
    handler.setFormatter(make_formatter(config["LOG_FORMAT"]))
    root.setLevel(config["LOG_LEVEL"] or DEFAULT_LEVEL)
    quiet = per_message_lines_hidden(config)
    for name in PER_MESSAGE_LOGGERS:
        # NOTSET: the root's level again, when an earlier app in this process had raised it.
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


def _app_handler() -> logging.Handler | None:
    return next((h for h in logging.getLogger().handlers if getattr(h, "_inviteloop", False)), None)


def logging_configured() -> bool:
    """Whether an app in this process has set up the log output (migrations/env.py asks)."""
    return _app_handler() is not None


def per_message_lines_hidden(config) -> bool:
    return config["LOG_LEVEL"] is None and config["APP_ENV"] != "production"


# --- request ids ---------------------------------------------------------------------------


def current_request_id() -> str | None:
    return _request_id.get()


@contextlib.contextmanager
def request_id_bound(request_id: str | None) -> Iterator[None]:
    """Within this block log lines carry `request_id` (a job run for that request)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def register_request_ids(app: Flask) -> None:
    """Give each request its id before any other step runs, and send it back."""
    app.before_request_funcs.setdefault(None, []).insert(0, _take_request_id)
    app.after_request(_send_request_id)
    app.teardown_request(_forget_request_id)


def request_id_for(offered: str) -> str:
    """The id a request offered in X-Request-ID if it is a sane one, else a new one."""
    return offered if _SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


def _take_request_id() -> None:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    request.environ["inviteloop.request_id"] = _request_id.set(request_id_for(offered))


def _send_request_id(response):
    request_id = _request_id.get()
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _forget_request_id(_error=None) -> None:
    token = request.environ.pop("inviteloop.request_id", None)
    if token is not None:
        _request_id.reset(token)
