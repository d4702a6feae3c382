"""Forms of the participants and users screens."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectChoice, SelectField, SubmitField
from wtforms.validators import DataRequired, Email, InputRequired, Length

from models import ROLES

ROLE_CHOICES = [SelectChoice(role, role.title()) for role in ROLES]


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[InputRequired()])
    submit = SubmitField("Change role")


class UserRoleForm(FlaskForm):
    """Any account's role, named by its email (users & roles screen)."""

    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[InputRequired()])
    submit = SubmitField("Set role")


class ConfirmForm(FlaskForm):
    """A destructive action: the box must be ticked, so it works (and is safe) without JS."""

    confirm = BooleanField("Yes, I mean it", validators=[DataRequired("Tick the box to confirm.")])
    submit = SubmitField("Confirm")


class ReactivateForm(FlaskForm):
    submit = SubmitField("Reactivate")


class IssueCodeForm(FlaskForm):
    program_id = SelectField("Program", coerce=int, validators=[InputRequired()])
    submit = SubmitField("Issue a new code")

    def __init__(self, programs, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.program_id.choices = [SelectChoice(program.id, program.name) for program in programs]
