"""The codes the staff screens show (statuses, kinds, roles, channels, reasons) in the reader's
language. The codes themselves stay English in the database, the URLs, the filters' values
and the CSV exports; only the words a person reads are translated (docs/guarantees.md #46).

Templates write `{{ payout.status | in_words("payout_status") }}`; a code a group does not
know is shown as it is stored, underscores made spaces.
"""

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from rewards.words import REWARD_ROLE_WORDS, REWARD_STATUS_WORDS

WORDS = {
    "reward_status": REWARD_STATUS_WORDS,
    "reward_kind": {
        "credit": _l("credit"),
        "points": _l("points"),
        "coupon": _l("coupon"),
        "gift_card": _l("gift card"),
        "cash": _l("cash"),
    },
    "reward_role": REWARD_ROLE_WORDS,
    "payout_status": {
        "requested": _l("requested"),
        "paid": _l("paid"),
        "cancelled": _l("cancelled"),
    },
    "referral_status": {
        "pending": _l("pending"),
        "qualified": _l("qualified"),
        "rewarded": _l("rewarded"),
        "review": _l("review"),
        "approved": _l("approved"),
        "rejected": _l("rejected"),
    },
    "referral_source": {
        "link": _l("link"),
        "code": _l("code"),
        "claimed": _l("code given after signup"),
        "api": "API",
    },
    "conversion_source": {
        "api": "API",
        "saleor": "Saleor",
        "stripe": "Stripe",
        "manual": _l("manual"),
        "app": _l("app"),
    },
    "conversion_kind": {
        "signup": _l("signup"),
        "purchase": _l("purchase"),
        "refund": _l("refund"),
    },
    "outcome": {
        "accepted": _l("accepted"),
        "duplicate": _l("duplicate"),
        "unattributed": _l("unattributed"),
        "ignored": _l("ignored"),
        "rejected": _l("rejected"),
    },
    "lead_status": {
        "potential": _l("potential"),
        "active": _l("active"),
        "lost": _l("lost"),
    },
    "lead_status_title": {
        "potential": _l("Potential"),
        "active": _l("Active"),
        "lost": _l("Lost"),
    },
    "lead_source": {
        "manual": _l("manual"),
        "referral": _l("referral"),
    },
    "channel": {
        "referral": _l("Referral"),
        "search": _l("Search"),
        "social": _l("Social"),
        "email": _l("Email"),
        "offline": _l("Offline"),
        "other": _l("Other"),
    },
    "outbox_status": {
        "waiting": _l("waiting"),
        "stuck": _l("stuck"),
        "pending": _l("pending"),
        "dead": _l("dead"),
        "sent": _l("sent"),
        "all": _l("all"),
    },
    "delivery_status": {
        "pending": _l("pending"),
        "succeeded": _l("succeeded"),
        "failed": _l("failed"),
    },
    "saleor_state": {
        "waiting for staff": _l("waiting for staff"),
        "being issued": _l("being issued"),
        "failing, retried": _l("failing, retried"),
        "issued": _l("issued"),
        "used": _l("used"),
        "deactivated": _l("deactivated"),
    },
}

# Why a conversion paid nothing, or less (conversions.reason), fraud signals included.
_CONVERSION_REASONS = {
    "no_customer": _l("no customer"),
    "not_referred": _l("not referred"),
    "unknown_customer": _l("unknown customer"),
    "refunded": _l("refunded"),
    "referral_rejected": _l("referral rejected"),
    "awaiting_purchase": _l("awaiting purchase"),
    "held_for_review": _l("held for review"),
    "program_not_running": _l("program not running"),
    "program_pays_on_purchase": _l("program pays on purchase"),
    "currency_mismatch": _l("currency mismatch"),
    "below_minimum": _l("below minimum"),
    "already_rewarded": _l("already rewarded"),
    "existing_customer": _l("existing customer"),
    "refund_before_purchase": _l("refund before purchase"),
    "nothing_to_take_back": _l("nothing to take back"),
    "take_back_incomplete": _l("take back incomplete"),
    "partial_refund": _l("partial refund"),
    "rewards_stand": _l("rewards stand"),
    "referrer_deleted": _l("referrer deleted"),
    "program_cap_reached": _l("program cap reached"),
    "daily_cap_reached": _l("daily cap reached"),
    "monthly_cap_reached": _l("monthly cap reached"),
    "rejected_by_staff": _l("rejected by staff"),
    # the fraud checks' codes (referral/fraud.py), as this screen has always spelt them
    "same_person": _l("same person"),
    "self_referral": _l("self referral"),
    "same_device": _l("same device"),
    "same_mailbox": _l("same mailbox"),
    "same_ip": _l("same ip"),
    "same_network": _l("same network"),
    "ip_velocity": _l("ip velocity"),
    "code_velocity": _l("code velocity"),
    "cycle": _l("cycle"),
    "excluded_domain": _l("excluded domain"),
    "disposable_email": _l("disposable email"),
    "fast_purchase": _l("fast purchase"),
    "no line in an eligible category": _l("no line in an eligible category"),
    "no order lines to check categories": _l("no order lines to check categories"),
}
# rewards/eligibility.py writes "<filter>: <value>" (the value "none given" when missing).
_FILTER_REASON = re.compile(r"not an eligible (channel|country|category): (.*)")


