"""Every page of the app a person can open with GET, built from a small seeded set of data
(docs/guarantees.md #43): a participant with friends, referrals, rewards and a payout; one
referral held for review; a CRM service, campaign and lead; a webhook endpoint and an API key;
and who may see each page. `PAGES` lists them, `NOT_PAGES` what a GET answers that is not a
page for people (files, JSON, redirects). tests/test_russian_pages.py fails when a GET
endpoint is in neither, so a new page cannot escape the language check."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from admin.crm import services as crm
from admin.integrations import services as integrations
from auth import email_choices, reset
from core import api_keys
from core.money import CURRENCIES
from extensions import db
from models import Invitation, Lead, Payout, Referral, Reward, User, utcnow
from referral import invitations
from rewards import ledger
from tests import factories
from tests.helpers import accepted_purchase, csrf_token, log_in, read_form
from tests.phone_sign_in import request_code

# Names the seeded data carries (data, never translated), and the ISO currency codes the
# currency selects offer (codes, the same in every language).
SEEDED_NAMES = frozenset(
    {"Rita", "Referrer", "Fred", "Friend", "Hana", "Held", "Admin", "Staff", "Shop"}
    | {"Invite", "friends", "Spring", "Newsletter", "Onboarding", "Lena", "Lead"}
    | set(CURRENCIES)
)
SHARED_IP = "203.0.113.7"  # Hana signs up from Rita's address: held for review


@dataclass(frozen=True)
class Seeded:
    rita: dict
    admin: dict
    rita_id: int
    user_ids: dict
    program_id: int
    referral_id: int
    held_referral_id: int
    reward_id: int
    payout_id: int
    lead_id: int
    campaign_id: int
    service_id: int
    endpoint_id: int
    api_key_id: int
    reset_token: str
    unsubscribe_token: str
    stop_token: str


def seed(app) -> Seeded:
    """The data every page is rendered from; the admin is the staff account."""
    with app.app_context():
        rita = factories.participant("Rita Referrer", email="rita@example.com", ip=SHARED_IP)
        fred = factories.participant("Fred Friend", invited_by=rita["code"])
        hana = factories.participant("Hana Held", invited_by=rita["code"], ip=SHARED_IP)
        admin = factories.staff("admin", "Admin Staff")
    accepted_purchase(app, fred["email"], "order-1")
    with app.app_context():
        reward = db.session.scalar(select(Reward).where(Reward.beneficiary_id == rita["id"]))
        ledger.approve_reward_early(reward, utcnow())
        db.session.commit()
        user = db.session.get(User, rita["id"])
        ledger.request_payout(user, "credit", "USD", utcnow())
        db.session.commit()
        service = crm.save_service(
            None, name="Onboarding", description="", price=10000, currency="USD"
        )
        db.session.flush()
        campaign = crm.save_campaign(
            None,
            name="Spring Newsletter",
            service_id=service.id,
            channel="email",
            budget=50000,
            currency="USD",
            starts_on=date(2026, 3, 1),
            ends_on=None,
        )
        lead = crm.save_lead(
            None, full_name="Lena Lead", phone=None, email="lena@example.com", campaign_id=None
        )
        endpoint = integrations.create_endpoint(
            "https://hooks.example.com/in", "", ["referral.created"], True
        )
        key, _ = api_keys.create_api_key("Shop", sorted(api_keys.SCOPES))
        db.session.commit()
        invitation = Invitation(
            program_id=reward.program_id,
            sender_id=rita["id"],
            email_canonical="ann@example.com",
            created_at=utcnow(),
        )
        db.session.add(invitation)
        db.session.commit()
        return Seeded(
            rita=rita,
            admin=admin,
            rita_id=rita["id"],
            user_ids={"fred": fred["id"], "hana": hana["id"]},
            program_id=reward.program_id,
            referral_id=db.session.scalar(
                select(Referral.id).where(Referral.referred_id == fred["id"])
            ),
            held_referral_id=db.session.scalar(
                select(Referral.id).where(Referral.referred_id == hana["id"])
            ),
            reward_id=reward.id,
            payout_id=db.session.scalar(select(Payout.id).where(Payout.user_id == rita["id"])),
            lead_id=lead.id or db.session.scalar(select(Lead.id)),
            campaign_id=campaign.id,
            service_id=service.id,
            endpoint_id=endpoint.id,
            api_key_id=key.id,
            reset_token=reset.make_token(user),
            unsubscribe_token=email_choices.unsubscribe_token(rita["id"], "friends"),
            stop_token=invitations.stop_token(invitation.id),
        )


def _code_waiting(client) -> None:
    request_code(client, "+14155550132")


def _profile_code_waiting(client) -> None:
    token = csrf_token(client, "/auth/profile")
    client.post("/auth/profile/phone", data={"csrf_token": token, "phone": "+14155550133"})


@dataclass(frozen=True)
class Page:
    who: str  # "visitor", "member" (Rita) or "admin"
    path: Callable[[Seeded], str]
    prepare: Callable | None = None  # what the browser does first (a code to wait for)


def _at(path: str) -> Callable[[Seeded], str]:
    return lambda _seeded: path


PAGES: dict[str, Page] = {
    "referral.landing": Page("visitor", _at("/")),
    "referral.show_leaderboard": Page("visitor", _at("/referral/leaderboard")),
    "referral.claim_form": Page("member", _at("/referral/claim")),
    "referral.dashboard": Page("member", _at("/referral/dashboard")),
    "referral.show_tree": Page("member", _at("/referral/tree")),
    "referral.stop_invitations": Page("visitor", lambda s: f"/invitations/stop/{s.stop_token}"),
    "rewards.ledger": Page("member", _at("/rewards/")),
    "rewards.saleor_app.show_app": Page("visitor", _at("/saleor/app")),
    "widget.show": Page("visitor", _at("/embed/v1/widget")),
    "auth.login": Page("visitor", _at("/auth/login")),
    "auth.signup": Page("visitor", _at("/auth/signup")),
    "auth.phone_sign_in": Page("visitor", _at("/auth/phone")),
    "auth.verify_phone": Page("visitor", _at("/auth/phone/verify"), _code_waiting),
    "auth.request_reset": Page("visitor", _at("/auth/reset")),
    "auth.reset_password": Page("visitor", lambda s: f"/auth/reset/{s.reset_token}"),
    "auth.unsubscribe": Page(
        "visitor", lambda s: f"/auth/emails/unsubscribe/{s.unsubscribe_token}"
    ),
    "auth.profile": Page("member", _at("/auth/profile")),
    "auth.delete_account": Page("member", _at("/auth/profile/delete")),
    "auth.verify_profile_phone": Page(
        "member", _at("/auth/profile/phone/verify"), _profile_code_waiting
    ),
    "admin.analytics.home": Page("admin", _at("/admin/")),
    "admin.crm.campaign_stats": Page("admin", _at("/admin/campaigns/stats")),
    "admin.crm.edit_campaign": Page("admin", lambda s: f"/admin/campaigns/{s.campaign_id}/edit"),
    "admin.crm.edit_lead": Page("admin", lambda s: f"/admin/leads/{s.lead_id}/edit"),
    "admin.crm.edit_service": Page("admin", lambda s: f"/admin/services/{s.service_id}/edit"),
    "admin.crm.list_campaigns": Page("admin", _at("/admin/campaigns")),
    "admin.crm.list_contracts": Page("admin", _at("/admin/contracts")),
    "admin.crm.list_leads": Page("admin", _at("/admin/leads")),
    "admin.crm.list_services": Page("admin", _at("/admin/services")),
    "admin.crm.new_campaign": Page("admin", _at("/admin/campaigns/new")),
    "admin.crm.new_contract": Page("admin", lambda s: f"/admin/leads/{s.lead_id}/contracts/new"),
    "admin.crm.new_lead": Page("admin", _at("/admin/leads/new")),
    "admin.crm.new_service": Page("admin", _at("/admin/services/new")),
    "admin.crm.show_lead": Page("admin", lambda s: f"/admin/leads/{s.lead_id}"),
    "admin.integrations.delete_endpoint": Page(
        "admin", lambda s: f"/admin/integrations/webhooks/{s.endpoint_id}/delete"
    ),
    "admin.integrations.edit_endpoint": Page(
        "admin", lambda s: f"/admin/integrations/webhooks/{s.endpoint_id}/edit"
    ),
    "admin.integrations.new_endpoint": Page("admin", _at("/admin/integrations/webhooks/new")),
    "admin.integrations.revoke_api_key": Page(
        "admin", lambda s: f"/admin/integrations/api-keys/{s.api_key_id}/revoke"
    ),
    "admin.integrations.rotate_secret": Page(
        "admin", lambda s: f"/admin/integrations/webhooks/{s.endpoint_id}/rotate-secret"
    ),
    "admin.integrations.show_audit": Page("admin", _at("/admin/audit")),
    "admin.integrations.show_endpoint": Page(
        "admin", lambda s: f"/admin/integrations/webhooks/{s.endpoint_id}"
    ),
    "admin.integrations.show_integrations": Page("admin", _at("/admin/integrations")),
    "admin.integrations.show_outbox": Page("admin", _at("/admin/outbox")),
    "admin.operations.approve_reward": Page(
        "admin", lambda s: f"/admin/rewards/{s.reward_id}/approve"
    ),
    "admin.operations.cancel_payout": Page(
        "admin", lambda s: f"/admin/payouts/{s.payout_id}/cancel"
    ),
    "admin.operations.cancel_reward": Page(
        "admin", lambda s: f"/admin/rewards/{s.reward_id}/cancel"
    ),
    "admin.operations.list_conversions": Page("admin", _at("/admin/conversions")),
    "admin.operations.list_payouts": Page("admin", _at("/admin/payouts")),
    "admin.operations.list_rewards": Page("admin", _at("/admin/rewards")),
    "admin.operations.pay_payout": Page("admin", lambda s: f"/admin/payouts/{s.payout_id}/pay"),
    "admin.operations.pay_reward": Page("admin", lambda s: f"/admin/rewards/{s.reward_id}/pay"),
    "admin.operations.record_purchase": Page("admin", _at("/admin/conversions/new")),
    "admin.operations.review_item": Page(
        "admin", lambda s: f"/admin/review/referrals/{s.held_referral_id}"
    ),
    "admin.operations.review_queue": Page("admin", _at("/admin/review")),
    "admin.people.list_participants": Page("admin", _at("/admin/participants")),
    "admin.people.list_users": Page("admin", _at("/admin/users")),
    "admin.people.show_participant": Page("admin", lambda s: f"/admin/participants/{s.rita_id}"),
    "admin.people.show_participant_tree": Page(
        "admin", lambda s: f"/admin/participants/{s.rita_id}/tree"
    ),
    "admin.programs.create_program": Page("admin", _at("/admin/programs/new")),
    "admin.programs.edit_program": Page("admin", lambda s: f"/admin/programs/{s.program_id}"),
    "admin.programs.list_programs": Page("admin", _at("/admin/programs")),
    "admin.referrals.list_referrals": Page("admin", _at("/admin/referrals")),
    "admin.settings.edit_branding": Page("admin", _at("/admin/settings/branding")),
}

# GET endpoints that are not pages for people, and why.
NOT_PAGES = {
    "static": "files",
    "bootstrap.static": "files",
    "core.brand_logo": "an image",
    "core.brand_theme": "a stylesheet",
    "core.brand_manifest": "the web app manifest (JSON; its description is translated)",
    "core.health": "JSON for probes",
    "metrics": "Prometheus text",
    "openapi.serve_document": "the API description (English for developers)",
    "referral.api.get_leaderboard": "JSON API",
    "referral.api.get_me": "JSON API",
    "referral.api.get_my_referrals": "JSON API",
    "referral.api.get_my_tree": "JSON API",
    "rewards.rewards_api.get_my_rewards": "JSON API",
    "rewards.webhooks.event_status": "JSON API (a queued event's outcome, for its sender)",
    "rewards.saleor_app.show_manifest": "Saleor's app manifest (JSON)",
    "referral.embed.script": "JavaScript for shops",
    "referral.download_qr": "an SVG image",
    "referral.follow_link": "a redirect to the landing page",
    "referral.send_invitations": "a redirect to the dashboard (the form posts here)",
    "auth.download_data": "the participant's JSON file",
    "admin.people.download_participant_data": "the participant's JSON file",
    "admin.people.suggest_participants": "JSON for the search box",
    "admin.crm.download_contract": "the uploaded document",
    "admin.exports.export_csv": "CSV files (their headers are checked by the export tests)",
    "admin.integrations.pay_out_reward": "a Saleor reward only (404 without one)",
    "admin.integrations.retry_outbox_message": "a dead outbox message only (404 without one)",
}


def browser(app, seeded: Seeded, who: str):
    client = app.test_client()
    client.set_cookie("locale", "ru")
    person = {"member": seeded.rita, "admin": seeded.admin}.get(who)
    if person:
        answer = log_in(client, person["email"])
        assert answer.status_code == 302, (who, answer.status_code, read_form(answer).alerts)
    return client
