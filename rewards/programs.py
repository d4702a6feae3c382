"""Programs' reward rules: checked as a whole before they are saved.

The database's check constraints are the guarantee; these checks are what turns an impossible
combination into a message a person can act on, naming the field at fault. Every change is
audit-logged here, in the transaction that makes it, whether it came from the panel or the CLI.
"""

import re
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import audit
from core.errors import DomainError
from extensions import db
from models import MAX_DEPTH, REWARD_BASES, REWARD_KINDS, TRIGGERS, Campaign, Program
from referral import links, offer
from rewards import eligibility, rollout

# The fields staff (and the CLI) may set, with how each is read from text.
RULE_FIELDS = {
    "name": str,
    "description": str,
    "active": bool,
    "starts_at": datetime,
    "ends_at": datetime,
    "attribution_window_days": int,
    "claim_window_days": int,
    "attribution_model": str,
    "landing_url": str,
    "trigger_event": str,
    "min_purchase_amount": int,
    "currency": str,
    "referrer_reward_kind": str,
    "referrer_reward_basis": str,
    "referrer_reward_value": int,
    "friend_reward_kind": str,
    "friend_reward_basis": str,
    "friend_reward_value": int,
    "max_depth": int,
    "level_shares": list,
    "milestone_every": int,
    "milestone_amount": int,
    "cap_per_day": int,
    "cap_per_month": int,
    "cap_total": int,
    "hold_days": int,
    "reward_expiry_days": int,
    "review_score": int,
    "reject_score": int,
    "max_signups_per_ip_per_day": int,
    "max_signups_per_code_per_hour": int,
    "min_seconds_click_to_purchase": int,
    "excluded_email_domains": list,
    "campaign_id": int,
    "share_text": str,
    "reward_usage_text": str,
    "notify_rejected": bool,
    "eligible_channels": list,
    "eligible_countries": list,
    "eligible_categories": list,
    "fulfilment_mode": str,
    "fulfilment_percent": int,
    "fulfilment_allowlist": list,  # participants' emails
}
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z]{2,63}$")


class InvalidRules(DomainError):
    code = "invalid_rules"

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class DefaultChanged(DomainError):
    status = 409
    code = "default_changed"
    message = _l("Someone else changed the default program at the same moment; try again.")


class SlugTaken(DomainError):
    status = 409
    code = "slug_taken"
    field = "slug"
    message = _l("Another program already has this short name.")


_REWARD_KIND_REFUSED = {
    "referrer": _l(
        "The referrer's reward kind must be one of %(kinds)s.", kinds=", ".join(REWARD_KINDS)
    ),
    "friend": _l(
        "The friend's reward kind must be one of %(kinds)s.", kinds=", ".join(REWARD_KINDS)
    ),
}
_REWARD_ZERO_REFUSED = {
    "referrer": _l("The referrer's reward must be more than zero."),
    "friend": _l("The friend's reward must be more than zero."),
}
_CAP_NAMES = {
    "cap_per_day": _l("cap per day"),
    "cap_per_month": _l("cap per month"),
    "cap_total": _l("cap total"),
}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
_AUDITED = ("slug", *RULE_FIELDS)


def create_program(slug: str, values: dict, currency: str) -> Program:
    """A new (not default) program with the model's default rules, changed by `values`."""
    if not _SLUG.match(slug or ""):
        raise InvalidRules("slug", _("The short name is lower-case letters, digits and dashes."))
    if db.session.scalar(select(Program.id).where(Program.slug == slug)) is not None:
        raise SlugTaken()
    program = draft_program(currency)
    program.slug, program.name = slug, values.get("name") or slug
    _apply(program, {key: value for key, value in values.items() if key != "name"})
    db.session.add(program)
    db.session.flush()
    audit.record("program.create", "program", program.id, after=audit.snapshot(program, _AUDITED))
    return program


def draft_program(currency: str) -> Program:
    """An unsaved program holding the default rules (the start of a new program's form)."""
    program = Program(currency=currency)
    # Column defaults apply at insert; fill them now so the rules can be checked whole.
    for column in Program.__table__.columns:
        if getattr(program, column.key) is None and column.default is not None:
            default = column.default.arg
            setattr(program, column.key, default(None) if callable(default) else default)
    return program


def update_program(program: Program, changes: dict) -> Program:
    """Apply `changes` if the program's rules, taken together, still make sense."""
    before = audit.snapshot(program, RULE_FIELDS)
    _apply(program, changes)
    old, new = audit.changes(before, audit.snapshot(program, RULE_FIELDS))
    if new:
        audit.record("program.update", "program", program.id, before=old, after=new)
        links.invalidate()  # dates, landing page, attribution: what its links resolve to
    return program


def _apply(program: Program, changes: dict) -> None:
    unknown = sorted(set(changes) - set(RULE_FIELDS))
    if unknown:
        raise InvalidRules(unknown[0], _("%(name)s is not a program setting.", name=unknown[0]))
    merged = {field: getattr(program, field) for field in RULE_FIELDS} | changes
    check_rules(merged)
    if "campaign_id" in changes:
        _check_campaign(changes["campaign_id"])
    if "fulfilment_allowlist" in changes:
        _set_allowlist(program, changes["fulfilment_allowlist"])
    for field, value in changes.items():
        if field != "fulfilment_allowlist":
            setattr(program, field, value)
    db.session.flush()


