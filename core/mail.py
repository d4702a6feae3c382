"""Email for every part of the product: links that work outside a request, and the job that
sends one message (queued with core.jobs.enqueue, so only a committed change sends mail)."""

import logging
from urllib.parse import urlsplit

from flask import current_app, has_request_context, url_for

from core.jobs import job
from core.templating import mask_email
from extensions import mail

log = logging.getLogger(__name__)

# smtplib's errors, refused or reset connections, timeouts and DNS failures are all OSError:
# worth another try later. Anything else (a misconfigured backend, a bug) fails at once.
SEND_RETRY_ERRORS = (OSError,)
# In a worker: 5 more tries, waits doubling from 5 s (jittered), so up to ~2.5 minutes in all.
# Eager (no broker) there is no later: one try, whose Retry core.jobs.enqueue logs.
SEND_MAX_RETRIES = 5
SEND_BACKOFF_SECONDS = 5


# The name predates this module; workers and queued messages know the job by it.
@job(
    "rewards.send_email",
    autoretry_for=SEND_RETRY_ERRORS,
    retry_backoff=SEND_BACKOFF_SECONDS,
    retry_backoff_max=600,
    max_retries=SEND_MAX_RETRIES,
)
def send_email(to: str, subject: str, body: str) -> None:
    """Send one plain-text email. Arguments are plain strings, so it reads no database."""
    mail.send_mail(subject, body, None, [to])
    log.info("sent %r to %s", subject, mask_email(to))


def absolute_url(endpoint: str, **values) -> str | None:
    """A full link for an email, SMS, webhook or QR code. Under PUBLIC_URL when set (always in
    production, which refuses to start without it): never from a Host header an attacker
    chose. Else, in development, from the current request, whose host core.hosts has checked
    against ALLOWED_HOSTS (or SERVER_NAME); None when neither exists."""
    public_url = current_app.config["PUBLIC_URL"]
    if public_url:
        parts = urlsplit(public_url)
        adapter = current_app.url_map.bind(
            parts.netloc, script_name=parts.path.rstrip("/") or "/", url_scheme=parts.scheme
        )
        return adapter.build(endpoint, values, force_external=True)
    if has_request_context() or current_app.config["SERVER_NAME"]:
        return url_for(endpoint, _external=True, **values)
    return None
