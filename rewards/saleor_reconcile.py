"""Orders the webhooks missed (issue 16): Saleor stops retrying a webhook after a few
minutes, so a periodic job lists the paid orders changed in the last RECONCILE_DAYS with the
app token and records each through the same exactly-once intake as the webhooks (the order
id is the purchase's key: one already received is a duplicate and changes nothing). Staff see
when it last ran, how many it found, and the error that stopped it (integrations screen).
"""

import logging
from datetime import datetime, timedelta

from core.errors import DomainError
from core.jobs import job
from extensions import db
from models import utcnow
from rewards import saleor_install, saleor_issuing
from rewards.conversions import record_event
from rewards.saleor import order_event
from rewards.saleor_queries import RECENT_PAID_ORDERS

log = logging.getLogger(__name__)

RECONCILE_DAYS = 2
MAX_PAGES = 20  # 1,000 orders a run; the next run goes on from the same moment
_ERROR_LENGTH = 500


def reconcile_orders(now: datetime | None = None) -> int | None:
    """Record the recent paid orders the webhooks missed; how many it found (None: the app
    is not installed). The result is kept on the installation, error included."""
    now = now or utcnow()
    installation = saleor_install.current_installation()
    connection = saleor_install.connection()
    if installation is None or connection is None:
        return None
    found, error = 0, None
    try:
        for node in _paid_orders(connection, now - timedelta(days=RECONCILE_DAYS)):
            found += _record(node, now)
    except DomainError as failure:  # a Saleor error, a timeout, a malformed order
        error = failure.message[:_ERROR_LENGTH]
        log.warning("order reconciliation stopped: %s", error)
    installation.reconciled_at = now
    installation.reconcile_found = found
    installation.reconcile_error = error
    db.session.flush()
    return found


def _paid_orders(connection, since: datetime):
    after = None
    for _ in range(MAX_PAGES):
        variables = {"since": since.isoformat(), "after": after}
        orders = saleor_issuing.call(connection, RECENT_PAID_ORDERS, variables).get("orders") or {}
        for edge in orders.get("edges") or []:
            if isinstance(edge, dict) and isinstance(edge.get("node"), dict):
                yield edge["node"]
        page = orders.get("pageInfo") or {}
        if not page.get("hasNextPage"):
            return
        after = page.get("endCursor")


def _record(node: dict, now: datetime) -> int:
    """1 when the order was new here, 0 when the webhook had brought it already."""
    payload = {"__typename": "OrderFullyPaid", "issuedAt": now.isoformat(), "order": node}
    with db.session.begin_nested():
        outcome = record_event(order_event("order_fully_paid", payload), now)
    return 0 if outcome.outcome == "duplicate" else 1


@job("saleor.reconcile_orders")
def reconcile_orders_job() -> int | None:
    found = reconcile_orders()
    db.session.commit()
    log.info("order reconciliation: %s missed order(s) recorded", found)
    return found
