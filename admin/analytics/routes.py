"""Staff panel — Analytics: the home page at /admin/ (its CSV exports: `services`)."""

from flask import Blueprint, render_template, request

from admin.analytics import services
from admin.analytics.forms import AnalyticsFilterForm
from admin.crm.queries import campaign_choices
from admin.operations.queries import program_choices
from admin.policy import require

bp = Blueprint("analytics", __name__)


@bp.get("/")
@require("analytics.view")
def home():
    form = AnalyticsFilterForm(formdata=request.args)
    form.fill_choices(program_choices(), campaign_choices())
    try:
        figures = services.figures(services.filters_of(form))
    except services.InvalidFilter as error:
        form[error.field].errors = [error.message]
        return render_template("admin/analytics.html", form=form, figures=None), 400
    return render_template("admin/analytics.html", form=form, figures=figures)
