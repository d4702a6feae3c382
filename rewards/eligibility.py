"""A program's eligibility filters (docs/guarantees.md #40): the Saleor channels, the
countries and the product categories its purchases must match, beside the minimum amount.

A filter left empty limits nothing. A filter that is set refuses an order that does not say
what it is checked against (no channel, no address, no lines): an unknown order is not
known to be eligible. The country is the shipping address's, else the billing address's:
the goods go where they are shipped, and an order with nothing to ship has only a billing
address. Each refusal names the filter and the value that failed, e.g. "not an eligible
country: DE", in the conversion's reason (the ledger and the purchases screen show it).
"""

import re
from dataclasses import dataclass

import phonenumbers
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from models import Conversion, Program

REASON_LENGTH = 40  # conversions.reason
COUNTRY = re.compile(r"^[A-Z]{2}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# ISO 3166 alpha-2 codes: every region with a phone plan, and the territories without one
# that Saleor's CountryCode still lists (less AC and TA, which ISO does not assign).
COUNTRY_CODES = frozenset(
    (phonenumbers.SUPPORTED_REGIONS - {"AC", "TA"}) | {"AQ", "BV", "GS", "HM", "PN", "TF", "UM"}
)
# The program's rule fields that hold filters, with what one value looks like.
FILTER_FIELDS = {
    "eligible_channels": _l("“%(value)s” is not a channel slug such as default-channel."),
    "eligible_countries": _l("“%(value)s” is not a two-letter ISO 3166 country code such as DE."),
    "eligible_categories": _l("“%(value)s” is not a category slug such as summer-shoes."),
}
MAX_VALUES = 100
NO_ELIGIBLE_LINE = "no line in an eligible category"


@dataclass(frozen=True)
class OrderLine:
    """One line of an order: its product's category slug (None: uncategorised) and its
    gross total in minor units."""

    category: str | None
    amount: int


def refusal(program: Program, conversion: Conversion, lines: tuple[OrderLine, ...] | None):
    """Why the program's filters exclude this purchase, in words; None when they do not.
    Sets `conversion.eligible_amount` when the program counts only some categories."""
    channels, countries = program.eligible_channels, program.eligible_countries
    if channels and conversion.channel not in channels:
        return reason("not an eligible channel", conversion.channel)
    if countries and conversion.country not in countries:
        return reason("not an eligible country", conversion.country)
    categories = program.eligible_categories
    if not categories:
        return None
    if lines is None:
        return "no order lines to check categories"
    eligible = sum(line.amount for line in lines if line.category in categories)
    conversion.eligible_amount = min(eligible, conversion.amount or 0)
    if conversion.eligible_amount == 0:
        return NO_ELIGIBLE_LINE
    return None


def filter_problem(rules: dict) -> tuple[str, str] | None:
    """(field, message) for the first filter value a program cannot store; None if all fit."""
    for field, refusal in FILTER_FIELDS.items():
        values = rules.get(field) or []
        if not isinstance(values, list) or len(values) > MAX_VALUES:
            return field, _("List at most %(most)s values, separated by commas.", most=MAX_VALUES)
        for value in values:
            if not _valid(field, value):
                return field, str(refusal) % {"value": value}
    return None


def _valid(field: str, value) -> bool:
    if not isinstance(value, str):
        return False
    if field == "eligible_countries":
        return value in COUNTRY_CODES
    return SLUG.match(value) is not None


def qualifying_amount(conversion: Conversion) -> int | None:
    """The amount the minimum and percent rewards count: the eligible lines, or the order."""
    if conversion.eligible_amount is not None:
        return conversion.eligible_amount
    return conversion.amount


def reason(words: str, value: str | None) -> str:
    text = f"{words}: {value}" if value else f"{words}: none given"
    return text[:REASON_LENGTH]
