"""The outbox for staff: what waits to leave (emails, texts, webhook attempts), what is stuck
and what is dead, with "retry now". Reads core/outbox.py's table; changes only through it."""

from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, distinct, or_, select
from werkzeug.datastructures import MultiDict

from core import audit, outbox
from core.errors import DomainError
from extensions import db
from models import OutboxMessage, utcnow

# "stuck": pending and already failed at least once, or due for longer than /health allows.
STATUS_FILTERS = ("waiting", "stuck", "pending", "dead", "sent", "all")


class UnknownMessage(DomainError):
    status = 404
    code = "unknown_outbox_message"
    message = _l("There is no such message in the outbox.")


class AlreadySent(DomainError):
    status = 409
    code = "outbox_message_not_retryable"
    message = _l("This message was sent already, or is being sent right now: nothing to retry.")


@dataclass
class OutboxFilters:
    status: str = "waiting"
    job: str = ""
    errors: list[str] = field(default_factory=list)

    def as_args(self) -> dict[str, str]:
        return {
            name: value for name, value in (("status", self.status), ("job", self.job)) if value
        }


def outbox_filters(args: MultiDict) -> OutboxFilters:
    filters = OutboxFilters(job=(args.get("job") or "").strip()[:100])
    status = (args.get("status") or "waiting").strip()
    if status in STATUS_FILTERS:
        filters.status = status
    else:
        filters.errors.append(_("Unknown status filter; showing the waiting messages."))
    return filters


def outbox_query(filters: OutboxFilters) -> Select:
    """Oldest due first for what waits (the longest wait is the first to look at), newest
    first for sent messages."""
    query = select(OutboxMessage)
    now = utcnow()
    if filters.status == "waiting":
        query = query.where(OutboxMessage.status.in_((outbox.PENDING, outbox.DEAD)))
    elif filters.status == "stuck":
        overdue = now - timedelta(seconds=current_app.config["OUTBOX_BACKLOG_SECONDS"])
        query = query.where(
            OutboxMessage.status == outbox.PENDING,
            or_(OutboxMessage.attempts > 0, OutboxMessage.next_attempt_at < overdue),
        )
    elif filters.status != "all":
        query = query.where(OutboxMessage.status == filters.status)
    if filters.job:
        query = query.where(OutboxMessage.job == filters.job)
    if filters.status == "sent":
        return query.order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
    return query.order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)


def job_names() -> list[str]:
    return sorted(db.session.scalars(select(distinct(OutboxMessage.job))))


def get_message(message_id: int) -> OutboxMessage:
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        raise UnknownMessage()
    return message


def retry_now(message_id: int) -> OutboxMessage:
    """Make a waiting or dead message due now (delivered right after the commit by the
    running sender), and audit it."""
    message = get_message(message_id)
    before = {"status": message.status, "attempts": message.attempts}
    if not outbox.retry_now(message_id):
        raise AlreadySent()
    audit.record(
        "outbox.retry",
        "outbox_message",
        message_id,
        before=before,
        after={"status": outbox.PENDING, "job": message.job},
    )
    return message
