"""A participant's own data: everything stored about them as one JSON document, and deleting
their account.

Deleting keeps the rows that other people's counts and balances are made of (referrals,
clicks, conversions, ledger entries) and takes the person out of them: the account row is
anonymised (a CHECK in models.py holds it so), their codes stop, addresses and browsers are
cleared from the clicks and referrals around them, and what they had not been paid is
forfeited. It is refused while a payout request of theirs is open, so money on its way is
settled first, and for the last active administrator.
"""

import json
from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, or_, select, update
from werkzeug.security import check_password_hash

from auth import phone
from auth.services import end_all_sessions, lock_account
from core import audit, outbox
from core.database import after_commit
from core.errors import DomainError
from core.templating import mask_email
from extensions import db
from models import (
    DELETED_EMAIL_DOMAIN,
    DELETED_NAME,
    AuditLog,
    Click,
    Conversion,
    EmailOptOut,
    Invitation,
    Lead,
    Payout,
    PhoneCode,
    Referral,
    ReferralCode,
    Reward,
    User,
    UserSession,
    public_name,
    utcnow,
)
from referral import leaderboard, links

# Ledger entries not yet paid out: a deleted account forfeits them.
UNPAID_STATUSES = ("review", "pending", "approved")
FORFEIT_REASON = "account_deleted"
# Keys of audit values that would name the person.
_CONTACT_KEYS = {"email", "phone", "name", "display_name", "full_name"}
# Fraud reasons whose detail names an address or a domain; the code and points stay.
_REASON_DETAILS_WITHOUT_DATA = {
    "same_network": "signed up from the referrer's network",
    "excluded_domain": "email domain excluded by the program",
    "disposable_email": "email domain hands out throwaway addresses",
}


class WrongPassword(DomainError):
    status = 403
    code = "wrong_password"
    field = "password"
    message = _l("This is not your current password. Nothing was deleted.")


class CannotConfirm(DomainError):
    status = 403
    code = "cannot_confirm"
    message = _l("This account has neither a password nor a phone to confirm with; ask the team.")


class AlreadyDeleted(DomainError):
    status = 409
    code = "already_deleted"
    message = _l("This account is already deleted.")


class PayoutInProgress(DomainError):
    status = 409
    code = "payout_in_progress"
    message = _l(
        "A payout request is still open. Once it is paid (or cancelled by the team), the"
        " account can be deleted; nothing was deleted now."
    )


class LastAdministrator(DomainError):
    status = 409
    code = "last_admin"
    message = _l(
        "This is the last active administrator: make another account admin first, "
        "or nobody could manage the site any more. Nothing was deleted."
    )


class NoSuchAccount(DomainError):
    status = 404
    code = "unknown_user"
    message = _l("No such account.")


# --- confirming who asks ---------------------------------------------------------------------


def uses_password(user: User) -> bool:
    """Whether deleting asks for the password; accounts without one confirm with a phone
    code (phone sign-in), or, as shop customers without either, cannot sign in at all."""
    return user.password_hash is not None


def check_password(user: User, password: str | None) -> None:
    if not password or not check_password_hash(user.password_hash, password):
        raise WrongPassword()


def check_phone_code(user: User, typed: str | None) -> None:
    """Spend one try of the code texted for this account's number (committed at once, so
    the guess counts whatever follows), then compare."""
    code_id = phone.spend_attempt(user.phone, user_id=user.id)
    db.session.commit()
    phone.redeem(code_id, typed or "")


# --- export ----------------------------------------------------------------------------------


def export(user: User, now: datetime | None = None) -> dict:
    """Everything stored about `user` (`to_json` makes the file). Other people appear only
    as their dashboard shows them: their public name and a masked email."""
    now = now or utcnow()
    return {
        "exported_at": now,
        "account": _account(user),
        "sign_ins": [
            {"created_at": row.created_at, "expires_at": row.expires_at}
            for row in db.session.scalars(
                select(UserSession)
                .where(UserSession.user_id == user.id)
                .order_by(UserSession.created_at)
            )
        ],
        "referral_codes": _codes(user),
        "invited_by": _invited_by(user),
        "people_invited": _people_invited(user),
        "purchases": _purchases(user),
        "ledger": _ledger(user),
        "payouts": [
            {
                "id": payout.id,
                "kind": payout.kind,
                "amount": payout.amount,
                "currency": payout.currency,
                "status": payout.status,
                "reference": payout.reference,
                "created_at": payout.created_at,
                "paid_at": payout.paid_at,
            }
            for payout in db.session.scalars(
                select(Payout).where(Payout.user_id == user.id).order_by(Payout.id)
            )
        ],
        "crm_lead": _lead(user),
        "audit_log": _audit_entries(user),
        # auth/email_choices.py and referral/invitations.py; friends' addresses masked.
        "emails_turned_off": list(
            db.session.scalars(
                select(EmailOptOut.kind)
                .where(EmailOptOut.user_id == user.id)
                .order_by(EmailOptOut.kind)
            )
        ),
        "invitations_sent": [
            {"to": mask_email(invitation.email_canonical), "created_at": invitation.created_at}
            for invitation in db.session.scalars(
                select(Invitation).where(Invitation.sender_id == user.id).order_by(Invitation.id)
            )
        ],
    }


