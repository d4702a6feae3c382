"""Staff panel — Analytics: the home page at /admin/ and its CSV exports."""

from flask import Blueprint, render_template, request
from werkzeug.datastructures import MultiDict

from admin import analytics, crm, exports, operations
from admin import analytics_queries as queries
from admin.analytics_forms import AnalyticsFilterForm
from admin.policy import require

bp = Blueprint("analytics", __name__)


def _form(args: MultiDict) -> AnalyticsFilterForm:
    form = AnalyticsFilterForm(formdata=args)
    form.fill_choices(operations.program_choices(), crm.campaign_choices())
    return form


@bp.get("/")
@require("analytics.view")
def home():
    form = _form(request.args)
    try:
        figures = analytics.figures(form.filters())
    except analytics.InvalidFilter as error:
        form[error.field].errors = [error.message]
        return render_template("admin/analytics.html", form=form, figures=None), 400
    return render_template("admin/analytics.html", form=form, figures=figures)


def _scope(args: MultiDict) -> queries.Scope:
    """The page's filters for an export; bad ones answer 400 with the page's message."""
    return analytics.scope_of(_form(args).filters())


exports.register(
    "analytics_daily",
    "analytics.view",
    [
        ("day", lambda row: row.day),
        ("new_participants", lambda row: row.new_participants),
        ("conversions", lambda row: row.conversions),
    ],
    lambda args: queries.daily_query(_scope(args)),
)

exports.register(
    "top_referrers",
    "analytics.view",
    [
        ("participant_id", lambda row: row.user_id),
        ("name", lambda row: row.name),
        ("email", lambda row: row.email),
        ("counted_referrals", lambda row: row.referrals),
        ("qualified", lambda row: row.qualified),
        ("reward_currency", lambda row: row.currency),
        ("reward_earned_minor_units", lambda row: row.earned),
    ],
    lambda args: queries.top_referrers_query(_scope(args)),
)
