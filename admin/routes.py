"""The staff panel at /admin/. Each screen is a nested blueprint in its own package
(`admin/<screen>/`, templates in `templates/admin/<screen>/`); this one holds the guard every
admin request passes and the menu the layout shows."""

from flask import Blueprint, abort, current_app, url_for
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
from admin.policy import can, is_staff
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
    ("Analytics", "admin.analytics.home", "analytics.view"),
    ("Participants", "admin.people.list_participants", "participants.view"),
    ("Referrals", "admin.referrals.list_referrals", "referrals.view"),
    ("Programs", "admin.programs.list_programs", "programs.manage"),
    ("Review queue", "admin.operations.review_queue", "review.decide"),
    ("Rewards", "admin.operations.list_rewards", "rewards.manage"),
    ("Payouts", "admin.operations.list_payouts", "payouts.manage"),
    ("Conversions", "admin.operations.list_conversions", "conversions.manage"),
    ("Services", "admin.crm.list_services", "services.manage"),
    ("Campaigns", "admin.crm.list_campaigns", "campaigns.manage"),
    ("Campaign statistics", "admin.crm.campaign_stats", "campaign_stats.view"),
    ("Leads", "admin.crm.list_leads", "leads.view"),
    ("Contracts", "admin.crm.list_contracts", "contracts.manage"),
    ("Users & roles", "admin.people.list_users", "users.manage"),
    ("Integrations", "admin.integrations.show_integrations", "integrations.manage"),
    ("Outbox", "admin.integrations.show_outbox", "integrations.manage"),
    ("Audit log", "admin.integrations.show_audit", "audit.view"),
    ("Branding", "admin.settings.edit_branding", "settings.manage"),
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
