"""Background jobs of the rewards engine: emails, and the periodic hold release and expiry.

Each task runs inside an app context (core.jobs.FlaskTask), in a worker or inline (eager).
"""

import logging

from celery import shared_task

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
