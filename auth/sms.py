"""Sending text messages, through the backend SMS_BACKEND names.

- console (default): one INFO log line with the number and the text (development; the text
  carries the one-time code, so never use it in production);
- http: POST {"to": <E.164>, "body": <text>} as JSON to SMS_HTTP_URL, with
  "Authorization: Bearer <SMS_HTTP_TOKEN>" when a token is set. Any answer but 2xx, a
  redirect, a timeout or a connection error raises SmsUnavailable.

A code's text goes through the outbox (`send_code_text`, queued with the code in one
transaction): no request waits on the provider, and a provider that is down or refusing is
tried again (5 s, 10 s, 20 s, ...) for as long as the code can still be used. In the embedded
mode the process's sender is woken right after the commit, so the text leaves at once. Once
sent, the outbox keeps only the code's id (core.outbox drops the other arguments), so the code
itself is in the database in clear only while its text waits.
"""

import http.client
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core.errors import DomainError
from core.jobs import job
from extensions import db
from models import PhoneCode, utcnow

log = logging.getLogger("inviteloop.sms")


class SmsUnavailable(DomainError):
    status = 503
    code = "sms_unavailable"
    message = _l("We could not send the text message just now. Please try again in a few minutes.")


def send_sms(to: str, body: str) -> None:
    """Send `body` to the number `to` (E.164); raises SmsUnavailable when it could not."""
    BACKENDS[current_app.config["SMS_BACKEND"]](to, body)


@job("auth.send_code_text")
def send_code_text(code_id: int, to: str, body: str) -> None:
    """Text one code (run from the outbox). A code already used, replaced by a newer one or
    expired is not worth a text: done without sending. SmsUnavailable: tried again later."""
    waiting = db.session.scalar(
        select(PhoneCode.id).where(
            PhoneCode.id == code_id, PhoneCode.used_at.is_(None), PhoneCode.expires_at > utcnow()
        )
    )
    db.session.commit()  # no transaction (nor SQLite's lock) held while the provider answers
    if waiting is None:
        log.info("SMS code %s no longer usable: not sent", code_id)
        return
    send_sms(to, body)


def _console(to: str, body: str) -> None:
    log.info("SMS to %s: %s", to, body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A provider's API answers directly; a redirect would turn the POST into a GET elsewhere.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _http(to: str, body: str) -> None:
    config = current_app.config  # SMS_HTTP_URL is an http(s) URL: config._check_services
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if config["SMS_HTTP_TOKEN"]:
        headers["Authorization"] = f"Bearer {config['SMS_HTTP_TOKEN']}"
    request = urllib.request.Request(  # noqa: S310 - the operator's configured http(s) URL
        config["SMS_HTTP_URL"],
        data=json.dumps({"to": to, "body": body}).encode(),
        headers=headers,
        method="POST",
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=config["SMS_HTTP_TIMEOUT_SECONDS"]) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        error.close()
        status = error.code
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        # The reason only (never the URL's query or the token) goes to the log.
        log.warning("SMS provider unreachable: %s", getattr(error, "reason", error))
        raise SmsUnavailable() from None
    if not 200 <= status < 300:
        log.warning("SMS provider refused the message: HTTP %s", status)
        raise SmsUnavailable()


BACKENDS: dict[str, Callable[[str, str], None]] = {"console": _console, "http": _http}
