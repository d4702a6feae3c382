"""Changing one's password while signed in: the current password first (counted against the
account's wrong-password budget, like a login), then the new one replaces it, every other
session ends and the owner is told by email, as after a reset."""

import contextlib
import logging
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import update
from werkzeug.security import check_password_hash

from auth import reset, sessions, throttle
from auth.services import check_password_policy, hash_password
from core.errors import DomainError
from extensions import db
from models import User, utcnow

log = logging.getLogger(__name__)


class WrongCurrentPassword(DomainError):
    status = 403
    code = "wrong_password"
    field = "current_password"
    message = _l("This is not your current password.")


class PasswordChangedMeanwhile(DomainError):
    status = 409
    code = "password_changed_meanwhile"
    message = _l("Your password was changed in the meantime. Reload the page and try again.")


def check_current_password(user: User, typed: str) -> None:
    if user.password_hash is None:
        raise WrongCurrentPassword(_("This account has no password yet; add one above."))
    attempt = throttle.password_attempt(user.email) if user.email else contextlib.nullcontext()
    with attempt:  # a right password gives its place in the budget back
        if not check_password_hash(user.password_hash, typed or ""):
            raise WrongCurrentPassword()


def change_password(user: User, current: str, new_password: str, now: datetime | None = None):
    """Set a new password for an owner who typed the current one, end every session of the
    account (the caller signs this browser in again after the commit) and tell the owner."""
    now = now or utcnow()
    check_current_password(user, current)
    check_password_policy(new_password)
    new_hash = hash_password(new_password)  # before the UPDATE: no row lock while hashing
    changed = db.session.execute(
        update(User)
        .where(User.id == user.id, User.password_hash == user.password_hash)
        .values(password_hash=new_hash, session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # another change (or a reset) got there first
        raise PasswordChangedMeanwhile()
    db.session.expire(user)
    sessions.close_all_sessions(user.id)
    reset.tell_password_changed(user, now, from_profile=True)
    log.info("password changed from the profile for user %s", user.id)
