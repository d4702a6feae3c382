"""The staff panel at /admin/. Each screen is a nested blueprint in its own package
(`admin/<screen>/`, templates in `templates/admin/<screen>/`); this one holds the guard every
admin request passes and the menu the layout shows."""

from flask import Blueprint, abort, current_app, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from admin import (
    analytics,
    crm,
    exports,
    integrations,
    operations,
    people,
    programs,
    referrals,
    settings,
)
from admin.formats import fixed
from admin.policy import ROLE_TITLES, can, is_staff, role_name
from extensions import login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")
for screen in (
    analytics,
    people,
    referrals,
    programs,
    operations,
    crm,
    integrations,
    settings,
    exports,
):
    bp.register_blueprint(screen.bp)

# (label, endpoint, permission): the layout shows the entries the user may open.
MENU = (
    (_l("Analytics"), "admin.analytics.home", "analytics.view"),
    (_l("Participants"), "admin.people.list_participants", "participants.view"),
    (_l("Referrals"), "admin.referrals.list_referrals", "referrals.view"),
    (_l("Programs"), "admin.programs.list_programs", "programs.manage"),
    (_l("Review queue"), "admin.operations.review_queue", "review.decide"),
    (_l("Rewards"), "admin.operations.list_rewards", "rewards.manage"),
    (_l("Payouts"), "admin.operations.list_payouts", "payouts.manage"),
    (_l("Conversions"), "admin.operations.list_conversions", "conversions.manage"),
    (_l("Services"), "admin.crm.list_services", "services.manage"),
    (_l("Campaigns"), "admin.crm.list_campaigns", "campaigns.manage"),
    (_l("Campaign statistics"), "admin.crm.campaign_stats", "campaign_stats.view"),
    (_l("Leads"), "admin.crm.list_leads", "leads.view"),
    (_l("Contracts"), "admin.crm.list_contracts", "contracts.manage"),
    (_l("Users & roles"), "admin.people.list_users", "users.manage"),
    (_l("Integrations"), "admin.integrations.show_integrations", "integrations.manage"),
    (_l("Outbox"), "admin.integrations.show_outbox", "integrations.manage"),
    (_l("Audit log"), "admin.integrations.show_audit", "audit.view"),
    (_l("Branding"), "admin.settings.edit_branding", "settings.manage"),
)


@bp.before_request
def staff_only():
    """Defence in depth: whatever a screen's own check says, participants never get in."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not is_staff(current_user):
        abort(403)
    return None


@bp.app_context_processor
def admin_menu():
    def menu():
        views = current_app.view_functions
        return [
            (label, url_for(endpoint), endpoint)
            for label, endpoint, permission in MENU
            if endpoint in views and can(permission)
        ]

    return {"admin_menu": menu}


# A global, not a context variable, so macros imported without context can ask too.
bp.add_app_template_global(can, "can")
# A stored role code as people read it: {{ user.role | role_name }}, {{ role_titles[role] }}.
bp.add_app_template_filter(role_name, "role_name")
bp.add_app_template_global(ROLE_TITLES, "role_titles")
bp.add_app_template_filter(fixed, "fixed")  # decimals with the reader's decimal sign
