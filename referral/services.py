"""Codes, clicks and attribution: the rules of the referral loop."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from core import counters
from core.database import after_commit, insert_unless_present, values_given_later
from core.errors import DomainError
from core.mail import absolute_url
from extensions import db
from models import COUNTED_STATUSES, Click, Program, Referral, ReferralCode, User, utcnow
from referral import clicks, fraud, leaderboard, lifecycle
from referral.codes import MIN_LENGTH, generate_code, normalize_code
from referral.signals import referral_recorded

log = logging.getLogger(__name__)

DEFAULT_PROGRAM_SLUG = "default"
_CODE_ATTEMPTS = 10


class CodeNotFound(DomainError):
    status = 422
    code = "code_not_found"
    field = "referral_code"
    message = _l("We don't know this referral code. Check it, or leave the field empty.")


class AlreadyReferred(DomainError):
    status = 409
    code = "already_referred"
    message = _l("This person was already referred; the first referral stands.")


@dataclass(frozen=True)
class Inviter:
    code: ReferralCode
    source: str  # "code" when typed by hand, "link" when it came from a referral link
    clicked_at: datetime | None = None  # the link's click, from the signed cookie


def _find_default_program() -> Program | None:
    return db.session.scalar(select(Program).where(Program.is_default))


def default_program() -> Program:
    program = _find_default_program()
    if program is None:
        raise RuntimeError("no default program: run `flask db upgrade`")
    return program


def ensure_default_program() -> Program:
    """The default program, created as the migrations create it if it is missing."""
    program = _find_default_program()
    if program is None:
        program = Program(
            name="Invite friends",
            slug=DEFAULT_PROGRAM_SLUG,
            description="",
            is_default=True,
            starts_at=utcnow(),
            # 10.00 credit to the referrer on the friend's first purchase of 20.00 or more,
            # 5.00 credit to the friend, held 14 days.
            currency=current_app.config["DEFAULT_CURRENCY"],
            trigger_event="first_purchase",
            min_purchase_amount=2000,
            referrer_reward_kind="credit",
            referrer_reward_basis="fixed",
            referrer_reward_value=1000,
            friend_reward_kind="credit",
            friend_reward_basis="fixed",
            friend_reward_value=500,
            hold_days=14,
        )
        db.session.add(program)
        db.session.flush()
    return program


# Built once and run with the code as its parameter: building it, its joined loads above
# all, took as long as running it (0.28 of 0.66 ms in a signup's transaction).
_ACTIVE_CODE = (
    select(ReferralCode)
    .options(joinedload(ReferralCode.program), joinedload(ReferralCode.owner))
    .where(ReferralCode.code == bindparam("code"), ReferralCode.status == "active")
)


def find_active_code(raw: str | None, now: datetime | None = None) -> ReferralCode | None:
    """The usable code spelled by `raw`: active, of a running program, owned by an active
    participant. Anything else (unknown, disabled, malformed) is simply None."""
    code = normalize_code(raw)
    if code is None:
        return None
    found = db.session.scalar(_ACTIVE_CODE, {"code": code})
    if found is None or not found.owner.active or not found.program.is_running(now or utcnow()):
        return None
    return found


def resolve_signup_code(
    typed_code: str | None,
    cookie: tuple[str, datetime] | None,
    now: datetime,
    found: ReferralCode | None = None,
) -> Inviter | None:
    """Who invited a new signup. A typed code wins over the cookie and must be valid;
    a cookie that is stale or names a dead code is quietly ignored. `found`: the typed code
    as a form's check found it earlier in this transaction (not looked up again)."""
    if typed_code and typed_code.strip():
        found = found or find_active_code(typed_code, now)
        if found is None:
            raise CodeNotFound()
        if cookie is not None and found.code == cookie[0]:
            return Inviter(found, "link", cookie[1])
        return Inviter(found, "code")
    return cookie_inviter(cookie, now)


