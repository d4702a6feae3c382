"""What InviteLoop asks of Saleor to pay a reward: find or create its gift card or voucher,
and deactivate an unused card. Each step is safe to repeat: what an earlier attempt made is
found (a gift card by the reward id in its metadata, a voucher by its code) before anything
is created. Every failure is SaleorCallFailed, with a message for staff.

Saleor's `giftCards(filter: {metadata: ...})` searches public metadata, so the reward id is
written to both the public and the private metadata of a card (it is not a secret).
"""

from dataclasses import dataclass
from decimal import Decimal

from core import money
from models import Reward
from rewards import saleor_client
from rewards.saleor_client import SaleorCallFailed
from rewards.saleor_install import Connection
from rewards.saleor_queries import (
    CREATE_GIFT_CARD,
    CREATE_VOUCHER,
    DEACTIVATE_GIFT_CARD,
    FIND_GIFT_CARD,
    FIND_VOUCHER,
    LIST_VOUCHER_IN_CHANNEL,
    READ_GIFT_CARD,
    READ_VOUCHER,
    REWARD_METADATA_KEY,
    WRITE_METADATA,
)

GIFT_CARD_TAG = "referral"


@dataclass(frozen=True)
class Issued:
    """The Saleor object that pays a reward, and the code the participant enters."""

    saleor_id: str
    code: str


def gift_card(connection: Connection, reward: Reward) -> Issued:
    return _existing_card(connection, reward.id) or _new_card(connection, reward)


def voucher(connection: Connection, reward: Reward, channel_id: str) -> Issued:
    """A single-use voucher for the reward's amount with InviteLoop's code, listed in the
    channel (again on every attempt: a voucher whose listing failed gets it now)."""
    issued = _existing_voucher(connection, reward.coupon_code) or _new_voucher(connection, reward)
    listing = {"addChannels": [{"channelId": channel_id, "discountValue": _amount(reward)}]}
    data = call(connection, LIST_VOUCHER_IN_CHANNEL, {"id": issued.saleor_id, "input": listing})
    _raise_refusal(data.get("voucherChannelListingUpdate"), "Saleor refused the voucher's price")
    return issued


def deactivate_if_unused(connection: Connection, card_id: str) -> bool:
    """Deactivate the card unless someone spent from it; True when it is inactive now (or
    gone from Saleor), False when it was used and stays active."""
    card = call(connection, READ_GIFT_CARD, {"id": card_id}).get("giftCard")
    if not isinstance(card, dict) or not card.get("isActive"):
        return True
    if not _unused(card):
        return False
    data = call(connection, DEACTIVATE_GIFT_CARD, {"id": card_id})
    _raise_refusal(data.get("giftCardDeactivate"), "Saleor refused to deactivate the gift card")
    return True


def is_used(connection: Connection, kind: str, saleor_id: str) -> bool:
    """Whether the shop's customers have spent from the gift card or used the voucher."""
    if kind == "coupon":
        found = call(connection, READ_VOUCHER, {"id": saleor_id}).get("voucher")
        return isinstance(found, dict) and (found.get("used") or 0) > 0
    card = call(connection, READ_GIFT_CARD, {"id": saleor_id}).get("giftCard")
    return isinstance(card, dict) and not _unused(card)


def write_metadata(connection: Connection, object_id: str, key: str, value: str) -> None:
    """Set one public metadata key on a Saleor object (idempotent: a retry writes the same)."""
    variables = {"id": object_id, "input": [{"key": key, "value": value}]}
    result = call(connection, WRITE_METADATA, variables).get("updateMetadata")
    _raise_refusal(result, "Saleor refused the metadata")


# --- gift cards ---------------------------------------------------------------------------


def _existing_card(connection: Connection, reward_id: int) -> Issued | None:
    variables = {"filter": {"metadata": [{"key": REWARD_METADATA_KEY, "value": str(reward_id)}]}}
    edges = (call(connection, FIND_GIFT_CARD, variables).get("giftCards") or {}).get("edges")
    cards = [edge["node"] for edge in edges or [] if isinstance(edge, dict) and edge.get("node")]
    return _issued(cards[0], "gift card") if cards else None


def _new_card(connection: Connection, reward: Reward) -> Issued:
    tag = [{"key": REWARD_METADATA_KEY, "value": str(reward.id)}]
    variables = {
        "input": {
            "balance": {"amount": _amount(reward), "currency": reward.currency},
            "userEmail": reward.beneficiary.email,
            "addTags": [GIFT_CARD_TAG],
            "note": f"InviteLoop referral reward #{reward.id}",
            "isActive": True,
            "metadata": tag,
            "privateMetadata": tag,
        }
    }
    result = call(connection, CREATE_GIFT_CARD, variables).get("giftCardCreate")
    _raise_refusal(result, "Saleor refused the gift card")
    return _issued(result.get("giftCard"), "gift card")


def _unused(card: dict) -> bool:
    initial = (card.get("initialBalance") or {}).get("amount")
    current = (card.get("currentBalance") or {}).get("amount")
    return card.get("lastUsedOn") is None and initial is not None and current == initial


# --- vouchers -----------------------------------------------------------------------------


def _existing_voucher(connection: Connection, code: str) -> Issued | None:
    edges = call(connection, FIND_VOUCHER, {"filter": {"search": code}}).get("vouchers") or {}
    nodes = [edge.get("node") for edge in edges.get("edges") or [] if isinstance(edge, dict)]
    same = [node for node in nodes if isinstance(node, dict) and node.get("code") == code]
    return _issued(same[0], "voucher") if same else None


def _new_voucher(connection: Connection, reward: Reward) -> Issued:
    variables = {
        "input": {
            "name": f"InviteLoop referral reward #{reward.id}",
            "type": "ENTIRE_ORDER",
            "addCodes": [reward.coupon_code],
            "discountValueType": "FIXED",
            "singleUse": True,
            "usageLimit": 1,
        }
    }
    result = call(connection, CREATE_VOUCHER, variables).get("voucherCreate")
    _raise_refusal(result, "Saleor refused the voucher")
    return _issued(result.get("voucher"), "voucher")


# --- shared -------------------------------------------------------------------------------


def call(connection: Connection, document: str, variables: dict) -> dict:
    """One GraphQL operation with the app token; its `data` (errors raise SaleorCallFailed)."""
    return saleor_client.execute(connection.api_url, connection.token, document, variables)


def _amount(reward: Reward) -> float:
    # Exact for every amount a 32-bit count of minor units can hold (at most 15 digits).
    return float(Decimal(reward.amount).scaleb(-money.exponent(reward.currency)))


def _raise_refusal(result, what: str) -> None:
    """A mutation's own `errors` list, when not empty, as SaleorCallFailed."""
    errors = result.get("errors") if isinstance(result, dict) else None
    if result is None or errors:
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        reason = first.get("message") or first.get("code") or "no answer"
        raise SaleorCallFailed(f"{what}: {reason}")


def _issued(node, what: str) -> Issued:
    if (
        not isinstance(node, dict)
        or not isinstance(node.get("id"), str)
        or not isinstance(node.get("code"), str)
        or not 0 < len(node["code"]) <= 40
    ):
        raise SaleorCallFailed(f"Saleor's answer did not contain the {what}.")
    return Issued(node["id"], node["code"])