def to_json(data: dict) -> str:
    """The export as a file: readable, dates in ISO 8601."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=_iso)


def _iso(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _account(user: User) -> dict:
    return {
        "id": user.id,
        "name": user.name,
        "display_name": user.display_name,
        "public_name": user.public_name,
        "email": user.email,
        "phone": user.phone,
        "has_password": user.password_hash is not None,
        "shop_customer_id": user.external_id,
        "role": user.role,
        "active": user.active,
        "on_leaderboard": user.on_leaderboard,
        "locale": user.locale,
        "signup_ip": user.signup_ip,
        "browser_id": user.device_id,
        "referral_count": user.referral_count,
        "last_referral_at": user.last_referral_at,
        "created_at": user.created_at,
        "deleted_at": user.deleted_at,
    }


def _codes(user: User) -> list[dict]:
    """Their codes with the clicks on each, counted per day: the visitors are other people."""
    codes = db.session.scalars(
        select(ReferralCode).where(ReferralCode.user_id == user.id).order_by(ReferralCode.id)
    ).all()
    day = func.date(Click.created_at)
    per_day: dict[int, dict] = {}
    for code_id, clicked_on, clicks in db.session.execute(
        select(Click.code_id, day, func.count())
        .where(Click.code_id.in_([code.id for code in codes]))
        .group_by(Click.code_id, day)
        .order_by(Click.code_id, day)
    ):
        per_day.setdefault(code_id, {})[str(clicked_on)] = clicks
    return [
        {
            "code": code.code,
            "program": code.program.slug,
            "status": code.status,
            "vanity": code.is_vanity,
            "created_at": code.created_at,
            "clicks": sum(per_day.get(code.id, {}).values()),
            "clicks_per_day": per_day.get(code.id, {}),
        }
        for code in codes
    ]


def _invited_by(user: User) -> dict | None:
    referral = db.session.scalar(select(Referral).where(Referral.referred_id == user.id))
    if referral is None:
        return None
    return {
        "inviter": referral.referrer.public_name,
        "code": referral.code.code,
        "source": referral.source,  # "claimed": they named their inviter after signing up
        "status": referral.status,
        "reason": referral.reason,
        "risk_score": referral.risk_score,
        "risk_reasons": referral.risk_reasons,
        "clicked_at": referral.clicked_at,
        "first_purchase_at": referral.first_purchase_at,
        "created_at": referral.created_at,
    }


def _people_invited(user: User) -> list[dict]:
    # As their dashboard shows them: their public name, the email masked.
    rows = db.session.execute(
        select(Referral, User.name, User.display_name, User.email)
        .join(User, User.id == Referral.referred_id)
        .where(Referral.referrer_id == user.id)
        .order_by(Referral.created_at, Referral.id)
    )
    return [
        {
            "friend": public_name(name, display_name),
            "friend_email": mask_email(email),
            "source": referral.source,
            "status": referral.status,
            "reason": referral.reason,
            "created_at": referral.created_at,
        }
        for referral, name, display_name, email in rows
    ]


def _purchases(user: User) -> list[dict]:
    conversions = db.session.scalars(
        select(Conversion)
        .where(Conversion.participant_id == user.id)
        .order_by(Conversion.occurred_at, Conversion.id)
    )
    return [
        {
            "source": conversion.source,
            "kind": conversion.kind,
            "event_id": conversion.external_id,
            "order_id": conversion.order_id,
            "customer_email": conversion.customer_email,
            "customer_id": conversion.customer_external_id,
            "amount": conversion.amount,
            "currency": conversion.currency,
            "outcome": conversion.outcome,
            "reason": conversion.reason,
            "occurred_at": conversion.occurred_at,
        }
        for conversion in conversions
    ]


def _ledger(user: User) -> list[dict]:
    rewards = db.session.scalars(
        select(Reward).where(Reward.beneficiary_id == user.id).order_by(Reward.id)
    )
    return [
        {
            "id": reward.id,
            "role": reward.role,
            "level": reward.level,
            "milestone": reward.milestone,
            "kind": reward.kind,
            "amount": reward.amount,
            "currency": reward.currency,
            "status": reward.status,
            "reason": reward.reason,
            "reverses": reward.reverses_id,
            "coupon_code": reward.coupon_code,
            "payout": reward.payout_id,
            "available_at": reward.available_at,
            "expires_at": reward.expires_at,
            "paid_at": reward.paid_at,
            "created_at": reward.created_at,
        }
        for reward in rewards
    ]


def _lead(user: User) -> dict | None:
    lead = db.session.scalar(select(Lead).where(Lead.participant_id == user.id))
    if lead is None:
        return None
    return {
        "full_name": lead.full_name,
        "email": lead.email,
        "phone": lead.phone,
        "status": lead.status,
        "created_at": lead.created_at,
    }


def _audit_entries(user: User) -> list[dict]:
    """Changes to their account and what they did themselves. Staff acting on them are
    named by role only; the before/after values are shown only when about their account."""
    entries = db.session.scalars(
        select(AuditLog)
        .where(
            or_(
                AuditLog.actor_id == user.id,
                (AuditLog.target_type == "user") & (AuditLog.target_id == str(user.id)),
            )
        )
        .order_by(AuditLog.created_at, AuditLog.id)
    )
    return [_audit_entry(entry, user) for entry in entries]


def _audit_entry(entry: AuditLog, user: User) -> dict:
    about_them = entry.target_type == "user" and entry.target_id == str(user.id)
    if entry.actor_id == user.id:
        actor = "you"
    elif entry.actor_id is not None:
        actor = "staff"
    else:
        actor = "system"
    return {
        "action": entry.action,
        "by": actor,
        "target": entry.target_type,
        "before": entry.before if about_them else None,
        "after": entry.after if about_them else None,
        "ip": entry.ip if entry.actor_id == user.id else None,
        "created_at": entry.created_at,
    }


# --- deletion --------------------------------------------------------------------------------


def delete_account(user_id: int, *, actor: User | None, now: datetime | None = None) -> User:
    """Delete the account in the caller's transaction (the caller has confirmed who asks and
    commits). `actor` is who does it: the person themselves, a staff member, or None for the
    command line; written to the audit log, without the address when it is the person."""
    now = now or utcnow()
    user = _locked_account(user_id)
    if user.deleted_at is not None:
        raise AlreadyDeleted()
    before = {"role": user.role, "active": user.active}
    end_all_sessions(user)
    outbox.forget_addressed_to(user.email, user.phone)  # mail to them: neither kept nor sent
    if user.email_canonical:  # invitations once sent to their address (a suppression stays)
        db.session.execute(
            delete(Invitation).where(Invitation.email_canonical == user.email_canonical)
        )
    own_codes = PhoneCode.user_id == user.id
    db.session.execute(
        delete(PhoneCode)
        .where(or_(own_codes, PhoneCode.phone == user.phone) if user.phone else own_codes)
        .execution_options(synchronize_session=False)
    )
    codes = _stop_codes(user)
    _clear_visits(user)
    _clear_risk_details(user)
    forfeited = _forfeit_unpaid(user, now)
    # Checked after the forfeit, which waits for a payout request claiming the same entries
    # at this moment: that request is seen here (and all of this rolls back), or it finds
    # nothing left to claim.
    if db.session.scalar(
        select(Payout.id).where(Payout.user_id == user.id, Payout.status == "requested")
    ):
        raise PayoutInProgress()
    _clear_purchase_details(user)
    _anonymise_lead(user)
    _anonymise(user, now)
    entry = audit.record(
        "user.delete",
        "user",
        user.id,
        before=before,
        after={"deleted_at": now, "codes_disabled": codes, "rewards_forfeited": forfeited},
        actor=actor,
    )
    if entry.actor_id == user.id:  # they deleted it themselves: keep no address of theirs
        entry.actor_label, entry.ip = _deleted_label(user.id), None
    after_commit(leaderboard.invalidate)
    return user


def _locked_account(user_id: int) -> User:
    # Active admins are locked first (lock_account): two admins deleting themselves at once
    # queue and the second is refused.
    user = lock_account(user_id)
    if user is None:
        raise NoSuchAccount()
    if user.role == "admin" and user.active:
        others = db.session.scalar(
            select(User.id).where(User.role == "admin", User.active, User.id != user.id).limit(1)
        )
        if others is None:
            raise LastAdministrator()
    return user


def _stop_codes(user: User) -> int:
    """Their links land on the home page from now on, without crediting anyone."""
    links.invalidate()
    return db.session.execute(
        update(ReferralCode)
        .where(ReferralCode.user_id == user.id, ReferralCode.status == "active")
        .values(status="disabled")
        .execution_options(synchronize_session=False)
    ).rowcount


def _clear_visits(user: User) -> None:
    """Clicks stay (they are counted); who made them goes: the visitors of their links, and
    their own visits from the browser they signed up with."""
    on_their_codes = Click.code_id.in_(
        select(ReferralCode.id).where(ReferralCode.user_id == user.id)
    )
    condition = on_their_codes
    if user.device_id:
        condition = or_(on_their_codes, Click.visitor_id == user.device_id)
    db.session.execute(
        update(Click)
        .where(condition)
        .values(ip_prefix=None, user_agent=None, referrer=None)
        .execution_options(synchronize_session=False)
    )


def _clear_risk_details(user: User) -> None:
    referrals = db.session.scalars(
        select(Referral).where(
            or_(Referral.referrer_id == user.id, Referral.referred_id == user.id)
        )
    )
    for referral in referrals:
        reasons = [
            {**reason, "detail": _REASON_DETAILS_WITHOUT_DATA.get(reason.get("code"))}
            if reason.get("code") in _REASON_DETAILS_WITHOUT_DATA
            else reason
            for reason in referral.risk_reasons or []
        ]
        if reasons != referral.risk_reasons:
            referral.risk_reasons = reasons


def _forfeit_unpaid(user: User, now: datetime) -> int:
    """Entries not yet paid out are closed; paid ones stay in the books as they are. Entries
    claimed by a payout request are left to it (the deletion is then refused)."""
    return db.session.execute(
        update(Reward)
        .where(
            Reward.beneficiary_id == user.id,
            Reward.status.in_(UNPAID_STATUSES),
            Reward.payout_id.is_(None),
        )
        .values(status="cancelled", reason=FORFEIT_REASON, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def _clear_purchase_details(user: User) -> None:
    """Their purchases still count; the shop's copy of who bought goes."""
    db.session.execute(
        update(Conversion)
        .where(Conversion.participant_id == user.id)
        .values(customer_email=None, customer_external_id=None, payload={})
        .execution_options(synchronize_session=False)
    )


