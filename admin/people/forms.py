"""Forms of the participants and users screens."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectChoice, SelectField, SubmitField
from wtforms.validators import DataRequired, Email, InputRequired, Length

from admin.policy import ROLE_TITLES
from models import ROLES

ROLE_CHOICES = [SelectChoice(role, ROLE_TITLES[role]) for role in ROLES]


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, validators=[InputRequired()])
    submit = SubmitField(_l("Change role"))


class UserRoleForm(FlaskForm):
    """Any account's role, named by its email (users & roles screen)."""

    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, validators=[InputRequired()])
    submit = SubmitField(_l("Set role"))


class ConfirmForm(FlaskForm):
    """A destructive action: the box must be ticked, so it works (and is safe) without JS."""

    confirm = BooleanField(
        _l("Yes, I mean it"), validators=[DataRequired(_l("Tick the box to confirm."))]
    )
    submit = SubmitField(_l("Confirm"))


class ReactivateForm(FlaskForm):
    submit = SubmitField(_l("Reactivate"))


class IssueCodeForm(FlaskForm):
    program_id = SelectField(_l("Program"), coerce=int, validators=[InputRequired()])
    submit = SubmitField(_l("Issue a new code"))

    def __init__(self, programs, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.program_id.choices = [SelectChoice(program.id, program.name) for program in programs]
