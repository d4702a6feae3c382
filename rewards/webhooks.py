"""Conversions from other systems: the signed events API, code issuing, external referrals."""

import binascii
import logging
import time

from flask import Blueprint, current_app, jsonify, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core import api_keys
from core.database import insert_unless_present, writes_on_get
from core.errors import DomainError
from extensions import csrf, db, limiter
from models import EventInbox, utcnow
from referral import claims
from referral import services as referral_services
from rewards import conversions, customers, tasks
from rewards.events import EventIn, counts_refusals, unhandled

log = logging.getLogger(__name__)

webhooks_bp = Blueprint("webhooks", __name__)
# Senders authenticate by signature or API key, not by a browser session.
csrf.exempt(webhooks_bp)

# Staff roles that may issue codes from their logged-in browser.
CODE_ISSUING_ROLES = ("manager", "admin")


class SignatureRejected(DomainError):
    status = 401
    code = "bad_signature"
    message = _l("The webhook signature does not match.")


class SignatureMissing(DomainError):
    status = 400
    code = "missing_signature"
    message = _l("webhook-id, webhook-timestamp and webhook-signature headers are required.")


class StaleTimestamp(DomainError):
    status = 400
    code = "bad_timestamp"
    message = _l("webhook-timestamp must be a Unix time within 5 minutes of now.")


class UnknownEvent(DomainError):
    status = 404
    code = "unknown_event"
    message = _l("There is no such event of yours.")


class NotConfigured(DomainError):
    status = 503
    code = "not_configured"
    message = _l("This endpoint is not configured on the server yet.")


def _limit() -> str:
    return current_app.config["EVENTS_LIMITS"]


@webhooks_bp.post("/api/v1/events")
@limiter.limit(_limit)
@counts_refusals("api")
def receive_event():
    body = request.get_data(cache=False)
    sender = _authenticated_sender(body)
    event = conversions.parse_api_event(body)
    if event is None:
        return jsonify(unhandled("api").as_json())
    if _prefers_async():
        return _acknowledge(sender, event)
    outcome = conversions.record_event(event)
    db.session.commit()
    return jsonify(outcome.as_json())


# Whose events an inbox row holds: the shared secret's signer, or one API key.
SIGNED_SENDER = "signature"


def _authenticated_sender(body: bytes) -> str:
    """Who sent the request (a signature over `body`, or an API key with events:write)."""
    key = api_keys.presented_key(request)
    if key is None:
        verify_standard_webhook(body, request.headers)
        return SIGNED_SENDER
    # A sender holding an API key with events:write needs no signature.
    return f"api_key:{api_keys.authenticate(key, 'events:write').id}"


