"""Staff panel — Referral programs: create, edit, activate, preview."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from admin import listing
from admin.people.forms import ConfirmForm
from admin.policy import require
from admin.programs import preview as programs_preview
from admin.programs.forms import (
    LANGUAGE_NAMES,
    TRIGGER_NAMES,
    EditProgramForm,
    NewProgramForm,
    ProgramForm,
)
from admin.programs.queries import PROGRAM_STATUSES, programs_query
from config import LANGUAGES
from core.forms import submit
from extensions import db
from models import Campaign, Program, utcnow
from referral import program_texts
from referral.offer import offer_of
from rewards import programs

bp = Blueprint("programs", __name__)


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
        status_names={"active": _("Active"), "inactive": _("Inactive")},
        trigger_names=TRIGGER_NAMES,
    )


@bp.route("/programs/new", methods=["GET", "POST"])
@require("programs.manage")
def create_program():
    currency = current_app.config["DEFAULT_CURRENCY"]
    if request.method == "GET":
        draft = ProgramForm.data_of(programs.draft_program(currency))
        form = NewProgramForm(
            _referral_campaigns(), formdata=None, data=draft, kept_currency=currency
        )
        return _new_page(form, currency)
    form = NewProgramForm(_referral_campaigns(), kept_currency=currency)
    submission = submit(form, lambda: _create(form))
    if not submission.done:
        return _new_page(form, currency), submission.status
    program = submission.result
    flash(
        _(
            "Program “%(name)s” created and active."
            " Make it the default to use it for signups, or issue its codes to participants.",
            name=program.name,
        ),
        "success",
    )
    return redirect(url_for(".edit_program", program_id=program.id))


def _new_page(form: NewProgramForm, currency: str) -> str:
    default_texts = offer_of(programs.draft_program(currency))
    return render_template(
        "admin/programs/form.html",
        form=form,
        program=None,
        default_texts=default_texts,
        **_languages(),
    )


def _languages() -> dict:
    """The form's sections of texts: the default language first, then the others."""
    default = current_app.config["DEFAULT_LOCALE"]
    return {
        "languages": [default, *(language for language in LANGUAGES if language != default)],
        "language_names": LANGUAGE_NAMES,
    }


def _create(form: NewProgramForm) -> Program:
    values = form.rule_values()
    program = programs.create_program(form.slug.data.strip(), values, values["currency"])
    program_texts.set_texts(program, form.text_values())
    return program


@bp.route("/programs/<int:program_id>", methods=["GET", "POST"])
@require("programs.manage")
def edit_program(program_id: int):
    program = db.get_or_404(Program, program_id)
    if request.method == "GET":
        data = ProgramForm.data_of(program)
        form = EditProgramForm(
            _referral_campaigns(), formdata=None, data=data, kept_currency=program.currency
        )
        return _edit_page(program, form)
    form = EditProgramForm(_referral_campaigns(), kept_currency=program.currency)
    submission = submit(form, lambda: _save_or_preview(program, form))
    if not submission.done:
        return _edit_page(program, form, status=submission.status)
    if form.preview.data:
        return _edit_page(program, form, preview=submission.result)
    flash(_("Program saved."), "success")
    return redirect(url_for(".edit_program", program_id=program.id))


def _save_or_preview(program: Program, form: EditProgramForm):
    """Save the edited rules; or, for a preview, save nothing and return what they would
    have paid (the rules are checked either way)."""
    values = form.rule_values(program)
    if form.preview.data:
        return programs_preview.preview(program, values, utcnow())
    programs.update_program(program, values)
    program_texts.set_texts(program, form.text_values())
    return None


def _edit_page(program: Program, form, *, preview=None, status: int = 200, confirm=None):
    return render_template(
        "admin/programs/form.html",
        form=form,
        program=program,
        preview=preview,
        not_modelled=programs_preview.NOT_MODELLED,
        skip_reasons=programs_preview.SKIP_REASONS,
        preview_days=programs_preview.PREVIEW_DAYS,
        default_texts=offer_of(program),
        **_languages(),
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
    flash(_("Program activated.") if changed else _("The program already was active."), "success")
    return redirect(url_for(".edit_program", program_id=program.id))


@bp.post("/programs/<int:program_id>/deactivate")
@require("programs.manage")
def deactivate_program(program_id: int):
    program = db.get_or_404(Program, program_id)
    return _confirmed(
        program,
        "deactivate",
        lambda: programs.set_program_active(program, False),
        _("Program deactivated: its links and codes no longer attribute and it pays nothing."),
    )


@bp.post("/programs/<int:program_id>/default")
@require("programs.manage")
def make_default_program(program_id: int):
    program = db.get_or_404(Program, program_id)
    return _confirmed(
        program,
        "default",
        lambda: programs.make_default(program),
        _("“%(name)s” is now the default program.", name=program.name),
    )


def _confirmed(program: Program, name: str, action, success: str):
    """A change staff must confirm with the box ticked; otherwise the page says so."""
    form = ConfirmForm(prefix=name)
    data = ProgramForm.data_of(program)
    edit_form = EditProgramForm(_referral_campaigns(), formdata=None, data=data)
    submission = submit(form, action)
    if not submission.done:
        return _edit_page(program, edit_form, status=submission.status, confirm={name: form})
    flash(success, "success")
    return redirect(url_for(".edit_program", program_id=program.id))
