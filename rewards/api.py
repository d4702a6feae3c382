"""The participant's rewards as JSON, for embedding (`/api/v1/me/rewards`)."""

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user, login_required

from core.pagination import parse_page
from models import Reward
from rewards import ledger

api_bp = Blueprint("rewards_api", __name__, url_prefix="/api/v1")


def _iso(value):
    return value.isoformat() if value else None


def reward_json(reward: Reward) -> dict:
    return {
        "id": reward.id,
        "kind": reward.kind,
        "role": reward.role,
        "level": reward.level,
        "amount": reward.amount,
        "currency": reward.currency,
        "status": reward.status,
        "reason": reward.reason,
        "available_at": _iso(reward.available_at),
        "expires_at": _iso(reward.expires_at),
        "created_at": _iso(reward.created_at),
    }


@api_bp.get("/me/rewards")
@login_required
def get_my_rewards():
    page = parse_page(request.args.get("page"))
    entries = ledger.ledger_page(current_user, page, current_app.config["DASHBOARD_PAGE_SIZE"])
    return jsonify(
        page=entries.page,
        pages=entries.pages,
        rewards=[reward_json(reward) for reward in entries.items],
        balances=[balance.as_json() for balance in ledger.balances(current_user)],
    )
