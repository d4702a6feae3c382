"""A reward's stored codes in the reader's words: one map, shared by the refusals of rewards/
and the staff screens that show a reward. The codes stay English in the data."""

from flask_babel import lazy_gettext as _l

REWARD_STATUS_WORDS = {
    "review": _l("review"),
    "pending": _l("pending"),
    "approved": _l("approved"),
    "paid": _l("paid"),
    "redeemed": _l("redeemed"),
    "expired": _l("expired"),
    "cancelled": _l("cancelled"),
    "rejected": _l("rejected"),
}
REWARD_ROLE_WORDS = {
    "referrer": _l("referrer"),
    "referee": _l("referee"),
    "bonus": _l("bonus"),
}
