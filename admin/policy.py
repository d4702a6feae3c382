"""Who may do what in the staff panel: the one place that decides.

Every staff route is wrapped in `require(permission)`; templates ask `can(permission)` to
show only what the user may use. The role is read from the database on every request (the
user loader), so a demotion or deactivation takes effect on the next request.
"""

from functools import wraps

from flask import abort
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from extensions import login_manager

STAFF_ROLES = ("operator", "marketer", "manager", "admin")

# Each stored role code (models.ROLES) as people read it: capitalised where it stands alone
# (a choice, a filter), in lower case inside a sentence or a table. The codes stay English in
# the database, the CSV files and the audit log.
ROLE_TITLES = {
    "member": _l("Member"),
    "operator": _l("Operator"),
    "marketer": _l("Marketer"),
    "manager": _l("Manager"),
    "admin": _l("Admin"),
}
ROLE_NAMES = {
    "member": _l("member"),
    "operator": _l("operator"),
    "marketer": _l("marketer"),
    "manager": _l("manager"),
    "admin": _l("admin"),
}


def role_name(role: str | None) -> str:
    """ "manager" -> "manager" / «менеджер»; an unknown code as it is."""
    return str(ROLE_NAMES.get(role, role or ""))


# permission -> the roles that hold it (admin holds every permission).
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "analytics.view": STAFF_ROLES,
    "campaign_stats.view": STAFF_ROLES,
    "leads.view": ("operator", "manager"),
    "leads.edit": ("operator",),
    "leads.convert": ("manager",),
    "services.manage": ("marketer",),
    "campaigns.manage": ("marketer",),
    "programs.manage": ("marketer",),
    "contracts.manage": ("manager",),
    "review.decide": ("manager",),
    "rewards.manage": ("manager",),
    "payouts.manage": ("manager",),
    "conversions.manage": ("manager",),
    "participants.view": ("manager",),
    "participants.manage": ("manager",),
    "referrals.view": ("marketer", "manager"),
    "users.manage": (),
    "integrations.manage": (),
    "audit.view": (),
    "settings.manage": (),  # the installation's brand: admin only
}


def role_can(role: str | None, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return role == "admin" or role in PERMISSIONS[permission]


def can(permission: str) -> bool:
    """Whether the current user holds `permission` (False for visitors and participants)."""
    return current_user.is_authenticated and role_can(current_user.role, permission)


def is_staff(user) -> bool:
    return user.is_authenticated and user.role in STAFF_ROLES


def require(permission: str):
    """Refuse the view with 403 unless the current user holds `permission`; visitors are
    sent to log in first. The permission is kept on the view for the route walk test."""
    role_can(None, permission)  # fail at import on a misspelt permission

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not role_can(current_user.role, permission):
                abort(403)
            return view(*args, **kwargs)

        guarded.required_permission = permission
        return guarded

    return decorate
