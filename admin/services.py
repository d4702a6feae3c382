"""Staff accounts and roles."""

from sqlalchemy import select

from auth.services import register_participant
from core.errors import DomainError
from extensions import db
from models import ROLES, User


class UnknownUser(DomainError):
    status = 404
    code = "unknown_user"
    message = "No account has this email address."


class UnknownRole(DomainError):
    code = "unknown_role"
    message = f"A role is one of: {', '.join(ROLES)}."


def create_admin(*, email: str, name: str, password: str) -> User:
    """An administrator is a participant with the admin role: same checks, same own code."""
    user = register_participant(name=name, email=email, password=password)
    user.role = "admin"
    db.session.flush()
    return user


def set_role(email: str, role: str) -> tuple[User, str]:
    """Give the account `role`; returns the user and the role they had before."""
    if role not in ROLES:
        raise UnknownRole()
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise UnknownUser()
    before, user.role = user.role, role
    db.session.flush()
    return user, before
