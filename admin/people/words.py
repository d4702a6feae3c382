"""The stored codes a participant's page shows (statuses, sources, reward roles, kinds and
reasons), as staff read them in their language. The codes stay as stored in the data, the
CSV files and the API; a code without words here is shown as it is."""

from flask_babel import lazy_gettext as _l

from admin.referrals.forms import SOURCE_WORDS, STATUS_WORDS
from rewards.words import REWARD_ROLE_WORDS, REWARD_STATUS_WORDS

# In English the page showed the codes themselves, so the English words are the codes.
REWARD_KINDS = {
    "credit": _l("credit"),
    "points": _l("points"),
    "coupon": _l("coupon"),
    "gift_card": _l("gift_card"),
    "cash": _l("cash"),
}
# Reasons the system writes on an entry; anything else is a person's own note, kept as typed.
REWARD_REASONS = {
    "partial_refund": _l("partial refund"),
    "refunded": _l("refunded"),
    "expired": _l("expired"),
}


def referral_status(code: str) -> str:
    return str(STATUS_WORDS[code][0]) if code in STATUS_WORDS else code


def referral_source(code: str) -> str:
    return str(SOURCE_WORDS.get(code, code))


def reward_status(code: str) -> str:
    return str(REWARD_STATUS_WORDS.get(code, code))


def reward_role(code: str) -> str:
    return str(REWARD_ROLE_WORDS.get(code, code))


def reward_kind(code: str) -> str:
    return str(REWARD_KINDS.get(code, code))


def reward_reason(text: str | None) -> str:
    if not text:
        return ""
    return str(REWARD_REASONS.get(text, text))
