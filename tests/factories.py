"""Building test data through the same services the app uses (call inside an app context)."""

import itertools
from datetime import datetime

from sqlalchemy import select

from auth.services import register_participant
from extensions import db
from models import Referral, ReferralCode, User
from referral.codes import ALPHABET
from rewards.conversions import record_event
from rewards.events import EventIn

PASSWORD = "correct horse battery staple"
_addresses = itertools.count(1)


def distinct_ip() -> str:
    """An address on a network of its own, so no two test participants look related."""
    number = next(_addresses)
    return f"10.{(number >> 8) & 255}.{number & 255}.1"


def participant(
    name: str = "Alice Zimmer",
    *,
    email: str | None = None,
    invited_by: str | None = None,
    device_id: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> dict:
    """A committed participant; returns plain values (id, email, code) usable after the
    app context ends."""
    email = email or f"{name.split()[0].lower()}.{name.split()[-1].lower()}@example.com"
    user = register_participant(
        name=name,
        email=email,
        password=PASSWORD,
        typed_code=invited_by,
        device_id=device_id,
        ip=ip or distinct_ip(),
        now=now,
    )
    db.session.commit()
    return {"id": user.id, "email": user.email, "name": user.name, "code": code_of(user.id)}


def code_of(user_id: int) -> str:
    return db.session.scalar(
        select(ReferralCode.code).where(
            ReferralCode.user_id == user_id, ReferralCode.status == "active"
        )
    )


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def numbered_code(number: int) -> str:
    """A distinct 6-character code per number, in the app's alphabet (for bulk data)."""
    digits = []
    for _ in range(6):
        number, digit = divmod(number, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def staff(role: str, name: str | None = None) -> dict:
    """A committed account with a staff role (made as a participant, then promoted)."""
    name = name or f"{role.title()} Staff"
    person = participant(name, email=f"{role}.{next(_addresses)}@staff.example.com")
    db.session.get(User, person["id"]).role = role
    db.session.commit()
    return {**person, "role": role}


def purchase(
    email: str,
    order: str,
    amount: int = 2500,
    *,
    now: datetime | None = None,
    source: str = "api",
    external_id: str | None = None,
):
    """A purchase through the event intake, as a shop reports it; not committed."""
    event = EventIn(
        source=source,
        kind="purchase",
        external_id=external_id or f"evt-{order}",
        order_id=order,
        customer_email=email,
        amount=amount,
        currency="USD",
        occurred_at=now,
    )
    return record_event(event, now=now)


def referral_of(user_id: int) -> Referral | None:
    """The referral that brought `user_id` in, if any."""
    return db.session.scalar(select(Referral).where(Referral.referred_id == user_id))
