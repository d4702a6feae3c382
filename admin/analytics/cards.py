"""The analytics home's headline cards: each figure of the range against the previous
period's, as a change that reads in words (up, down, no change) and is judged by what is
better for the business (more revenue is good, more cost is not)."""

from dataclasses import dataclass

from flask_babel import gettext as _


@dataclass(frozen=True)
class Change:
    """One value against the previous period's: up, down or the same."""

    now: float | None
    before: float | None

    @property
    def difference(self) -> float | None:
        if self.now is None or self.before is None:
            return None
        return self.now - self.before

    @property
    def direction(self) -> str:
        """ "up", "down", "same", or "unknown" when either period has no figure."""
        difference = self.difference
        if difference is None:
            return "unknown"
        return "up" if difference > 0 else "down" if difference < 0 else "same"

    @property
    def percent(self) -> float | None:
        """The change as a share of the previous value (None from nothing or no figure)."""
        if self.difference is None or not self.before:
            return None
        return self.difference / abs(self.before)


@dataclass(frozen=True)
class Card:
    ident: str
    label: str
    kind: str  # "count", "money" or "ratio"
    changes: tuple[tuple[str | None, Change], ...]  # (currency or None, change)
    lower_is_better: bool = False

    def judged(self, change: Change) -> str:
        """ "good", "bad" or "neutral": the colour that backs up the words."""
        if change.direction not in ("up", "down"):
            return "neutral"
        return "good" if (change.direction == "up") != self.lower_is_better else "bad"


def _count(ident: str, label: str, now: int, before: int) -> Card:
    return Card(ident, label, "count", ((None, Change(now, before)),))


def _money(ident: str, label: str, now: dict, before: dict, lower_is_better=False) -> Card:
    """One line per currency of either period; a currency missing from a period is 0 there."""
    currencies = sorted(set(now) | set(before))
    changes = tuple((c, Change(now.get(c, 0), before.get(c, 0))) for c in currencies)
    return Card(ident, label, "money", changes, lower_is_better)


def cards(now, before) -> list[Card]:
    """The cards of two `services.Headline`s: the range's and the previous period's."""
    per_customer_now, per_customer_before = now.cost_per_acquired, before.cost_per_acquired
    return [
        _count("clicks", _("Clicks"), now.funnel.clicks, before.funnel.clicks),
        _count("signups", _("Referred signups"), now.funnel.signups, before.funnel.signups),
        _count("qualified", _("Qualified"), now.funnel.qualified, before.funnel.qualified),
        _money("revenue", _("Revenue"), now.revenue, before.revenue),
        _money("reward-cost", _("Reward cost"), now.reward_cost, before.reward_cost, True),
        Card(
            "cost-per-customer",
            _("Cost per acquired customer"),
            "money",
            tuple(
                (c, Change(per_customer_now.get(c), per_customer_before.get(c)))
                for c in sorted(set(per_customer_now) | set(per_customer_before))
            ),
            lower_is_better=True,
        ),
        Card("k-factor", _("K-factor"), "ratio", ((None, Change(now.k_factor, before.k_factor)),)),
    ]
