"""The audit log: who changed what, when and from where.

Services call `record` inside the transaction of the change, so an entry exists exactly when
the change does. The actor is whoever is behind the current request, else the command line
(named by its command path, never its arguments, which may hold a password), else a job.
"""

from datetime import date, datetime

import click
from flask import has_request_context
from flask_limiter.util import get_remote_address
from flask_login import current_user

from extensions import db
from models import AuditLog, User, utcnow


def record(
    action: str,
    target_type: str,
    target_id: int | str | None,
    *,
    before: dict | None = None,
    after: dict | None = None,
    actor: User | None = None,
    system: str | None = None,
) -> AuditLog:
    """Log one change. `before`/`after` hold only what the reader needs (see `changes`).
    `system` names a background job when no person or command acts."""
    actor_id, label, ip = _actor(actor, system)
    entry = AuditLog(
        actor_id=actor_id,
        actor_label=label[:200],
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=_plain(before),
        after=_plain(after),
        ip=ip,
        created_at=utcnow(),
    )
    db.session.add(entry)
    return entry


def snapshot(obj, fields) -> dict:
    """The named attributes of a model instance, as plain JSON values."""
    return _plain({name: getattr(obj, name) for name in fields})


def changes(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the keys whose values differ, from both sides."""
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


def _actor(actor: User | None, system: str | None) -> tuple[int | None, str, str | None]:
    ip = get_remote_address() if has_request_context() else None
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user
    if actor is not None:
        return actor.id, actor.email or actor.phone or f"user {actor.id}", ip
    context = click.get_current_context(silent=True)
    if context is not None and not has_request_context():
        return None, f"cli: {context.command_path}", None
    return None, f"system: {system or 'job'}", ip


def _plain(value):
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
