"""The shape every incoming conversion takes, whatever sent it, and the answer it gets."""

from dataclasses import dataclass, field
from datetime import datetime

SOURCES_FROM_OUTSIDE = ("api", "saleor", "stripe", "manual")


@dataclass(frozen=True)
class EventIn:
    """A conversion as the integrations hand it to `rewards.conversions.record_event`.

    `external_id` identifies the event at its source (a redelivery carries the same one);
    `amount` is in minor units; `order_id` is the order a purchase pays for or a refund
    gives back.
    """

    source: str  # api | saleor | stripe | manual
    kind: str  # signup | purchase | refund
    external_id: str
    customer_external_id: str | None = None
    customer_email: str | None = None
    ref_code: str | None = None
    amount: int | None = None
    currency: str | None = None
    order_id: str | None = None
    occurred_at: datetime | None = None
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What happened to an event: accepted, duplicate, unattributed, ignored or rejected."""

    outcome: str
    reason: str | None = None
    conversion_id: int | None = None

    def as_json(self) -> dict:
        return {"outcome": self.outcome, "reason": self.reason}


def unhandled(event_type: str) -> Outcome:
    """An event type InviteLoop does not act on: answered 2xx, nothing stored."""
    return Outcome("ignored", "unhandled_event_type")
