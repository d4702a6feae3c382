"""The branding form: each field refused with the service's own message (admin/settings/
services.py checks again on save)."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, StringField, SubmitField

from admin.settings import services
from core.forms import rule
from core.logo import MAX_LOGO_BYTES


class BrandingForm(FlaskForm):
    site_name = StringField(_l("Site name"), validators=[rule(services.clean_site_name)])
    support_email = StringField(
        _l("Support email"), validators=[rule(services.clean_support_email)]
    )
    primary_color = StringField(_l("Primary colour"), validators=[rule(services.clean_color)])
    # The formats named in the sentence (core.logo.ALLOWED_LABEL's), so that "or" translates.
    logo = FileField(
        _l("Logo (PNG, WebP or SVG, at most %(size)d KB)", size=MAX_LOGO_BYTES // 1024)
    )
    remove_logo = BooleanField(_l("Remove the logo"))
    submit = SubmitField(_l("Save branding"))
