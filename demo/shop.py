"""Demo purchases for the demo participants: through the real event intake, so the ledger,
holds, refunds and review queue look as they would after a few months of trading."""

import random
from datetime import datetime, timedelta

from sqlalchemy import select

from extensions import db
from models import Program, Referral, User
from rewards import services
from rewards.conversions import record_event
from rewards.events import EventIn


def seed_purchases(rng: random.Random, now: datetime, since: datetime) -> tuple[int, int]:
    """Roughly half the referred friends buy within a few weeks of joining; a few refund.
    Returns (purchases, refunds)."""
    program = db.session.scalar(select(Program).where(Program.is_default))
    program.starts_at = min(program.starts_at, since)  # the demo's months are in the program
    buyers = db.session.execute(
        select(User.email, Referral.created_at)
        .join(Referral, Referral.referred_id == User.id)
        .where(Referral.status != "rejected")
        .order_by(Referral.id)
    ).all()
    purchases = refunds = 0
    for number, (email, joined_at) in enumerate(buyers):
        if rng.random() > 0.55:
            continue
        bought_at = min(joined_at + timedelta(days=rng.uniform(0.2, 25)), now)
        order = f"demo-order-{number}"
        record_event(
            _purchase(order, email, rng.choice((1500, 2400, 3900, 5600, 8900)), bought_at),
            now=bought_at,
        )
        purchases += 1
        if rng.random() < 0.06:
            refunded_at = min(bought_at + timedelta(days=rng.uniform(1, 20)), now)
            record_event(_refund(order, refunded_at), now=refunded_at)
            refunds += 1
    services.release_held_rewards(now)
    db.session.commit()
    return purchases, refunds


def _purchase(order: str, email: str, amount: int, when: datetime) -> EventIn:
    return EventIn(
        source="manual",
        kind="purchase",
        external_id=order,
        order_id=order,
        customer_email=email,
        amount=amount,
        currency=None,
        occurred_at=when,
    )


def _refund(order: str, when: datetime) -> EventIn:
    return EventIn(
        source="manual",
        kind="refund",
        external_id=f"{order}-refund",
        order_id=order,
        occurred_at=when,
    )
