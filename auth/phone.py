"""Signing in with a phone number and a one-time code texted to it.

A code is six random digits, kept only as a keyed hash (HMAC-SHA256 with SECRET_KEY over the
number and the code), valid CODE_TTL, good for MAX_ATTEMPTS guesses and one use. A new code
for a number replaces the unused ones before it. Codes with `user_id` set add the number to
that signed-in account; codes without it sign in (or sign up) whoever holds the number.

Checking a code takes two transactions: `spend_attempt` counts the guess (the view commits it
whatever comes next), then `redeem` compares in constant time and marks the code used with a
conditional UPDATE, so two requests racing with the right code cannot both get in.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from auth import services as account_services
from core import branding
from core.errors import DomainError
from extensions import db
from models import PhoneCode, User, utcnow
from referral import services as referral_services

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
DEFAULT_NAME = "New member"
_MAX_RAW_LENGTH = 40  # longer than any number written with spaces and punctuation


class InvalidPhone(DomainError):
    code = "invalid_phone"
    field = "phone"
    message = _l(
        "This is not a valid phone number. Check it, and start with + and the country code"
        " if it is not a local number."
    )


class CodeError(DomainError):
    """A code that cannot be accepted; the subclasses say why."""

    code = "invalid_code"
    field = "code"


class WrongCode(CodeError):
    code = "wrong_code"
    message = _l("This code is not valid. Check the text message, or request a new code.")


class CodeExpired(CodeError):
    code = "code_expired"
    message = _l("This code has expired. Request a new code.")


class CodeUsed(CodeError):
    code = "code_used"
    message = _l("This code has already been used. Request a new code.")


class TooManyAttempts(CodeError):
    status = 429
    code = "too_many_attempts"
    message = _l("Too many wrong tries for this code. Request a new code.")


class NoCodeSent(CodeError):
    code = "no_code_sent"
    message = _l("No code was sent to this number. Request a code first.")


@dataclass(frozen=True)
class IssuedCode:
    id: int
    phone: str
    code: str  # in clear only on its way to the text message


# --- numbers --------------------------------------------------------------------------------


def normalize_phone(raw: str | None, region: str | None = None) -> str:
    """The number in E.164 ("+14155550132"): written with +country code, or as a national
    number of `region` (PHONE_DEFAULT_REGION when not given). Refuses what is not a valid
    number."""
    raw = (raw or "").strip()
    if not raw or len(raw) > _MAX_RAW_LENGTH:
        raise InvalidPhone()
    region = region or current_app.config["PHONE_DEFAULT_REGION"]
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone() from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str) -> str:
    """ "+442079460018" -> "+44 20 7946 0018", for pages."""
    number = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def code_message(code: str) -> str:
    """The text of a code, written while the person who asked for it reads the page: in its
    language (a member's saved choice wins there, core/i18n.py)."""
    minutes = int(CODE_TTL.total_seconds() // 60)
    return ngettext(
        "Your %(brand)s code is %(code)s. It expires in %(num)d minute.",
        "Your %(brand)s code is %(code)s. It expires in %(num)d minutes.",
        minutes,
        brand=branding.current().name,
        code=code,
    )


# --- codes ----------------------------------------------------------------------------------


def _code_hash(phone: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"phone-code:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def _for_purpose(user_id: int | None):
    return PhoneCode.user_id.is_(None) if user_id is None else PhoneCode.user_id == user_id


def issue_code(
    phone: str, *, user_id: int | None = None, now: datetime | None = None
) -> IssuedCode:
    """A fresh code for `phone` (E.164), replacing the unused ones for the same purpose."""
    now = now or utcnow()
    db.session.execute(
        delete(PhoneCode).where(
            PhoneCode.phone == phone, _for_purpose(user_id), PhoneCode.used_at.is_(None)
        )
    )
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    row = PhoneCode(
        phone=phone,
        user_id=user_id,
        code_hash=_code_hash(phone, code),
        attempts=0,
        created_at=now,
        expires_at=now + CODE_TTL,
    )
    db.session.add(row)
    db.session.flush()
    return IssuedCode(row.id, phone, code)


def discard_code(code_id: int) -> None:
    """Forget a code that never reached the phone (the text could not be sent)."""
    db.session.execute(delete(PhoneCode).where(PhoneCode.id == code_id))


def spend_attempt(phone: str, *, user_id: int | None = None, now: datetime | None = None) -> int:
    """Count one guess against the number's latest code and return the code's id; refuses
    when there is no usable code. The caller commits before comparing anything."""
    now = now or utcnow()
    code_id = db.session.scalar(
        select(PhoneCode.id)
        .where(PhoneCode.phone == phone, _for_purpose(user_id))
        .order_by(PhoneCode.created_at.desc(), PhoneCode.id.desc())
        .limit(1)
    )
    if code_id is None:
        raise NoCodeSent()
    counted = db.session.execute(
        update(PhoneCode)
        .where(
            PhoneCode.id == code_id,
            PhoneCode.used_at.is_(None),
            PhoneCode.expires_at > now,
            PhoneCode.attempts < MAX_ATTEMPTS,
        )
        .values(attempts=PhoneCode.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount == 1:
        return code_id
    row = db.session.get(PhoneCode, code_id, populate_existing=True)
    if row.used_at is not None:
        raise CodeUsed()
    if row.attempts >= MAX_ATTEMPTS:
        raise TooManyAttempts()
    raise CodeExpired()


def redeem(code_id: int, typed: str, now: datetime | None = None) -> str:
    """Accept the typed code if it is the one sent, marking it used; returns its number."""
    now = now or utcnow()
    row = db.session.get(PhoneCode, code_id, populate_existing=True)
    typed = "".join((typed or "").split())
    if not hmac.compare_digest(row.code_hash, _code_hash(row.phone, typed)):
        raise WrongCode()
    used = db.session.execute(
        update(PhoneCode)
        .where(PhoneCode.id == code_id, PhoneCode.used_at.is_(None), PhoneCode.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:
        # Another request got in first with this code (or it just expired).
        raise CodeUsed()
    return row.phone


# --- accounts -------------------------------------------------------------------------------


def check_signup_details(
    name: str | None,
    typed_code: str | None,
    cookie: tuple[str, datetime] | None,
    now: datetime | None = None,
) -> str | None:
    """Refuse, before any code is sent, what would refuse a first sign-in later: a name with
    control characters, an unknown typed referral code. Returns the name given, if any."""
    referral_services.resolve_signup_code(typed_code, cookie, now or utcnow())
    return account_services.clean_name(name) if name and name.strip() else None


def sign_in(
    phone: str,
    *,
    name: str | None = None,
    typed_code: str | None = None,
    cookie: tuple[str, datetime] | None = None,
    device_id: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> tuple[User, bool]:
    """The account a verified number signs in to, and whether it is new: the one holding the
    number, else a new participant (with their code, and the referral the typed code or the
    cookie names)."""
    user = db.session.scalar(select(User).where(User.phone == phone))
    if user is None:
        account = User(name=name or DEFAULT_NAME, phone=phone)
        created = account_services.create_participant(
            account, typed_code=typed_code, cookie=cookie, device_id=device_id, ip=ip, now=now
        )
        return created, True
    if not user.active:
        # The answer a wrong code gets: nothing tells the deactivated account apart.
        raise WrongCode()
    return user, False


def attach_phone(user: User, phone: str) -> None:
    """Give `user` the verified number; refused (nothing changed) if another account has it."""
    if user.phone == phone:
        return
    account_services.check_login_free(None, phone)
    try:
        with db.session.begin_nested():
            db.session.execute(
                update(User)
                .where(User.id == user.id)
                .values(phone=phone)
                .execution_options(synchronize_session="fetch")
            )
    except IntegrityError:
        raise account_services.PhoneTaken() from None
