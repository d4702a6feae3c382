"""Participants as staff see them: search, everything about one person, and the actions on
their account and codes, and the participants and users CSV exports. Role and activation
rules live in `admin.people.roles`."""

from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, Select, cast, func, literal_column, not_, or_, select, update
from sqlalchemy.orm import aliased, joinedload, selectinload

from admin.exports import CsvExport
from admin.people import roles
from admin.policy import STAFF_ROLES, role_can
from auth import account_data
from core import audit
from core.errors import DomainError
from extensions import db
from models import Program, Referral, ReferralCode, User
from referral import links as referral_links
from referral import services as referral_services
from referral import tree as referral_tree
from rewards import ledger

SUGGEST_LIMIT = 10
SUGGEST_MIN_LENGTH = 2
FLAGGED_SAMPLE = 20
ACCOUNT_STATUSES = ("active", "inactive")
ACCOUNT_STATUS_TITLES = {"active": _l("Active"), "inactive": _l("Inactive")}
_FLAGGED = or_(Referral.status.in_(("review", "rejected")), Referral.risk_score > 0)


class UnknownCode(DomainError):
    status = 404
    code = "unknown_code"
    message = _l("This participant has no such code.")


class CodeNotActive(DomainError):
    status = 409
    code = "code_not_active"
    message = _l("This code is already disabled.")


class CodeStillActive(DomainError):
    status = 409
    code = "code_still_active"
    field = "program_id"


class UnknownProgram(DomainError):
    status = 404
    code = "unknown_program"
    field = "program_id"
    message = _l("Choose one of the programs.")


# --- search ----------------------------------------------------------------------------------


def _matches(text: str):
    """Name or email containing `text` (any case), or a code containing it."""
    lower = text.lower()
    by_code = select(ReferralCode.id).where(
        ReferralCode.user_id == User.id, ReferralCode.code.contains(text.upper(), autoescape=True)
    )
    return or_(
        func.lower(User.name).contains(lower, autoescape=True),
        User.email.contains(lower, autoescape=True),  # stored lower-case
        by_code.exists(),
    )


def participants_query(args) -> Select:
    """The participants list's filters (`q`, `status`), newest first; the CSV uses it too."""
    query = select(User).options(selectinload(User.codes))
    text = (args.get("q") or "").strip()[:100]
    if text:
        query = query.where(_matches(text))
    status = args.get("status")
    if status == "active":
        query = query.where(User.active)
    elif status == "inactive":
        query = query.where(not_(User.active))
    return query.order_by(User.created_at.desc(), User.id.desc())


def suggestions(text: str) -> list[User]:
    """Up to ten matches for the search box's autocomplete; nothing for one letter."""
    text = (text or "").strip()
    if len(text) < SUGGEST_MIN_LENGTH:
        return []
    query = participants_query({"q": text}).limit(SUGGEST_LIMIT)
    return list(db.session.scalars(query))


# --- one participant -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantView:
    user: User
    codes: list[ReferralCode]
    dashboard_code: ReferralCode | None  # the code their own dashboard shows
    link: str | None
    stats: referral_services.Stats
    invited: object  # a page of the referrals they made
    own_referral: Referral | None
    flagged: list[Referral]
    flagged_count: int
    inviters: list[tuple[int, User]]  # (levels up, inviter), nearest first
    tree: referral_tree.Tree  # the levels below them, as their dashboard shows them
    entries: object  # a page of their ledger
    balances: list[ledger.Balance]


def participant_view(user: User, *, page: int, ledger_page: int, per_page: int):
    program = referral_services.default_program()
    code = referral_services.active_code(user, program)
    flagged = select(Referral).where(Referral.referrer_id == user.id, _FLAGGED)
    return ParticipantView(
        user=user,
        codes=codes_of(user),
        dashboard_code=code,
        link=referral_services.referral_link(code.code) if code else None,
        stats=referral_services.participant_stats(user),
        invited=referral_services.invited_people(user, page, per_page),
        own_referral=db.session.scalar(
            select(Referral)
            .options(joinedload(Referral.referrer))
            .where(Referral.referred_id == user.id)
        ),
        flagged=list(
            db.session.scalars(
                flagged.options(joinedload(Referral.referred))
                .order_by(Referral.created_at.desc(), Referral.id.desc())
                .limit(FLAGGED_SAMPLE)
            )
        ),
        flagged_count=db.session.scalar(select(func.count()).select_from(flagged.subquery())),
        inviters=inviter_chain(user, program.max_depth),
        tree=referral_tree.tree(user, program.max_depth, per_page),
        entries=ledger.ledger_page(user, ledger_page, per_page),
        balances=ledger.balances(user),
    )


def codes_of(user: User) -> list[ReferralCode]:
    return list(
        db.session.scalars(
            select(ReferralCode)
            .options(joinedload(ReferralCode.program))
            .where(ReferralCode.user_id == user.id)
            .order_by(ReferralCode.status, ReferralCode.created_at.desc())
        )
    )


