"""Shared form plumbing: one way for a form view to run its action in one transaction, and
to put a service's refusal next to the field it concerns."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_wtf import FlaskForm
from wtforms.validators import ValidationError

from core.errors import DomainError
from extensions import db


@dataclass(frozen=True)
class Submission:
    """What became of a form: `done` with the action's result, or not done and the status
    to show the form again with (200 not submitted, 400 `invalid`, or the refusal's own)."""

    done: bool
    result: Any = None
    status: int = 200
    invalid: bool = False


def submit(
    form: FlaskForm,
    action: Callable[[], Any],
    *,
    reraise: tuple[type[DomainError], ...] = (),
) -> Submission:
    """On a valid submission run `action` and commit; a refusal rolls everything back and is
    shown on the form. Refusals of the `reraise` types are rolled back and raised for the view
    to answer in its own way. The view keeps its own messages and redirects."""
    if not form.is_submitted():
        return Submission(done=False, status=200)
    if not form.validate():
        return Submission(done=False, status=_invalid_status(form), invalid=True)
    try:
        result = action()
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        if isinstance(error, reraise):
            raise
        return Submission(done=False, status=show_domain_error(form, error))
    return Submission(done=True, result=result)


def rule(check: Callable[[Any], object]):
    """A field validator from a service's check: its refusal becomes the field's error, so the
    form reports it together with every other field's (the service checks again on submit)."""

    def validate(_form, field) -> None:
        try:
            check(field.data)
        except DomainError as error:
            field.refusal_status = error.status  # what the service itself would answer
            raise ValidationError(error.message) from None

    return validate


def _invalid_status(form: FlaskForm) -> int:
    """The first field in error decides: a service's refusal keeps its own status (409 for a
    taken email), anything else is 400."""
    for field in form:
        if field.errors:
            return getattr(field, "refusal_status", 400)
    return 400


def show_domain_error(form: FlaskForm, error: DomainError) -> int:
    """Attach the message to its field (or flash it) and return the status to answer with."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)
    return error.status
