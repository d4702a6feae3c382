from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required

from core.database import writes_on_get
from core.forms import submit
from core.i18n import visitor_language
from core.pagination import parse_page
from core.security import carries_no_session
from extensions import csrf, db, limiter
from models import Program, User, utcnow
from referral import (
    attribution,
    claims,
    clicks,
    invitations,
    leaderboard,
    link_limits,
    links,
    offer,
    services,
    sharing,
    timeline,
    tree,
)
from referral.api import api_bp
from referral.embed import embed_bp
from referral.forms import ClaimForm

bp = Blueprint("referral", __name__)
bp.register_blueprint(api_bp)
bp.register_blueprint(embed_bp)
# Invitations by email keep their views in referral/invitations.py.
bp.add_url_rule("/referral/invite", view_func=invitations.send_invitations, methods=["GET", "POST"])
bp.add_url_rule(
    "/invitations/stop/<token>",
    endpoint="stop_invitations",
    view_func=csrf.exempt(invitations.stop_invitations),
    methods=["GET", "POST"],
)
bp.add_app_template_global(invitations.dashboard_form, "invite_form_for_dashboard")


def _link_limits() -> str:
    return current_app.config["REFERRAL_LINK_LIMITS"]


# Flask-Limiter works out every view's limits before each request, even for a view with
# none, and that took a sixth of a cached board answer's time. These views settle their
# limits themselves: the boards have none (answered from the cache, a check would cost more
# than the answer), and the link's are counted by the click's own Redis script whenever it
# can (else Flask-Limiter counts them as usual).
_WITHOUT_LIMITS = frozenset({"referral.show_leaderboard", "referral.api.get_leaderboard"})


@limiter.request_filter
def _limits_settled_by_the_view() -> bool:
    endpoint = request.endpoint
    if endpoint == "referral.follow_link":
        return link_limits.counted_with_the_click(_link_limits())
    return endpoint in _WITHOUT_LIMITS


def _visit() -> clicks.Visit:
    # The visitor's cookie is kept once the click is (_attribute).
    visitor_id = attribution.visitor_id(remember=False)
    return clicks.Visit.of_request(request, visitor_id, get_remote_address())


def _capture_click(
    raw_code: str, limits: link_limits.LinkLimits | None = None
) -> links.Link | None:
    """Record a visit through a referral link; returns its link, or None for a bad one (or
    the owner trying out their own link, which is not a visit)."""
    owner = current_user.id if current_user.is_authenticated else None
    return clicks.record_click(raw_code, _visit, owner_excluded=owner, limits=limits)


def _attribute(response, link: links.Link):
    """Set the attribution cookie, unless first-touch keeps an earlier, still valid one (and
    the visitor's, if new: the click was stored)."""
    attribution.remember_visitor()
    if link.attribution_model == "first":
        earlier = attribution.read_cookie()
        if earlier and services.find_active_code(earlier[0]) is not None:
            return response
    return attribution.set_attribution_cookie(response, link.code, link.attribution_window_days)


def _without_rate_limit_headers() -> None:
    """Leave the X-RateLimit-* headers off this answer: reading the window back for them
    costs two Redis round trips per click, as many as the limits themselves. A 429 still
    carries them (and Retry-After)."""
    limiter.context.view_rate_limit = None


@bp.get("/r/<path:code>")
@writes_on_get  # the click
@limiter.limit(_link_limits)  # unless the click counts them: _limits_settled_by_the_view
def follow_link(code: str):
    found = _capture_click(code, link_limits.requested())
    if found is None:
        return redirect(url_for("referral.landing"))
    _without_rate_limit_headers()
    return _attribute(redirect(links.target_of(found, url_for("auth.signup"))), found)


@bp.get("/")
@writes_on_get  # the click of a ?ref= link
@limiter.limit(_link_limits, exempt_when=lambda: "ref" not in request.args)
def landing():
    found = _capture_click(request.args["ref"]) if "ref" in request.args else None
    # A friend's link shows its own program's offer; anyone else sees the default's.
    program = db.session.get(Program, found.program_id) if found else services.default_program()
    top = leaderboard.board_page("all", 1, utcnow()).rows[:5]
    response = current_app.make_response(
        render_template(
            "referral/landing.html",
            program=program,
            offer=offer.offer_of(program),
            running=program.is_running(utcnow()),
            top=top,
            ref=found.code if found else None,
            inviter=db.session.get(User, found.owner_id).public_name if found else None,
        )
    )
    return _attribute(response, found) if found else response


