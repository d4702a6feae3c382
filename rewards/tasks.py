"""Periodic jobs of the rewards engine: the hold release, expiry and the outbound webhook
sweep (beat runs each every REWARDS_SWEEP_SECONDS; config.py holds the schedule).

Each runs inside an app context (core.jobs), in a worker or inline (eager). The email job is
core.mail.send_email; one webhook attempt is rewards.outbound.deliver_webhook, run from the
outbox (core/outbox.py), which also schedules the retries.
"""

import logging

from flask import current_app

from core.jobs import job
from extensions import db
from models import utcnow
from rewards import outbound
from rewards.services import expire_rewards, release_held_rewards

log = logging.getLogger(__name__)


@job("rewards.release_held")
def release_held() -> int:
    """Approve the rewards whose hold has ended."""
    released = release_held_rewards(utcnow())
    db.session.commit()
    log.info("released %d held rewards", released)
    return released


@job("rewards.expire")
def expire() -> int:
    """Expire the rewards past their expiry date."""
    expired = expire_rewards(utcnow())
    db.session.commit()
    log.info("expired %d rewards", expired)
    return expired


@job("rewards.retry_webhooks")
def retry_webhooks() -> int:
    """Queue outbound webhook deliveries whose wait is over and that no outbox row carries
    any more (a sender died mid-attempt): the safety net under the outbox's own retries."""
    queued = outbound.retry_due(utcnow(), current_app.config["WEBHOOK_MAX_ATTEMPTS"])
    db.session.commit()
    log.info("queued %d webhook deliveries", queued)
    return queued