def _set_allowlist(program: Program, emails) -> None:
    if not isinstance(emails, list) or not all(isinstance(email, str) for email in emails):
        raise InvalidRules("fulfilment_allowlist", _("List participants' emails."))
    users, unknown = rollout.participants_by_email(emails)
    if unknown:
        raise InvalidRules(
            "fulfilment_allowlist", _("No participant has the email %(email)s.", email=unknown[0])
        )
    rollout.set_allowlist(program, users)


def _check_campaign(campaign_id) -> None:
    """A program belongs to a campaign of the referral channel (the database's composite
    key refuses any other; this says so in words)."""
    if campaign_id is None:
        return
    channel = None
    if _whole(campaign_id, 1):
        channel = db.session.scalar(select(Campaign.channel).where(Campaign.id == campaign_id))
    _require(
        channel == "referral",
        "campaign_id",
        _l("Choose a campaign of the referral channel (or none)."),
    )


def set_program_active(program: Program, active: bool) -> bool:
    """Switch the program on or off; False when it already was. An inactive program's links
    and codes stop attributing and its conversions stop paying."""
    changed = db.session.execute(
        update(Program)
        .where(Program.id == program.id, Program.active != active)
        .values(active=active),
        execution_options={"synchronize_session": False},
    ).rowcount
    db.session.refresh(program)
    if changed:
        links.invalidate()
        audit.record(
            "program.activate" if active else "program.deactivate",
            "program",
            program.id,
            before={"active": not active},
            after={"active": active},
        )
    return bool(changed)


def make_default(program: Program) -> bool:
    """Make `program` the one default (signups get its code, events count in it); False
    when it already is. The old default's row is locked, and the partial unique index
    refuses a second default should two changes still cross."""
    current = db.session.scalar(select(Program).where(Program.is_default).with_for_update())
    if current is not None and current.id == program.id:
        return False
    try:
        with db.session.begin_nested():
            db.session.execute(
                update(Program).where(Program.is_default).values(is_default=False),
                execution_options={"synchronize_session": False},
            )
            db.session.execute(
                update(Program).where(Program.id == program.id).values(is_default=True),
                execution_options={"synchronize_session": False},
            )
    except IntegrityError:
        raise DefaultChanged() from None
    db.session.refresh(program)
    if current is not None:
        db.session.refresh(current)
    audit.record(
        "program.default",
        "program",
        program.id,
        before={"default": current.slug if current else None},
        after={"default": program.slug},
    )
    return True


def check_rules(rules: dict) -> None:
    """Raise InvalidRules for the first impossible setting or combination."""
    _check_identity(rules)
    _check_reward(rules, "referrer", required=True)
    _check_reward(rules, "friend", required=False)
    _check_network(rules)
    _check_caps(rules)
    _check_timing(rules)
    _check_policy(rules)
    _check_texts(rules)
    problem = eligibility.filter_problem(rules) or rollout.rollout_problem(rules)
    if problem:
        raise InvalidRules(*problem)


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise InvalidRules(field, message)


def _whole(value, low: int, high: int | None = None) -> bool:
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return value >= low and (high is None or value <= high)


def _check_identity(rules: dict) -> None:
    name = rules.get("name") or ""
    _require(0 < len(name.strip()) <= 120, "name", _l("Give the program a name (up to 120 chars)."))
    _require(
        rules["trigger_event"] in TRIGGERS,
        "trigger_event",
        _l("The trigger must be one of %(choices)s.", choices=", ".join(TRIGGERS)),
    )
    currency = rules.get("currency") or ""
    _require(
        len(currency) == 3 and currency.isalpha() and currency.isupper(),
        "currency",
        _l("The currency is a three-letter ISO code in capitals, such as USD."),
    )
    _require(
        _whole(rules["min_purchase_amount"], 0),
        "min_purchase_amount",
        _l("The minimum purchase is a whole number of minor units, 0 or more."),
    )
    _require(
        _whole(rules["attribution_window_days"], 1, 365),
        "attribution_window_days",
        _l("The attribution window is 1 to 365 days."),
    )
    _require(
        _whole(rules["claim_window_days"], 0, 365),
        "claim_window_days",
        _l("The claim window is 0 (no claims) to 365 days."),
    )
    _require(
        rules["attribution_model"] in ("first", "last"),
        "attribution_model",
        _l("Attribution is first or last touch."),
    )


