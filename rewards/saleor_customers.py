"""Saleor customers and participants, both ways:
a `CUSTOMER_CREATED` whose metadata carries a `ref_code` makes the customer a referred
participant, through the same exactly-once intake as orders (`record_event`: a redelivery is
a duplicate); a customer who becomes a participant gets their own code written back to
`User.metadata.ref_code` by a job, so the storefront can show it.
"""

import logging

from flask_babel import gettext as _
from sqlalchemy import select

from core.jobs import enqueue, job
from extensions import db
from models import ReferralCode, User
from rewards import saleor_install, saleor_issuing
from rewards.conversions import record_event
from rewards.events import EventIn, Outcome
from rewards.saleor import InvalidSaleorPayload, ref_code
from rewards.saleor_fulfilment import NotInstalled

log = logging.getLogger(__name__)

REF_CODE_KEY = "ref_code"


def on_customer_created(payload: dict) -> Outcome:
    """The signed CustomerCreated event: the participant (referred when the customer's
    metadata names a code), and their code queued for Saleor's metadata."""
    if payload.get("__typename") != "CustomerCreated":
        raise InvalidSaleorPayload(_("The signed payload is not a CustomerCreated event."))
    user = payload.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        return Outcome("ignored", "no_customer")
    email = user.get("email") if isinstance(user.get("email"), str) else None
    outcome = record_event(
        EventIn(
            source="saleor",
            kind="signup",
            external_id=f"customer:{user['id']}"[:200],
            customer_external_id=user["id"],
            customer_email=email,
            ref_code=ref_code(user.get("metadata")),
            payload=payload,
        )
    )
    return outcome


def on_customer_joined(_sender, user_id: int, source: str | None) -> None:
    """A Saleor customer became a participant (a CustomerCreated event, or an order of a
    customer InviteLoop did not know): queue their code for the customer's metadata."""
    if source == "saleor":
        enqueue(write_ref_code, user_id)


@job("saleor.write_ref_code")
def write_ref_code(user_id: int) -> None:
    """Write the participant's active code to their Saleor customer's metadata; a Saleor
    error is raised, so the outbox retries with backoff."""
    user = db.session.get(User, user_id)
    code = db.session.scalar(
        select(ReferralCode.code)
        .where(ReferralCode.user_id == user_id, ReferralCode.status == "active")
        .order_by(ReferralCode.id)
        .limit(1)
    )
    if user is None or not user.external_id or code is None:
        return
    connection = saleor_install.connection()
    if connection is None:
        raise NotInstalled()
    saleor_issuing.write_metadata(connection, user.external_id, REF_CODE_KEY, code)
    log.info("participant %s: ref_code written to Saleor", user_id)
