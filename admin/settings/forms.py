"""The branding form: each field refused with the service's own message (admin/settings/
services.py checks again on save)."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, StringField, SubmitField

from admin.settings import services
from core.forms import rule
from core.logo import ALLOWED_LABEL, MAX_LOGO_BYTES


class BrandingForm(FlaskForm):
    site_name = StringField("Site name", validators=[rule(services.clean_site_name)])
    support_email = StringField("Support email", validators=[rule(services.clean_support_email)])
    primary_color = StringField("Primary colour", validators=[rule(services.clean_color)])
    logo = FileField(f"Logo ({ALLOWED_LABEL}, at most {MAX_LOGO_BYTES // 1024} KB)")
    remove_logo = BooleanField("Remove the logo")
    submit = SubmitField("Save branding")
