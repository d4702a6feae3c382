"""The CRM's rules: services, campaigns and leads (contracts: `contracts`; the lists and
their CSV exports: `queries`).

Services flush, never commit; each staff write records one audit entry in the same
transaction. A referred signup becomes a lead by itself: the app connects
`lead_from_referral` to the "referral recorded" signal.
"""

import re
from datetime import date, datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from auth.services import normalize_email
from core import audit
from core.database import insert_unless_present
from core.errors import DomainError
from extensions import db
from models import (
    CAMPAIGN_CHANNELS,
    Campaign,
    Contract,
    Lead,
    Program,
    Referral,
    Service,
    User,
    utcnow,
)

SERVICE_FIELDS = ("name", "description", "price", "currency")
CAMPAIGN_FIELDS = ("name", "service_id", "channel", "budget", "currency", "starts_on", "ends_on")
LEAD_FIELDS = ("full_name", "phone", "email", "campaign_id", "status")
# Statuses staff may set by editing; "active" comes only with a contract (convert_lead).
EDITABLE_LEAD_STATUSES = ("potential", "lost")

_PHONE_CHARACTERS = re.compile(r"^\+?[0-9 \-]+$")
_PHONE_DIGITS = (7, 15)  # E.164 numbers have at most 15 digits


class NameTaken(DomainError):
    status = 409
    code = "name_taken"
    field = "name"
    message = _l("This name is already used; choose another.")


class UnknownRecord(DomainError):
    status = 404
    code = "not_found"


class InvalidDates(DomainError):
    code = "invalid_dates"
    field = "ends_on"
    message = _l("The end date cannot be before the start date.")


class ChannelLocked(DomainError):
    status = 409
    code = "channel_locked"
    field = "channel"
    message = _l("Referral programs belong to this campaign, so its channel stays referral.")


class InvalidPhone(DomainError):
    code = "invalid_phone"
    field = "phone"
    message = _l("Enter a phone number of 7 to 15 digits; only +, spaces and dashes may be added.")


class Unreachable(DomainError):
    code = "lead_unreachable"
    field = "phone"
    message = _l("Give a phone number or an email address (or both).")


class StatusNeedsContract(DomainError):
    status = 409
    code = "status_needs_contract"
    field = "status"
    message = _l("A lead becomes an active client only by converting it with a contract.")


class NotThisLeadsContract(DomainError):
    code = "not_this_leads_contract"
    field = "contract_id"
    message = _l("Choose one of this lead's own contracts.")


class AlreadyActive(DomainError):
    status = 409
    code = "lead_already_active"
    message = _l("This lead is already an active client.")


# --- services ---------------------------------------------------------------------------


def save_service(
    service: Service | None, *, name: str, description: str, price: int, currency: str
) -> Service:
    """Create (service None) or edit a service."""
    values = dict(name=name, description=description, price=price, currency=currency.upper())
    service = service or Service(created_at=utcnow())
    return _save(service, "service", values, explain=lambda: _name_clash(service, name))


# --- campaigns --------------------------------------------------------------------------


def save_campaign(
    campaign: Campaign | None,
    *,
    name: str,
    service_id: int | None,
    channel: str,
    budget: int,
    currency: str,
    starts_on: date,
    ends_on: date | None,
) -> Campaign:
    """Create (campaign None) or edit a campaign."""
    if channel not in CAMPAIGN_CHANNELS:
        raise DomainError(_("Choose one of: %(channels)s.", channels=", ".join(CAMPAIGN_CHANNELS)))
    if ends_on is not None and ends_on < starts_on:
        raise InvalidDates()
    if service_id is not None and db.session.get(Service, service_id) is None:
        raise UnknownRecord(_("That service no longer exists."))
    if campaign is not None and channel != campaign.channel and _has_programs(campaign.id):
        raise ChannelLocked()
    values = dict(
        name=name,
        service_id=service_id,
        channel=channel,
        budget=budget,
        currency=currency.upper(),
        starts_on=starts_on,
        ends_on=ends_on,
    )
    campaign = campaign or Campaign(created_at=utcnow())
    return _save(campaign, "campaign", values, explain=lambda: _campaign_clash(campaign, values))


def _has_programs(campaign_id: int) -> bool:
    return (
        db.session.scalar(select(Program.id).where(Program.campaign_id == campaign_id).limit(1))
        is not None
    )


# --- leads ------------------------------------------------------------------------------


def normalize_phone(raw: str | None) -> str | None:
    """ "+49 151-234 5678" -> "+491512345678"; None when blank. A simple check only: the
    digits, an optional leading +, spaces and dashes between."""
    text = (raw or "").strip()
    if not text:
        return None
    if not _PHONE_CHARACTERS.match(text):
        raise InvalidPhone()
    digits = re.sub(r"[ \-]", "", text)
    low, high = _PHONE_DIGITS
    if not low <= len(digits.lstrip("+")) <= high:
        raise InvalidPhone()
    return digits


