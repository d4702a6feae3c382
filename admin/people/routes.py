"""Staff panel — Participants, staff users and roles."""

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from admin import listing
from admin.people import roles, services, words
from admin.people.forms import ConfirmForm, IssueCodeForm, ReactivateForm, RoleForm, UserRoleForm
from admin.policy import STAFF_ROLES, require, role_name
from auth import account_data
from core.forms import submit
from core.pagination import parse_page
from extensions import db
from models import Program, User, utcnow
from referral import tree

bp = Blueprint("people", __name__)


# --- participants ----------------------------------------------------------------------------


@bp.get("/participants")
@require("participants.view")
def list_participants():
    filters = listing.kept_filters("q", "status")
    participants = listing.paginate(services.participants_query(request.args))
    return render_template(
        "admin/people/participants.html",
        participants=participants,
        filters=filters,
        statuses=services.ACCOUNT_STATUSES,
        status_titles=services.ACCOUNT_STATUS_TITLES,
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
            "codes": services.active_codes(user),
            "active": user.active,
            "url": url_for(".show_participant", user_id=user.id),
        }
        for user in services.suggestions(request.args.get("q", ""))
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
        lambda: roles.set_user_role(user_id, form.role.data),
        lambda _result: _("The role is now %(role)s.", role=role_name(form.role.data)),
    )


@bp.post("/participants/<int:user_id>/deactivate")
@require("participants.manage")
def deactivate_participant(user_id: int):
    return _act(
        user_id,
        "deactivate",
        ConfirmForm(prefix="deactivate"),
        lambda: services.set_participant_active(user_id, False, current_user),
        lambda _result: _(
            "The account is deactivated: it can no longer sign in and its links stop."
        ),
    )


@bp.post("/participants/<int:user_id>/reactivate")
@require("participants.manage")
def reactivate_participant(user_id: int):
    return _act(
        user_id,
        "reactivate",
        ReactivateForm(prefix="reactivate"),
        lambda: services.set_participant_active(user_id, True, current_user),
        lambda _result: _("The account is active again."),
    )


@bp.post("/participants/<int:user_id>/delete")
@require("participants.manage")
def delete_participant(user_id: int):
    return _act(
        user_id,
        "delete",
        ConfirmForm(prefix="delete"),
        lambda: services.delete_participant(user_id, current_user),
        lambda _result: _(
            "The account is deleted: personal data removed, counts and balances kept."
        ),
    )


@bp.get("/participants/<int:user_id>/data")
@require("participants.view")
def download_participant_data(user_id: int):
    """What the person downloads from their profile, for a request made to the team."""
    user = db.get_or_404(User, user_id)
    now = utcnow()
    body = account_data.to_json(account_data.export(user, now))
    db.session.rollback()
    filename = f"inviteloop-data-{user.id}-{now.date().isoformat()}.json"
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/participants/<int:user_id>/codes/<int:code_id>/disable")
@require("participants.manage")
def disable_participant_code(user_id: int, code_id: int):
    return _act(
        user_id,
        f"disable-{code_id}",
        ConfirmForm(prefix=f"code{code_id}"),
        lambda: services.disable_code(user_id, code_id),
        lambda code: _("Code %(code)s is disabled.", code=code.code),
    )


@bp.post("/participants/<int:user_id>/codes")
@require("participants.manage")
def issue_participant_code(user_id: int):
    form = IssueCodeForm(_programs())
    return _act(
        user_id,
        "issue",
        form,
        lambda: services.issue_new_code(user_id, form.program_id.data),
        lambda code: _("New code %(code)s issued.", code=code.code),
    )


def _act(user_id: int, name: str, form, action, success):
    """Run the one service call in one transaction and flash `success(its result)`; or show
    the page again with the message next to the form that failed (nothing changed)."""
    submission = submit(form, action)
    if not submission.done:
        return _participant_page(user_id, {name: form}, submission.status)
    flash(success(submission.result), "success")
    return redirect(url_for(".show_participant", user_id=user_id))


def _programs() -> list[Program]:
    return list(
        db.session.scalars(select(Program).order_by(Program.is_default.desc(), Program.name))
    )


def _participant_page(user_id: int, submitted: dict | None = None, status: int = 200):
    user = db.get_or_404(User, user_id)
    view = services.participant_view(
        user,
        page=parse_page(request.args.get("page")),
        ledger_page=parse_page(request.args.get("ledger_page")),
        per_page=listing.page_size(),
    )
    forms = {
        "role": RoleForm(formdata=None, role=user.role),
        "deactivate": ConfirmForm(formdata=None, prefix="deactivate"),
        "reactivate": ReactivateForm(formdata=None, prefix="reactivate"),
        "delete": ConfirmForm(formdata=None, prefix="delete"),
        "issue": IssueCodeForm(_programs(), formdata=None),
        **{
            f"disable-{code.id}": ConfirmForm(formdata=None, prefix=f"code{code.id}")
            for code in view.codes
        },
        **(submitted or {}),
    }
    return render_template(
        "admin/people/participant.html",
        view=view,
        forms=forms,
        tree_links=_tree_links(user),
        words=words,
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
    submission = submit(form, lambda: roles.set_role(form.email.data, form.role.data))
    if not submission.done:
        return _users_page(form, submission.status)
    user, before = submission.result
    if before == user.role:
        flash(
            _(
                "%(email)s already was %(role)s; nothing changed.",
                email=user.email,
                role=role_name(user.role),
            ),
            "info",
        )
    else:
        flash(
            _(
                "%(email)s: %(before)s → %(after)s.",
                email=user.email,
                before=role_name(before),
                after=role_name(user.role),
            ),
            "success",
        )
    return redirect(url_for(".list_users", **listing.kept_filters("role", "q")))


def _users_page(form: UserRoleForm, status: int = 200):
    users = listing.paginate(services.users_query(request.args))
    return render_template(
        "admin/people/users.html",
        users=users,
        form=form,
        filters=listing.kept_filters("role", "q"),
        roles=STAFF_ROLES,
    ), status
