"""Contracts: a signed agreement with a lead and its uploaded document.

The document is written first and the row after it; if the row cannot be written the file
is removed again, so no document lies on disk without the contract that names it.
"""

from datetime import date
from typing import BinaryIO

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from admin.crm import uploads
from admin.crm.services import UnknownRecord
from core import audit
from core.errors import DomainError
from extensions import db
from models import Contract, Lead, Service, utcnow

AUDITED = (
    "name",
    "service_id",
    "lead_id",
    "file_name",
    "file_size",
    "content_type",
    "signed_on",
    "valid_from",
    "valid_until",
    "amount",
    "currency",
)


class InvalidValidity(DomainError):
    code = "invalid_validity"
    field = "valid_until"
    message = _l("The contract cannot end before it starts.")


def upload_contract(
    *,
    lead_id: int,
    name: str,
    service_id: int,
    signed_on: date,
    valid_from: date,
    valid_until: date,
    amount: int,
    currency: str,
    document: BinaryIO,
    document_name: str | None,
    uploaded_by_id: int | None = None,
) -> Contract:
    """Store the document, then the contract row that names it."""
    if valid_until < valid_from:
        raise InvalidValidity()
    if db.session.get(Lead, lead_id) is None:
        raise UnknownRecord(_("That lead no longer exists."))
    if db.session.get(Service, service_id) is None:
        raise UnknownRecord(_("That service no longer exists."))
    stored = uploads.store(document, document_name)
    now = utcnow()
    contract = Contract(
        name=name,
        service_id=service_id,
        lead_id=lead_id,
        file_key=stored.key,
        file_name=stored.file_name,
        file_size=stored.size,
        content_type=stored.content_type,
        signed_on=signed_on,
        valid_from=valid_from,
        valid_until=valid_until,
        amount=amount,
        currency=currency.upper(),
        uploaded_by_id=uploaded_by_id,
        created_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(contract)
        audit.record(
            "contract.upload", "contract", contract.id, after=audit.snapshot(contract, AUDITED)
        )
        db.session.flush()
    except BaseException:
        uploads.remove(stored.key)
        raise
    return contract
