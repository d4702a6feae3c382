"""The life of a referral: the one place its status changes.

A friend signs up through a code and the fraud checks give the referral its first status:
`pending` (counted at once), `review` (held for staff, not counted) or `rejected` (kept with
its reasons, never counted). From there:

    pending   -> qualified   a qualifying event happened (the program's trigger);
    review    -> approved    staff cleared it before any event earned it rewards;
              -> qualified   staff cleared it and an event had already earned (held) rewards;
              -> rejected    staff refused it;
    approved  -> qualified   a qualifying event after staff cleared it;
    qualified -> rewarded    the referrer's reward was approved (its hold ended);
              -> pending     a refund inside the hold cancelled all its rewards: it may
                             qualify again.

`rewarded` and `rejected` are final. The database keeps the status within
models.REFERRAL_STATUSES (a CHECK constraint); this module keeps the changes within ALLOWED.
Every change is one conditional UPDATE (WHERE status IN the statuses it leaves), so of two
changes at once only one moves the row; a change the table does not allow is refused with
TransitionNotAllowed before the database is touched. Counters and rewards stay with the
callers (referral.services, rewards).
"""

from collections.abc import Collection, Iterable
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select, update

from core.errors import DomainError
from extensions import db
from models import QUALIFIABLE_STATUSES, Referral, Reward
from referral import fraud
from referral.signals import referral_qualified

# The status each verdict of the fraud checks gives a new referral.
START = {fraud.ALLOW: "pending", fraud.REVIEW: "review", fraud.REJECT: "rejected"}

# Which status may follow which (the keys are exactly REFERRAL_STATUSES).
ALLOWED: dict[str, frozenset[str]] = {
    "pending": frozenset({"qualified"}),
    "review": frozenset({"approved", "qualified", "rejected"}),
    "approved": frozenset({"qualified"}),
    "qualified": frozenset({"rewarded", "pending"}),
    "rewarded": frozenset(),
    "rejected": frozenset(),
}


class TransitionNotAllowed(ValueError):
    """The code asked for a status change ALLOWED does not list: a bug, not a user's error."""


class NotUnderReview(DomainError):
    status = 409
    code = "not_under_review"
    message = _l("This referral is not waiting for review.")


def initial_status(decision: str) -> str:
    """The status a new referral starts in, from the fraud checks' decision."""
    return START[decision]


def move(
    referral_ids: Iterable[int] | Select,
    leaving: Collection[str],
    to: str,
    now: datetime,
    **columns: str | None,
) -> int:
    """Move those of `referral_ids` (ids, or a select of ids) whose status is one of
    `leaving` to `to` in one conditional UPDATE, setting `columns` too (the reason).
    Returns how many moved. The changes below are the product's; they all pass here."""
    leaving = (leaving,) if isinstance(leaving, str) else tuple(leaving)
    _refuse_unless_allowed(leaving, to)
    return db.session.execute(
        update(Referral)
        .where(Referral.id.in_(referral_ids), Referral.status.in_(leaving))
        .values(status=to, updated_at=now, **columns),
        execution_options={"synchronize_session": False},
    ).rowcount


def _refuse_unless_allowed(leaving: tuple[str, ...], to: str) -> None:
    refused = [status for status in leaving if to not in ALLOWED.get(status, ())]
    if refused or not leaving:
        raise TransitionNotAllowed(f"{', '.join(refused) or 'nothing'} -> {to}")


def qualify(referral: Referral, now: datetime) -> bool:
    """A qualifying event: a pending or approved referral becomes qualified, announced with
    `referral_qualified`. In any other status it stays (held in review, qualified already)."""
    if referral.status not in QUALIFIABLE_STATUSES:
        return False
    _refuse_unless_allowed(QUALIFIABLE_STATUSES, "qualified")
    # `move`'s conditional UPDATE, returning the row as it now is (no second read).
    moved = db.session.scalars(
        update(Referral)
        .where(Referral.id == referral.id, Referral.status.in_(QUALIFIABLE_STATUSES))
        .values(status="qualified", updated_at=now)
        .returning(Referral)
        .execution_options(populate_existing=True, synchronize_session=False)
    ).first()
    if moved is None:
        return False
    referral_qualified.send(moved, now=now)
    return True


def approve(referral: Referral, now: datetime) -> str:
    """Staff cleared a held referral: `qualified` if an event already earned it rewards,
    else `approved`. Returns the new status; NotUnderReview if it left review meanwhile."""
    status = "qualified" if _has_rewards(referral) else "approved"
    _leave_review(referral, status, reason=None, now=now)
    return status


def reject(referral: Referral, reason: str, now: datetime) -> None:
    """Staff refused a held referral; NotUnderReview if it left review meanwhile."""
    _leave_review(referral, "rejected", reason=reason, now=now)


def _leave_review(referral: Referral, status: str, *, reason: str | None, now: datetime) -> None:
    """Only a referral still in review moves: of two staff decisions at once, the second
    finds no row to change and is refused (no double count)."""
    if move([referral.id], ("review",), status, now, reason=reason) != 1:
        raise NotUnderReview()
    db.session.refresh(referral)


def _has_rewards(referral: Referral) -> bool:
    return (
        db.session.scalar(
            select(Reward.id).where(Reward.referral_id == referral.id, Reward.amount > 0).limit(1)
        )
        is not None
    )


def mark_rewarded(referral_ids: Iterable[int] | Select, now: datetime) -> int:
    """The referrer's reward was approved: those of `referral_ids` still qualified are now
    rewarded (a referral already rewarded stays)."""
    return move(referral_ids, ("qualified",), "rewarded", now)


def reopen(referral_id: int, now: datetime) -> bool:
    """A refund inside the hold cancelled every reward of a qualified referral: it is
    pending again, so a later purchase may qualify it."""
    return move([referral_id], ("qualified",), "pending", now) == 1