def cookie_inviter(cookie: tuple[str, datetime] | None, now: datetime) -> Inviter | None:
    """The inviter an attribution cookie names, if its code is usable and its click is
    still inside the program's attribution window."""
    if cookie is None:
        return None
    code, clicked_at = cookie
    found = find_active_code(code, now)
    if found is None or now - clicked_at > timedelta(days=found.program.attribution_window_days):
        return None
    return Inviter(found, "link", clicked_at)


def signup_prefill(query_code: str | None, cookie: tuple[str, datetime] | None) -> str | None:
    """What the signup form's code field starts with: a well-formed ?ref=, else the cookie's
    code while it is valid."""
    from_query = normalize_code(query_code)
    if from_query:
        return from_query
    inviter = cookie_inviter(cookie, utcnow())
    return inviter.code.code if inviter else None


_NEW_CODE = (
    insert_unless_present(ReferralCode, ["code"])
    .values(values_given_later("code", "user_id", "program_id"))
    .returning(ReferralCode)
)


def issue_code(user: User, program: Program, length: int = MIN_LENGTH) -> ReferralCode:
    """A fresh random code; a collision with an existing code just draws again. One
    statement per draw: the insert skips a taken code and then returns nothing."""
    for _ in range(_CODE_ATTEMPTS):
        drawn = {"code": generate_code(length), "user_id": user.id, "program_id": program.id}
        code = db.session.scalar(_NEW_CODE, drawn)
        if code is not None:
            return code
    raise RuntimeError("could not draw an unused referral code; the code space is crowded")


def active_code(user: User, program: Program) -> ReferralCode | None:
    return db.session.scalar(
        select(ReferralCode).where(
            ReferralCode.user_id == user.id,
            ReferralCode.program_id == program.id,
            ReferralCode.status == "active",
        )
    )


def record_click(
    code: ReferralCode,
    *,
    visitor_id: str,
    ip_prefix: str | None,
    user_agent: str | None,
    referrer: str | None,
    utm: dict[str, str],
) -> Click:
    """A click added to the session, for the demo seed and tools that date it themselves;
    requests store theirs through referral/clicks.py, without the session."""
    visit = clicks.Visit(visitor_id, ip_prefix, user_agent, referrer, utm)
    click = Click(**visit.columns(code.id, utcnow(), queue_id=None))
    db.session.add(click)
    db.session.flush()
    counters.count_on_commit(counters.CLICKS)
    return click


_NEW_REFERRAL = (
    insert_unless_present(Referral, ["referred_id"])
    .values(
        values_given_later(
            "program_id",
            "code_id",
            "referrer_id",
            "referred_id",
            "source",
            "status",
            "reason",
            "risk_score",
            "risk_reasons",
            "clicked_at",
            "created_at",
            "updated_at",
        )
    )
    .returning(Referral)
)


def attribute_signup(
    user: User,
    code: ReferralCode,
    source: str,
    now: datetime,
    clicked_at: datetime | None = None,
    new_participant: bool = False,
    verdict: fraud.Verdict | None = None,
) -> Referral:
    """Record that `user` came through `code`, after the fraud checks: an allowed referral is
    counted at once, a suspicious one waits for review, a refused one is kept with its
    reasons and never counted. `new_participant`: `user` was created in this transaction, so
    nobody can be below them yet and the edge cannot close a loop without the tree lock.
    `verdict`: `judge_signup`'s, taken earlier in this transaction for a new participant."""
    if verdict is None:
        verdict = judge_signup(user, code, now, new_participant=new_participant)
    # One statement writes the referral or finds the person referred already.
    row = {
        "program_id": code.program_id,
        "code_id": code.id,
        "referrer_id": code.user_id,
        "referred_id": user.id,
        "source": source,
        "status": lifecycle.initial_status(verdict.decision),
        "reason": verdict.reason,
        "risk_score": verdict.score,
        "risk_reasons": verdict.reasons(),
        "clicked_at": clicked_at,
        "created_at": now,
        "updated_at": now,
    }
    referral = db.session.scalar(_NEW_REFERRAL, row)
    if referral is None:
        raise AlreadyReferred()
    # The code came with its program and owner (the referrer): the referral holds on to
    # them, so what reads them next in this transaction finds them without a query.
    set_committed_value(referral, "code", code)
    if referral.counted:
        if user.referred_by_id != code.user_id:  # a new participant came with it
            user.referred_by_id = code.user_id
        referral_counted(code.user_id)
    else:
        log.info("referral %s %s: %s", referral.id, referral.status, referral.reason)
    referral_recorded.send(referral, now=now)
    return referral


