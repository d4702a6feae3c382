"""Shared form plumbing: putting a service's refusal next to the field it concerns."""

from flask_wtf import FlaskForm

from core.errors import DomainError


def show_domain_error(form: FlaskForm, error: DomainError) -> int:
    """Attach the message to its field (or flash it) and return the status to answer with."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)
    return error.status
