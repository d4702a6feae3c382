"""Accounts: who may sign up, with what password, and who is who on each request."""

import functools
import unicodedata
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from flask import current_app, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from auth import sessions
from core import counters
from core.errors import DomainError, error_response, wants_json
from core.mail import canonical_email
from extensions import db
from models import ReferralCode, User, utcnow
from referral import services as referral_services

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024


class InvalidEmail(DomainError):
    code = "invalid_email"
    field = "email"


class EmailTaken(DomainError):
    status = 409
    code = "email_taken"
    field = "email"
    message = _l("This email is already registered. Log in instead.")


class PhoneTaken(DomainError):
    status = 409
    code = "phone_taken"
    field = "phone"
    message = _l("This phone number belongs to another account.")


class WeakPassword(DomainError):
    code = "weak_password"
    field = "password"


class InvalidName(DomainError):
    code = "invalid_name"
    field = "name"
    message = _l("Enter your name without control characters.")


class InvalidCredentials(DomainError):
    status = 401
    code = "invalid_credentials"
    message = _l("Invalid email or password.")


def normalize_email(raw: str) -> str:
    """The address as stored: checked for syntax (and DNS when EMAIL_CHECK_DNS), lower-cased."""
    try:
        info = validate_email(raw, check_deliverability=current_app.config["EMAIL_CHECK_DNS"])
    except EmailNotValidError as error:
        raise InvalidEmail(
            _("This email address is not valid: %(reason)s", reason=str(error))
        ) from None
    return info.normalized.lower()


@functools.cache
def _common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password_policy(password: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise WeakPassword(_("Use at least %(num)d characters.", num=PASSWORD_MIN_LENGTH))
    if len(password) > PASSWORD_MAX_LENGTH:
        raise WeakPassword(_("Use at most %(num)d characters.", num=PASSWORD_MAX_LENGTH))
    if password.lower() in _common_passwords():
        raise WeakPassword(_("This is one of the most common passwords; choose another."))


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise InvalidName()
    return name


def register_participant(
    *,
    name: str,
    email: str,
    password: str,
    password_hash: str | None = None,
    typed_code: str | None = None,
    checked_code: ReferralCode | None = None,
    cookie: tuple[str, datetime] | None = None,
    device_id: str | None = None,
    ip: str | None = None,
    locale: str | None = None,
    now: datetime | None = None,
) -> User:
    """Sign up by email: create a participant, their own code and, when a valid code came
    with them, the referral; all in the caller's transaction. A bad typed code refuses the
    whole signup. `password_hash`: this very password hashed already, before the caller's
    transaction began; `checked_code`: the typed code as found earlier in this transaction."""
    name = clean_name(name)
    email = normalize_email(email)
    check_password_policy(password)
    password_hash = password_hash or hash_password(password)
    account = User(
        name=name,
        email=email,
        email_canonical=canonical_email(email),
        password_hash=password_hash,
        locale=locale,
    )
    return create_participant(
        account,
        typed_code=typed_code,
        checked_code=checked_code,
        cookie=cookie,
        device_id=device_id,
        ip=ip,
        now=now,
    )


def create_participant(
    user: User,
    *,
    typed_code: str | None = None,
    checked_code: ReferralCode | None = None,
    cookie: tuple[str, datetime] | None = None,
    device_id: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> User:
    """Add a new participant (an unsaved User with its login already checked: email and
    password, or phone), their own code, and the referral when a valid code came with them
    (typed, else the attribution cookie). A bad typed code refuses the whole signup."""
    now = now or utcnow()
    inviter = referral_services.resolve_signup_code(typed_code, cookie, now, found=checked_code)
    user.signup_ip, user.device_id, user.created_at = ip, device_id, now
    verdict = None
    if inviter is not None:
        # Judged before the account is written, so a counted referral's inviter goes into
        # the account's own INSERT rather than an UPDATE after it.
        verdict = referral_services.judge_signup(user, inviter.code, now, new_participant=True)
        if referral_services.counts_at_once(verdict):
            user.referred_by_id = inviter.code.user_id
    _insert_user(user)
    counters.count_on_commit(counters.SIGNUPS)
    # Most signups come through a code of the default program, loaded with the code already.
    if inviter is not None and inviter.code.program.is_default:
        own_program = inviter.code.program
    else:
        own_program = referral_services.default_program()
    referral_services.issue_code(user, own_program)
    if inviter is not None:
        referral_services.attribute_signup(
            user,
            inviter.code,
            inviter.source,
            now,
            clicked_at=inviter.clicked_at,
            new_participant=True,
            verdict=verdict,
        )
    return user


def _insert_user(user: User) -> User:
    """Insert the account; the unique keys decide whether its email or phone is free. A
    refusal leaves the transaction to be rolled back (a form checked the address before, to
    show it; a caller that goes on after a refusal wraps the call in a savepoint)."""
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        raise (EmailTaken() if user.email is not None else PhoneTaken()) from None
    return user


def check_login_free(email: str | None, phone: str | None) -> None:
    """Refuse an email or phone number another account already logs in with."""
    if email is not None and db.session.scalar(select(User.id).where(User.email == email)):
        raise EmailTaken()
    if phone is not None and db.session.scalar(select(User.id).where(User.phone == phone)):
        raise PhoneTaken()


def add_email_login(user: User, email: str, password: str) -> None:
    """Give an account without an email (a phone participant) an email and password to log
    in with. A taken email changes nothing."""
    if user.email is not None:
        raise InvalidEmail(_("This account already has an email address."))
    email = normalize_email(email)
    check_password_policy(password)
    password_hash = hash_password(password)
    check_login_free(email, None)
    try:
        with db.session.begin_nested():
            user.email, user.email_canonical = email, canonical_email(email)
            user.password_hash = password_hash
    except IntegrityError:
        raise EmailTaken() from None


# A real hash to compare against when the email is unknown, so both answers take as long.
@functools.cache
def _decoy_hash(method: str) -> str:
    return generate_password_hash("decoy password for unknown accounts", method=method)


def authenticate(email: str, password: str) -> User:
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or user.password_hash is None:
        check_password_hash(_decoy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        raise InvalidCredentials()
    if not check_password_hash(user.password_hash, password) or not user.active:
        raise InvalidCredentials()
    return user


def load_user(session_id: str) -> User | None:
    """Flask-Login's loader. The id is "<user id>:<session version>:<session key>"
    (User.get_id): a deactivated account, a session logged out or expired, or one ended by
    raising the account's session version since, is signed out on its next request."""
    return sessions.find_user(session_id)


def lock_account(user_id: int) -> User | None:
    """The account's row, locked and fresh (None: no such account). The active admins are
    locked first, always in id order, so concurrent role changes and deletions queue instead
    of each seeing the other's admin still there."""
    db.session.scalars(
        select(User.id).where(User.role == "admin", User.active).order_by(User.id).with_for_update()
    ).all()
    return db.session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def end_all_sessions(user: User) -> None:
    """Sign the account out everywhere (sessions, remember-me cookies, pending reset links);
    the caller signs the current browser back in with `sessions.sign_in` after the commit."""
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(session_version=User.session_version + 1)
        .execution_options(synchronize_session="fetch")
    )
    sessions.close_all_sessions(user.id)


def landing_url(user: User) -> str:
    """Where a sign-in lands without a `next`: staff (any role but member) in the panel,
    participants on their dashboard."""
    if user.role != "member":
        return url_for("admin.analytics.home")
    return url_for("referral.dashboard")


def unauthorized():
    if wants_json():
        return error_response(401, "login_required", _("Log in to see this."))
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