@bp.get("/referral/dashboard")
@login_required
def dashboard():
    program = services.default_program()
    code = services.active_code(current_user, program)
    link = services.referral_link(code.code) if code else None
    page = parse_page(request.args.get("page"))
    program_offer = offer.offer_of(program)
    running = program.is_running(utcnow())
    share_text, share_subject = program_offer.share_words(running)
    invited = services.invited_people(current_user, page, current_app.config["DASHBOARD_PAGE_SIZE"])
    return render_template(
        "referral/dashboard.html",
        code=code,
        link=link,
        qr=sharing.qr_svg(link) if link else None,
        offer=program_offer,
        running=running,
        milestone=offer.milestone_progress(
            program, services.qualified_count(current_user, program)
        ),
        share_message=f"{share_text} {link}" if link else None,
        shares=sharing.share_links(link, share_text, share_subject) if link else [],
        stats=services.participant_stats(current_user),
        invited=invited,
        timelines=timeline.timelines(
            current_user, invited.items, current_app.config["REVIEW_DAYS"], utcnow()
        ),
        rank=leaderboard.rank_of(current_user, "all", utcnow()),
        claim_deadline=claims.open_claim_deadline(current_user, program, utcnow()),
        claim_form=ClaimForm(),
        tree=tree.tree(current_user, program.max_depth, current_app.config["DASHBOARD_PAGE_SIZE"]),
        tree_links=_OWN_TREE,
    )


_OWN_TREE = tree.TreeLinks("referral.show_tree", {})


@bp.get("/referral/tree")
@login_required
def show_tree():
    """The participant's tree: `?level=<n>` one level, `?node=<id>` what one person below
    them brought in, a page at a time; `partial=1` the fragment static/js/tree.js loads."""
    asked = tree.TreeRequest.from_args(request.args)
    depth = tree.program_depth()
    shown = tree.answer(current_user, asked, depth, current_app.config["DASHBOARD_PAGE_SIZE"])
    template = "referral/_tree_answer.html" if asked.partial else "referral/tree.html"
    return render_template(
        template, tree_links=_OWN_TREE, depth=depth, partial=asked.partial, **shown
    )


@bp.get("/referral/qr.svg")
@login_required
def download_qr():
    code = services.active_code(current_user, services.default_program())
    if code is None:
        return redirect(url_for("referral.dashboard"))
    svg = sharing.qr_svg(services.referral_link(code.code))
    return Response(
        svg,
        mimetype="image/svg+xml",
        headers={"Content-Disposition": f'attachment; filename="inviteloop-{code.code}.svg"'},
    )


@bp.get("/referral/leaderboard")  # no rate limit: _limits_settled_by_the_view
def show_leaderboard():
    period = leaderboard.parse_period(request.args.get("period"))
    page = parse_page(request.args.get("page"))
    now = utcnow()
    if _sees_the_public_page():
        # The same bytes for every visitor reading this language: cached whole.
        kind = leaderboard.page_answer(visitor_language(), request.script_root)
        answer = leaderboard.cached_answer(
            kind, period, page, now, lambda: _leaderboard_page(period, page, now, None)
        )
        return leaderboard.public_response(answer)
    mine = None
    if current_user.is_authenticated:
        mine = leaderboard.rank_of(current_user, period, now)
    response = _leaderboard_page(period, page, now, mine)
    response.cache_control.private = True  # one's own place and row, and the navbar's name
    return response


def _sees_the_public_page() -> bool:
    """Nobody signed in and no message waiting: the page everyone gets."""
    if carries_no_session():
        return True  # known without loading a session or a user
    return not current_user.is_authenticated and "_flashes" not in session


def _leaderboard_page(period: str, page: int, now, mine):
    board = leaderboard.board_page(period, page, now)
    return current_app.make_response(
        render_template(
            "referral/leaderboard.html", board=board, mine=mine, periods=leaderboard.PERIODS
        )
    )


def _claim_page(form: ClaimForm, status: int = 200):
    deadline = claims.open_claim_deadline(current_user, services.default_program(), utcnow())
    return render_template("referral/claim.html", form=form, deadline=deadline), status


@bp.get("/referral/claim")
@login_required
def claim_form():
    return _claim_page(ClaimForm())


@bp.post("/referral/claim")
@login_required
@limiter.limit(lambda: current_app.config["CLAIM_LIMITS"])
def claim():
    form = ClaimForm()
    submitted = submit(
        form, lambda: claims.claim_inviter(current_user, form.referral_code.data, utcnow())
    )
    if not submitted.done:
        return _claim_page(form, submitted.status)
    referral = submitted.result
    inviter = referral.referrer.public_name
    if referral.status == "rejected":
        flash(_("We couldn't accept this code for your account."), "warning")
    elif referral.status == "review":
        flash(
            _("Thanks! %(name)s will show as your inviter once we've checked it.", name=inviter),
            "info",
        )
    else:
        flash(_("%(name)s is now your inviter. Thanks for telling us!", name=inviter), "success")
    return redirect(url_for("referral.dashboard"))
