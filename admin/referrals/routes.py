"""Staff panel — Referrals: every referral, filtered and searched, with its CSV export and
the clicks export of the same dates and programs (exports: `queries.CSV_EXPORTS`)."""

from flask import Blueprint, render_template, request

from admin import listing
from admin.policy import require
from admin.referrals import queries
from admin.referrals.forms import SOURCE_WORDS, STATUS_WORDS

bp = Blueprint("referrals", __name__)

FILTER_NAMES = ("q", "status", "source", "program", "campaign", "since", "until")
# What the clicks file can follow of the filters: it has no status, source or search.
CLICK_FILTER_NAMES = ("program", "campaign", "since", "until")


@bp.get("/referrals")
@require("referrals.view")
def list_referrals():
    form = queries.filter_form(request.args)
    filters = queries.check_filters(form)
    kept = listing.kept_filters(*FILTER_NAMES)
    context = {
        "form": form,
        "filters": kept,
        "click_filters": {name: kept[name] for name in CLICK_FILTER_NAMES if name in kept},
        "status_words": STATUS_WORDS,
        "source_words": SOURCE_WORDS,
    }
    if filters is None:
        return render_template("admin/referrals/list.html", entries=None, **context), 400
    entries = listing.paginate(queries.referrals_for(filters))
    return render_template("admin/referrals/list.html", entries=entries, **context)