def _prefers_async() -> bool:
    """`Prefer: respond-async` (RFC 7240) among the request's preferences."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            name = preference.split(";", 1)[0].split("=", 1)[0]
            if name.strip().lower() == "respond-async":
                return True
    return False


def _acknowledge(sender: str, event: EventIn):
    """Store the event for the worker in one statement and answer 202 with where its outcome
    will be; a retried delivery finds the row its first one stored. Refused at once, with
    nothing stored, whatever the synchronous intake would refuse before storing anything."""
    conversions.check_event(event)
    inbox = EventInbox.__table__  # Core: none of the ORM's bulk machinery on the hot path
    inbox_id = db.session.execute(
        insert_unless_present(inbox, ["sender", "kind", "external_id"])
        .values(
            sender=sender,
            kind=event.kind,
            external_id=event.external_id,
            payload=event.payload,
            received_at=utcnow(),
            attempts=0,
        )
        .returning(inbox.c.id)
    ).scalar()
    if inbox_id is None:
        inbox_id = db.session.scalar(
            select(EventInbox.id).where(
                EventInbox.sender == sender,
                EventInbox.kind == event.kind,
                EventInbox.external_id == event.external_id,
            )
        )
    tasks.process_events_soon()
    db.session.commit()
    location = url_for(".event_status", inbox_id=inbox_id)
    response = jsonify(id=inbox_id, status="queued")
    response.status_code = 202
    response.headers["Location"] = location
    response.headers["Preference-Applied"] = "respond-async"
    return response


@webhooks_bp.get("/api/v1/events/<int:inbox_id>")
@limiter.limit(_limit)
@writes_on_get  # an API key's last use is written
def event_status(inbox_id: int):
    """An event acknowledged with 202: queued, or processed with the answer the synchronous
    request would have had. Only its sender may read it: the same API key, or a signature
    (the events secret) over an empty body."""
    sender = _authenticated_sender(b"")
    row = db.session.get(EventInbox, inbox_id)
    if row is None or row.sender != sender:
        raise UnknownEvent()
    processed = row.processed_at is not None
    answer = {
        "id": row.id,
        "status": "processed" if processed else "queued",
        "received_at": row.received_at.isoformat(),
        "processed_at": row.processed_at.isoformat() if processed else None,
        "outcome": row.outcome,
        "outcome_status": row.outcome_status,
    }
    db.session.commit()  # the key's last use
    return jsonify(answer)


def verify_standard_webhook(body: bytes, headers) -> None:
    """Standard Webhooks: HMAC-SHA256 over "<id>.<timestamp>.<body>" with any of the
    configured secrets (a comma-separated list while rotating)."""
    secrets = [s.strip() for s in (current_app.config["EVENTS_WEBHOOK_SECRET"] or "").split(",")]
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        raise NotConfigured(_("EVENTS_WEBHOOK_SECRET is not set on the server."))
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = _well_formed_signatures(headers.get("webhook-signature", ""))
    if not message_id or not timestamp or not headers.get("webhook-signature"):
        _refuse(SignatureMissing())
    if not signatures:
        _refuse(SignatureRejected())
    try:
        sent_at = int(timestamp)
    except ValueError:
        _refuse(StaleTimestamp("webhook-timestamp must be a whole number of seconds."))
    if abs(time.time() - sent_at) > current_app.config["WEBHOOK_TOLERANCE_SECONDS"]:
        _refuse(StaleTimestamp())
    trimmed = {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join(signatures),
    }
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise conversions.InvalidEvent("The body must be UTF-8 JSON.") from None
    for secret in secrets:
        try:
            Webhook(secret).verify(text, trimmed, json_parse=False)
            return
        except WebhookVerificationError:
            continue
    _refuse(SignatureRejected())


def _well_formed_signatures(header: str) -> list[str]:
    """Only `v1,<base64>` entries; anything else (non-ASCII bytes too) is ignored, so a junk
    entry beside a valid one cannot turn into an error."""
    kept = []
    for entry in header.split():
        version, _comma, value = entry.partition(",")
        if version != "v1" or not value or not value.isascii():
            continue
        try:
            binascii.a2b_base64(value.encode())
        except binascii.Error:
            continue
        kept.append(entry)
    return kept


def _refuse(error: DomainError):
    log.warning("events webhook refused: %s", error.code)
    raise error


@webhooks_bp.post("/codes/issue")
@limiter.limit(_limit)
def issue_code():
    _authorize("codes:issue", staff_roles=CODE_ISSUING_ROLES)
    data = _json_or_form()
    user = customers.find_or_create(_text(data, "external_id"), _text(data, "email"), utcnow())
    if user is None:
        raise conversions.InvalidEvent("Give the customer's external_id or a valid email.")
    program = referral_services.default_program()
    code = referral_services.active_code(user, program) or referral_services.issue_code(
        user, program
    )
    db.session.commit()
    return jsonify(
        participant_id=user.id,
        external_id=user.external_id,
        email=user.email,
        code=code.code,
        link=referral_services.referral_link(code.code),
    )


@webhooks_bp.post("/referral/process_referral")
@limiter.limit(_limit)
def process_referral():
    _authorize("referrals:write")
    data = _json_or_form()
    external_id, email = _text(data, "external_id"), _text(data, "email")
    ref_code = _text(data, "ref_code") or _text(data, "referral_code")
    if not (external_id or email):
        raise conversions.InvalidEvent("Give the customer's external_id or email.")
    code = referral_services.find_active_code(ref_code)
    if code is None:
        raise referral_services.CodeNotFound()
    existing = customers.find(external_id, email)
    if existing is not None:
        claims.check_late_referral(existing, code.program, utcnow())
    event = EventIn(
        source="api",
        kind="signup",
        external_id=f"process_referral:{external_id or email.lower()}",
        customer_external_id=external_id,
        customer_email=email,
        ref_code=ref_code,
        payload=data,
    )
    outcome = conversions.record_event(event)
    db.session.commit()
    return jsonify(outcome.as_json())


def _authorize(scope: str, staff_roles: tuple[str, ...] = ()) -> None:
    """An API key with `scope`, or (where allowed) a staff session with its CSRF token."""
    raw = api_keys.presented_key(request)
    if raw is None and staff_roles and current_user.is_authenticated:
        if current_user.role not in staff_roles:
            raise api_keys.MissingScope("Your role may not issue codes.")
        csrf.protect()
        return
    api_keys.authenticate(raw, scope)


def _json_or_form() -> dict:
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise conversions.InvalidEvent("The body must be a JSON object.")
        return data
    return request.form.to_dict()


def _text(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise conversions.InvalidEvent(f"{key} must be a string.")
    return str(value).strip()[:200] or None
