"""Staff panel — CRM: services, campaigns, leads, contracts and the campaign statistics."""

from collections.abc import Callable
from functools import partial

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm

from admin import listing
from admin.crm import campaign_stats as stats
from admin.crm import contracts, queries, services, uploads
from admin.crm.forms import (
    NONE,
    CampaignForm,
    ContractForm,
    ConvertLeadForm,
    LeadForm,
    ServiceForm,
    choices,
    optional_choice,
)
from admin.policy import require
from core.forms import submit
from core.money import currency_amount_text
from extensions import csrf, db
from models import CAMPAIGN_CHANNELS, LEAD_STATUSES, Campaign, Contract, Lead, Service

bp = Blueprint("crm", __name__)

_FORM = "admin/crm/form.html"


# --- services ---------------------------------------------------------------------------


@bp.get("/services")
@require("services.manage")
def list_services():
    return _list_page("admin/crm/services.html", queries.services_query, ("q",), "services")


@bp.route("/services/new", methods=["GET", "POST"])
@require("services.manage")
def new_service():
    form = ServiceForm(currency=_default_currency())
    return _form_page(
        form, lambda: _save_service(None, form), url_for(".list_services"), title=_("New service")
    )


@bp.route("/services/<int:service_id>/edit", methods=["GET", "POST"])
@require("services.manage")
def edit_service(service_id: int):
    service = _get(Service, service_id)
    price = currency_amount_text(service.price, service.currency)
    form = ServiceForm(**_values(service, services.SERVICE_FIELDS, price=price))
    return _form_page(
        form,
        lambda: _save_service(service, form),
        url_for(".list_services"),
        title=_("Edit service: %(name)s", name=service.name),
    )


def _save_service(service: Service | None, form: ServiceForm) -> str:
    saved = services.save_service(
        service,
        name=form.name.data,
        description=form.description.data or "",
        price=form.minor_units(form.price),
        currency=form.currency.data,
    )
    return _("Service “%(name)s” saved.", name=saved.name)


# --- campaigns --------------------------------------------------------------------------


@bp.get("/campaigns")
@require("campaigns.manage")
def list_campaigns():
    return _list_page(
        "admin/crm/campaigns.html",
        queries.campaigns_query,
        ("q", "channel"),
        "campaigns",
        channels=CAMPAIGN_CHANNELS,
    )


@bp.route("/campaigns/new", methods=["GET", "POST"])
@require("campaigns.manage")
def new_campaign():
    form = _campaign_form(currency=_default_currency())
    return _form_page(
        form,
        lambda: _save_campaign(None, form),
        url_for(".list_campaigns"),
        title=_("New campaign"),
    )


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@require("campaigns.manage")
def edit_campaign(campaign_id: int):
    campaign = _get(Campaign, campaign_id)
    form = _campaign_form(
        **_values(
            campaign,
            services.CAMPAIGN_FIELDS,
            service_id=campaign.service_id or NONE,
            budget=currency_amount_text(campaign.budget, campaign.currency),
        )
    )
    return _form_page(
        form,
        lambda: _save_campaign(campaign, form),
        url_for(".list_campaigns"),
        title=_("Edit campaign: %(name)s", name=campaign.name),
    )


def _campaign_form(**values) -> CampaignForm:
    form = CampaignForm(**values)
    form.service_id.choices = choices(queries.service_choices(), _("— none —"))
    return form


def _save_campaign(campaign: Campaign | None, form: CampaignForm) -> str:
    saved = services.save_campaign(
        campaign,
        name=form.name.data,
        service_id=optional_choice(form.service_id.data),
        channel=form.channel.data,
        budget=form.minor_units(form.budget),
        currency=form.currency.data,
        starts_on=form.starts_on.data,
        ends_on=form.ends_on.data,
    )
    return _("Campaign “%(name)s” saved.", name=saved.name)


@bp.get("/campaigns/stats")
@require("campaign_stats.view")
def campaign_stats():
    page = partial(
        render_template,
        "admin/crm/stats.html",
        filters=listing.kept_filters("channel", "start", "end"),
        channels=CAMPAIGN_CHANNELS,
    )
    try:
        stats.period_of(request.args)
    except stats.InvalidFilter as error:
        return page(pagination=None, rows=[], error=error), 400
    pagination = listing.paginate(stats.campaigns_query(request.args))
    return page(pagination=pagination, rows=stats.figures_for(list(pagination.items), request.args))


# --- leads ------------------------------------------------------------------------------


@bp.get("/leads")
@require("leads.view")
def list_leads():
    return _list_page(
        "admin/crm/leads.html",
        queries.leads_query,
        ("q", "status", "campaign"),
        "leads",
        statuses=LEAD_STATUSES,
        campaigns=queries.campaign_choices(),
    )


@bp.get("/leads/<int:lead_id>")
@require("leads.view")
def show_lead(lead_id: int):
    return _lead_page(_get(Lead, lead_id))


def _lead_page(lead: Lead, form: ConvertLeadForm | None = None, status: int = 200):
    lead_contracts = services.contracts_of(lead)
    if form is None:
        form = ConvertLeadForm(formdata=None)
    form.contract_id.choices = choices(
        (c.id, _("%(name)s (signed %(day)s)", name=c.name, day=c.signed_on)) for c in lead_contracts
    )
    return render_template(
        "admin/crm/lead.html", lead=lead, contracts=lead_contracts, convert_form=form
    ), status


