"""What a program offers, in words.

Every sentence a participant reads about rewards (the landing, the signup page a link opens,
the dashboard, the share text and preview, the ledger) is made here from the program's
rules, so a changed rule changes every page at once. All the wording lives in this module,
one whole sentence per rule (never pieces glued together), so each language words it its own
way; a reward ("$5.00 credit") is the one phrase put into them, as what is got.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from flask_babel import format_decimal, ngettext, npgettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core import branding
from core.money import exponent, format_amount
from core.templating import format_date
from models import Program
from referral import services
from referral.program_texts import program_text

# What a program's share text may name; each is replaced by the program's current value.
SHARE_PLACEHOLDERS = ("friend_reward", "referrer_reward", "minimum", "program", "site")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

SHARE_TEXT_MAX = 280
USAGE_TEXT_MAX = 500

# How each kind of reward is used, when the program sets no text of its own.
_USAGE_BY_KIND = {
    "credit": _l(
        "Credit collects in your balance on the rewards page;"
        " once it is available you can ask for it to be paid out."
    ),
    "cash": _l(
        "Cash collects in your balance on the rewards page;"
        " once it is available you can ask for it to be paid out."
    ),
    "coupon": _l(
        "Each coupon has its own code on the rewards page: copy it and enter it at"
        " checkout. A code works once."
    ),
    "gift_card": _l(
        "Each gift card has its own code on the rewards page: copy it and enter it"
        " at checkout to pay with it."
    ),
    "points": _l("Points collect in your balance on the rewards page and stay yours."),
}

# A reward as the thing one gets ("You get %(reward)s …"): a fixed amount, or a share of
# the purchase.
_FIXED_PHRASES = {
    "credit": _l("%(amount)s credit"),
    "cash": _l("%(amount)s cash"),
    "coupon": _l("a %(amount)s coupon"),
    "gift_card": _l("a %(amount)s gift card"),
}
_PERCENT_PHRASES = {
    "credit": _l("%(share)s of the purchase as credit"),
    "cash": _l("%(share)s of the purchase in cash"),
    "coupon": _l("a coupon worth %(share)s of the purchase"),
    "gift_card": _l("a gift card worth %(share)s of the purchase"),
    "points": _l("points worth %(share)s of the purchase"),
}

# The sentences that say when a reward comes, one per way a program pays: on a friend's
# signup, their first purchase or every purchase, each with a minimum purchase or without.
# Filled with %(reward)s, %(minimum)s and, where named, %(name)s.
_SIGNUP, _FIRST, _FIRST_MIN, _EVERY, _EVERY_MIN = (
    "signup",
    "first",
    "first_min",
    "every",
    "every_min",
)
_REFERRER_SENTENCES = {
    _SIGNUP: _l("You get %(reward)s for each friend who signs up with your link."),
    _FIRST: _l("You get %(reward)s when a friend you invite makes their first purchase."),
    _FIRST_MIN: _l(
        "You get %(reward)s when a friend you invite makes their first purchase"
        " of %(minimum)s or more."
    ),
    _EVERY: _l("You get %(reward)s each time a friend you invite makes a purchase."),
    _EVERY_MIN: _l(
        "You get %(reward)s each time a friend you invite makes a purchase of %(minimum)s or more."
    ),
}
_OWN_LINK_SENTENCES = {
    _SIGNUP: _l(
        "Your own link comes with your account: you get %(reward)s for each friend who"
        " signs up with your link."
    ),
    _FIRST: _l(
        "Your own link comes with your account: you get %(reward)s when a friend you invite"
        " makes their first purchase."
    ),
    _FIRST_MIN: _l(
        "Your own link comes with your account: you get %(reward)s when a friend you invite"
        " makes their first purchase of %(minimum)s or more."
    ),
    _EVERY: _l(
        "Your own link comes with your account: you get %(reward)s each time a friend you"
        " invite makes a purchase."
    ),
    _EVERY_MIN: _l(
        "Your own link comes with your account: you get %(reward)s each time a friend you"
        " invite makes a purchase of %(minimum)s or more."
    ),
}
_JOIN_AND_SHARE_SENTENCES = {
    _SIGNUP: _l(
        "Join, share your link and get %(reward)s for each friend who signs up with your link."
    ),
    _FIRST: _l(
        "Join, share your link and get %(reward)s when a friend you invite makes their first"
        " purchase."
    ),
    _FIRST_MIN: _l(
        "Join, share your link and get %(reward)s when a friend you invite makes their first"
        " purchase of %(minimum)s or more."
    ),
    _EVERY: _l(
        "Join, share your link and get %(reward)s each time a friend you invite makes a purchase."
    ),
    _EVERY_MIN: _l(
        "Join, share your link and get %(reward)s each time a friend you invite makes a"
        " purchase of %(minimum)s or more."
    ),
}
# What the friend gets, told to the referrer.
_FRIEND_SENTENCES = {
    _SIGNUP: _l("Your friend gets %(reward)s when they signs up."),
    _FIRST: _l("Your friend gets %(reward)s on their first purchase."),
    _FIRST_MIN: _l("Your friend gets %(reward)s on their first purchase of %(minimum)s or more."),
    _EVERY: _l("Your friend gets %(reward)s on every purchase."),
    _EVERY_MIN: _l("Your friend gets %(reward)s on every purchase of %(minimum)s or more."),
}
# What the friend gets, told to the friend.
_WELCOME_SENTENCES = {
    _SIGNUP: _l("Get %(reward)s when you sign up."),
    _FIRST: _l("Get %(reward)s on your first purchase."),
    _FIRST_MIN: _l("Get %(reward)s on your first purchase of %(minimum)s or more."),
    _EVERY: _l("Get %(reward)s on every purchase."),
    _EVERY_MIN: _l("Get %(reward)s on every purchase of %(minimum)s or more."),
}
_INVITATION_SENTENCES = {
    _SIGNUP: _l("%(name)s invited you — get %(reward)s when you sign up."),
    _FIRST: _l("%(name)s invited you — get %(reward)s on your first purchase."),
    _FIRST_MIN: _l(
        "%(name)s invited you — get %(reward)s on your first purchase of %(minimum)s or more."
    ),
    _EVERY: _l("%(name)s invited you — get %(reward)s on every purchase."),
    _EVERY_MIN: _l(
        "%(name)s invited you — get %(reward)s on every purchase of %(minimum)s or more."
    ),
}
_FRIEND_SHARE_TEXTS = {
    _SIGNUP: _l("Get %(reward)s when you sign up when you join with my link:"),
    _FIRST: _l("Get %(reward)s on your first purchase when you join with my link:"),
    _FIRST_MIN: _l(
        "Get %(reward)s on your first purchase of %(minimum)s or more when you join with my link:"
    ),
    _EVERY: _l("Get %(reward)s on every purchase when you join with my link:"),
    _EVERY_MIN: _l(
        "Get %(reward)s on every purchase of %(minimum)s or more when you join with my link:"
    ),
}
_FRIEND_PREVIEWS = {
    _SIGNUP: _l("Join through a friend's link and get %(reward)s when you sign up."),
    _FIRST: _l("Join through a friend's link and get %(reward)s on your first purchase."),
    _FIRST_MIN: _l(
        "Join through a friend's link and get %(reward)s on your first purchase"
        " of %(minimum)s or more."
    ),
    _EVERY: _l("Join through a friend's link and get %(reward)s on every purchase."),
    _EVERY_MIN: _l(
        "Join through a friend's link and get %(reward)s on every purchase of %(minimum)s or more."
    ),
}
# What a counted referral still waits for, told to the referrer.
_NEXT_STEPS = {
    _SIGNUP: _l("Your reward for %(name)s comes with their signup."),
    _FIRST: _l("When %(name)s makes their first purchase, you get %(reward)s."),
    _FIRST_MIN: _l(
        "When %(name)s makes their first purchase of %(minimum)s or more, you get %(reward)s."
    ),
    _EVERY: _l("Each time %(name)s makes a purchase, you get %(reward)s."),
    _EVERY_MIN: _l(
        "Each time %(name)s makes a purchase of %(minimum)s or more, you get %(reward)s."
    ),
}
# "every 5th friend": English ordinals take one of four endings.
_MILESTONE_SENTENCES = {
    "st": _l(
        "On top of that, every %(num)dst friend who qualifies earns you a bonus of %(bonus)s."
    ),
    "nd": _l(
        "On top of that, every %(num)dnd friend who qualifies earns you a bonus of %(bonus)s."
    ),
    "rd": _l(
        "On top of that, every %(num)drd friend who qualifies earns you a bonus of %(bonus)s."
    ),
    "th": _l(
        "On top of that, every %(num)dth friend who qualifies earns you a bonus of %(bonus)s."
    ),
}


def percent_text(basis_points: int) -> str:
    """1250 basis points -> "12.5%" (a decimal comma where the language writes one)."""
    return format_decimal(Decimal(basis_points).scaleb(-2).normalize()) + "%"


def short_amount(amount: int, currency: str, kind: str | None = None) -> str:
    """ "$10" for $10.00, "$12.50" stays, "500 points": the headline's figures."""
    text = format_amount(amount, currency, kind)
    if kind != "points" and exponent(currency) and amount % 10 ** exponent(currency) == 0:
        text = re.sub(r"\.0+(?=\D|$)", "", text)
    return text