def save_lead(
    lead: Lead | None,
    *,
    full_name: str,
    phone: str | None,
    email: str | None,
    campaign_id: int | None,
    status: str = "potential",
    created_by_id: int | None = None,
) -> Lead:
    """Create (lead None) or edit a lead; an active client keeps its status."""
    phone = normalize_phone(phone)
    email = normalize_email(email.strip()) if email and email.strip() else None
    if phone is None and email is None:
        raise Unreachable()
    if campaign_id is not None and db.session.get(Campaign, campaign_id) is None:
        raise UnknownRecord(_("That campaign no longer exists."))
    if lead is not None and lead.status == "active":
        status = "active"
    elif status not in EDITABLE_LEAD_STATUSES:
        raise StatusNeedsContract()
    now = utcnow()
    if lead is None:
        lead = Lead(source="manual", created_by_id=created_by_id, created_at=now)
    values = dict(
        full_name=full_name,
        phone=phone,
        email=email,
        campaign_id=campaign_id,
        status=status,
        updated_at=now,
    )
    return _save(lead, "lead", values, audited=LEAD_FIELDS)


def convert_lead(lead: Lead, contract_id: int | None) -> Lead:
    """Make the lead an active client through one of its own contracts. Two managers
    converting at once: the conditional UPDATE lets exactly one through."""
    contract = db.session.get(Contract, contract_id) if contract_id else None
    if contract is None or contract.lead_id != lead.id:
        raise NotThisLeadsContract()
    before = {"status": lead.status, "contract_id": lead.contract_id}
    converted = db.session.execute(
        update(Lead)
        .where(Lead.id == lead.id, Lead.status != "active")
        .values(status="active", contract_id=contract.id, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    if converted.rowcount != 1:
        raise AlreadyActive()
    db.session.refresh(lead)
    audit.record(
        "lead.convert",
        "lead",
        lead.id,
        before=before,
        after={"status": "active", "contract_id": contract.id},
    )
    return lead


def contracts_of(lead: Lead) -> list[Contract]:
    return list(
        db.session.scalars(
            select(Contract)
            .options(joinedload(Contract.service))
            .where(Contract.lead_id == lead.id)
            .order_by(Contract.signed_on.desc(), Contract.id.desc())
        )
    )


def lead_from_referral(referral: Referral, now: datetime) -> None:
    """A referred signup is a lead of the referral program's campaign: one per participant
    (a unique key decides), none for a refused referral or a person we cannot reach."""
    if referral.status == "rejected":
        return
    person = db.session.get(User, referral.referred_id)
    if person is None or (person.email is None and person.phone is None):
        return
    # The program is usually loaded already (the referral's code brought it): no query.
    program = db.session.get(Program, referral.program_id)
    # A participant who is a lead already keeps that lead: the insert skips the row.
    db.session.execute(
        insert_unless_present(Lead.__table__, ["participant_id"]).values(
            full_name=person.name[:120],
            email=person.email,
            phone=person.phone,
            campaign_id=program.campaign_id,
            source="referral",
            participant_id=person.id,
            created_at=now,
            updated_at=now,
        )
    )


# --- shared -----------------------------------------------------------------------------


def _name_clash(obj, name: str) -> DomainError | None:
    """NameTaken when another row of the same table now has `name`."""
    model = type(obj)
    other = db.session.scalar(select(model.id).where(model.name == name, model.id != obj.id))
    return NameTaken() if other is not None else None


def _campaign_clash(campaign: Campaign, values: dict) -> DomainError | None:
    """A program joined the campaign while its channel was being changed (the programs'
    composite key refuses it), or its new name was taken meanwhile."""
    changing_channel = campaign.id is not None and values["channel"] != db.session.scalar(
        select(Campaign.channel).where(Campaign.id == campaign.id)
    )
    if changing_channel and _has_programs(campaign.id):
        return ChannelLocked()
    return _name_clash(campaign, values["name"])


def _save(obj, target_type: str, values: dict, audited=None, explain=None):
    """Apply `values`, flush, and log what changed. When the database refuses the row (a
    concurrent request got there first), `explain` names the refusal the person should read;
    a refusal it cannot explain goes up as it is. The savepoint keeps the rest usable."""
    audited = audited or tuple(values)
    creating = obj.id is None
    before = {} if creating else audit.snapshot(obj, audited)
    try:
        with db.session.begin_nested():
            for name, value in values.items():
                setattr(obj, name, value)
            db.session.add(obj)
    except IntegrityError:
        refusal = explain() if explain else None
        if refusal is None:
            raise
        raise refusal from None
    after = audit.snapshot(obj, audited)
    if creating:
        audit.record(f"{target_type}.create", target_type, obj.id, after=after)
    else:
        before, after = audit.changes(before, after)
        if after:
            audit.record(f"{target_type}.update", target_type, obj.id, before=before, after=after)
    return obj
