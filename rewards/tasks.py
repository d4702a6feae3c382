"""Background jobs of the rewards engine: emails, the periodic hold release and expiry, and
outbound webhook deliveries.

Each task runs inside an app context (core.jobs.FlaskTask), in a worker or inline (eager).
"""

import logging

from celery import shared_task
from flask import current_app

from core.templating import mask_email
from extensions import db, mail
from models import utcnow

log = logging.getLogger(__name__)

# smtplib's errors, refused or reset connections, timeouts and DNS failures are all OSError:
# worth another try later. Anything else (a misconfigured backend, a bug) fails at once.
SEND_RETRY_ERRORS = (OSError,)
# In a worker: 5 more tries, waits doubling from 5 s (jittered), so up to ~2.5 minutes in all.
# Eager (no broker) there is no later: one try, whose Retry core.jobs.enqueue logs.
SEND_MAX_RETRIES = 5
SEND_BACKOFF_SECONDS = 5


@shared_task(
    name="rewards.send_email",
    autoretry_for=SEND_RETRY_ERRORS,
    retry_backoff=SEND_BACKOFF_SECONDS,
    retry_backoff_max=600,
    max_retries=SEND_MAX_RETRIES,
)
def send_email(to: str, subject: str, body: str) -> None:
    """Send one plain-text email. Arguments are plain strings, so it reads no database."""
    mail.send_mail(subject, body, None, [to])
    log.info("sent %r to %s", subject, mask_email(to))


@shared_task(name="rewards.release_held")
def release_held() -> int:
    """Approve the rewards whose hold has ended (beat runs it every REWARDS_SWEEP_SECONDS)."""
    # Imported when run: the services import rewards.notifications, which imports this module.
    from rewards.services import release_held_rewards

    released = release_held_rewards(utcnow())
    db.session.commit()
    log.info("released %d held rewards", released)
    return released


@shared_task(name="rewards.expire")
def expire() -> int:
    """Expire the rewards past their expiry date (beat runs it every REWARDS_SWEEP_SECONDS)."""
    from rewards.services import expire_rewards

    expired = expire_rewards(utcnow())
    db.session.commit()
    log.info("expired %d rewards", expired)
    return expired


@shared_task(bind=True, name="rewards.deliver_webhook", max_retries=None)
def deliver_webhook(self, delivery_id: int, seen_attempts: int = 0) -> str | None:
    """One attempt at one outbound webhook (rewards.outbound). A worker retries a failure with
    exponential backoff (Celery's countdown) up to WEBHOOK_MAX_ATTEMPTS, then it is failed.
    Eager (no broker) there is no later inside a request: one attempt now, and the next ones
    when the sweep (`rewards.retry_webhooks`, `flask rewards retry-webhooks`) finds them due."""
    from rewards import outbound

    config = current_app.config
    attempt = outbound.claim_attempt(delivery_id, seen_attempts, utcnow())
    db.session.commit()  # the attempt counts before the request goes out
    if attempt is None:
        return None
    answer = outbound.send(
        attempt, config["WEBHOOK_DELIVERY_TIMEOUT_SECONDS"], config["WEBHOOK_ALLOW_PRIVATE_URLS"]
    )
    wait = outbound.record_answer(attempt, answer, utcnow(), config["WEBHOOK_MAX_ATTEMPTS"])
    db.session.commit()
    if wait is not None and not self.request.is_eager:
        raise self.retry(args=(delivery_id, attempt.number), kwargs={}, countdown=wait)
    return answer.error or "succeeded"


@shared_task(name="rewards.retry_webhooks")
def retry_webhooks() -> int:
    """Queue outbound webhook deliveries whose wait is over (beat runs it every
    REWARDS_SWEEP_SECONDS): the retries of eager mode, and jobs lost before a worker got them."""
    from rewards import outbound

    queued = outbound.retry_due(utcnow(), current_app.config["WEBHOOK_MAX_ATTEMPTS"])
    db.session.commit()
    log.info("queued %d webhook deliveries", queued)
    return queued