def _ordinal_ending(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


@dataclass(frozen=True)
class RewardTerms:
    """One side's reward: kind, fixed amount or percent, in the program's currency."""

    kind: str
    basis: str
    value: int
    currency: str

    @property
    def phrase(self) -> str:
        """ "$5.00 credit", "a $5.00 coupon", "10% of the purchase as credit"."""
        if self.basis == "percent":
            return str(_PERCENT_PHRASES[self.kind]) % {"share": percent_text(self.value)}
        amount = format_amount(self.value, self.currency, self.kind)
        if self.kind == "points":
            return amount  # "500 points" says it all
        return str(_FIXED_PHRASES[self.kind]) % {"amount": amount}

    @property
    def short(self) -> str:
        if self.basis == "percent":
            return percent_text(self.value)
        return short_amount(self.value, self.currency, self.kind)


@dataclass(frozen=True)
class Offer:
    """The sentences of one program's offer (see the module's docstring)."""

    program: Program

    # --- the pieces ---------------------------------------------------------------------

    @property
    def referrer(self) -> RewardTerms:
        program = self.program
        return RewardTerms(
            program.referrer_reward_kind,
            program.referrer_reward_basis,
            program.referrer_reward_value,
            program.currency,
        )

    @property
    def friend(self) -> RewardTerms | None:
        program = self.program
        if not program.friend_reward_kind:
            return None
        return RewardTerms(
            program.friend_reward_kind,
            program.friend_reward_basis,
            program.friend_reward_value,
            program.currency,
        )

    @property
    def minimum(self) -> str:
        """ "$20.00", or "" when any purchase counts."""
        amount = self.program.min_purchase_amount
        return format_amount(amount, self.program.currency) if amount else ""

    @property
    def pays_on_signup(self) -> bool:
        return self.program.trigger_event == "signup"

    @property
    def _condition(self) -> str:
        """Which of each table's sentences fits the program: when it pays, with a minimum
        purchase or without."""
        if self.pays_on_signup:
            return _SIGNUP
        first = self.program.trigger_event == "first_purchase"
        if self.minimum:
            return _FIRST_MIN if first else _EVERY_MIN
        return _FIRST if first else _EVERY

    def _say(self, sentences: dict, reward: "RewardTerms", **values) -> str:
        """The sentence of `sentences` that fits the program, about `reward`."""
        text = str(sentences[self._condition])
        return text % {"reward": reward.phrase, "minimum": self.minimum, **values}

    # --- headline and the main sentences -------------------------------------------------

    @property
    def headline(self) -> str:
        """The program's own headline in the reader's language, else the one of the rules."""
        return program_text(self.program, "headline") or self.default_headline

    @property
    def default_headline(self) -> str:
        """ "Give $5, get $10"."""
        referrer = self.referrer.short
        if self.friend is not None:
            return _(
                "Give %(friend)s, get %(referrer)s", friend=self.friend.short, referrer=referrer
            )
        if self.pays_on_signup:
            return _("Get %(reward)s for each friend who joins", reward=referrer)
        if self.program.trigger_event == "first_purchase":
            return _("Get %(reward)s for each friend who buys", reward=referrer)
        return _("Get %(reward)s each time a friend buys", reward=referrer)

    @property
    def referrer_sentence(self) -> str:
        return self._say(_REFERRER_SENTENCES, self.referrer)

    @property
    def own_link_sentence(self) -> str:
        """For a newcomer: what their own link will earn them."""
        return self._say(_OWN_LINK_SENTENCES, self.referrer)

    @property
    def friend_sentence(self) -> str | None:
        """What the friend gets, told to the referrer."""
        if self.friend is None:
            return None
        return self._say(_FRIEND_SENTENCES, self.friend)

    @property
    def welcome(self) -> str | None:
        """What the friend gets, told to the friend: "Get $5.00 credit on your first …"."""
        if self.friend is None:
            return None
        return self._say(_WELCOME_SENTENCES, self.friend)

    def invitation(self, inviter: str) -> str:
        """The signup page a link opens: "Ann Z. invited you — get $5.00 credit on …"."""
        if self.friend is None:
            return _("%(name)s invited you to join.", name=inviter)
        return self._say(_INVITATION_SENTENCES, self.friend, name=inviter)

    @property
    def hold_sentence(self) -> str:
        days = self.program.hold_days
        if not days:
            return _("Rewards are yours as soon as they are earned.")
        if self.pays_on_signup:
            return ngettext(
                "Rewards stay on hold for %(num)d day, then they are yours.",
                "Rewards stay on hold for %(num)d days, then they are yours.",
                days,
            )
        return ngettext(
            "Rewards stay on hold for %(num)d day in case the order is returned, then they are"
            " yours.",
            "Rewards stay on hold for %(num)d days in case the order is returned, then they are"
            " yours.",
            days,
        )

    @property
    def milestone_sentence(self) -> str | None:
        every = self.program.milestone_every
        if not every:
            return None
        sentence = _MILESTONE_SENTENCES[_ordinal_ending(every)]
        return str(sentence) % {"num": every, "bonus": self.milestone_bonus}

    @property
    def milestone_bonus(self) -> str:
        program = self.program
        return format_amount(
            program.milestone_amount or 0, program.currency, program.referrer_reward_kind
        )

    @property
    def network_sentence(self) -> str | None:
        shares = list(self.program.level_shares or [])[: max(self.program.max_depth - 1, 0)]
        while shares and not shares[-1]:
            shares.pop()
        if not shares:
            return None
        first = f"{shares[0]}%"
        if len(shares) == 1:
            return _(
                "When friends you invited bring in friends of their own, you also get"
                " %(share)s of their reward.",
                share=first,
            )
        return _(
            "When friends you invited bring in friends of their own, you also get %(share)s of"
            " their reward, and %(further)s from the levels further down.",
            share=first,
            further=", ".join(f"{share}%" for share in shares[1:]),
        )

    @property
    def limits_sentence(self) -> str | None:
        program = self.program
        # "3 rewards" as it reads after "up to" (its own case in some languages).
        per_day = per_month = None
        if program.cap_per_day:
            per_day = npgettext("up to", "%(num)d reward", "%(num)d rewards", program.cap_per_day)
        if program.cap_per_month:
            count = program.cap_per_month
            per_month = npgettext("up to", "%(num)d reward", "%(num)d rewards", count)
        sentences = []
        if per_day and per_month:
            sentences.append(
                _(
                    "You can earn up to %(per_day)s a day and %(per_month)s a month.",
                    per_day=per_day,
                    per_month=per_month,
                )
            )
        elif per_day:
            sentences.append(_("You can earn up to %(per_day)s a day.", per_day=per_day))
        elif per_month:
            sentences.append(_("You can earn up to %(per_month)s a month.", per_month=per_month))
        if program.cap_total:
            sentences.append(
                ngettext(
                    "The program pays at most %(num)d referral reward in all.",
                    "The program pays at most %(num)d referral rewards in all.",
                    program.cap_total,
                )
            )
        return " ".join(sentences) or None

    @property
    def expiry_sentence(self) -> str | None:
        days = self.program.reward_expiry_days
        if not days:
            return None
        return ngettext(
            "Use your rewards within %(num)d day of them becoming available.",
            "Use your rewards within %(num)d days of them becoming available.",
            days,
        )

    @property
    def ends_sentence(self) -> str | None:
        if self.program.ends_at is None:
            return None
        return _("The offer runs until %(date)s.", date=format_date(self.program.ends_at))

    @property
    def fine_print(self) -> list[str]:
        """Everything else that decides what one earns, one sentence each."""
        sentences = (
            self.milestone_sentence,
            self.network_sentence,
            self.hold_sentence,
            self.expiry_sentence,
            self.limits_sentence,
            self.ends_sentence,
        )
        return [sentence for sentence in sentences if sentence]

    # --- sharing ---------------------------------------------------------------------------

    @property
    def default_share_text(self) -> str:
        if self.friend is None:
            return _("Join me with my link:")
        return self._say(_FRIEND_SHARE_TEXTS, self.friend)

    @property
    def share_text(self) -> str:
        """The program's own text in the reader's language with its placeholders filled, or
        the default."""
        own = program_text(self.program, "share_text") or ""
        if not own:
            return self.default_share_text
        values = {
            "friend_reward": self.friend.phrase if self.friend else "",
            "referrer_reward": self.referrer.phrase,
            "minimum": self.minimum or format_amount(0, self.program.currency),
            "program": program_text(self.program, "name"),
        }
        if "{site}" in own:  # the installation's brand (core/branding.py), read only if named
            values["site"] = branding.current().name
        return _PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), own)

    @property
    def share_subject(self) -> str:
        if self.friend is None:
            return _("An invitation from me")
        return _("An invitation from me: %(reward)s for you", reward=self.friend.short)

    def share_words(self, running: bool) -> tuple[str, str]:
        """The share text and subject; while the program is paused, plain ones that promise
        nothing."""
        if not running:
            return _("Join me with my link:"), _("An invitation from me")
        return self.share_text, self.share_subject

    @property
    def preview_title(self) -> str:
        return f"{program_text(self.program, 'name')}: {self.headline}"

    @property
    def preview_description(self) -> str:
        """The share preview's text on the pages a link lands on."""
        if self.friend is None:
            return self._say(_JOIN_AND_SHARE_SENTENCES, self.referrer)
        return self._say(_FRIEND_PREVIEWS, self.friend)

    def invitation_title(self, inviter: str) -> str:
        if self.friend is None:
            return _("%(name)s invited you", name=inviter)
        return _("%(name)s invited you: %(reward)s for you", name=inviter, reward=self.friend.short)

    # --- the ledger --------------------------------------------------------------------------

    @property
    def empty_ledger(self) -> str:
        return _(
            "No rewards yet. %(sentence)s It shows here as soon as it is earned.",
            sentence=self.referrer_sentence,
        )

    @property
    def usage_text(self) -> str:
        """How to use this program's rewards: its own text, or the default for its kinds."""
        return program_text(self.program, "usage_text") or self.default_usage_text

    @property
    def default_usage_text(self) -> str:
        kinds = [self.program.referrer_reward_kind]
        if self.friend is not None and self.friend.kind not in kinds:
            kinds.append(self.friend.kind)
        return " ".join(str(_USAGE_BY_KIND[kind]) for kind in kinds)

    # --- a referral's next step ---------------------------------------------------------------

    def next_step(self, friend: str) -> str:
        """What a counted referral still waits for, told to the referrer."""
        return self._say(_NEXT_STEPS, self.referrer, name=friend)


