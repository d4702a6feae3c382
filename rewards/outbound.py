"""Outbound webhooks: InviteLoop's own events, signed per Standard Webhooks, for partner systems.

Publishing. Receivers on the referral and rewards signals write one `WebhookDelivery` per
active endpoint subscribed to the event, inside the transaction that caused it, with an outbox
row for its first attempt (`core.jobs.enqueue`): a rolled-back change sends nothing, and no
request waits on a receiver. Each attempt is one outbox row; the row of a failed attempt
writes the next one, due after the backoff.
All endpoints receive the same message id for one event, so a receiver can deduplicate.

Payloads are `{"type", "timestamp", "data"}`. `data` carries what a partner needs to act: ids,
statuses, amounts in minor units with their currency, the program, the shop's own customer id
(`external_id`) and order references, a coupon's code (the shop must honour it). Never names,
email addresses, phone numbers, IP addresses, device ids or fraud signals.

Delivery. An attempt is claimed with a conditional UPDATE (status pending and the attempt
count the caller saw), so a Celery retry, the sweep and a redeliver never send one attempt
twice; the claim is committed before the request goes out, and no transaction stays open
while it waits. The URL is checked again at delivery time (rewards.outbound_http).
"""

import base64
import http.client
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload
from standardwebhooks import Webhook

from core import counters
from core.jobs import enqueue, job
from extensions import db
from models import Program, Referral, Reward, User, WebhookDelivery, WebhookEndpoint, utcnow
from rewards.outbound_http import UnsafeUrl, check_new_url, post

log = logging.getLogger(__name__)

# Waits before attempt n+1: 5 s, 20 s, 80 s, 5 min, 21 min, 85 min, 5.7 h, then 10 h each, so
# the default 8 attempts span about 7.5 hours of a receiver being down.
BACKOFF_BASE_SECONDS = 5
BACKOFF_FACTOR = 4
BACKOFF_MAX_SECONDS = 10 * 3600
# The sweep leaves a delivery alone this long past its due time, so the Celery retry that is
# already scheduled for it normally goes first; the sweep is the safety net.
SWEEP_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 500

__all__ = ["UnsafeUrl", "check_new_url", "publish", "retry_due"]


# --- Publishing -------------------------------------------------------------------------


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def publish(event_type: str, build: Callable[[], Iterable[dict]], now: datetime) -> int:
    """Write one delivery per subscribed endpoint for each `data` that `build` yields (called
    only when someone listens) and queue them for after the commit; returns how many."""
    endpoints = [
        endpoint
        for endpoint in db.session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.active).order_by(WebhookEndpoint.id)
        )
        if event_type in (endpoint.events or [])
    ]
    if not endpoints:
        return 0
    deliveries = []
    for data in build():
        payload = {"type": event_type, "timestamp": now.isoformat(), "data": data}
        message_id = new_message_id()
        for endpoint in endpoints:
            delivery = WebhookDelivery(
                endpoint_id=endpoint.id,
                message_id=message_id,
                event_type=event_type,
                payload=payload,
                status="pending",
                attempts=0,
                created_at=now,
            )
            db.session.add(delivery)
            deliveries.append(delivery)
    db.session.flush()
    for delivery in deliveries:
        enqueue(deliver_webhook, delivery.id, 0)
    return len(deliveries)


# Receivers of the referral and rewards signals (connected by the app factory).


def publish_referral_created(referral: Referral, now: datetime) -> None:
    publish("referral.created", lambda: [referral_data(referral)], now)


def publish_referral_qualified(referral: Referral, now: datetime) -> None:
    publish("referral.qualified", lambda: [referral_data(referral)], now)


def publish_rewards_approved(_sender, reward_ids: list[int], now: datetime) -> None:
    if reward_ids:
        publish("reward.approved", lambda: rewards_data(reward_ids), now)


def publish_rewards_paid(_sender, reward_ids: list[int], now: datetime) -> None:
    if reward_ids:
        publish("reward.paid", lambda: rewards_data(reward_ids), now)


