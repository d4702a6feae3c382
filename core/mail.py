"""Email for every part of the product: links that work outside a request, and the job that
sends one message (written to the outbox with core.jobs.enqueue, so only a committed change
sends mail, and a mail server outage only delays it).

Each message carries a Message-ID made from its outbox row: a sender that died after the
server took the message but before the row was marked sent sends it again with the same
Message-ID, which mail clients and servers use to drop the repeat.

A message people may turn off carries its one-click unsubscribe link in `List-Unsubscribe`
with `List-Unsubscribe-Post` (RFC 8058): the mail client POSTs to the link, which carries a
signed token (`unsubscribe_signer`) instead of a session or a CSRF token."""

import logging
from email.utils import formataddr, parseaddr
from urllib.parse import urlsplit

from flask import current_app, has_request_context, url_for
from flask_mailman import EmailMessage
from itsdangerous import URLSafeSerializer

from core import branding, outbox
from core.jobs import enqueue, job
from core.templating import mask_email

log = logging.getLogger(__name__)


# The name predates this module; workers and queued messages know the job by it. A failure
# (refused, reset or timed-out connections, which MAIL_TIMEOUT bounds) raises, and the outbox
# tries again later.
@job("rewards.send_email")
def send_email(
    to: str,
    subject: str,
    body: str,
    unsubscribe_url: str | None = None,
    sender_name: str | None = None,
) -> None:
    """Send one plain-text email. Arguments are plain strings, so it reads no database.
    With `unsubscribe_url`, mail clients offer a one-click unsubscribe (RFC 8058);
    `sender_name` replaces the display name of MAIL_DEFAULT_SENDER (the brand's name)."""
    message = EmailMessage(subject, body, _sender(sender_name), [to])
    key = outbox.message_key(_sender_domain())
    if key:
        message.extra_headers["Message-ID"] = key
    if unsubscribe_url:
        message.extra_headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message.extra_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.send()
    log.info("sent %r to %s", subject, mask_email(to))


def queue_email(to: str, subject: str, body: str, unsubscribe_url: str | None = None) -> None:
    """Send an email once the current transaction commits, from the installation's brand."""
    enqueue(send_email, to, subject, body, unsubscribe_url, branding.current().sender_name)


def _sender(name: str | None) -> str | None:
    """The From header under the brand's name; None keeps MAIL_DEFAULT_SENDER as it is."""
    if not name:
        return None
    return formataddr((name, parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1]))


def unsubscribe_signer(purpose: str) -> URLSafeSerializer:
    """Signs the tokens of unsubscribe links, one salt per `purpose`. They do not expire: a
    link in an old email keeps working (the token names only whom and what to stop)."""
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"unsubscribe.{purpose}")


_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


def canonical_email(email: str) -> str:
    """One spelling per mailbox: "+tags" dropped everywhere, dots too on Gmail."""
    local, _, domain = email.lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in _GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def _sender_domain() -> str:
    address = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1]
    return address.rpartition("@")[2] or "localhost"


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
    running = outbox.running()
    if running is not None and running.link_root:
        # A job of the outbox: the root of the request that caused it, checked back then.
        root = urlsplit(running.link_root)
        adapter = current_app.url_map.bind(
            root.netloc, script_name=root.path.rstrip("/") or "/", url_scheme=root.scheme
        )
        return adapter.build(endpoint, values, force_external=True)
    return None