def offer_of(program: Program) -> Offer:
    return Offer(program)


def unknown_placeholders(text: str | None) -> list[str]:
    """The `{names}` in a share text that are not SHARE_PLACEHOLDERS, in order."""
    found = _PLACEHOLDER.findall(text or "")
    return [name for name in dict.fromkeys(found) if name not in SHARE_PLACEHOLDERS]


@dataclass(frozen=True)
class MilestoneProgress:
    every: int
    done: int  # qualified friends toward the next bonus
    bonus: str

    @property
    def left(self) -> int:
        return self.every - self.done

    @property
    def sentence(self) -> str:
        return ngettext(
            "%(done)d of %(every)d friends toward your next bonus of %(bonus)s: %(num)d more"
            " friend to go.",
            "%(done)d of %(every)d friends toward your next bonus of %(bonus)s: %(num)d more"
            " friends to go.",
            self.left,
            done=self.done,
            every=self.every,
            bonus=self.bonus,
        )


def milestone_progress(program: Program, qualified: int) -> MilestoneProgress | None:
    """Where `qualified` friends stand on the way to the next milestone bonus."""
    if not program.milestone_every:
        return None
    every = program.milestone_every
    return MilestoneProgress(every, qualified % every, Offer(program).milestone_bonus)


@dataclass(frozen=True)
class Invitation:
    """What the signup page tells a newcomer: who invited them (when a usable code came
    with them) and the offer of that code's program, else the default program's."""

    offer: Offer
    inviter: str | None
    running: bool

    @property
    def sentence(self) -> str | None:
        if not self.running:
            return None
        if self.inviter:
            return self.offer.invitation(self.inviter)
        return self.offer.welcome

    @property
    def preview_title(self) -> str:
        if self.inviter and self.running:
            return self.offer.invitation_title(self.inviter)
        return _("Join %(program)s", program=program_text(self.offer.program, "name"))


def signup_invitation(raw_code: str | None, now: datetime) -> Invitation:
    code = services.find_active_code(raw_code, now) if raw_code else None
    program = code.program if code else services.default_program()
    inviter = code.owner.public_name if code else None
    return Invitation(Offer(program), inviter, program.is_running(now))
