"""The review queue's decisions, and the accounts linked to the people it holds (what staff
look at before deciding). Each decision is the rewards services' conditional change."""

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import or_, select

from extensions import db
from models import Conversion, Referral, User
from referral import lifecycle
from rewards import review

# Linked accounts are looked up for a whole page at once; a very common address (a shared
# office network) could match thousands, so the scan stops here.
_LINK_SCAN_LIMIT = 500
LINKS_SHOWN = 10


# --- linked accounts -------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkedAccount:
    id: int
    name: str
    email: str | None
    links: tuple[str, ...]  # what they share: "same device", "same IP", ...


def linked_accounts(people: list[User]) -> dict[int, list[LinkedAccount]]:
    """Per person, the other accounts sharing their browser, signup address or network, or
    mailbox: one query for a whole page of people."""
    conditions = [condition for person in people for condition in _link_conditions(person)]
    if not conditions:
        return {}
    candidates = db.session.scalars(
        select(User).where(or_(*conditions)).order_by(User.id).limit(_LINK_SCAN_LIMIT)
    ).all()
    found: dict[int, list[LinkedAccount]] = {}
    for person in people:
        linked = [
            LinkedAccount(other.id, other.name, other.email, links)
            for other in candidates
            if other.id != person.id and (links := _shared(person, other))
        ]
        found[person.id] = linked[:LINKS_SHOWN]
    return found


def _ipv4_network(address: str | None) -> str | None:
    """ "203.0.113.7" -> "203.0.113.": the /24 as a text prefix (IPv6 is matched exactly)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    return str(ip).rsplit(".", 1)[0] + "." if ip.version == 4 else None


def _link_conditions(person: User) -> list:
    conditions = []
    if person.device_id:
        conditions.append(User.device_id == person.device_id)
    if person.email_canonical:
        conditions.append(User.email_canonical == person.email_canonical)
    if network := _ipv4_network(person.signup_ip):
        conditions.append(User.signup_ip.startswith(network, autoescape=True))
    elif person.signup_ip:
        conditions.append(User.signup_ip == person.signup_ip)
    return conditions


def _shared(person: User, other: User) -> tuple[str, ...]:
    links = []
    if person.device_id and person.device_id == other.device_id:
        links.append(_("same device"))
    if person.signup_ip and person.signup_ip == other.signup_ip:
        links.append(_("same IP"))
    elif (network := _ipv4_network(person.signup_ip)) and network == _ipv4_network(other.signup_ip):
        links.append(_("same network %(network)s", network=f"{network}0/24"))
    if person.email_canonical and person.email_canonical == other.email_canonical:
        links.append(_("same mailbox"))
    return tuple(links)


# --- review decisions ------------------------------------------------------------------------


@dataclass
class Decided:
    """What a (bulk) decision did: the ids it changed, and those no longer waiting because
    someone else decided them first."""

    changed: list[int] = field(default_factory=list)
    already_decided: list[int] = field(default_factory=list)


def decide_referrals(ids: list[int], approve: bool, reason: str, now: datetime) -> Decided:
    """Approve or reject held referrals. Each decision is the services' conditional UPDATE,
    in a savepoint: one decided meanwhile is skipped and the others still go through."""
    result = Decided()
    for referral_id in sorted(set(ids)):
        try:
            with db.session.begin_nested():
                referral = db.session.get(Referral, referral_id)
                if referral is None:
                    raise lifecycle.NotUnderReview()
                if approve:
                    review.approve_referral(referral, now, reason)
                else:
                    review.reject_referral(referral, reason, now)
        except lifecycle.NotUnderReview:
            result.already_decided.append(referral_id)
        else:
            result.changed.append(referral_id)
    return result


def decide_purchases(ids: list[int], approve: bool, reason: str, now: datetime) -> Decided:
    """Approve (back into the normal hold) or reject rewards a purchase's checks held."""
    result = Decided()
    for conversion_id in sorted(set(ids)):
        conversion = db.session.get(Conversion, conversion_id)
        own_decision = conversion is not None and not (
            conversion.referral is not None and conversion.referral.status == "review"
        )
        if own_decision and review.decide_held_rewards(conversion, approve, reason, now):
            result.changed.append(conversion_id)
        else:
            result.already_decided.append(conversion_id)
    return result
