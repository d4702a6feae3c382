"""Staff panel — Referral programs: create, edit, activate, preview."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, not_, select

from admin import exports, listing, programs_preview
from admin.people_forms import ConfirmForm
from admin.policy import require
from admin.programs_forms import EditProgramForm, NewProgramForm, ProgramForm
from core.errors import DomainError
from core.forms import show_domain_error
from extensions import db
from models import Campaign, Program, utcnow
from rewards import programs

bp = Blueprint("programs", __name__)
PROGRAM_STATUSES = ("active", "inactive")


def programs_query(args):
    """The programs list's filters (`q` in the name or short name, `status`)."""
    query = select(Program)
    text = (args.get("q") or "").strip().lower()[:100]
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            func.lower(Program.name).like(pattern, escape="\\")
            | Program.slug.like(pattern, escape="\\")
        )
    if args.get("status") == "active":
        query = query.where(Program.active)
    elif args.get("status") == "inactive":
        query = query.where(not_(Program.active))
    return query.order_by(Program.is_default.desc(), Program.name, Program.id)


exports.register(
    "programs",
    "programs.manage",
    [
        ("id", lambda program: program.id),
        ("slug", lambda program: program.slug),
        ("name", lambda program: program.name),
        ("default", lambda program: program.is_default),
        ("active", lambda program: program.active),
        ("campaign id", lambda program: program.campaign_id),
        ("trigger", lambda program: program.trigger_event),
        ("currency", lambda program: program.currency),
        ("minimum purchase (minor units)", lambda program: program.min_purchase_amount),
        ("referrer reward kind", lambda program: program.referrer_reward_kind),
        ("referrer reward basis", lambda program: program.referrer_reward_basis),
        ("referrer reward value", lambda program: program.referrer_reward_value),
        ("friend reward kind", lambda program: program.friend_reward_kind),
        ("friend reward basis", lambda program: program.friend_reward_basis),
        ("friend reward value", lambda program: program.friend_reward_value),
        ("hold days", lambda program: program.hold_days),
        ("starts", lambda program: program.starts_at),
        ("ends", lambda program: program.ends_at),
        ("created", lambda program: program.created_at),
    ],
    programs_query,
)


def _referral_campaigns() -> list[Campaign]:
    return list(
        db.session.scalars(
            select(Campaign).where(Campaign.channel == "referral").order_by(Campaign.name)
        )
    )


@bp.get("/programs")
@require("programs.manage")
def list_programs():
    page = listing.paginate(programs_query(request.args))
    campaigns = dict(db.session.execute(select(Campaign.id, Campaign.name)).all())
    return render_template(
        "admin/programs/list.html",
        programs=page,
        campaigns=campaigns,
        filters=listing.kept_filters("q", "status"),
        statuses=PROGRAM_STATUSES,
    )


@bp.route("/programs/new", methods=["GET", "POST"])
@require("programs.manage")
def create_program():
    currency = current_app.config["DEFAULT_CURRENCY"]
    if request.method == "GET":
        draft = ProgramForm.data_of(programs.draft_program(currency))
        form = NewProgramForm(_referral_campaigns(), formdata=None, data=draft)
        return render_template("admin/programs/form.html", form=form, program=None)
    form = NewProgramForm(_referral_campaigns())
    if not form.validate_on_submit():
        return render_template("admin/programs/form.html", form=form, program=None), 400
    try:
        values = form.rule_values()
        program = programs.create_program(form.slug.data.strip(), values, values["currency"])
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        status = show_domain_error(form, error)
        return render_template("admin/programs/form.html", form=form, program=None), status
    flash(
        f"Program “{program.name}” created and active."
        " Make it the default to use it for signups, or issue its codes to participants.",
        "success",
    )
    return redirect(url_for(".edit_program", program_id=program.id))


@bp.route("/programs/<int:program_id>", methods=["GET", "POST"])
@require("programs.manage")
def edit_program(program_id: int):
    program = db.get_or_404(Program, program_id)
    if request.method == "GET":
        data = ProgramForm.data_of(program)
        return _edit_page(program, EditProgramForm(_referral_campaigns(), formdata=None, data=data))
    form = EditProgramForm(_referral_campaigns())
    if not form.validate_on_submit():
        return _edit_page(program, form, status=400)
    try:
        values = form.rule_values(program)
        if form.preview.data:  # nothing is saved: the page shows what the rules would pay
            result = programs_preview.preview(program, values, utcnow())
            return _edit_page(program, form, preview=result)
        programs.update_program(program, values)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _edit_page(program, form, status=show_domain_error(form, error))
    flash("Program saved.", "success")
    return redirect(url_for(".edit_program", program_id=program.id))


def _edit_page(program: Program, form, *, preview=None, status: int = 200, confirm=None):
    return render_template(
        "admin/programs/form.html",
        form=form,
        program=program,
        preview=preview,
        not_modelled=programs_preview.NOT_MODELLED,
        skip_reasons=programs_preview.SKIP_REASONS,
        preview_days=programs_preview.PREVIEW_DAYS,
        confirm_forms={
            "deactivate": ConfirmForm(formdata=None, prefix="deactivate"),
            "default": ConfirmForm(formdata=None, prefix="default"),
            **(confirm or {}),
        },
    ), status


@bp.post("/programs/<int:program_id>/activate")
@require("programs.manage")
def activate_program(program_id: int):
    program = db.get_or_404(Program, program_id)
    changed = programs.set_program_active(program, True)
    db.session.commit()
    flash("Program activated." if changed else "The program already was active.", "success")
    return redirect(url_for(".edit_program", program_id=program.id))


@bp.post("/programs/<int:program_id>/deactivate")
@require("programs.manage")
def deactivate_program(program_id: int):
    program = db.get_or_404(Program, program_id)
    return _confirmed(
        program,
        "deactivate",
        lambda: programs.set_program_active(program, False),
        "Program deactivated: its links and codes no longer attribute and it pays nothing.",
    )


@bp.post("/programs/<int:program_id>/default")
@require("programs.manage")
def make_default_program(program_id: int):
    program = db.get_or_404(Program, program_id)
    return _confirmed(
        program,
        "default",
        lambda: programs.make_default(program),
        f"“{program.name}” is now the default program.",
    )


def _confirmed(program: Program, name: str, action, success: str):
    """A change staff must confirm with the box ticked; otherwise the page says so."""
    form = ConfirmForm(prefix=name)
    data = ProgramForm.data_of(program)
    edit_form = EditProgramForm(_referral_campaigns(), formdata=None, data=data)
    if not form.validate_on_submit():
        return _edit_page(program, edit_form, status=400, confirm={name: form})
    try:
        action()
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        status = show_domain_error(form, error)
        return _edit_page(program, edit_form, status=status, confirm={name: form})
    flash(success, "success")
    return redirect(url_for(".edit_program", program_id=program.id))
