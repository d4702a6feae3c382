"""Password reset by an emailed link that works once, for 30 minutes.

Nothing is stored. The token is signed with SECRET_KEY and carries the account's id, its
session version and a keyed fingerprint of its password hash and email address. Whatever
changes one of those (this reset, a password changed another way, "sign out everywhere", a
new email address) voids every link issued before; the signature's age limits the rest.

An account without a password (signed up by phone and added an email later, or created from a
shop's purchase) may use a reset to choose its first one: the link goes only to the account's
own mailbox, the same proof of ownership a reset asks of everyone. An account without an email
address cannot be reset (it signs in by phone). Deactivated accounts get no link.

A request does the same work whoever the address belongs to: it writes one outbox row, "reset
asked for <address> at <time>", and answers. The job (`auth.send_reset_link`, run after the
commit by a sender, never in the request) looks the account up and mails the link, so neither
the answer's time nor a hanging mail server tells an observer who is registered, and a mail
outage delays the link instead of losing it. The link is made and mailed by the job itself:
the token is never stored, not even in the outbox.
"""

import hashlib
import hmac
import logging
from datetime import datetime, timedelta

from flask import current_app, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select, update

from auth import sessions
from auth.services import check_password_policy, hash_password, normalize_email
from core import branding
from core.errors import DomainError
from core.i18n import current_language, writing_to
from core.jobs import enqueue, job
from core.mail import absolute_url, queue_email, send_email
from core.templating import format_datetime
from extensions import db
from models import User, utcnow

log = logging.getLogger(__name__)

RESET_LINK_LIFETIME = timedelta(minutes=30)
_SALT = "password-reset"
_FINGERPRINT_LENGTH = 16  # hex characters; the signature, not this length, prevents forgery


class InvalidResetToken(DomainError):
    code = "invalid_reset_token"
    message = _l("This reset link is invalid or has expired. Ask for a new one.")


class _ClockSigner(TimestampSigner):
    """A timestamp signer that reads the time the caller gives, so a link can be dated."""

    def __init__(self, *args, now: datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now

    def get_timestamp(self) -> int:
        return int(self.now.timestamp()) if self.now else super().get_timestamp()


def _serializer(now: datetime | None) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        current_app.config["SECRET_KEY"],
        salt=_SALT,
        signer=_ClockSigner,
        signer_kwargs={"digest_method": hashlib.sha256, "now": now},
    )


def _fingerprint(user: User) -> str:
    """Changes whenever the password hash or the email address does. Keyed, so the token
    (readable by whoever holds it) tells nothing about the hash."""
    key = f"{_SALT}:{current_app.config['SECRET_KEY']}".encode()
    message = f"{user.password_hash or ''}\x00{user.email or ''}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:_FINGERPRINT_LENGTH]


def make_token(user: User, now: datetime | None = None) -> str:
    return _serializer(now).dumps([user.id, user.session_version, _fingerprint(user)])


def request_reset(email: str, now: datetime | None = None) -> None:
    """Ask for a reset link for this address: one outbox row, whether or not an account uses
    it. Only an address that does not parse is refused (InvalidEmail), which says nothing
    about who is registered."""
    address = normalize_email(email)
    enqueue(send_reset_link, address, (now or utcnow()).isoformat(), current_language())


@job("auth.send_reset_link")
def send_reset_link(address: str, requested_at: str, asked_in: str | None = None) -> None:
    """Email a reset link, dated when it was asked for, to the active account using this
    address, if there is one (run from the outbox); in the account's language, else the one
    of the page it was asked from (`asked_in`)."""
    user = db.session.scalar(select(User).where(User.email == address, User.active))
    if user is None:
        return
    brand = branding.current()
    with writing_to(user, asked_in):
        body = render_template(
            "email/password_reset.txt",
            greeting_name=user.name,
            reset_url=absolute_url(
                "auth.reset_password", token=make_token(user, datetime.fromisoformat(requested_at))
            ),
            minutes=int(RESET_LINK_LIFETIME.total_seconds() // 60),
            has_password=user.password_hash is not None,
        )
        subject = _("Reset your %(brand)s password", brand=brand.name)
    to = user.email
    db.session.commit()  # ends the read: SQLite's lock is not held while the mail server answers
    send_email.run(to, subject, body, None, brand.sender_name)


def _read_token(token: str, now: datetime | None) -> tuple[int, int, str]:
    max_age = int(RESET_LINK_LIFETIME.total_seconds())
    try:
        payload = _serializer(now).loads(token, max_age=max_age)
    except BadData:  # tampered, signed with another key or salt, expired, or dated ahead
        raise InvalidResetToken() from None
    if not (isinstance(payload, list) and len(payload) == 3):
        raise InvalidResetToken()
    user_id, version, fingerprint = payload
    if not (type(user_id) is int and type(version) is int and isinstance(fingerprint, str)):
        raise InvalidResetToken()
    if not fingerprint.isascii():
        raise InvalidResetToken()
    return user_id, version, fingerprint


def verify_token(token: str, now: datetime | None = None) -> User:
    """The account a genuine, fresh, unused link is for; InvalidResetToken otherwise."""
    user_id, version, fingerprint = _read_token(token, now)
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.session_version != version:
        raise InvalidResetToken()
    if not hmac.compare_digest(fingerprint, _fingerprint(user)):
        raise InvalidResetToken()
    return user


def reset_password(token: str, new_password: str, now: datetime | None = None) -> User:
    """Set the password a link was sent for and end every session of the account (one
    conditional UPDATE: of two uses of one link, only one can succeed). Tells the owner by
    email once committed. The caller commits, then signs the browser in again."""
    now = now or utcnow()
    user = verify_token(token, now)
    check_password_policy(new_password)
    new_hash = hash_password(new_password)  # before the UPDATE: no row lock while hashing
    changed = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            User.active,
            User.session_version == user.session_version,
            User.password_hash.is_not_distinct_from(user.password_hash),
        )
        .values(password_hash=new_hash, session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # used, or changed, since we read it
        raise InvalidResetToken()
    db.session.expire(user)
    sessions.close_all_sessions(user.id)
    tell_password_changed(user, now)
    log.info("password reset for user %s", user.id)
    return user


def tell_password_changed(user: User, now: datetime, *, from_profile: bool = False) -> None:
    """Email the owner that the password changed (by a reset link, or from the profile): in
    their language, else the one of the page they changed it on."""
    with writing_to(user, current_language()):
        body = render_template(
            "email/password_changed.txt",
            greeting_name=user.name,
            from_profile=from_profile,
            changed_at=format_datetime(now),
            reset_url=absolute_url("auth.request_reset"),
        )
        subject = _("Your %(brand)s password was changed", brand=branding.current().name)
    queue_email(user.email, subject, body)
