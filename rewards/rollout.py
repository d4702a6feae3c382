"""The rollout of Saleor payments (docs/guarantees.md #41): which approved gift card and
voucher rewards are issued in Saleor on their own, and which wait for staff.

`automatic` issues every one; `limited` those of the participants on the program's allow-list
and of a stable share of the others (`percent`: a participant's bucket, 0-99, is a hash of the
program and their id, so the same people stay in as the share grows); `manual` none. A reward
that is not issued on its own stays `approved` until staff press "Pay out" for it.
"""

import hashlib

from flask_babel import gettext as _
from sqlalchemy import select

from extensions import db
from models import FULFILMENT_MODES, Program, ProgramPayoutAllowance, User


def bucket(program_id: int, user_id: int) -> int:
    """The participant's stable place, 0-99, in the program's percentage rollout."""
    digest = hashlib.blake2b(f"{program_id}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def pays_automatically(program: Program, beneficiary_id: int) -> bool:
    mode = program.fulfilment_mode
    if mode == "automatic":
        return True
    if mode == "manual":
        return False
    if bucket(program.id, beneficiary_id) < program.fulfilment_percent:
        return True
    return beneficiary_id in {row.user_id for row in program.payout_allowlist}


def rollout_problem(rules: dict) -> tuple[str, str] | None:
    """(field, message) for a rollout a program cannot store; None if it fits."""
    mode, percent = rules.get("fulfilment_mode"), rules.get("fulfilment_percent")
    if mode not in FULFILMENT_MODES:
        return "fulfilment_mode", _("Choose automatic, limited or manual.")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        return "fulfilment_percent", _("The share is a whole percent from 0 to 100.")
    return None


def participants_by_email(emails: list[str]) -> tuple[list[User], list[str]]:
    """The participants with these emails, and the emails that name nobody."""
    wanted = sorted({email.strip().lower() for email in emails if email.strip()})
    found = list(db.session.scalars(select(User).where(User.email.in_(wanted)))) if wanted else []
    known = {user.email for user in found}
    return found, [email for email in wanted if email not in known]


def set_allowlist(program: Program, users: list[User]) -> None:
    """Keep the rows still wanted, add the others (see Program._set_filter_values)."""
    wanted = {user.id for user in users}
    kept = [row for row in program.payout_allowlist if row.user_id in wanted]
    have = {row.user_id for row in kept}
    added = [ProgramPayoutAllowance(user=user) for user in users if user.id not in have]
    program.payout_allowlist = kept + added
