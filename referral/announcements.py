"""What a recorded referral sets off outside its own rows (the referrer's email, the CRM
lead, partners' webhooks) runs after its transaction commits, from one outbox row written
with it (docs/guarantees.md #52): the signup's transaction carries one INSERT for all of
them, instead of reading email preferences, rendering the email, writing the lead and
looking up webhook subscribers while the person waits. The row is as durable as the
referral: both commit or neither does.

The receivers of `referral_announced` see the referral as it was recorded: a change made
since (staff approving one that was held) announces itself, so nothing is said twice."""

from datetime import datetime

from sqlalchemy.orm.attributes import set_committed_value

from core import outbox
from core.jobs import enqueue, job
from extensions import db
from models import Referral
from referral.signals import referral_announced


def announce_after_commit(referral: Referral, now: datetime) -> None:
    """Receiver of `referral_recorded`: queue the announcement in the referral's transaction.
    Made-up data (`outbox.discarding`) is announced at once: its lead is part of the data,
    and its emails and webhooks are dropped by the outbox as they are written."""
    if outbox.is_discarding():
        referral_announced.send(referral, now=now)
        return
    enqueue(announce, referral.id, referral.status, now.isoformat())


@job("referral.announce")
def announce(referral_id: int, recorded_status: str, recorded_at: str) -> str:
    """Send `referral_announced` for a committed referral; its receivers' writes commit with
    the outbox row's "sent" mark."""
    referral = db.session.get(Referral, referral_id)
    if referral is None:
        return "gone"  # its account was deleted meanwhile
    set_committed_value(referral, "status", recorded_status)
    referral_announced.send(referral, now=datetime.fromisoformat(recorded_at))
    return "announced"