@bp.route("/leads/new", methods=["GET", "POST"])
@require("leads.edit")
def new_lead():
    form = _lead_form()
    return _form_page(
        form, lambda: _save_lead(None, form), url_for(".list_leads"), title=_("New lead")
    )


@bp.route("/leads/<int:lead_id>/edit", methods=["GET", "POST"])
@require("leads.edit")
def edit_lead(lead_id: int):
    lead = _get(Lead, lead_id)
    form = _lead_form(**_values(lead, services.LEAD_FIELDS, campaign_id=lead.campaign_id or NONE))
    if lead.status == "active":
        del form.status  # an active client stays one
    return _form_page(
        form,
        lambda: _save_lead(lead, form),
        url_for(".show_lead", lead_id=lead.id),
        title=_("Edit lead: %(name)s", name=lead.full_name),
    )


def _lead_form(**values) -> LeadForm:
    form = LeadForm(**values)
    form.campaign_id.choices = choices(queries.campaign_choices(), _("— none —"))
    return form


def _save_lead(lead: Lead | None, form: LeadForm) -> str:
    saved = services.save_lead(
        lead,
        full_name=form.full_name.data,
        phone=form.phone.data,
        email=form.email.data,
        campaign_id=optional_choice(form.campaign_id.data),
        status=form.status.data if "status" in form else "active",
        created_by_id=current_user.id,
    )
    return _("Lead “%(name)s” saved.", name=saved.full_name)


@bp.post("/leads/<int:lead_id>/convert")
@require("leads.convert")
def convert_lead(lead_id: int):
    lead = _get(Lead, lead_id)
    form = ConvertLeadForm()
    form.contract_id.choices = choices((c.id, c.name) for c in services.contracts_of(lead))
    submission = submit(form, lambda: services.convert_lead(lead, form.contract_id.data))
    if not submission.done:
        return _lead_page(_get(Lead, lead_id), form, submission.status)
    flash(_("%(name)s is now an active client.", name=lead.full_name), "success")
    return redirect(url_for(".show_lead", lead_id=lead.id))


# --- contracts --------------------------------------------------------------------------


@bp.get("/contracts")
@require("contracts.manage")
def list_contracts():
    return _list_page(
        "admin/crm/contracts.html",
        queries.contracts_query,
        ("q", "lead", "service"),
        "contracts",
        services=queries.service_choices(),
    )


@csrf.exempt  # checked in the view, once the larger upload limit is in place
@bp.route("/leads/<int:lead_id>/contracts/new", methods=["GET", "POST"])
@require("contracts.manage")
def new_contract(lead_id: int):
    # The app accepts 1 MB bodies; this request may carry a document up to the contract
    # limit (plus room for the other fields). Set before anything reads the body.
    request.max_content_length = uploads.max_bytes() + 64 * 1024
    if request.method == "POST":
        csrf.protect()
    lead = _get(Lead, lead_id)
    form = ContractForm(currency=_default_currency())
    form.service_id.choices = choices(queries.service_choices())
    submission = submit(form, lambda: _upload_contract(lead, form))
    if submission.done:
        contract = submission.result
        flash(
            _(
                "Contract “%(name)s” uploaded (%(file)s).",
                name=contract.name,
                file=contract.file_name,
            ),
            "success",
        )
        return redirect(url_for(".show_lead", lead_id=lead.id))
    limit = uploads.readable_size(uploads.max_bytes())
    return render_template(
        "admin/crm/contract_form.html", form=form, lead=lead, limit=limit
    ), submission.status


def _upload_contract(lead: Lead, form: ContractForm) -> Contract:
    """Upload and commit here, not in `submit`: a failed commit must take the stored
    document away again."""
    document = form.document.data
    contract = contracts.upload_contract(
        lead_id=lead.id,
        name=form.name.data,
        service_id=form.service_id.data,
        signed_on=form.signed_on.data,
        valid_from=form.valid_from.data,
        valid_until=form.valid_until.data,
        amount=form.minor_units(form.amount),
        currency=form.currency.data,
        document=document.stream,
        document_name=document.filename,
        uploaded_by_id=current_user.id,
    )
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        uploads.remove(contract.file_key)
        raise
    return contract


@bp.get("/contracts/<int:contract_id>/document")
@require("contracts.manage")
def download_contract(contract_id: int):
    contract = _get(Contract, contract_id)
    if not uploads.exists(contract.file_key):
        abort(404, _("The document of this contract is missing from the server."))
    return uploads.send(contract.file_key, contract.file_name, contract.content_type)


# --- shared -----------------------------------------------------------------------------


def _get(model, record_id: int):
    record = db.session.get(model, record_id)
    if record is None:
        abort(404)
    return record


def _values(record, fields, **overrides) -> dict:
    """A record's values to show in its edit form (typed values win on a POST)."""
    return {**{name: getattr(record, name) for name in fields}, **overrides}


def _default_currency() -> str:
    return current_app.config["DEFAULT_CURRENCY"]


def _list_page(template: str, query: Callable, filter_names, export: str, **context):
    return render_template(
        template,
        pagination=listing.paginate(query(request.args)),
        filters=listing.kept_filters(*filter_names),
        export=export,
        **context,
    )


def _form_page(form: FlaskForm, save: Callable, done: str, template: str = _FORM, **context):
    """Show the form; on a valid POST call `save` (which returns the success message) in one
    transaction, then flash and redirect. A refusal keeps what was typed and says what was
    wrong next to its field."""
    submission = submit(form, save)
    if submission.done:
        flash(submission.result, "success")
        return redirect(done)
    return render_template(template, form=form, back=done, **context), submission.status
