"""The installation's brand, as the admin sets it: every value checked here (the form shows
the same refusals beside its fields), one row written, and the change in the audit log."""

import hashlib

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from admin.formats import fixed
from core import audit, branding, logo
from core.database import after_commit
from core.errors import DomainError
from extensions import db
from models import SiteBranding, utcnow

SITE_NAME_MAX = 60
AUDITED = ("site_name", "support_email", "primary_color", "logo_type", "logo_hash")


class InvalidColor(DomainError):
    code = "invalid_color"
    field = "primary_color"
    message = _l("Type a colour as six hex digits, such as #1a7f5a.")


class InvalidSupportEmail(DomainError):
    code = "invalid_support_email"
    field = "support_email"


class InvalidSiteName(DomainError):
    code = "invalid_site_name"
    field = "site_name"


class SavedMeanwhile(DomainError):
    status = 409
    code = "branding_saved_meanwhile"
    message = _l("Someone else saved the branding at the same moment; look and save again.")


def clean_site_name(text: str | None) -> str | None:
    """Spaces and line breaks folded (the name goes into email headers); empty: InviteLoop."""
    name = " ".join((text or "").split())
    if len(name) > SITE_NAME_MAX:
        raise InvalidSiteName(_("Use at most %(count)d characters.", count=SITE_NAME_MAX))
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        raise InvalidSiteName(_("The name may not hold control characters."))
    return name or None


def clean_color(text: str | None) -> str | None:
    """ "#1A7F5A" -> "#1a7f5a", refused unless white text on it and it on white reach WCAG
    AA (4.5:1); empty: InviteLoop's own blue."""
    if not (text or "").strip():
        return None
    color = branding.parse_hex_color(text)
    if color is None:
        raise InvalidColor()
    ratio = branding.contrast_with_white(color)
    if ratio < branding.MIN_CONTRAST:
        shown = min(round(ratio, 2), 4.49)  # never rounded up to a passing 4.50
        raise InvalidColor(
            _(
                "White text on %(color)s, and %(color)s text on white, reach only %(ratio)s:1;"
                " WCAG AA asks for at least %(minimum)s:1. Choose a darker colour.",
                color=color,
                ratio=fixed(shown, 2),
                minimum=fixed(branding.MIN_CONTRAST, 1),
            )
        )
    return color


def clean_support_email(text: str | None) -> str | None:
    address = (text or "").strip()
    if not address:
        return None
    try:
        info = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidSupportEmail(
            _("This email address is not valid: %(reason)s", reason=error)
        ) from None
    return info.normalized


def save_branding(
    *,
    site_name: str | None,
    support_email: str | None,
    primary_color: str | None,
    logo_data: bytes | None = None,
    remove_logo: bool = False,
) -> bool:
    """Store the brand (flushed, not committed); True when anything changed. `logo_data`
    replaces the logo, `remove_logo` drops it; neither keeps it. Once the caller commits,
    the cached brand is dropped on every machine."""
    values = {
        "site_name": clean_site_name(site_name),
        "support_email": clean_support_email(support_email),
        "primary_color": clean_color(primary_color),
    }
    if logo_data is not None:
        values |= {
            "logo_type": logo.logo_type(logo_data),
            "logo": logo_data,
            "logo_hash": hashlib.sha256(logo_data).hexdigest(),
        }
    elif remove_logo:
        values |= {"logo_type": None, "logo": None, "logo_hash": None}
    row = db.session.get(SiteBranding, 1, with_for_update=True)
    before = audit.snapshot(row, AUDITED) if row else dict.fromkeys(AUDITED)
    after = before | {name: value for name, value in values.items() if name in AUDITED}
    changed_before, changed_after = audit.changes(before, after)
    if not changed_after:
        return False
    if row is None:
        row = SiteBranding(id=1)
        db.session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    try:
        db.session.flush()
    except IntegrityError:  # another admin created the row first
        raise SavedMeanwhile() from None
    audit.record("branding.update", "site_branding", 1, before=changed_before, after=changed_after)
    after_commit(branding.forget)
    return True