def _check_reward(rules: dict, who: str, *, required: bool) -> None:
    kind, basis, value = (rules.get(f"{who}_reward_{part}") for part in ("kind", "basis", "value"))
    field = f"{who}_reward_value"
    if not required and kind is None and basis is None and value is None:
        return
    _require(
        kind in REWARD_KINDS,
        f"{who}_reward_kind",
        _REWARD_KIND_REFUSED[who],
    )
    _require(
        basis in REWARD_BASES, f"{who}_reward_basis", _l("A reward is a fixed amount or a percent.")
    )
    _require(_whole(value, 1), field, _REWARD_ZERO_REFUSED[who])
    if basis == "percent":
        _require(
            value <= 10_000,
            field,
            _l("A percent reward is at most 100 % (10000 basis points)."),
        )
        _require(
            rules["trigger_event"] != "signup",
            f"{who}_reward_basis",
            _l("A percent of the purchase needs a purchase: use a fixed reward for signups."),
        )


def _check_network(rules: dict) -> None:
    depth, shares = rules["max_depth"], rules.get("level_shares") or []
    _require(
        _whole(depth, 1, MAX_DEPTH),
        "max_depth",
        _l("The depth is 1 to %(most)s levels.", most=MAX_DEPTH),
    )
    _require(
        isinstance(shares, list) and all(_whole(share, 0, 100) for share in shares),
        "level_shares",
        _l("Each level's share is a whole percent from 0 to 100."),
    )
    _require(
        len(shares) <= depth - 1,
        "level_shares",
        _l(
            "%(shares)s shares for higher levels need a depth of at least %(depth)s.",
            shares=len(shares),
            depth=len(shares) + 1,
        ),
    )
    every, amount = rules.get("milestone_every"), rules.get("milestone_amount")
    _require(
        (every is None) == (amount is None),
        "milestone_amount",
        _l("A milestone bonus needs both how often (every N referrals) and the amount."),
    )
    if every is not None:
        _require(_whole(every, 2), "milestone_every", _l("A milestone comes every 2 or more."))
        _require(_whole(amount, 1), "milestone_amount", _l("The milestone bonus must be positive."))


def _check_caps(rules: dict) -> None:
    caps = [(name, rules.get(name)) for name in ("cap_per_day", "cap_per_month", "cap_total")]
    for name, cap in caps:
        _require(cap is None or _whole(cap, 1), name, _l("A cap is a whole number above zero."))
    set_caps = [(name, cap) for name, cap in caps if cap is not None]
    for (small_name, small), (large_name, large) in zip(set_caps, set_caps[1:], strict=False):
        _require(
            small <= large,
            small_name,
            _l(
                "%(smaller)s (%(small)s) cannot exceed %(larger)s (%(large)s).",
                smaller=_CAP_NAMES[small_name],
                small=small,
                larger=_CAP_NAMES[large_name],
                large=large,
            ),
        )


def _check_timing(rules: dict) -> None:
    _require(_whole(rules["hold_days"], 0, 365), "hold_days", _l("The hold is 0 to 365 days."))
    expiry = rules.get("reward_expiry_days")
    _require(
        expiry is None or _whole(expiry, 1, 3650),
        "reward_expiry_days",
        _l("Rewards expire after 1 to 3650 days, or never."),
    )
    starts, ends = rules.get("starts_at"), rules.get("ends_at")
    _require(
        ends is None or starts is None or ends > starts,
        "ends_at",
        _l("The program must end after it starts."),
    )


def _check_policy(rules: dict) -> None:
    review, reject = rules["review_score"], rules["reject_score"]
    _require(_whole(review, 1), "review_score", _l("The review threshold is above zero."))
    _require(
        _whole(reject, 1) and reject >= review,
        "reject_score",
        _l("The reject threshold cannot be below the review threshold."),
    )
    for name in ("max_signups_per_ip_per_day", "max_signups_per_code_per_hour"):
        _require(_whole(rules[name], 1), name, _l("A signup limit is a whole number above zero."))
    _require(
        _whole(rules["min_seconds_click_to_purchase"], 0),
        "min_seconds_click_to_purchase",
        _l("The click-to-purchase gap is 0 seconds or more."),
    )
    domains = rules.get("excluded_email_domains") or []
    _require(
        isinstance(domains, list) and all(_DOMAIN.match(str(d).lower()) for d in domains),
        "excluded_email_domains",
        _l("Excluded domains are names like example.com."),
    )


def _check_texts(rules: dict) -> None:
    """What participants read: empty means "made from the rules" (None)."""
    share, usage = rules.get("share_text"), rules.get("reward_usage_text")
    _require(
        share is None or 0 < len(share) <= offer.SHARE_TEXT_MAX,
        "share_text",
        _l(
            "The share text is at most %(most)s characters (the link is added).",
            most=offer.SHARE_TEXT_MAX,
        ),
    )
    unknown = offer.unknown_placeholders(share)
    _require(
        not unknown,
        "share_text",
        _l(
            "%(unknown)s is not a placeholder; use %(known)s.",
            unknown=f"{{{unknown[0] if unknown else ''}}}",
            known=", ".join(f"{{{name}}}" for name in offer.SHARE_PLACEHOLDERS),
        ),
    )
    _require(
        usage is None or 0 < len(usage) <= offer.USAGE_TEXT_MAX,
        "reward_usage_text",
        _l(
            "The text on using a reward is at most %(most)s characters.",
            most=offer.USAGE_TEXT_MAX,
        ),
    )
