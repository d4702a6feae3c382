"""Background jobs of accounts: the daily clean-up of ended sign-ins (beat's schedule is in
config.py). Runs inside an app context (core.jobs), in a worker or inline (eager)."""

import logging

from auth import sessions
from core.jobs import job
from extensions import db

log = logging.getLogger(__name__)


@job("auth.prune_sessions")
def prune_sessions() -> int:
    """Delete the expired sign-ins (they already count for nothing; this keeps the table small)."""
    pruned = sessions.prune_expired()
    db.session.commit()
    log.info("deleted %d expired sign-ins", pruned)
    return pruned