def referral_data(referral: Referral) -> dict:
    return {
        "id": referral.id,
        "status": referral.status,
        "source": referral.source,
        "program": _program(referral.program_id),
        "referrer": _person(referral.referrer),
        "referred": _person(referral.referred),
        "created_at": _iso(referral.created_at),
        "updated_at": _iso(referral.updated_at),
    }


def rewards_data(reward_ids: list[int]) -> list[dict]:
    rewards = db.session.scalars(
        select(Reward)
        .where(Reward.id.in_(reward_ids))
        .options(joinedload(Reward.beneficiary), joinedload(Reward.conversion))
        .order_by(Reward.id)
        .execution_options(populate_existing=True)
    )
    return [reward_data(reward) for reward in rewards]


def reward_data(reward: Reward) -> dict:
    conversion = reward.conversion
    return {
        "id": reward.id,
        "status": reward.status,
        "kind": reward.kind,
        "role": reward.role,
        "level": reward.level,
        "amount": reward.amount,
        "currency": reward.currency,
        "coupon_code": reward.coupon_code,
        "program": _program(reward.program_id),
        "beneficiary": _person(reward.beneficiary),
        "referral_id": reward.referral_id,
        "conversion": {
            "id": conversion.id,
            "source": conversion.source,
            "external_id": conversion.external_id,
            "order_id": conversion.order_id,
        },
        "payout_id": reward.payout_id,
        "available_at": _iso(reward.available_at),
        "paid_at": _iso(reward.paid_at),
    }


def _program(program_id: int) -> dict:
    program = db.session.get(Program, program_id)
    return {"id": program.id, "name": program.name}


def _person(user: User) -> dict:
    return {"id": user.id, "external_id": user.external_id}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- Delivery ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One claimed attempt, in plain values: nothing here needs the database to send."""

    delivery_id: int
    endpoint_id: int
    number: int
    message_id: str
    url: str
    secret: str
    body: str


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str | None  # None when the receiver answered 2xx


def backoff_seconds(attempts: int) -> int:
    """How long to wait after the `attempts`-th failed attempt."""
    return min(BACKOFF_BASE_SECONDS * BACKOFF_FACTOR ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)


def claim_attempt(delivery_id: int, seen_attempts: int, now: datetime) -> Attempt | None:
    """Count the next attempt if the delivery is still pending after `seen_attempts`;
    None when it is done, gone, or someone else claimed this attempt. A delivery for a
    disabled endpoint is closed as failed."""
    delivery = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
    if delivery is None or delivery.status != "pending":
        return None
    endpoint = delivery.endpoint
    if not endpoint.active:
        _close(delivery_id, seen_attempts, "failed", None, "endpoint disabled", now)
        return None
    claimed = db.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.attempts == seen_attempts,
        )
        .values(attempts=WebhookDelivery.attempts + 1, last_attempt_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount
    if not claimed:
        return None
    return Attempt(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        number=seen_attempts + 1,
        message_id=delivery.message_id,
        url=endpoint.url,
        secret=endpoint.secret,
        body=json.dumps(delivery.payload, separators=(",", ":")),
    )


def send(attempt: Attempt, timeout: float, allow_private: bool) -> Answer:
    """POST the signed message; any failure becomes an Answer with its error (never the
    secret, never the URL, which may carry a token of the receiver's)."""
    sent_at = utcnow()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "InviteLoop-Webhooks/1",
        "webhook-id": attempt.message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(attempt.secret).sign(
            attempt.message_id, sent_at, attempt.body
        ),
    }
    try:
        status = post(attempt.url, attempt.body.encode(), headers, timeout, allow_private)
    except UnsafeUrl as error:
        return Answer(None, f"refused: {error.message}")
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, f"{type(error).__name__}: {error}".strip())
    if 200 <= status < 300:
        return Answer(status, None)
    return Answer(status, f"HTTP {status}")


