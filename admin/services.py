"""Staff accounts and roles."""

from sqlalchemy import select

from auth.services import (
    EmailTaken,
    canonical_email,
    check_password_policy,
    clean_name,
    hash_password,
    normalize_email,
)
from core.errors import DomainError
from extensions import db
from models import ROLES, User
from referral import services as referral_services


class UnknownUser(DomainError):
    status = 404
    code = "unknown_user"
    message = "No account has this email address."


class UnknownRole(DomainError):
    code = "unknown_role"
    message = f"A role is one of: {', '.join(ROLES)}."


def create_admin(*, email: str, name: str, password: str) -> User:
    email = normalize_email(email)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken()
    check_password_policy(password)
    user = User(
        email=email,
        email_canonical=canonical_email(email),
        name=clean_name(name),
        password_hash=hash_password(password),
        role="admin",
    )
    db.session.add(user)
    db.session.flush()
    referral_services.issue_code(user, referral_services.default_program())
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
