"""Reconciliation of use (docs/guarantees.md #41): a paid gift card or voucher reward
becomes `redeemed` (shown "Used") once Saleor reports the card spent from or the voucher
used, so the plan's "invitation → order → reward → email → redemption" can be followed to
the end. Saleor sends no webhook for that, so a periodic job reads each one with the app
token.
"""

import logging

from sqlalchemy import select, update

from core import audit
from core.jobs import job
from extensions import db
from models import Reward, SaleorFulfilment, utcnow
from rewards import saleor_install, saleor_issuing

log = logging.getLogger(__name__)

BATCH = 200


def reconcile_usage(limit: int = BATCH) -> int:
    """Read the paid, not yet used Saleor rewards (oldest first); mark the used ones
    `redeemed`. Returns how many became used. A Saleor error stops the run (it is raised; the
    next run starts again) after what was found before it is flushed."""
    connection = saleor_install.connection()
    if connection is None:
        return 0
    rows = db.session.execute(
        select(SaleorFulfilment.reward_id, SaleorFulfilment.saleor_id, Reward.kind)
        .join(SaleorFulfilment.reward)
        .where(
            SaleorFulfilment.fulfilled_at.is_not(None),
            SaleorFulfilment.used_at.is_(None),
            SaleorFulfilment.deactivated_at.is_(None),
            Reward.status == "paid",
        )
        .order_by(SaleorFulfilment.reward_id)
        .limit(limit)
    ).all()
    used = 0
    for reward_id, saleor_id, kind in rows:
        if saleor_issuing.is_used(connection, kind, saleor_id):
            used += _mark_used(reward_id)
    return used


def _mark_used(reward_id: int) -> int:
    now = utcnow()
    changed = db.session.execute(
        update(Reward)
        .where(Reward.id == reward_id, Reward.status == "paid")
        .values(status="redeemed", updated_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount
    db.session.execute(
        update(SaleorFulfilment).where(SaleorFulfilment.reward_id == reward_id).values(used_at=now)
    )
    if changed:
        audit.record(
            "reward.redeem",
            "reward",
            reward_id,
            before={"status": "paid"},
            after={"status": "redeemed"},
            system="saleor.reconcile_usage",
        )
    return changed


@job("saleor.reconcile_usage")
def reconcile_usage_job() -> int:
    used = reconcile_usage()
    db.session.commit()
    log.info("%d Saleor reward(s) reported used", used)
    return used
