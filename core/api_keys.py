"""API keys for other systems: shown once, stored as a hash, scoped, revocable.

A key reads `il_<prefix>_<secret>`. The prefix finds the row; only SHA-256 of the secret is
kept (the secret is 256 random bits, so a fast hash is enough) and compared in constant time.
Creating and revoking a key is audit-logged (name, prefix, scopes; never the secret), from the
panel and from `flask admin create-api-key` alike.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from flask import Request
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select, update

from core import audit
from core.errors import DomainError
from extensions import db
from models import ApiKey, utcnow

SCOPES = {
    "events:write": "send conversion events",
    "codes:issue": "issue referral codes for shop customers",
    "referrals:write": "record referrals of externally created signups",
}
_PREFIX_LENGTH = 8
_TOUCH_EVERY = timedelta(hours=1)


class InvalidApiKey(DomainError):
    status = 401
    code = "invalid_api_key"
    message = _l("A valid API key is required (Authorization: Bearer il_...).")


class MissingScope(DomainError):
    status = 403
    code = "missing_scope"
    message = _l("This API key may not do that.")


class InvalidScopes(DomainError):
    code = "invalid_scopes"
    field = "scopes"
    message = f"Choose at least one scope: {', '.join(SCOPES)}."


class UnknownApiKey(DomainError):
    status = 404
    code = "unknown_api_key"
    message = _l("There is no such API key.")


def create_api_key(name: str, scopes: list[str], now: datetime | None = None):
    """A new key: returns (row, the full key). The full key is never shown again."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidScopes(f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(SCOPES)}.")
    if not scopes:
        raise InvalidScopes()
    prefix = secrets.token_hex(_PREFIX_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        name=name.strip()[:100] or "API key",
        prefix=prefix,
        secret_hash=_digest(secret),
        scopes=sorted(set(scopes)),
        created_at=now or utcnow(),
    )
    db.session.add(key)
    db.session.flush()
    audit.record("api_key.create", "api_key", key.id, after=audit.snapshot(key, _AUDITED))
    return key, f"il_{prefix}_{secret}"


_AUDITED = ("name", "prefix", "scopes")


def api_keys_query() -> Select:
    """Every key, newest first (revoked ones too: the list shows when they were revoked)."""
    return select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())


def revoke_api_key(key_id: int, now: datetime | None = None) -> ApiKey:
    """Revoke a key for good; revoking it again changes nothing (and logs nothing)."""
    now = now or utcnow()
    revoked = db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount
    key = db.session.get(ApiKey, key_id, populate_existing=True)
    if key is None:
        raise UnknownApiKey()
    if revoked:
        audit.record(
            "api_key.revoke",
            "api_key",
            key.id,
            before={"name": key.name, "prefix": key.prefix, "revoked_at": None},
            after={"revoked_at": now},
        )
    return key


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented_key(request: Request) -> str | None:
    """The key a request carries, from `Authorization: Bearer` or `X-Api-Key`."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("X-Api-Key", "").strip() or None


def authenticate(raw: str | None, scope: str, now: datetime | None = None) -> ApiKey:
    parts = (raw or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "il" or len(parts[1]) != _PREFIX_LENGTH:
        raise InvalidApiKey()
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    expected = key.secret_hash if key is not None else _digest("no such key")
    if not hmac.compare_digest(expected, _digest(parts[2])) or key is None or key.revoked_at:
        raise InvalidApiKey()
    if scope not in key.scopes:
        raise MissingScope(f"This API key lacks the scope {scope!r}.")
    now = now or utcnow()
    if key.last_used_at is None or now - key.last_used_at > _TOUCH_EVERY:
        key.last_used_at = now
    return key
