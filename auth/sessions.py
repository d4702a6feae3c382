"""Signed-in browsers. Each sign-in issues a random key that the browser's session cookie and
its remember-me cookie carry (inside the user id Flask-Login keeps: "<id>:<version>:<key>");
a `UserSession` row, found by the key's SHA-256, says that sign-in is still open. Logging out
deletes the row, so a copy of either cookie taken before is worth nothing afterwards. Raising
`users.session_version` still ends every session of an account at once."""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app, g, session
from flask_login import current_user, login_user, logout_user
from sqlalchemy import delete, select

from extensions import db
from models import User, UserSession, utcnow

KEY_BYTES = 32
# Flask-Login's own default for the remember-me cookie.
_REMEMBER_DEFAULT = timedelta(days=365)
# A PostgreSQL integer; a larger id in a (signed) cookie cannot be anyone's.
_MAX_ID = 2**31 - 1


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _lifetime(remember: bool) -> timedelta:
    """How long a sign-in stays valid on the server: the remember-me cookie's lifetime when
    the browser asked to be remembered, else Flask's session lifetime (31 days by default)."""
    if not remember:
        return current_app.permanent_session_lifetime
    duration = current_app.config.get("REMEMBER_COOKIE_DURATION", _REMEMBER_DEFAULT)
    return duration if isinstance(duration, timedelta) else timedelta(seconds=int(duration))


def open_session(
    user: User, *, remember: bool, now: datetime | None = None, new_account: bool = False
) -> str:
    """Add a session row for a new sign-in of `user` (the caller commits) and give the
    instance its key; the account's own expired rows are removed on the way (an account
    created in this transaction, `new_account`, has none)."""
    now = now or utcnow()
    if not new_account:
        db.session.execute(
            delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now)
        )
    key = secrets.token_urlsafe(KEY_BYTES)
    db.session.add(
        UserSession(
            key_hash=_digest(key),
            user_id=user.id,
            created_at=now,
            expires_at=now + _lifetime(remember),
        )
    )
    user.session_key = key
    return key


def find_user(session_id: str, now: datetime | None = None) -> User | None:
    """The active account whose open, unexpired session this id names; None otherwise.
    One query: the session row by its primary key, joined to its user's row."""
    parts = session_id.split(":")
    if len(parts) != 3 or not parts[2]:
        return None  # also every cookie signed before sessions had keys
    user_id, version, key = parts
    try:
        user_id, version = int(user_id), int(version)
    except ValueError:
        return None
    if not (0 < user_id <= _MAX_ID and 0 <= version <= _MAX_ID):
        return None
    user = db.session.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.key_hash == _digest(key),
            UserSession.expires_at > (now or utcnow()),
            User.id == user_id,
            User.session_version == version,
            User.active,
        )
    )
    if user is not None:
        user.session_key = key
    return user


def close_session(key: str) -> None:
    """End one sign-in (the caller commits)."""
    db.session.execute(delete(UserSession).where(UserSession.key_hash == _digest(key)))


def close_all_sessions(user_id: int) -> None:
    """Remove every session row of an account (the caller commits). The session version
    raised alongside is what ends them; this keeps the table from holding dead rows."""
    db.session.execute(delete(UserSession).where(UserSession.user_id == user_id))


def prune_expired(now: datetime | None = None) -> int:
    """Delete every expired session row; returns how many went (the caller commits)."""
    result = db.session.execute(
        delete(UserSession).where(UserSession.expires_at <= (now or utcnow()))
    )
    return result.rowcount


def _rotate_csrf_token() -> None:
    # Flask-WTF keeps the raw token in the session and its signed form in `g`, both under the
    # field name; without them the next form gets a new token and old ones stop working.
    name = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    session.pop(name, None)
    g.pop(name, None)


def sign_in(user: User, *, remember: bool = False) -> None:
    """Sign this browser in as `user`: a new session row (committed here), the cookies that
    carry its key, and a CSRF token that was never seen before signing in."""
    open_session(user, remember=remember)
    db.session.commit()
    complete_sign_in(user, remember=remember)


def complete_sign_in(user: User, *, remember: bool = False) -> None:
    """The browser's half of a sign-in whose session row (`open_session`) is committed: the
    cookies that carry its key, and a CSRF token that was never seen before signing in."""
    _rotate_csrf_token()
    login_user(user, remember=remember)


def sign_out() -> None:
    """Sign this browser out and end its sign-in on the server: the session cookie and the
    remember-me cookie it came with stop working everywhere, not just here."""
    key = getattr(current_user, "session_key", None)
    if key:
        close_session(key)
        db.session.commit()
    logout_user()
    _rotate_csrf_token()
