"""Staff panel — settings: the installation's brand (admin role only)."""

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from admin.policy import require
from admin.settings import services
from admin.settings.forms import BrandingForm
from core import branding
from core.forms import submit
from core.logo import MAX_LOGO_BYTES
from extensions import db
from models import SiteBranding

bp = Blueprint("settings", __name__, url_prefix="/settings")


@bp.route("/branding", methods=["GET", "POST"])
@require("settings.manage")
def edit_branding():
    stored = _stored()
    form = BrandingForm(data=stored)
    submission = submit(form, lambda: _save(form))
    if submission.done:
        flash(_("Branding saved.") if submission.result else _("Nothing changed."), "success")
        return redirect(url_for(".edit_branding"))
    ratio = None
    if stored["primary_color"]:
        ratio = branding.contrast_with_white(stored["primary_color"])
    return render_template(
        "admin/settings/branding.html",
        form=form,
        stored=stored,
        stored_ratio=ratio,
        default_name=branding.DEFAULT_NAME,
        min_contrast=branding.MIN_CONTRAST,
    ), submission.status


def _save(form: BrandingForm) -> bool:
    upload = form.logo.data  # a text field of that name (no file) is no upload
    chosen = isinstance(upload, FileStorage) and upload.filename
    logo_data = upload.read(MAX_LOGO_BYTES + 1) if chosen else None
    return services.save_branding(
        site_name=form.site_name.data,
        support_email=form.support_email.data,
        primary_color=form.primary_color.data,
        logo_data=logo_data,
        remove_logo=form.remove_logo.data,
    )


def _stored() -> dict:
    """What is saved now, read from the database (not the cache) for the form."""
    row = db.session.execute(
        select(
            SiteBranding.site_name,
            SiteBranding.support_email,
            SiteBranding.primary_color,
            SiteBranding.logo_type,
            SiteBranding.logo_hash,
        ).where(SiteBranding.id == 1)
    ).one_or_none()
    values = row._asdict() if row else dict.fromkeys(services.AUDITED)
    brand = branding.Branding(**values)
    return values | {"logo_url": brand.logo_url}