def inviter_chain(user: User, depth: int) -> list[tuple[int, User]]:
    """Who invited them, who invited that person, ... up to `depth` levels (a recursive
    query; `depth` also stops it should the tree ever hold a loop)."""
    chain = (
        select(User.referred_by_id.label("id"), literal_column("1", Integer).label("up"))
        .where(User.id == user.id, User.referred_by_id.is_not(None))
        .cte("inviter_chain", recursive=True)
    )
    person = aliased(User)
    chain = chain.union_all(
        select(person.referred_by_id, cast(chain.c.up + 1, Integer))
        .join(chain, person.id == chain.c.id)
        .where(person.referred_by_id.is_not(None), chain.c.up < depth)
    )
    rows = db.session.execute(
        select(chain.c.up, User).join(User, User.id == chain.c.id).order_by(chain.c.up)
    )
    return [(up, inviter) for up, inviter in rows]


# --- actions ---------------------------------------------------------------------------------


def set_participant_active(user_id: int, active: bool, actor: User) -> User:
    """Deactivate or reactivate; a staff account only by someone who manages users."""
    return roles.set_user_active(
        user_id, active, actor, allow_staff=role_can(actor.role, "users.manage")
    )


def delete_participant(user_id: int, actor: User) -> User:
    """Delete an account on the person's request, as they can themselves from their profile
    (auth/account_data.py has the rules); a staff account only by someone who manages users,
    and never one's own here (the profile asks for the password)."""
    user = db.session.get(User, user_id)
    if user is None:
        raise roles.UnknownUser()
    if user.role != "member" and not role_can(actor.role, "users.manage"):
        raise roles.StaffAccount(_("Only an administrator can delete a staff account."))
    if user.id == actor.id:
        raise roles.OwnAccount(_("Delete your own account from your profile page."))
    return account_data.delete_account(user_id, actor=actor)


def disable_code(user_id: int, code_id: int) -> ReferralCode:
    """The code stops working at once: its link no longer attributes, signups refuse it."""
    code = db.session.get(ReferralCode, code_id)
    if code is None or code.user_id != user_id:
        raise UnknownCode()
    changed = db.session.execute(
        update(ReferralCode)
        .where(ReferralCode.id == code_id, ReferralCode.status == "active")
        .values(status="disabled"),
        execution_options={"synchronize_session": False},
    ).rowcount
    if not changed:
        raise CodeNotActive()
    referral_links.invalidate()
    db.session.refresh(code)
    audit.record(
        "code.disable",
        "referral_code",
        code.id,
        before={"code": code.code, "status": "active"},
        after={"code": code.code, "status": "disabled"},
    )
    return code


def issue_new_code(user_id: int, program_id: int | None) -> ReferralCode:
    """A fresh code in `program`. One active code per program (a unique index says so too):
    with one still active, staff are told to disable it first."""
    user = db.session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise roles.UnknownUser()
    if user.deleted_at is not None:
        raise roles.DeletedAccount(_("This account was deleted: it gets no new codes."))
    program = db.session.get(Program, program_id) if program_id else None
    if program is None:
        raise UnknownProgram()
    current = referral_services.active_code(user, program)
    if current is not None:
        raise CodeStillActive(
            _(
                "%(name)s still has the active code %(code)s in %(program)s."
                " A participant has one active code per program: disable it first.",
                name=user.name,
                code=current.code,
                program=program.name,
            )
        )
    code = referral_services.issue_code(user, program)
    audit.record(
        "code.issue",
        "referral_code",
        code.id,
        after={"code": code.code, "user_id": user.id, "program": program.slug},
    )
    return code


def users_query(args) -> Select:
    """Staff accounts (every role but member), filtered by `role` and `q`, by role then name."""
    query = select(User).where(User.role != "member")
    role = args.get("role")
    if role in STAFF_ROLES:
        query = query.where(User.role == role)
    text = (args.get("q") or "").strip()[:100]
    if text:
        query = query.where(_matches(text))
    return query.order_by(User.role, User.name, User.id)


# --- CSV exports -----------------------------------------------------------------------------


def active_codes(user: User) -> str:
    return " ".join(code.code for code in user.codes if code.status == "active")


CSV_EXPORTS = (
    CsvExport(
        name="participants",
        permission="participants.view",
        columns=(
            (_l("id"), lambda user: user.id),
            (_l("name"), lambda user: user.name),
            (_l("email"), lambda user: user.email),
            (_l("phone"), lambda user: user.phone),
            (_l("role"), lambda user: user.role),
            (_l("active"), lambda user: user.active),
            (_l("active_codes"), active_codes),
            (_l("referrals"), lambda user: user.referral_count),
            (_l("joined"), lambda user: user.created_at),
        ),
        query=participants_query,
    ),
    CsvExport(
        name="users",
        permission="users.manage",
        columns=(
            (_l("id"), lambda user: user.id),
            (_l("name"), lambda user: user.name),
            (_l("email"), lambda user: user.email),
            (_l("role"), lambda user: user.role),
            (_l("active"), lambda user: user.active),
            (_l("joined"), lambda user: user.created_at),
        ),
        query=users_query,
    ),
)
