"""Background jobs of the staff panel: the analytics roll-up, every 10 minutes.

Runs inside an app context (core.jobs), in a worker or inline (eager).
"""

import logging

from admin.analytics import rollup
from core.jobs import job
from extensions import db
from models import utcnow

log = logging.getLogger(__name__)


@job("admin.rollup_analytics")
def rollup_analytics() -> int:
    """Roll up the closed days not rolled up yet and recount the stale ones (beat runs it
    every 10 minutes: the first run after midnight UTC rolls up the day that closed; the
    others recount the days whose rows changed since, if any)."""
    days = rollup.rollup_analytics(utcnow().date())
    db.session.commit()
    log.info("rolled up %d days of analytics", days)
    return days
