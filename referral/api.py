"""The referral loop as JSON, for embedding the board and the participant portal elsewhere."""

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user, login_required

from core.templating import mask_email
from models import utcnow
from referral import leaderboard, services

api_bp = Blueprint("api", __name__, url_prefix="/api/v1")


@api_bp.get("/leaderboard")
def get_leaderboard():
    period = leaderboard.parse_period(request.args.get("period"))
    page = leaderboard.parse_page(request.args.get("page"))
    board = leaderboard.board_page(period, page, utcnow())
    response = jsonify(
        period=board.period,
        page=board.page,
        pages=board.pages,
        total=board.total,
        rows=[row.as_json() for row in board.rows],
    )
    # Public data, meant to be shown on other sites.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@api_bp.get("/me")
@login_required
def get_me():
    code = services.active_code(current_user, services.default_program())
    stats = services.participant_stats(current_user)
    return jsonify(
        id=current_user.id,
        name=current_user.name,
        display_name=current_user.public_name,
        email=current_user.email,
        code=code.code if code else None,
        link=services.referral_link(code.code) if code else None,
        stats={"clicks": stats.clicks, "signups": stats.signups, "qualified": stats.qualified},
    )


@api_bp.get("/me/referrals")
@login_required
def get_my_referrals():
    page = leaderboard.parse_page(request.args.get("page"))
    invited = services.invited_people(current_user, page, current_app.config["DASHBOARD_PAGE_SIZE"])
    return jsonify(
        page=invited.page,
        pages=invited.pages,
        total=invited.total,
        referrals=[
            {
                "name": referral.referred.name,
                "display_name": referral.referred.public_name,
                "email": mask_email(referral.referred.email),
                "joined_at": referral.created_at.isoformat(),
                "status": referral.status,
                "source": referral.source,
            }
            for referral in invited.items
        ],
    )
