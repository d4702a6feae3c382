"""Integrations and the audit log: what the staff panel's admin screens do.

API keys live in core.api_keys (shared with `flask admin create-api-key`); outbound webhook
endpoints and their deliveries are managed here, delivery itself is rewards.outbound. Every
change is audit-logged in its own transaction; a signing secret is never written to the log.
The deliveries and the audit log are also CSV exports, with their pages' filters.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select, update
from werkzeug.datastructures import MultiDict

from admin.exports import CsvExport
from core import audit
from core.dates import midnight
from core.errors import DomainError
from core.inputs import whole_number
from extensions import db
from models import DELIVERY_STATUSES, WEBHOOK_EVENTS, AuditLog, WebhookDelivery, WebhookEndpoint
from rewards import outbound

_AUDITED = ("url", "description", "events", "active")


class UnknownEndpoint(DomainError):
    status = 404
    code = "unknown_endpoint"
    message = _l("There is no such webhook endpoint.")


class UnknownDelivery(DomainError):
    status = 404
    code = "unknown_delivery"
    message = _l("There is no such webhook delivery.")


class InvalidEvents(DomainError):
    code = "invalid_events"
    field = "events"
    message = _l("Choose at least one event: %(events)s.", events=", ".join(WEBHOOK_EVENTS))


class EndpointDisabled(DomainError):
    status = 409
    code = "endpoint_disabled"
    message = _l("This endpoint is disabled: enable it before redelivering.")


# --- Webhook endpoints ------------------------------------------------------------------


def create_endpoint(
    url: str, description: str, events: list[str], allow_private: bool
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        url=outbound.check_new_url(url, allow_private),
        description=(description or "").strip()[:200],
        events=_events(events),
        secret=outbound.new_signing_secret(),
        active=True,
    )
    db.session.add(endpoint)
    db.session.flush()
    audit.record(
        "webhook_endpoint.create",
        "webhook_endpoint",
        endpoint.id,
        after=audit.snapshot(endpoint, _AUDITED),
    )
    return endpoint


def update_endpoint(
    endpoint_id: int,
    *,
    url: str,
    description: str,
    events: list[str],
    active: bool,
    allow_private: bool,
) -> WebhookEndpoint:
    endpoint = locked_endpoint(endpoint_id)
    before = audit.snapshot(endpoint, _AUDITED)
    endpoint.url = outbound.check_new_url(url, allow_private)
    endpoint.description = (description or "").strip()[:200]
    endpoint.events = _events(events)
    endpoint.active = bool(active)
    old, new = audit.changes(before, audit.snapshot(endpoint, _AUDITED))
    if new:
        audit.record(
            "webhook_endpoint.update", "webhook_endpoint", endpoint.id, before=old, after=new
        )
    db.session.flush()
    return endpoint


def set_endpoint_active(endpoint_id: int, active: bool) -> WebhookEndpoint:
    """Enable or disable; pending deliveries of a disabled endpoint close as failed when
    their turn comes. A repeat of the current state changes nothing."""
    endpoint = locked_endpoint(endpoint_id)
    if endpoint.active != active:
        endpoint.active = active
        audit.record(
            "webhook_endpoint.enable" if active else "webhook_endpoint.disable",
            "webhook_endpoint",
            endpoint.id,
            before={"active": not active},
            after={"active": active},
        )
        db.session.flush()
    return endpoint


def delete_endpoint(endpoint_id: int) -> None:
    """Delete the endpoint and (by the foreign key's cascade) its delivery log."""
    endpoint = locked_endpoint(endpoint_id)
    audit.record(
        "webhook_endpoint.delete",
        "webhook_endpoint",
        endpoint.id,
        before=audit.snapshot(endpoint, _AUDITED),
    )
    db.session.delete(endpoint)
    db.session.flush()


def rotate_secret(endpoint_id: int) -> WebhookEndpoint:
    """A new signing secret; the old one stops working at once. The log says that it
    changed, never either value."""
    endpoint = locked_endpoint(endpoint_id)
    endpoint.secret = outbound.new_signing_secret()
    audit.record(
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint",
        endpoint.id,
        after={"secret": "rotated"},
    )
    db.session.flush()
    return endpoint


def locked_endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.scalar(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if endpoint is None:
        raise UnknownEndpoint()
    return endpoint


def get_endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise UnknownEndpoint()
    return endpoint


def endpoints_query() -> Select:
    return select(WebhookEndpoint).order_by(WebhookEndpoint.id)


def _events(events: list[str]) -> list[str]:
    chosen = [event for event in WEBHOOK_EVENTS if event in set(events or [])]
    if not chosen or len(chosen) != len(set(events)):
        raise InvalidEvents()
    return chosen


# --- Deliveries -------------------------------------------------------------------------


def redeliver(delivery_id: int) -> WebhookDelivery:
    """Send the same message (same id, same payload) again, with a fresh set of attempts."""
    delivery = db.session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if delivery is None:
        raise UnknownDelivery()
    if not delivery.endpoint.active:
        raise EndpointDisabled()
    before = {"status": delivery.status, "attempts": delivery.attempts}
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(status="pending", attempts=0, delivered_at=None),
        execution_options={"synchronize_session": False},
    )
    db.session.refresh(delivery)
    audit.record(
        "webhook_delivery.redeliver",
        "webhook_delivery",
        delivery.id,
        before=before,
        after={"status": "pending", "attempts": 0, "message_id": delivery.message_id},
    )
    outbound.queue_again(delivery)
    return delivery


def get_delivery(delivery_id: int) -> WebhookDelivery:
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise UnknownDelivery()
    return delivery


def deliveries_query(args: MultiDict) -> Select:
    """Deliveries, newest first, filtered by `endpoint_id`, `status` and `event`: the
    endpoint page and the `deliveries` CSV export share it."""
    query = select(WebhookDelivery).order_by(
        WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()
    )
    endpoint_id = whole_number(args.get("endpoint_id"))
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if args.get("status") in DELIVERY_STATUSES:
        query = query.where(WebhookDelivery.status == args["status"])
    if args.get("event") in WEBHOOK_EVENTS:
        query = query.where(WebhookDelivery.event_type == args["event"])
    return query


# --- The audit log ----------------------------------------------------------------------


@dataclass
class AuditFilters:
    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    since: date | None = None
    until: date | None = None
    errors: list[str] = field(default_factory=list)

    def as_args(self) -> dict:
        """The filters as query-string arguments (for the pager and the export link)."""
        values = {
            "actor": self.actor,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {key: value for key, value in values.items() if value}


def audit_filters(args: MultiDict) -> AuditFilters:
    filters = AuditFilters(
        actor=(args.get("actor") or "").strip()[:200],
        action=(args.get("action") or "").strip()[:60],
        target_type=(args.get("target_type") or "").strip()[:40],
        target_id=(args.get("target_id") or "").strip()[:40],
    )
    refusals = {
        "since": _l("From date must read YYYY-MM-DD; it was left out."),
        "until": _l("To date must read YYYY-MM-DD; it was left out."),
    }
    for name, refusal in refusals.items():
        raw = (args.get(name) or "").strip()
        try:
            setattr(filters, name, date.fromisoformat(raw) if raw else None)
        except ValueError:
            filters.errors.append(str(refusal))
    return filters


def audit_query(args: MultiDict) -> Select:
    """The audit log, newest first, with the page's filters (also the `audit` CSV export):
    actor (part of the email or label), action (a prefix: `webhook_endpoint.` finds them
    all), target type and id (exact), dates (inclusive, UTC)."""
    filters = audit_filters(args)
    query = select(AuditLog).order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
    if filters.actor:
        query = query.where(AuditLog.actor_label.icontains(filters.actor, autoescape=True))
    if filters.action:
        query = query.where(AuditLog.action.startswith(filters.action, autoescape=True))
    if filters.target_type:
        query = query.where(AuditLog.target_type == filters.target_type)
    if filters.target_id:
        query = query.where(AuditLog.target_id == filters.target_id)
    if filters.since:
        query = query.where(AuditLog.created_at >= midnight(filters.since))
    if filters.until:
        query = query.where(AuditLog.created_at < midnight(filters.until + timedelta(days=1)))
    return query


def audit_actions() -> list[str]:
    """The actions present in the log, for the filter's suggestions."""
    return list(db.session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))


def changed_fields(entry: AuditLog) -> list[tuple[str, object, object]]:
    """(field, before, after) for each field the entry mentions, for "before → after"."""
    before, after = entry.before or {}, entry.after or {}
    names = list(before) + [name for name in after if name not in before]
    return [(name, before.get(name), after.get(name)) for name in names]


# --- CSV exports ------------------------------------------------------------------------


def _json(value) -> str:
    return "" if value is None else current_app.json.dumps(value, sort_keys=True)


CSV_EXPORTS = (
    CsvExport(
        name="deliveries",
        permission="integrations.manage",
        columns=(
            (_l("id"), lambda row: row.id),
            (_l("endpoint_id"), lambda row: row.endpoint_id),
            (_l("message_id"), lambda row: row.message_id),
            (_l("event"), lambda row: row.event_type),
            (_l("status"), lambda row: row.status),
            (_l("attempts"), lambda row: row.attempts),
            (_l("last_status_code"), lambda row: row.last_status_code),
            (_l("last_error"), lambda row: row.last_error),
            (_l("created_at"), lambda row: row.created_at),
            (_l("last_attempt_at"), lambda row: row.last_attempt_at),
            (_l("delivered_at"), lambda row: row.delivered_at),
        ),
        query=deliveries_query,
    ),
    CsvExport(
        name="audit",
        permission="audit.view",
        columns=(
            (_l("id"), lambda row: row.id),
            (_l("time"), lambda row: row.created_at),
            (_l("actor"), lambda row: row.actor_label),
            (_l("action"), lambda row: row.action),
            (_l("target_type"), lambda row: row.target_type),
            (_l("target_id"), lambda row: row.target_id),
            (_l("before"), lambda row: _json(row.before)),
            (_l("after"), lambda row: _json(row.after)),
            (_l("ip"), lambda row: row.ip),
        ),
        query=audit_query,
    ),
)
