"""Signals that a referral or a conversion is not what it seems.

Each check gives a reason code, points and a sentence for staff; the points add up to a risk
score, and the program's policy turns the score into allow, review or reject. Everything is
stored itemised on the referral or conversion, so a decision can always be explained.

FRAUD_SAME_IP_REVIEW=false (development only; production refuses it) leaves out the checks
that compare signup IP addresses, so two browsers on one machine can try a referral.
"""

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from disposable_email_domains import blocklist as disposable_domains
from flask import current_app
from sqlalchemy import Integer, bindparam, cast, func, literal, select
from sqlalchemy.orm import aliased

from core.clients import ip_prefix
from extensions import db
from models import Click, Program, Referral, ReferralCode, User

SELF_REFERRAL = "self_referral"
ALLOW, REVIEW, REJECT = "allow", "review", "reject"
# The signals that say "this is the referrer again"; a rejection they cause is a self-referral.
SELF_SIGNALS = frozenset({"same_person", "same_device", "same_mailbox"})


@dataclass(frozen=True)
class Signal:
    code: str
    points: int
    detail: str

    def as_dict(self) -> dict:
        return {"code": self.code, "points": self.points, "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    decision: str  # allow | review | reject
    score: int
    signals: tuple[Signal, ...]

    @property
    def reason(self) -> str | None:
        """The reason code shown for a held or refused referral: the weightiest signal, or
        self_referral when the referrer signed up again."""
        if self.decision == ALLOW:
            return None
        if self.decision == REJECT and any(signal.code in SELF_SIGNALS for signal in self.signals):
            return SELF_REFERRAL
        return max(self.signals, key=lambda signal: signal.points).code

    def reasons(self) -> list[dict]:
        return [signal.as_dict() for signal in self.signals]


def decide(program: Program, signals: list[Signal]) -> Verdict:
    score = sum(signal.points for signal in signals)
    if score >= program.reject_score:
        decision = REJECT
    elif score >= program.review_score:
        decision = REVIEW
    else:
        decision = ALLOW
    return Verdict(decision, score, tuple(signals))


def self_referral_signals(referred: User, referrer: User) -> list[Signal]:
    """The new account looks like the referrer: the same person, browser or mailbox.
    The same browser alone is held for review (a friend may borrow a laptop); together with
    the same address it is refused."""
    signals = []
    if referred.id == referrer.id:
        signals.append(Signal("same_person", 100, "the code belongs to this account"))
    if referred.device_id and referred.device_id == referrer.device_id:
        signals.append(Signal("same_device", 60, "signed up from the referrer's browser"))
    if referred.email_canonical and referred.email_canonical == referrer.email_canonical:
        signals.append(Signal("same_mailbox", 100, "an alias of the referrer's email address"))
    return signals


def signup_signals(
    referred: User, code: ReferralCode, now: datetime, new_participant: bool = False
) -> list[Signal]:
    """Every check that runs when a referral is recorded. `new_participant`: `referred` was
    created in this transaction, so nobody is below them and no loop can close through them."""
    referrer, program = code.owner, code.program
    signals = self_referral_signals(referred, referrer)
    signals += _email_domain_signals(referred, program)
    if current_app.config["FRAUD_SAME_IP_REVIEW"]:
        signals += _network_signals(referred, referrer)
    signals += _velocity_signals(referred, code, program, now)
    # Below a participant made in this transaction there is nobody: only they themselves
    # could close a loop, and that needs no walk up the tree.
    closes_loop = referred.id == referrer.id
    if not new_participant:
        closes_loop = closes_cycle(referred.id, referrer.id)
    if closes_loop:
        signals.append(Signal("cycle", 100, "the referrer was invited by this person's network"))
    return signals


def _email_domain_signals(referred: User, program: Program) -> list[Signal]:
    domain = (referred.email or "").rpartition("@")[2]
    if not domain:
        return []
    signals = []
    excluded = {entry.lower().lstrip("@") for entry in program.excluded_email_domains or []}
    if domain in excluded:
        signals.append(Signal("excluded_domain", 100, f"{domain} is excluded by the program"))
    if domain in disposable_domains:
        signals.append(Signal("disposable_email", 50, f"{domain} hands out throwaway addresses"))
    return signals


def _network_signals(referred: User, referrer: User) -> list[Signal]:
    if not referred.signup_ip or not referrer.signup_ip:
        return []
    if referred.signup_ip == referrer.signup_ip:
        return [Signal("same_ip", 50, "signed up from the referrer's IP address")]
    network = ip_prefix(referred.signup_ip)
    if network and network == ip_prefix(referrer.signup_ip):
        return [Signal("same_network", 25, f"signed up from the referrer's network {network}")]
    return []


# Made once: SQLAlchemy indexes an alias's columns when it is first used (15 ms for users).
_FRIEND = aliased(User, name="friend")


def _velocity_signals(
    referred: User, code: ReferralCode, program: Program, now: datetime
) -> list[Signal]:
    """The code's signups in the last hour and, when addresses are compared, those from this
    address in the last day: one statement (the caller holds the code's lock: both exact)."""
    same_ip = current_app.config["FRAUD_SAME_IP_REVIEW"] and referred.signup_ip is not None
    # An account not written yet has no referral to leave out.
    counts = _velocity_counts(leave_out=referred.id is not None, same_ip=same_ip)
    parameters = {
        "code_id": code.id,
        "hour_ago": now - timedelta(hours=1),
        "day_ago": now - timedelta(days=1),
        "referred_id": referred.id,
        "signup_ip": referred.signup_ip,
    }
    last_hour, *same_ip_today = db.session.execute(counts, parameters).one()
    signals = []
    if same_ip and same_ip_today[0] >= program.max_signups_per_ip_per_day:
        signals.append(
            Signal(
                "ip_velocity", 50, f"{same_ip_today[0]} signups from this IP with this code today"
            )
        )
    if last_hour >= program.max_signups_per_code_per_hour:
        signals.append(Signal("code_velocity", 50, f"{last_hour} signups with this code this hour"))
    return signals


@functools.cache
def _velocity_counts(leave_out: bool, same_ip: bool):
    """The velocity checks' one statement of this shape, built once (as the signup's others,
    referral/services.py): the code's referrals of the last hour, leaving out `referred_id`'s
    own when `leave_out`, and with `same_ip` those of the last day from `signup_ip`."""
    hour_ago = bindparam("hour_ago", type_=Referral.created_at.type)
    counts = (
        select(func.count().filter(Referral.created_at > hour_ago))
        .select_from(Referral)
        .where(Referral.code_id == bindparam("code_id"))
    )
    if leave_out:
        counts = counts.where(Referral.referred_id != bindparam("referred_id"))
    if not same_ip:
        return counts.where(Referral.created_at > hour_ago)
    return (
        counts.add_columns(func.count().filter(_FRIEND.signup_ip == bindparam("signup_ip")))
        .join(_FRIEND, _FRIEND.id == Referral.referred_id)
        .where(Referral.created_at > bindparam("day_ago", type_=Referral.created_at.type))
    )


def closes_cycle(referred_id: int, referrer_id: int) -> bool:
    """Whether `referrer` is `referred` or one of the people `referred` brought in, at any
    depth: making `referrer` the inviter would close a loop in the tree.

    It walks the referrals, not `users.referred_by_id`: a referral held for review is not an
    edge yet, but becomes one when approved, so it must already bar the loop. Rejected ones
    never become edges. A person is referred once, so each step has one inviter at most."""
    if referred_id == referrer_id:
        return True
    chain = select(literal(referrer_id).label("id"), literal(0).label("depth")).cte(
        "inviters", recursive=True
    )
    chain = chain.union_all(
        select(Referral.referrer_id, chain.c.depth + 1)
        .join(chain, Referral.referred_id == chain.c.id)
        .where(Referral.status != "rejected", chain.c.depth < 1000)
    )
    return db.session.scalar(select(func.count()).where(chain.c.id == referred_id)) > 0


# An arbitrary constant naming the PostgreSQL advisory lock that orders new edges.
_TREE_LOCK_KEY = 0x1A7E_7EE5


def lock_tree() -> None:
    """Take, until the transaction ends, the lock that every new edge between *existing*
    participants takes first. Two such edges could each pass the cycle check and together
    close a loop (A takes B as inviter while B takes A); in turn, the second one sees the
    first. On SQLite every writing transaction already runs alone (BEGIN IMMEDIATE)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(_TREE_LOCK_KEY)))


# The PostgreSQL advisory locks that make a code's signups take turns: the first of the two
# 32-bit keys names this use, the second is the code's id (the two-key space never meets the
# one-key space of the tree and order locks).
_CODE_LOCK_SPACE = 0x1A7E_C0DE & 0x7FFF_FFFF


def lock_code(code: ReferralCode) -> None:
    """Take, until the transaction ends, the lock that every referral through `code` takes
    before its velocity checks count the earlier ones. Without it, signups arriving at once
    each count the same committed rows and all pass a limit only some of them may pass (ten
    from one address against "five per address and code a day"). One lock per code, not per
    (code, address): the hourly limit counts every address. Always taken after the tree lock,
    never before it. On SQLite every writing transaction already runs alone."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_LOCK_CODE, {"code_id": code.id})


_LOCK_CODE = select(  # built once, as the signup's other statements (referral/services.py)
    func.pg_advisory_xact_lock(
        cast(_CODE_LOCK_SPACE, Integer), cast(bindparam("code_id", type_=Integer), Integer)
    )
)


def purchase_signals(referral: Referral, program: Program, occurred_at: datetime) -> list[Signal]:
    """Checks that run when a referred friend's purchase arrives."""
    gap = timedelta(seconds=program.min_seconds_click_to_purchase)
    last_click = db.session.scalar(
        select(Click.created_at)
        .where(Click.code_id == referral.code_id, Click.created_at <= occurred_at)
        .order_by(Click.created_at.desc())
        .limit(1)
    )
    if last_click is not None and occurred_at - last_click < gap:
        seconds = int((occurred_at - last_click).total_seconds())
        return [Signal("fast_purchase", 50, f"purchase {seconds} s after a click on the link")]
    return []
