"""Participants as a shop knows them: by its customer id or by email address."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from auth.services import InvalidEmail, canonical_email, normalize_email
from core.database import insert_unless_present
from extensions import db
from models import User
from referral import services as referral_services
from rewards.events import InvalidEvent
from rewards.signals import customer_joined

# users.external_id and conversions.customer_external_id hold this many characters.
EXTERNAL_ID_LENGTH = 100


def check_external_id(external_id: str | None) -> None:
    """A shop's customer id longer than the database holds is refused (PostgreSQL would
    fail the insert with a 500; SQLite would keep it whole)."""
    if external_id is not None and len(external_id) > EXTERNAL_ID_LENGTH:
        raise InvalidEvent(
            f"The customer's external_id is at most {EXTERNAL_ID_LENGTH} characters."
        )


def find(external_id: str | None, email: str | None) -> User | None:
    """The participant the shop means: its customer id first, then the email address."""
    if external_id:
        user = db.session.scalar(select(User).where(User.external_id == external_id))
        if user is not None:
            return user
    email = _valid_email(email)
    if email:
        return db.session.scalar(select(User).where(User.email == email))
    return None


@dataclass(frozen=True)
class Customer:
    """A shop customer's participant, and whether this transaction made them: then nobody
    can be below them in the referral tree yet, nor has any purchase or referral of theirs
    been stored."""

    user: User
    created: bool


def find_or_create(
    external_id: str | None, email: str | None, now: datetime, source: str | None = None
) -> User | None:
    """The participant for a shop customer, created (without a password, with their own
    code) when new. None when the shop gave neither a customer id nor a valid email. A new
    participant, or one now linked to the shop's id, is announced (`customer_joined`) with
    the `source` of the event."""
    customer = find_or_create_customer(external_id, email, now, source)
    return customer.user if customer else None


def find_or_create_customer(
    external_id: str | None,
    email: str | None,
    now: datetime,
    source: str | None = None,
) -> Customer | None:
    """`find_or_create`, saying whether this transaction made the participant."""
    check_external_id(external_id)
    user = find(external_id, email)
    if user is not None:
        if external_id and user.external_id is None and _link_external_id(user, external_id):
            customer_joined.send(None, user_id=user.id, source=source)
        return Customer(user, created=False)
    return create_customer(external_id, email, now, source)


def create_customer(
    external_id: str | None,
    email: str | None,
    now: datetime,
    source: str | None = None,
) -> Customer | None:
    """A new participant for a customer `find` did not find; the one another event created
    at this very moment if it won the race. None without a customer id or a valid email."""
    check_external_id(external_id)
    email = _valid_email(email)
    if not external_id and not email:
        return None
    user = db.session.scalar(
        insert_unless_present(User)
        .values(
            name=_name_for(email, external_id),
            email=email,
            email_canonical=canonical_email(email) if email else None,
            external_id=external_id,
            created_at=now,
        )
        .returning(User)
    )
    if user is None:
        # The same customer arrived through another event at the same moment.
        found = find(external_id, email)
        return Customer(found, created=False) if found is not None else None
    referral_services.issue_code(user, referral_services.default_program())
    if external_id:
        customer_joined.send(None, user_id=user.id, source=source)
    return Customer(user, created=True)


def _valid_email(email: str | None) -> str | None:
    if not email or not email.strip():
        return None
    try:
        return normalize_email(email.strip())
    except InvalidEmail:
        return None


def _name_for(email: str | None, external_id: str | None) -> str:
    if email:
        return email.split("@", 1)[0][:100]
    return f"Customer {external_id}"[:100]


def _link_external_id(user: User, external_id: str) -> bool:
    """Remember the shop's id for a participant first known by email, unless it is taken."""
    try:
        with db.session.begin_nested():
            user.external_id = external_id
            db.session.flush()
    except IntegrityError:
        db.session.refresh(user)
        return False
    return True