def _anonymise_lead(user: User) -> None:
    """The CRM lead their referred signup became keeps its status, campaign and contract
    (the business's own records); who it was goes."""
    db.session.execute(
        update(Lead)
        .where(Lead.participant_id == user.id)
        .values(full_name=DELETED_NAME, email=_deleted_email(user.id), phone=None)
        .execution_options(synchronize_session=False)
    )


def _anonymise(user: User, now: datetime) -> None:
    # What they did stays in the audit log, under a label that no longer names them; and
    # changes to their account keep what changed, without their contact details.
    db.session.execute(
        update(AuditLog)
        .where(AuditLog.actor_id == user.id)
        .values(actor_label=_deleted_label(user.id), ip=None)
        .execution_options(synchronize_session=False)
    )
    about_them = select(AuditLog).where(
        AuditLog.target_type == "user", AuditLog.target_id == str(user.id)
    )
    for entry in db.session.scalars(about_them):
        entry.before, entry.after = _without_contact(entry.before), _without_contact(entry.after)
    user.email = _deleted_email(user.id)
    # Shown as is wherever their public name was ("Deleted participant", not "Deleted P.").
    user.name = user.display_name = DELETED_NAME
    for field in (
        "email_canonical",
        "password_hash",
        "phone",
        "external_id",
        "signup_ip",
        "device_id",
    ):
        setattr(user, field, None)
    user.role = "member"
    user.active = False
    user.deleted_at = now
    db.session.flush()


def _deleted_email(user_id: int) -> str:
    return f"deleted-{user_id}@{DELETED_EMAIL_DOMAIN}"


def _without_contact(values: dict | None) -> dict | None:
    if not values:
        return values
    return {key: None if key in _CONTACT_KEYS else value for key, value in values.items()}


def _deleted_label(user_id: int) -> str:
    return f"deleted participant {user_id}"