def judge_signup(
    user: User, code: ReferralCode, now: datetime, new_participant: bool = False
) -> fraud.Verdict:
    """The fraud checks' verdict on `user` joining through `code`, with the locks that make
    it exact until the transaction ends. For a new participant it may come before their
    account is inserted (`user` without an id yet), so the account is written with its
    inviter at once."""
    if not new_participant:
        fraud.lock_tree()
    # Before the velocity checks count: concurrent signups with this code count in turn.
    fraud.lock_code(code)
    signals = fraud.signup_signals(user, code, now, new_participant=new_participant)
    return fraud.decide(code.program, signals)


def counts_at_once(verdict: fraud.Verdict) -> bool:
    """Whether a referral with this verdict is counted the moment it is recorded."""
    return lifecycle.initial_status(verdict.decision) in COUNTED_STATUSES


def referral_counted(referrer_id: int) -> None:
    """A referral of `referrer_id` was counted: the database added it to their counter (the
    trigger of migration 0023), so what this session holds of the counter is out of date, and
    the board is once the transaction commits."""
    referrer = db.session.identity_map.get(identity_key(User, referrer_id))
    if referrer is not None:
        db.session.expire(referrer, ["referral_count", "last_referral_at"])
    after_commit(leaderboard.invalidate)


def recount_referrals() -> None:
    """Set every counter from the referral rows (after a bulk load made with the triggers
    switched off, or a repair)."""
    counted = Referral.status.in_(COUNTED_STATUSES)
    count = select(func.count()).where(Referral.referrer_id == User.id, counted)
    latest = select(func.max(Referral.created_at)).where(Referral.referrer_id == User.id, counted)
    db.session.execute(
        update(User).values(
            referral_count=count.scalar_subquery(), last_referral_at=latest.scalar_subquery()
        ),
        execution_options={"synchronize_session": False},
    )
    after_commit(leaderboard.invalidate)


def referral_link(code: str) -> str:
    """The code's link under PUBLIC_URL (or, in development, the request's allowed host)."""
    return absolute_url("referral.follow_link", code=code) or url_for(
        "referral.follow_link", code=code
    )


@dataclass(frozen=True)
class Stats:
    clicks: int
    signups: int  # counted referrals
    qualified: int
    in_review: int = 0  # joined, held for review: not counted (yet)
    not_counted: int = 0  # joined, refused by the checks


def participant_stats(user: User) -> Stats:
    clicks = db.session.scalar(
        select(func.count(Click.id))
        .join(ReferralCode, Click.code_id == ReferralCode.id)
        .where(ReferralCode.user_id == user.id)
    )
    by_status = dict(
        db.session.execute(
            select(Referral.status, func.count())
            .where(Referral.referrer_id == user.id)
            .group_by(Referral.status)
        ).all()
    )
    return Stats(
        clicks=clicks or 0,
        signups=sum(by_status.get(status, 0) for status in COUNTED_STATUSES),
        qualified=by_status.get("qualified", 0) + by_status.get("rewarded", 0),
        in_review=by_status.get("review", 0),
        not_counted=by_status.get("rejected", 0),
    )


def qualified_count(user: User, program: Program) -> int:
    """The referrals that earned `user` a reward in `program`, as its milestones count them."""
    return db.session.scalar(
        select(func.count()).where(
            Referral.program_id == program.id,
            Referral.referrer_id == user.id,
            Referral.status.in_(("qualified", "rewarded")),
        )
    )


def invited_people(user: User, page: int, per_page: int):
    """The people who joined through this participant, newest first, a page at a time."""
    query = (
        select(Referral)
        .options(joinedload(Referral.referred))
        .where(Referral.referrer_id == user.id)
        .order_by(Referral.created_at.desc(), Referral.id.desc())
    )
    return db.paginate(query, page=page, per_page=per_page, error_out=False)