def in_words(code: str | None, group: str) -> str:
    if code is None:
        return "—"
    words = WORDS[group].get(code)
    return str(words) if words is not None else code.replace("_", " ")


def conversion_reason(reason: str | None) -> str:
    """A conversion's stored reason in words: a code, a fraud signal or a program filter
    (in English as the screen always showed them: the code, underscores made spaces)."""
    if not reason:
        return ""
    if reason in _CONVERSION_REASONS:
        return str(_CONVERSION_REASONS[reason])
    matched = _FILTER_REASON.fullmatch(reason)
    if matched is None:
        return reason if " " in reason else reason.replace("_", " ")
    kind, value = matched.groups()
    if value == "none given":
        return _filter_missing(kind)
    return _filter_refused(kind, value)


def _filter_refused(kind: str, value: str) -> str:
    if kind == "channel":
        return _("not an eligible channel: %(value)s", value=value)
    if kind == "country":
        return _("not an eligible country: %(value)s", value=value)
    return _("not an eligible category: %(value)s", value=value)


def _filter_missing(kind: str) -> str:
    if kind == "channel":
        return _("not an eligible channel: none given")
    if kind == "country":
        return _("not an eligible country: none given")
    return _("not an eligible category: none given")


# The detail of a fraud signal is stored in English when the check runs (referral/fraud.py);
# shown again here in the reader's words, with the values it carries.
_SIGNAL_DETAILS = {
    "same_person": (None, _l("the code belongs to this account")),
    "same_device": (None, _l("signed up from the referrer's browser")),
    "same_mailbox": (None, _l("an alias of the referrer's email address")),
    "cycle": (None, _l("the referrer was invited by this person's network")),
    "same_ip": (None, _l("signed up from the referrer's IP address")),
    "excluded_domain": (re.compile(r"(\S+) is excluded by the program"), None),
    "disposable_email": (re.compile(r"(\S+) hands out throwaway addresses"), None),
    "same_network": (re.compile(r"signed up from the referrer's network (\S+)"), None),
    "ip_velocity": (re.compile(r"(\d+) signups from this IP with this code today"), None),
    "code_velocity": (re.compile(r"(\d+) signups with this code this hour"), None),
    "fast_purchase": (re.compile(r"purchase (\d+) s after a click on the link"), None),
}


def signal_detail(code: str, detail: str | None) -> str:
    """A fraud signal's stored detail in the reader's language (as stored if unknown)."""
    pattern, fixed = _SIGNAL_DETAILS.get(code, (None, None))
    if fixed is not None:
        return str(fixed)
    matched = pattern.fullmatch(detail or "") if pattern else None
    if matched is None:
        return detail or ""
    value = matched.group(1)
    if code == "excluded_domain":
        return _("%(domain)s is excluded by the program", domain=value)
    if code == "disposable_email":
        return _("%(domain)s hands out throwaway addresses", domain=value)
    if code == "same_network":
        return _("signed up from the referrer's network %(network)s", network=value)
    if code == "fast_purchase":
        return _("purchase %(seconds)s s after a click on the link", seconds=value)
    count = int(value)
    if code == "ip_velocity":
        return _n_ip_today(count)
    return _n_code_hour(count)


def _n_ip_today(count: int) -> str:
    return ngettext(
        # the check has always written "signups", even for one: English kept as it was
        "%(num)d signups from this IP with this code today",
        "%(num)d signups from this IP with this code today",
        count,
    )


def _n_code_hour(count: int) -> str:
    return ngettext(
        "%(num)d signups with this code this hour",
        "%(num)d signups with this code this hour",
        count,
    )
