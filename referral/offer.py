"""What a program offers, in words.

Every sentence a participant reads about rewards (the landing, the signup page a link opens,
the dashboard, the share text and preview, the ledger) is made here from the program's
rules, so a changed rule changes every page at once. All the wording lives in this module,
ready to be wrapped for translation.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

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
    "credit": "Credit collects in your balance on the rewards page;"
    " once it is available you can ask for it to be paid out.",
    "cash": "Cash collects in your balance on the rewards page;"
    " once it is available you can ask for it to be paid out.",
    "coupon": "Each coupon has its own code on the rewards page: copy it and enter it at"
    " checkout. A code works once.",
    "gift_card": "Each gift card has its own code on the rewards page: copy it and enter it"
    " at checkout to pay with it.",
    "points": "Points collect in your balance on the rewards page and stay yours.",
}


def percent_text(basis_points: int) -> str:
    """1250 basis points -> "12.5%"."""
    return format(Decimal(basis_points).scaleb(-2).normalize(), "f") + "%"


def short_amount(amount: int, currency: str, kind: str | None = None) -> str:
    """ "$10" for $10.00, "$12.50" stays, "500 points": the headline's figures."""
    text = format_amount(amount, currency, kind)
    if kind != "points" and exponent(currency) and amount % 10 ** exponent(currency) == 0:
        text = re.sub(r"\.0+(?=\D|$)", "", text)
    return text


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10)
    return f"{number}{suffix or 'th'}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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
            share = percent_text(self.value)
            return {
                "credit": f"{share} of the purchase as credit",
                "cash": f"{share} of the purchase in cash",
                "coupon": f"a coupon worth {share} of the purchase",
                "gift_card": f"a gift card worth {share} of the purchase",
                "points": f"points worth {share} of the purchase",
            }[self.kind]
        amount = format_amount(self.value, self.currency, self.kind)
        return {
            "credit": f"{amount} credit",
            "cash": f"{amount} cash",
            "coupon": f"a {amount} coupon",
            "gift_card": f"a {amount} gift card",
            "points": amount,
        }[self.kind]

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

    def _of_minimum(self) -> str:
        return f" of {self.minimum} or more" if self.minimum else ""

    def _friend_condition(self, person: str) -> str:
        """When the friend's reward comes: `person` is "you" (told to the friend) or
        "they" (told to the referrer)."""
        your = "your" if person == "you" else "their"
        if self.pays_on_signup:
            return f"when {person} sign{'' if person == 'you' else 's'} up"
        if self.program.trigger_event == "first_purchase":
            return f"on {your} first purchase{self._of_minimum()}"
        return f"on every purchase{self._of_minimum()}"

    @property
    def _referrer_condition(self) -> str:
        if self.pays_on_signup:
            return "for each friend who signs up with your link"
        if self.program.trigger_event == "first_purchase":
            return f"when a friend you invite makes their first purchase{self._of_minimum()}"
        return f"each time a friend you invite makes a purchase{self._of_minimum()}"

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
            return f"Give {self.friend.short}, get {referrer}"
        if self.pays_on_signup:
            return f"Get {referrer} for each friend who joins"
        if self.program.trigger_event == "first_purchase":
            return f"Get {referrer} for each friend who buys"
        return f"Get {referrer} each time a friend buys"

    @property
    def referrer_sentence(self) -> str:
        return f"You get {self.referrer.phrase} {self._referrer_condition}."

    @property
    def own_link_sentence(self) -> str:
        """For a newcomer: what their own link will earn them."""
        return (
            f"Your own link comes with your account: you get {self.referrer.phrase}"
            f" {self._referrer_condition}."
        )

    @property
    def friend_sentence(self) -> str | None:
        """What the friend gets, told to the referrer."""
        if self.friend is None:
            return None
        return f"Your friend gets {self.friend.phrase} {self._friend_condition('they')}."

    @property
    def welcome(self) -> str | None:
        """What the friend gets, told to the friend: "Get $5.00 credit on your first …"."""
        if self.friend is None:
            return None
        return f"Get {self.friend.phrase} {self._friend_condition('you')}."

    def invitation(self, inviter: str) -> str:
        """The signup page a link opens: "Ann Z. invited you — get $5.00 credit on …"."""
        if self.friend is None:
            return f"{inviter} invited you to join."
        return f"{inviter} invited you — get {self.friend.phrase} {self._friend_condition('you')}."

    @property
    def hold_sentence(self) -> str:
        days = self.program.hold_days
        if not days:
            return "Rewards are yours as soon as they are earned."
        if self.pays_on_signup:
            return f"Rewards stay on hold for {_plural(days, 'day')}, then they are yours."
        return (
            f"Rewards stay on hold for {_plural(days, 'day')} in case the order is returned,"
            " then they are yours."
        )

    @property
    def milestone_sentence(self) -> str | None:
        program = self.program
        if not program.milestone_every:
            return None
        return (
            f"On top of that, every {_ordinal(program.milestone_every)} friend who qualifies"
            f" earns you a bonus of {self.milestone_bonus}."
        )

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
        text = f"{shares[0]}% of their reward"
        if len(shares) > 1:
            further = ", ".join(f"{share}%" for share in shares[1:])
            text += f", and {further} from the levels further down"
        return f"When friends you invited bring in friends of their own, you also get {text}."

    @property
    def limits_sentence(self) -> str | None:
        program = self.program
        parts = []
        if program.cap_per_day:
            parts.append(f"{_plural(program.cap_per_day, 'reward')} a day")
        if program.cap_per_month:
            parts.append(f"{_plural(program.cap_per_month, 'reward')} a month")
        sentence = f"You can earn up to {' and '.join(parts)}." if parts else ""
        if program.cap_total:
            sentence += (
                f" The program pays at most {_plural(program.cap_total, 'referral reward')} in all."
            )
        return sentence.strip() or None

    @property
    def expiry_sentence(self) -> str | None:
        days = self.program.reward_expiry_days
        if not days:
            return None
        return f"Use your rewards within {_plural(days, 'day')} of them becoming available."

    @property
    def ends_sentence(self) -> str | None:
        if self.program.ends_at is None:
            return None
        return f"The offer runs until {format_date(self.program.ends_at)}."

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
            return "Join me with my link:"
        return (
            f"Get {self.friend.phrase} {self._friend_condition('you')} when you join with my link:"
        )

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
            return "An invitation from me"
        return f"An invitation from me: {self.friend.short} for you"

    def share_words(self, running: bool) -> tuple[str, str]:
        """The share text and subject; while the program is paused, plain ones that promise
        nothing."""
        if not running:
            return "Join me with my link:", "An invitation from me"
        return self.share_text, self.share_subject

    @property
    def preview_title(self) -> str:
        return f"{program_text(self.program, 'name')}: {self.headline}"

    @property
    def preview_description(self) -> str:
        """The share preview's text on the pages a link lands on."""
        if self.friend is None:
            return (
                f"Join, share your link and get {self.referrer.phrase} {self._referrer_condition}."
            )
        return (
            f"Join through a friend's link and get {self.friend.phrase}"
            f" {self._friend_condition('you')}."
        )

    def invitation_title(self, inviter: str) -> str:
        if self.friend is None:
            return f"{inviter} invited you"
        return f"{inviter} invited you: {self.friend.short} for you"

    # --- the ledger --------------------------------------------------------------------------

    @property
    def empty_ledger(self) -> str:
        return f"No rewards yet. {self.referrer_sentence} It shows here as soon as it is earned."

    @property
    def usage_text(self) -> str:
        """How to use this program's rewards: its own text, or the default for its kinds."""
        return program_text(self.program, "usage_text") or self.default_usage_text

    @property
    def default_usage_text(self) -> str:
        kinds = [self.program.referrer_reward_kind]
        if self.friend is not None and self.friend.kind not in kinds:
            kinds.append(self.friend.kind)
        return " ".join(_USAGE_BY_KIND[kind] for kind in kinds)

    # --- a referral's next step ---------------------------------------------------------------

    def next_step(self, friend: str) -> str:
        """What a counted referral still waits for, told to the referrer."""
        if self.pays_on_signup:
            return f"Your reward for {friend} comes with their signup."
        if self.program.trigger_event == "first_purchase":
            purchase = f"their first purchase{self._of_minimum()}"
            return f"When {friend} makes {purchase}, you get {self.referrer.phrase}."
        return (
            f"Each time {friend} makes a purchase{self._of_minimum()},"
            f" you get {self.referrer.phrase}."
        )


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
        return (
            f"{self.done} of {self.every} friends toward your next bonus of {self.bonus}:"
            f" {_plural(self.left, 'more friend')} to go."
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
        return f"Join {program_text(self.offer.program, 'name')}"


def signup_invitation(raw_code: str | None, now: datetime) -> Invitation:
    code = services.find_active_code(raw_code, now) if raw_code else None
    program = code.program if code else services.default_program()
    inviter = code.owner.public_name if code else None
    return Invitation(Offer(program), inviter, program.is_running(now))
