"""The CRM's CSV exports: each uses the query (and so the filters) of its screen."""

from admin import campaign_stats, contracts, crm, exports
from admin.crm_forms import to_text


def _ratio(row) -> str:
    value = campaign_stats.ratio(int(row.revenue), int(row.spend))
    return "" if value is None else str(value)


def register_exports() -> None:
    exports.register(
        "services",
        "services.manage",
        [
            ("id", lambda s: s.id),
            ("name", lambda s: s.name),
            ("description", lambda s: s.description),
            ("price", lambda s: to_text(s.price, s.currency)),
            ("currency", lambda s: s.currency),
            ("created_at", lambda s: s.created_at),
        ],
        crm.services_query,
    )
    exports.register(
        "campaigns",
        "campaigns.manage",
        [
            ("id", lambda c: c.id),
            ("name", lambda c: c.name),
            ("service", lambda c: c.service.name if c.service else None),
            ("channel", lambda c: c.channel),
            ("budget", lambda c: to_text(c.budget, c.currency)),
            ("currency", lambda c: c.currency),
            ("starts_on", lambda c: c.starts_on),
            ("ends_on", lambda c: c.ends_on),
        ],
        crm.campaigns_query,
    )
    exports.register(
        "leads",
        "leads.view",
        [
            ("id", lambda lead: lead.id),
            ("full_name", lambda lead: lead.full_name),
            ("phone", lambda lead: lead.phone),
            ("email", lambda lead: lead.email),
            ("campaign", lambda lead: lead.campaign.name if lead.campaign else None),
            ("status", lambda lead: lead.status),
            ("source", lambda lead: lead.source),
            ("contract_id", lambda lead: lead.contract_id),
            ("created_at", lambda lead: lead.created_at),
        ],
        crm.leads_query,
    )
    exports.register(
        "contracts",
        "contracts.manage",
        [
            ("id", lambda c: c.id),
            ("name", lambda c: c.name),
            ("lead", lambda c: c.lead.full_name),
            ("lead_id", lambda c: c.lead_id),
            ("service", lambda c: c.service.name),
            ("signed_on", lambda c: c.signed_on),
            ("valid_from", lambda c: c.valid_from),
            ("valid_until", lambda c: c.valid_until),
            ("amount", lambda c: to_text(c.amount, c.currency)),
            ("currency", lambda c: c.currency),
            ("document", lambda c: c.file_name),
        ],
        contracts.contracts_query,
    )
    exports.register(
        "campaign_stats",
        "campaign_stats.view",
        [
            ("campaign", lambda row: row.Campaign.name),
            ("channel", lambda row: row.Campaign.channel),
            ("currency", lambda row: row.Campaign.currency),
            ("leads", lambda row: row.leads),
            ("active_clients", lambda row: row.active_leads),
            ("revenue", lambda row: to_text(int(row.revenue), row.Campaign.currency)),
            ("spend", lambda row: to_text(int(row.spend), row.Campaign.currency)),
            ("revenue_per_spend", _ratio),
            ("entries_in_other_currencies_left_out", lambda row: int(row.left_out)),
        ],
        campaign_stats.stats_query,
    )