def record_answer(attempt: Attempt, answer: Answer, now: datetime, max_attempts: int) -> int | None:
    """Store the attempt's outcome; returns the seconds to wait before the next attempt, or
    None when the delivery is over (succeeded, failed for good, or redelivered meanwhile)."""
    if answer.error is None:
        status = "succeeded"
    elif attempt.number >= max_attempts:
        status = "failed"
    else:
        status = "pending"
    code, error = answer.status_code, answer.error
    stored = _close(attempt.delivery_id, attempt.number, status, code, error, now)
    log_answer = log.info if answer.error is None else log.warning
    log_answer(
        "webhook delivery %s (endpoint %s) attempt %s: %s",
        attempt.delivery_id,
        attempt.endpoint_id,
        attempt.number,
        answer.error or answer.status_code,
    )
    if stored:
        result = "retrying" if status == "pending" else status
        counters.count_on_commit(counters.WEBHOOK_DELIVERIES.labels(result))
    if stored and status == "pending":
        return backoff_seconds(attempt.number)
    return None


def _close(delivery_id, attempts, status, status_code, error, now) -> bool:
    return bool(
        db.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.attempts == attempts,
            )
            .values(
                status=status,
                last_status_code=status_code,
                last_error=None if error is None else error[:300],
                delivered_at=now if status == "succeeded" else None,
            ),
            execution_options={"synchronize_session": False},
        ).rowcount
    )


def retry_due(now: datetime, max_attempts: int) -> int:
    """The safety net: queue the pending deliveries whose wait is over with no attempt under
    way (a sender died between counting an attempt and recording its answer, or rows from
    before the outbox), and close as failed those whose last attempt never recorded an
    answer. Returns how many it queued."""
    rows = db.session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts, WebhookDelivery.last_attempt_at)
        .where(
            WebhookDelivery.status == "pending",
            func.coalesce(WebhookDelivery.last_attempt_at, WebhookDelivery.created_at)
            <= now - SWEEP_GRACE,
        )
        .order_by(WebhookDelivery.id)
        .limit(SWEEP_BATCH)
    ).all()
    queued = 0
    for delivery_id, attempts, last_attempt_at in rows:
        if attempts >= max_attempts:
            _close(delivery_id, attempts, "failed", None, "no answer recorded", now)
        elif last_attempt_at is None or last_attempt_at + _wait(attempts) <= now:
            enqueue(deliver_webhook, delivery_id, attempts)
            queued += 1
    return queued


def _wait(attempts: int) -> timedelta:
    return timedelta(seconds=backoff_seconds(attempts)) + SWEEP_GRACE


def queue_again(delivery: WebhookDelivery) -> None:
    """Queue a delivery that was just reset to pending (redeliver), after the commit."""
    enqueue(deliver_webhook, delivery.id, delivery.attempts)


@job("rewards.deliver_webhook")
def deliver_webhook(delivery_id: int, seen_attempts: int = 0) -> str | None:
    """One attempt at one delivery, run from the outbox (never inside a request). A failure
    writes the next attempt to the outbox, due after the backoff, in the transaction that
    records this one's answer, up to WEBHOOK_MAX_ATTEMPTS; then the delivery is failed."""
    config = current_app.config
    attempt = claim_attempt(delivery_id, seen_attempts, utcnow())
    db.session.commit()  # the attempt counts before the request goes out
    if attempt is None:
        return None
    answer = send(
        attempt, config["WEBHOOK_DELIVERY_TIMEOUT_SECONDS"], config["WEBHOOK_ALLOW_PRIVATE_URLS"]
    )
    wait = record_answer(attempt, answer, utcnow(), config["WEBHOOK_MAX_ATTEMPTS"])
    if wait is not None:
        enqueue(deliver_webhook, delivery_id, attempt.number, delay_seconds=wait)
    db.session.commit()
    return answer.error or "succeeded"
