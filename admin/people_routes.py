"""Staff panel — Participants, staff users and roles."""

from flask import (
    Blueprint,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from admin import exports, listing, people, services
from admin.people_forms import ConfirmForm, IssueCodeForm, ReactivateForm, RoleForm, UserRoleForm
from admin.policy import STAFF_ROLES, require
from core.errors import DomainError
from core.forms import show_domain_error
from core.pagination import parse_page
from extensions import db
from models import Program, User
from referral import tree

bp = Blueprint("people", __name__)


def _active_codes(user: User) -> str:
    return " ".join(code.code for code in user.codes if code.status == "active")


exports.register(
    "participants",
    "participants.view",
    [
        ("id", lambda user: user.id),
        ("name", lambda user: user.name),
        ("email", lambda user: user.email),
        ("phone", lambda user: user.phone),
        ("role", lambda user: user.role),
        ("active", lambda user: user.active),
        ("active codes", _active_codes),
        ("referrals", lambda user: user.referral_count),
        ("joined", lambda user: user.created_at),
    ],
    people.participants_query,
)
exports.register(
    "users",
    "users.manage",
    [
        ("id", lambda user: user.id),
        ("name", lambda user: user.name),
        ("email", lambda user: user.email),
        ("role", lambda user: user.role),
        ("active", lambda user: user.active),
        ("joined", lambda user: user.created_at),
    ],
    people.users_query,
)


# --- participants ----------------------------------------------------------------------------


@bp.get("/participants")
@require("participants.view")
def list_participants():
    filters = listing.kept_filters("q", "status")
    participants = listing.paginate(people.participants_query(request.args))
    return render_template(
        "admin/people/participants.html",
        participants=participants,
        filters=filters,
        statuses=people.ACCOUNT_STATUSES,
    )


@bp.get("/participants/suggest")
@require("participants.view")
def suggest_participants():
    """The search box's autocomplete: up to ten matches as JSON."""
    results = [
        {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "codes": _active_codes(user),
            "active": user.active,
            "url": url_for(".show_participant", user_id=user.id),
        }
        for user in people.suggestions(request.args.get("q", ""))
    ]
    return jsonify(results=results)


@bp.get("/participants/<int:user_id>")
@require("participants.view")
def show_participant(user_id: int):
    return _participant_page(user_id)


@bp.post("/participants/<int:user_id>/role")
@require("users.manage")
def change_participant_role(user_id: int):
    form = RoleForm()
    return _act(
        user_id,
        "role",
        form,
        lambda: services.set_user_role(user_id, form.role.data),
        lambda: f"The role is now {form.role.data}.",
    )


@bp.post("/participants/<int:user_id>/deactivate")
@require("participants.manage")
def deactivate_participant(user_id: int):
    return _act(
        user_id,
        "deactivate",
        ConfirmForm(prefix="deactivate"),
        lambda: people.set_participant_active(user_id, False, current_user),
        lambda: "The account is deactivated: it can no longer sign in and its links stop.",
    )


@bp.post("/participants/<int:user_id>/reactivate")
@require("participants.manage")
def reactivate_participant(user_id: int):
    return _act(
        user_id,
        "reactivate",
        ReactivateForm(prefix="reactivate"),
        lambda: people.set_participant_active(user_id, True, current_user),
        lambda: "The account is active again.",
    )


@bp.post("/participants/<int:user_id>/codes/<int:code_id>/disable")
@require("participants.manage")
def disable_participant_code(user_id: int, code_id: int):
    disabled = []
    return _act(
        user_id,
        f"disable-{code_id}",
        ConfirmForm(prefix=f"code{code_id}"),
        lambda: disabled.append(people.disable_code(user_id, code_id)),
        lambda: f"Code {disabled[0].code} is disabled.",
    )


@bp.post("/participants/<int:user_id>/codes")
@require("participants.manage")
def issue_participant_code(user_id: int):
    form = IssueCodeForm(_programs())
    issued = []
    return _act(
        user_id,
        "issue",
        form,
        lambda: issued.append(people.issue_new_code(user_id, form.program_id.data)),
        lambda: f"New code {issued[0].code} issued.",
    )


def _act(user_id: int, name: str, form, action, success):
    """Validate, run the one service call, commit; or show the page again with the message
    next to the form that failed (nothing changed)."""
    if not form.validate_on_submit():
        return _participant_page(user_id, {name: form}, 400)
    try:
        action()
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        status = show_domain_error(form, error)
        return _participant_page(user_id, {name: form}, status)
    flash(success(), "success")
    return redirect(url_for(".show_participant", user_id=user_id))


def _programs() -> list[Program]:
    return list(
        db.session.scalars(select(Program).order_by(Program.is_default.desc(), Program.name))
    )


def _participant_page(user_id: int, submitted: dict | None = None, status: int = 200):
    user = db.get_or_404(User, user_id)
    view = people.participant_view(
        user,
        page=parse_page(request.args.get("page")),
        ledger_page=parse_page(request.args.get("ledger_page")),
        per_page=listing.page_size(),
    )
    forms = {
        "role": RoleForm(formdata=None, role=user.role),
        "deactivate": ConfirmForm(formdata=None, prefix="deactivate"),
        "reactivate": ReactivateForm(formdata=None, prefix="reactivate"),
        "issue": IssueCodeForm(_programs(), formdata=None),
        **{
            f"disable-{code.id}": ConfirmForm(formdata=None, prefix=f"code{code.id}")
            for code in view.codes
        },
        **(submitted or {}),
    }
    return render_template(
        "admin/people/participant.html", view=view, forms=forms, tree_links=_tree_links(user)
    ), status


def _tree_links(user: User) -> tree.TreeLinks:
    return tree.TreeLinks("admin.people.show_participant_tree", {"user_id": user.id}, staff=True)


@bp.get("/participants/<int:user_id>/tree")
@require("participants.view")
def show_participant_tree(user_id: int):
    """Their tree as their dashboard has it, with names and emails in full: a level or one
    person's invitees a page at a time; `partial=1` the fragment static/js/tree.js loads."""
    user = db.get_or_404(User, user_id)
    asked = tree.TreeRequest.from_args(request.args)
    depth = tree.program_depth()
    shown = tree.answer(user, asked, depth, listing.page_size())
    template = "referral/_tree_answer.html" if asked.partial else "admin/people/tree.html"
    return render_template(
        template,
        user=user,
        tree_links=_tree_links(user),
        depth=depth,
        partial=asked.partial,
        **shown,
    )


# --- staff users and roles -------------------------------------------------------------------


@bp.get("/users")
@require("users.manage")
def list_users():
    return _users_page(UserRoleForm(formdata=None))


@bp.post("/users/role")
@require("users.manage")
def set_user_role():
    form = UserRoleForm()
    if not form.validate_on_submit():
        return _users_page(form, 400)
    try:
        user, before = services.set_role(form.email.data, form.role.data)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _users_page(form, show_domain_error(form, error))
    if before == user.role:
        flash(f"{user.email} already was {user.role}; nothing changed.", "info")
    else:
        flash(f"{user.email}: {before} → {user.role}.", "success")
    return redirect(url_for(".list_users", **listing.kept_filters("role", "q")))


def _users_page(form: UserRoleForm, status: int = 200):
    users = listing.paginate(people.users_query(request.args))
    return render_template(
        "admin/people/users.html",
        users=users,
        form=form,
        filters=listing.kept_filters("role", "q"),
        roles=STAFF_ROLES,
    ), status
