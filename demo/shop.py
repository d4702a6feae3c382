"""Demo purchases for the demo participants: through the real event intake, so the ledger,
holds, refunds and review queue look as they would after a few months of trading.

The story is kept in order: a friend buys some time after joining (never before, never in the
future; whoever joined too recently simply has not bought yet), each order arrives the way
shops send them (mostly Stripe and the shop's signed events webhook, some Saleor, a few typed
in by staff the day after), a refund comes after its purchase, and the events are recorded
oldest first, with the holds that have ended by then released on the way, so every reward is
created, held and approved at the moment it would have been."""

import base64
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select

from extensions import db
from models import Click, Program, Referral, User
from rewards import services
from rewards.conversions import record_event
from rewards.events import EventIn

# Where orders come from, and how often: card payments through Stripe, the shop's own
# signed events webhook (source "api"), a Saleor storefront, orders staff type in.
SOURCE_SHARES = (("stripe", 40), ("api", 30), ("saleor", 20), ("manual", 10))
AMOUNTS = (1500, 2400, 3900, 5600, 8900)  # minor units; 15.00 is below the first-purchase minimum
BUYING_SHARE = 0.55  # of the friends who joined through a link or code
REFUND_SHARE = 0.06
MEAN_DAYS_TO_BUY = 6


@dataclass(frozen=True)
class PlannedEvent:
    recorded_at: datetime  # when it reaches InviteLoop
    event: EventIn


def plan_purchases(rng: random.Random, now: datetime, since: datetime) -> list[PlannedEvent]:
    """The purchases and refunds of the referred friends, oldest first."""
    program = db.session.scalar(select(Program).where(Program.is_default))
    program.starts_at = min(program.starts_at, since)  # the demo's months are in the program
    return sorted(plan_events(rng, program, now), key=lambda item: item.recorded_at)


def record_purchases(
    planned: list[PlannedEvent],
    now: datetime,
    progress: Callable[[int], None],
    meanwhile: Callable[[datetime], None],
) -> tuple[int, int]:
    """Record `planned` through the event intake; returns (purchases, refunds). Before each
    event, `meanwhile(its time)` does what happened since the previous one."""
    for item in planned:
        meanwhile(item.recorded_at)
        services.release_held_rewards(item.recorded_at)  # the holds that ended before it
        record_event(item.event, now=item.recorded_at)
        progress(1)
    meanwhile(now)
    services.release_held_rewards(now)
    db.session.commit()
    purchases = sum(1 for item in planned if item.event.kind == "purchase")
    return purchases, len(planned) - purchases


def plan_events(rng: random.Random, program: Program, now: datetime) -> list[PlannedEvent]:
    friends = db.session.execute(
        select(User.email, Referral.created_at, Referral.code_id)
        .join(Referral, Referral.referred_id == User.id)
        .where(Referral.status != "rejected")
        .order_by(Referral.id)
    ).all()
    gap = timedelta(seconds=program.min_seconds_click_to_purchase)
    planned = []
    for number, (email, joined_at, code_id) in enumerate(friends):
        if rng.random() > BUYING_SHARE:
            continue
        bought_at = joined_at + timedelta(days=0.1 + rng.expovariate(1 / MEAN_DAYS_TO_BUY))
        bought_at = _after_clicks(code_id, bought_at, gap)
        source = _source(rng)
        recorded_at = bought_at
        if source == "manual":  # typed in by staff the next working hours, dated by day
            bought_at = datetime.combine(bought_at.date(), time(23, 59, 59), UTC)
            recorded_at = bought_at + timedelta(hours=rng.uniform(8, 20))
        if recorded_at >= now:
            continue  # has not bought yet
        order = _Order.make(rng, source, number)
        amount = rng.choice(AMOUNTS)
        planned.append(PlannedEvent(recorded_at, order.purchase(email, amount, bought_at)))
        if rng.random() < REFUND_SHARE:
            refunded_at = recorded_at + timedelta(days=rng.uniform(1, 20))
            if refunded_at < now:
                planned.append(PlannedEvent(refunded_at, order.refund(refunded_at)))
    return planned


def _source(rng: random.Random) -> str:
    names, weights = zip(*SOURCE_SHARES, strict=True)
    return rng.choices(names, weights)[0]


def _after_clicks(code_id: int, bought_at: datetime, gap: timedelta) -> datetime:
    """No earlier than `gap` after the last click on the inviter's link: a purchase seconds
    after a click is what the fraud check holds, and these friends are genuine."""
    last_click = db.session.scalar(
        select(Click.created_at)
        .where(Click.code_id == code_id, Click.created_at <= bought_at)
        .order_by(Click.created_at.desc())
        .limit(1)
    )
    if last_click is not None and bought_at - last_click < gap:
        return last_click + gap + timedelta(minutes=1)
    return bought_at


@dataclass(frozen=True)
class _Order:
    """An order as its source names it, so the conversions screen looks like the real thing."""

    source: str
    order_id: str
    purchase_id: str
    refund_id: str

    @classmethod
    def make(cls, rng: random.Random, source: str, number: int) -> "_Order":
        token = f"{rng.getrandbits(96):024x}"
        if source == "stripe":  # a payment intent, paid through an invoice, refunded by charge
            return cls(source, f"pi_{token}", f"in_{token}", f"ch_{token}")
        if source == "saleor":  # Saleor's global ids: base64 of "Order:<uuid>"
            order = base64.b64encode(f"Order:{uuid.UUID(int=rng.getrandbits(128))}".encode())
            order_id = order.decode()
            return cls(source, order_id, order_id, f"{order_id}:refund")
        if source == "api":  # the shop's own order numbers and event ids
            return cls(source, f"#{10400 + number}", f"evt_{token}", f"evt_{token}_refund")
        return cls(source, f"INV-{number + 1:05d}", f"INV-{number + 1:05d}", "")

    def purchase(self, email: str, amount: int, when: datetime) -> EventIn:
        return EventIn(
            source=self.source,
            kind="purchase",
            external_id=self.purchase_id,
            order_id=self.order_id,
            customer_email=email,
            amount=amount,
            currency=None,  # the program's
            occurred_at=when,
        )

    def refund(self, when: datetime) -> EventIn:
        return EventIn(
            source=self.source,
            kind="refund",
            external_id=self.refund_id or f"{self.order_id}-refund",
            order_id=self.order_id,
            occurred_at=when,
        )
