"""Demo CRM data: services, one campaign per channel (the referral program joins the
referral one), hand-entered leads, signed contracts, and a few payouts, so the campaign
statistics compare channels the way a real installation would after some months.

Runs after the demo participants exist (their referred signups are already leads), through
the same services the panel uses; the payouts are made while the purchases are recorded
(PayoutSchedule), when the balances they pay were there.
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
from rewards.services import release_held_rewards

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


class PayoutSchedule:
    """Some of the largest credit balances are paid out, so referral spend is not zero: at
    moments spread over the later part of the period, while the purchases are recorded in
    time order (`catch_up`), each pays the largest balance approved by then and is marked
    paid a few hours later, not all on the day of the seed."""

    def __init__(self, rng: random.Random, now: datetime, since: datetime):
        self.rng, self.now = rng, now
        self.moments = sorted(since + (now - since) * rng.uniform(0.35, 1) for _ in range(_PAYOUTS))
        self.paid = 0

    def catch_up(self, moment: datetime) -> None:
        while self.moments and self.moments[0] <= moment:
            paying_at = self.moments.pop(0)
            release_held_rewards(paying_at)  # what the balance holds at that moment
            self._pay_the_largest_balance(paying_at)

    def _pay_the_largest_balance(self, requested_at: datetime) -> None:
        largest = db.session.execute(
            select(Reward.beneficiary_id, Reward.currency)
            .where(Reward.status == "approved", Reward.kind == "credit", Reward.payout_id.is_(None))
            .group_by(Reward.beneficiary_id, Reward.currency)
            .order_by(func.sum(Reward.amount).desc(), Reward.beneficiary_id)
            .limit(1)
        ).first()
        if largest is None:
            return
        user_id, currency = largest
        try:
            user = db.session.get(User, user_id)
            payout = ledger.request_payout(user, "credit", currency, requested_at)
            paid_at = min(requested_at + timedelta(hours=self.rng.uniform(1, 6)), self.now)
            ledger.mark_payout_paid(payout, f"demo-transfer-{payout.id}", paid_at)
        except DomainError:
            return  # below the payout minimum: nobody has enough yet
        self.paid += 1
