"""Demo CRM data: services, one campaign per channel (the referral program joins the
referral one), hand-entered leads, signed contracts, and a few payouts, so the campaign
statistics compare channels the way a real installation would after some months.

Runs after the demo participants exist (their referred signups are already leads), through
the same services the panel uses.
"""

import io
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update

from admin.crm import contracts
from admin.crm import services as crm
from core.errors import DomainError
from demo.people import FIRST_NAMES, LAST_NAMES
from extensions import db
from models import Lead, Program, Reward, User
from rewards import ledger

# A minimal valid PDF: the demo's "signed document".
_DOCUMENT = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
_SERVICES = (
    ("Starter plan", "Monthly plan for small teams.", 4900),
    ("Pro plan", "Everything in Starter, plus priority support.", 19900),
    ("Onboarding workshop", "A day with our team to set everything up.", 90000),
)
# name, channel, budget (USD cents), manual leads
_CAMPAIGNS = (
    ("Friends & family", "referral", 0, 0),
    ("Search ads — spring", "search", 150000, 18),
    ("Instagram stories", "social", 80000, 14),
    ("Monthly newsletter", "email", 15000, 8),
    ("Trade fair booth", "offline", 250000, 6),
)
_PAYOUTS = 12


@dataclass
class CrmReport:
    leads: int = 0
    contracts: int = 0
    payouts: int = 0


def seed(rng: random.Random, now: datetime) -> CrmReport:
    report = CrmReport()
    services = [
        crm.save_service(None, name=name, description=text, price=price, currency="USD").id
        for name, text, price in _SERVICES
    ]
    start = (now - timedelta(days=120)).date()
    for name, channel, budget, manual_leads in _CAMPAIGNS:
        campaign = crm.save_campaign(
            None,
            name=name,
            service_id=rng.choice(services),
            channel=channel,
            budget=budget,
            currency="USD",
            starts_on=start,
            ends_on=None,
        )
        if channel == "referral":
            _join_referral_campaign(campaign.id)
        for number in range(manual_leads):
            _manual_lead(rng, campaign.id, number)
            report.leads += 1
    report.contracts = _sign_contracts(rng, services, start)
    report.payouts = _pay_out_some_balances(now)
    db.session.commit()
    return report


def _join_referral_campaign(campaign_id: int) -> None:
    """The default program joins the campaign, and so do the leads its signups made."""
    db.session.execute(update(Program).values(campaign_id=campaign_id))
    db.session.execute(
        update(Lead)
        .where(Lead.source == "referral", Lead.campaign_id.is_(None))
        .values(campaign_id=campaign_id)
    )


def _manual_lead(rng: random.Random, campaign_id: int, number: int) -> Lead:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    has_email = rng.random() < 0.8
    return crm.save_lead(
        None,
        full_name=f"{first} {last}",
        phone=None if has_email and rng.random() < 0.5 else f"+1 555 {rng.randrange(10**7):07d}",
        email=f"{first}.{last}.{campaign_id}.{number}@example.net".lower() if has_email else None,
        campaign_id=campaign_id,
        status="lost" if rng.random() < 0.15 else "potential",
    )


def _sign_contracts(rng: random.Random, services: list[int], start: date) -> int:
    """About one lead in five signs; most signed leads become active clients."""
    signed = 0
    for lead in db.session.scalars(select(Lead).where(Lead.status == "potential")).all():
        if rng.random() > 0.2:
            continue
        signed_on = start + timedelta(days=rng.randrange(1, 110))
        contract = contracts.upload_contract(
            lead_id=lead.id,
            name=f"Agreement with {lead.full_name}",
            service_id=rng.choice(services),
            signed_on=signed_on,
            valid_from=signed_on,
            valid_until=signed_on + timedelta(days=365),
            amount=rng.choice((4900, 19900, 59900, 90000, 238800)),
            currency="USD",
            document=_document(),
            document_name=f"agreement-{lead.id}.pdf",
        )
        signed += 1
        if rng.random() < 0.85:
            crm.convert_lead(lead, contract.id)
    return signed


def _document() -> io.BytesIO:
    return io.BytesIO(_DOCUMENT)


def _pay_out_some_balances(now: datetime) -> int:
    """The largest approved credit balances are paid out, so referral spend is not zero."""
    richest = db.session.execute(
        select(Reward.beneficiary_id, Reward.currency)
        .where(Reward.status == "approved", Reward.kind == "credit", Reward.payout_id.is_(None))
        .group_by(Reward.beneficiary_id, Reward.currency)
        .order_by(func.sum(Reward.amount).desc())
        .limit(_PAYOUTS)
    ).all()
    paid = 0
    for user_id, currency in richest:
        try:
            payout = ledger.request_payout(db.session.get(User, user_id), "credit", currency, now)
            ledger.mark_payout_paid(payout, f"demo-transfer-{user_id}", now)
        except DomainError:
            continue  # below the payout minimum
        paid += 1
    return paid
