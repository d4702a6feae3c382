"""The referral loop as JSON, for embedding the board and the participant portal elsewhere."""

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user, login_required

from core.pagination import parse_page
from core.templating import mask_email
from models import utcnow
from referral import leaderboard, services, tree

api_bp = Blueprint("api", __name__, url_prefix="/api/v1")


@api_bp.get("/leaderboard")
def get_leaderboard():
    period = leaderboard.parse_period(request.args.get("period"))
    page = parse_page(request.args.get("page"))
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
    page = parse_page(request.args.get("page"))
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


@api_bp.get("/me/tree")
@login_required
def get_my_tree():
    """The participant's referral tree, level by level, as the dashboard shows it:

        {"depth": 3, "per_page": 20, "total": 42,
         "levels": [{"level": 1, "count": 5,
                     "rewards": [{"currency": "USD", "kind": "credit", "amount": 3000,
                                  "formatted": "$30.00"}],
                     "page": 1, "pages": 1,
                     "members": [{"id": 7, "display_name": "Bob B.", "email": "b***@example.com",
                                  "joined_at": "2026-05-01T09:30:00+00:00", "invitees": 2}]},
                    ...]}

    `total` counts everyone in the tree, at every level. Every level from 1 to the default
    program's depth is listed, each with the first page of its members, newest first.
    `?level=<n>&page=<p>` answers the same shape with that level alone, at page p (past the
    end: the last page); an unknown level is 404. `rewards` are the participant's referrer
    entries for that level per currency and kind, in minor units, on hold included and
    refunds netted out. `invitees` is how many that member invited (null on the last level
    shown). Emails are masked.
    """
    asked = tree.TreeRequest.from_args({"level": request.args.get("level")})
    page = parse_page(request.args.get("page")) if asked.level else 1
    depth = tree.program_depth()
    per_page = current_app.config["DASHBOARD_PAGE_SIZE"]
    levels = tree.level_summary(current_user, depth)
    total = sum(level.count for level in levels)
    if asked.level is not None:
        levels = [level for level in levels if level.level == asked.level]
        if not levels:
            raise tree.UnknownLevel()
    return jsonify(
        depth=depth,
        per_page=per_page,
        total=total,
        levels=[_level_json(level, page, per_page, depth) for level in levels],
    )


def _level_json(level: tree.Level, page: int, per_page: int, depth: int) -> dict:
    members = tree.level_members(
        current_user, level.level, page, per_page, depth=depth, total=level.count
    )
    return {
        "level": level.level,
        "count": level.count,
        "rewards": [reward.as_json() for reward in level.rewards],
        "page": members.page,
        "pages": members.pages,
        "members": [_member_json(member, depth) for member in members.items],
    }


def _member_json(member: tree.Member, depth: int) -> dict:
    person = member.user
    return {
        "id": person.id,
        "display_name": person.public_name,
        "email": mask_email(person.email),
        "joined_at": person.created_at.isoformat(),
        "invitees": member.invitees if member.level < depth else None,
    }
