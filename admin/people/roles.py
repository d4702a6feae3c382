"""Staff accounts and roles: who holds which role, who may still sign in.

Two rules hold whatever path a change takes (the panel or `flask admin ...`): there is
always at least one active administrator, and nobody deactivates their own account.
"""

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from auth.services import EmailTaken, lock_account, normalize_email, register_participant
from core import audit
from core.database import after_commit
from core.errors import DomainError
from extensions import db
from models import ROLES, User
from referral import leaderboard, links


class UnknownUser(DomainError):
    status = 404
    code = "unknown_user"
    field = "email"
    message = _l("No account has this email address.")


class UnknownRole(DomainError):
    code = "unknown_role"
    field = "role"
    message = _l("A role is one of: %(roles)s.", roles=", ".join(ROLES))  # the stored codes


class LastAdmin(DomainError):
    status = 409
    code = "last_admin"
    message = _l(
        "This is the last active administrator: make another account admin first, "
        "or nobody could manage users any more."
    )


class OwnAccount(DomainError):
    status = 409
    code = "own_account"
    message = _l("You cannot deactivate your own account.")


class DeletedAccount(DomainError):
    status = 409
    code = "deleted_account"
    message = _l("This account was deleted: it cannot be reactivated or given a role.")


class StaffAccount(DomainError):
    status = 403
    code = "staff_account"
    message = _l("Only an administrator can deactivate or reactivate a staff account.")


def create_admin(*, email: str, name: str, password: str) -> User:
    """An administrator is a participant with the admin role: same checks, same own code."""
    user = register_participant(name=name, email=email, password=password)
    user.role = "admin"
    db.session.flush()
    audit.record("user.create_admin", "user", user.id, after={"email": user.email, "role": "admin"})
    return user


def ensure_admin(*, email: str, name: str, password: str) -> tuple[User, bool]:
    """The administrator a deployment names in its environment: created when no account has
    this email, else that account as it is. Never promoted: an address someone registered
    first keeps its role. Returns the account and whether it was created now."""
    try:
        with db.session.begin_nested():  # a taken address undoes this attempt alone
            return create_admin(email=email, name=name, password=password), True
    except EmailTaken:  # already there (or created this instant by another machine's start)
        existing = db.session.scalar(select(User).where(User.email == normalize_email(email)))
        return existing, False


def set_role(email: str, role: str) -> tuple[User, str]:
    """Give the account with `email` the `role`; returns the user and the role they had."""
    if role not in ROLES:
        raise UnknownRole()
    user_id = db.session.scalar(select(User.id).where(User.email == (email or "").strip().lower()))
    if user_id is None:
        raise UnknownUser()
    return set_user_role(user_id, role)


def set_user_role(user_id: int, role: str) -> tuple[User, str]:
    """Change one account's role (audit-logged); demoting the last active admin is refused."""
    if role not in ROLES:
        raise UnknownRole()
    user = _locked_account(user_id)
    before = user.role
    if user.deleted_at is not None:
        raise DeletedAccount()
    if before == role:
        return user, before
    if before == "admin":
        _keep_an_active_admin(user)
    user.role = role
    audit.record("user.role", "user", user.id, before={"role": before}, after={"role": role})
    db.session.flush()
    return user, before


def set_user_active(
    user_id: int, active: bool, actor: User | None, *, allow_staff: bool = True
) -> User:
    """Deactivate (the account can no longer sign in and leaves the leaderboard) or
    reactivate an account. Returns the user; a repeat of the current state changes nothing.
    `allow_staff=False` refuses it for staff accounts (decided on the locked, fresh row)."""
    user = _locked_account(user_id)
    if not allow_staff and user.role != "member":
        raise StaffAccount()
    if user.deleted_at is not None:
        raise DeletedAccount()
    if user.active == active:
        return user
    if not active:
        if actor is not None and actor.id == user.id:
            raise OwnAccount()
        if user.role == "admin":
            _keep_an_active_admin(user)
    user.active = active
    links.invalidate()
    audit.record(
        "user.reactivate" if active else "user.deactivate",
        "user",
        user.id,
        before={"active": not active},
        after={"active": active},
    )
    db.session.flush()
    after_commit(leaderboard.invalidate)
    return user


def _locked_account(user_id: int) -> User:
    user = lock_account(user_id)
    if user is None:
        raise UnknownUser()
    return user


def _keep_an_active_admin(user: User) -> None:
    others = db.session.scalar(
        select(User.id).where(User.role == "admin", User.active, User.id != user.id).limit(1)
    )
    if others is None and user.active:
        raise LastAdmin()
