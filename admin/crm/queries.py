"""The CRM's lists (services, campaigns, leads, contracts, campaign statistics) and their CSV
exports: each export uses the query, and so the filters, of its screen."""

import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import MultiDict

from admin.crm import campaign_stats
from admin.exports import CsvExport, money_cell
from core.inputs import whole_number
from extensions import db
from models import CAMPAIGN_CHANNELS, LEAD_STATUSES, Campaign, Contract, Lead, Service


def services_query(args: MultiDict) -> Select:
    query = select(Service).order_by(Service.name, Service.id)
    if search := _search_text(args):
        query = query.where(func.lower(Service.name).contains(search, autoescape=True))
    return query


def service_choices() -> list[tuple[int, str]]:
    rows = db.session.execute(select(Service.id, Service.name).order_by(Service.name))
    return [(service_id, name) for service_id, name in rows]


def campaigns_query(args: MultiDict) -> Select:
    query = select(Campaign).options(joinedload(Campaign.service))
    if (channel := args.get("channel")) in CAMPAIGN_CHANNELS:
        query = query.where(Campaign.channel == channel)
    if search := _search_text(args):
        query = query.where(func.lower(Campaign.name).contains(search, autoescape=True))
    return query.order_by(Campaign.starts_on.desc(), Campaign.id.desc())


def campaign_choices() -> list[tuple[int, str]]:
    rows = db.session.execute(select(Campaign.id, Campaign.name).order_by(Campaign.name))
    return [(campaign_id, name) for campaign_id, name in rows]


def leads_query(args: MultiDict) -> Select:
    query = select(Lead).options(joinedload(Lead.campaign))
    if (status := args.get("status")) in LEAD_STATUSES:
        query = query.where(Lead.status == status)
    campaign = args.get("campaign", "")
    if campaign == "none":
        query = query.where(Lead.campaign_id.is_(None))
    elif (campaign_id := whole_number(campaign)) is not None:
        query = query.where(Lead.campaign_id == campaign_id)
    if search := _search_text(args):
        phone_digits = re.sub(r"[^0-9]", "", search)
        matches = [
            func.lower(Lead.full_name).contains(search, autoescape=True),
            Lead.email.contains(search, autoescape=True),
        ]
        if phone_digits:
            matches.append(Lead.phone.contains(phone_digits, autoescape=True))
        query = query.where(or_(*matches))
    return query.order_by(Lead.created_at.desc(), Lead.id.desc())


def contracts_query(args: MultiDict) -> Select:
    query = select(Contract).options(joinedload(Contract.lead), joinedload(Contract.service))
    if (lead := whole_number(args.get("lead"))) is not None:
        query = query.where(Contract.lead_id == lead)
    if (service := whole_number(args.get("service"))) is not None:
        query = query.where(Contract.service_id == service)
    if search := (args.get("q") or "").strip().lower()[:100]:
        lead_names = select(Lead.id).where(
            func.lower(Lead.full_name).contains(search, autoescape=True)
        )
        query = query.where(
            or_(
                func.lower(Contract.name).contains(search, autoescape=True),
                Contract.lead_id.in_(lead_names),
            )
        )
    return query.order_by(Contract.signed_on.desc(), Contract.id.desc())


def _search_text(args: MultiDict) -> str:
    return (args.get("q") or "").strip().lower()[:100]


# --- CSV exports -----------------------------------------------------------------------------


def _cost(row) -> int:
    return int(row.spend) + int(row.reward_cost)


def _roi(row) -> float | None:
    """A number, so a spreadsheet reads "-22.3" as one (text starting "-" would be defused)."""
    value = campaign_stats.roi(int(row.revenue), _cost(row))
    return None if value is None else float(value)


CSV_EXPORTS = (
    CsvExport(
        name="services",
        permission="services.manage",
        columns=(
            (_l("id"), lambda s: s.id),
            (_l("name"), lambda s: s.name),
            (_l("description"), lambda s: s.description),
            (_l("price"), lambda s: money_cell(s.price, s.currency)),
            (_l("currency"), lambda s: s.currency),
            (_l("created_at"), lambda s: s.created_at),
        ),
        query=services_query,
    ),
    CsvExport(
        name="campaigns",
        permission="campaigns.manage",
        columns=(
            (_l("id"), lambda c: c.id),
            (_l("name"), lambda c: c.name),
            (_l("service"), lambda c: c.service.name if c.service else None),
            (_l("channel"), lambda c: c.channel),
            (_l("budget"), lambda c: money_cell(c.budget, c.currency)),
            (_l("currency"), lambda c: c.currency),
            (_l("starts_on"), lambda c: c.starts_on),
            (_l("ends_on"), lambda c: c.ends_on),
        ),
        query=campaigns_query,
    ),
    CsvExport(
        name="leads",
        permission="leads.view",
        columns=(
            (_l("id"), lambda lead: lead.id),
            (_l("full_name"), lambda lead: lead.full_name),
            (_l("phone"), lambda lead: lead.phone),
            (_l("email"), lambda lead: lead.email),
            (_l("campaign"), lambda lead: lead.campaign.name if lead.campaign else None),
            (_l("status"), lambda lead: lead.status),
            (_l("source"), lambda lead: lead.source),
            (_l("contract_id"), lambda lead: lead.contract_id),
            (_l("created_at"), lambda lead: lead.created_at),
        ),
        query=leads_query,
    ),
    CsvExport(
        name="contracts",
        permission="contracts.manage",
        columns=(
            (_l("id"), lambda c: c.id),
            (_l("name"), lambda c: c.name),
            (_l("lead"), lambda c: c.lead.full_name),
            (_l("lead_id"), lambda c: c.lead_id),
            (_l("service"), lambda c: c.service.name),
            (_l("signed_on"), lambda c: c.signed_on),
            (_l("valid_from"), lambda c: c.valid_from),
            (_l("valid_until"), lambda c: c.valid_until),
            (_l("amount"), lambda c: money_cell(c.amount, c.currency)),
            (_l("currency"), lambda c: c.currency),
            (_l("document"), lambda c: c.file_name),
        ),
        query=contracts_query,
    ),
    CsvExport(
        name="campaign_stats",
        permission="campaign_stats.view",
        columns=(
            (_l("campaign"), lambda row: row.Campaign.name),
            (_l("channel"), lambda row: row.Campaign.channel),
            (_l("currency"), lambda row: row.Campaign.currency),
            (_l("leads"), lambda row: row.leads),
            (_l("active_clients"), lambda row: row.active_leads),
            (_l("revenue"), lambda row: money_cell(int(row.revenue), row.Campaign.currency)),
            (_l("spend"), lambda row: money_cell(int(row.spend), row.Campaign.currency)),
            (
                _l("reward_cost"),
                lambda row: money_cell(int(row.reward_cost), row.Campaign.currency),
            ),
            (
                _l("cost"),
                lambda row: money_cell(
                    int(row.spend) + int(row.reward_cost), row.Campaign.currency
                ),
            ),
            (_l("roi_percent"), _roi),
            (_l("entries_in_other_currencies_left_out"), lambda row: int(row.left_out)),
        ),
        query=campaign_stats.stats_query,
    ),
)
