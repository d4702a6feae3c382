"""The referral loop as JSON, for embedding the board and the participant portal elsewhere.
The portal tells what the dashboard tells, in the same words: the offer (referral/offer.py),
who invited the participant, and each referral's timeline (referral/timeline.py)."""

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user, login_required

from core.pagination import parse_page
from core.templating import mask_email
from extensions import db
from models import Program, User, utcnow
from referral import leaderboard, offer, services, timeline, tree
from referral.program_texts import program_text

api_bp = Blueprint("api", __name__, url_prefix="/api/v1")
# The board's answer is public data, meant to be shown on other sites.
PUBLIC_HEADERS = {"Access-Control-Allow-Origin": "*"}


@api_bp.get("/leaderboard")  # no rate limit: referral.routes._limits_settled_by_the_view
def get_leaderboard():
    period = leaderboard.parse_period(request.args.get("period"))
    page = parse_page(request.args.get("page"))
    now = utcnow()

    def render():
        board = leaderboard.board_page(period, page, now)
        return jsonify(
            period=board.period,
            page=board.page,
            pages=board.pages,
            total=board.total,
            rows=[row.as_json() for row in board.rows],
        )

    # The same bytes for everyone, whoever asks: cached whole.
    answer = leaderboard.cached_answer(leaderboard.JSON_ANSWER, period, page, now, render)
    response = leaderboard.public_response(answer)
    response.headers.update(PUBLIC_HEADERS)
    return response


@api_bp.get("/me")
@login_required
def get_me():
    program = services.default_program()
    code = services.active_code(current_user, program)
    link = services.referral_link(code.code) if code else None
    stats = services.participant_stats(current_user)
    return jsonify(
        id=current_user.id,
        name=current_user.name,
        display_name=current_user.public_name,
        email=current_user.email,
        code=code.code if code else None,
        link=link,
        invited_by=_inviter_name(current_user),
        stats={
            "clicks": stats.clicks,
            "signups": stats.signups,
            "qualified": stats.qualified,
            "in_review": stats.in_review,
            "not_counted": stats.not_counted,
        },
        offer=_offer_json(program, link),
    )


def _inviter_name(user: User) -> str | None:
    """Who invited the participant, by the name the public sees (never an email)."""
    if user.referred_by_id is None:
        return None
    inviter = db.session.get(User, user.referred_by_id)
    return inviter.public_name if inviter else None


def _offer_json(program: Program, link: str | None) -> dict:
    """The dashboard's offer card and share message: while the program is paused they
    promise nothing."""
    told = offer.offer_of(program)
    running = program.is_running(utcnow())
    share_message = f"{told.share_words(running)[0]} {link}" if link else None
    if not running:
        return {
            "program": program_text(program, "name"),
            "running": False,
            "headline": None,
            "referrer": None,
            "friend": None,
            "milestone": None,
            "fine_print": [],
            "share_message": share_message,
        }
    progress = offer.milestone_progress(program, services.qualified_count(current_user, program))
    return {
        "program": program_text(program, "name"),
        "running": True,
        "headline": told.headline,
        "referrer": told.referrer_sentence,
        "friend": told.friend_sentence,
        "milestone": _milestone_json(progress) if progress else None,
        # The milestone's progress already says what its sentence would.
        "fine_print": [
            sentence
            for sentence in told.fine_print
            if not progress or sentence != told.milestone_sentence
        ],
        "share_message": share_message,
    }


def _milestone_json(progress: offer.MilestoneProgress) -> dict:
    return {
        "every": progress.every,
        "done": progress.done,
        "left": progress.left,
        "bonus": progress.bonus,
        "sentence": progress.sentence,
    }


@api_bp.get("/me/referrals")
@login_required
def get_my_referrals():
    page = parse_page(request.args.get("page"))
    invited = services.invited_people(current_user, page, current_app.config["DASHBOARD_PAGE_SIZE"])
    stories = timeline.timelines(
        current_user, invited.items, current_app.config["REVIEW_DAYS"], utcnow()
    )
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
                "timeline": [_step_json(step) for step in stories[referral.id]],
            }
            for referral in invited.items
        ],
    )


def _step_json(step: timeline.Step) -> dict:
    return {
        "state": step.state,
        "title": step.title,
        "detail": step.detail,
        "at": step.when.isoformat() if step.when else None,
    }


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
