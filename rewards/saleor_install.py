"""The Saleor app's installations: which Saleor may install InviteLoop, the token it gives us
(checked against that Saleor, then kept encrypted), and forgetting it on uninstall
(docs/guarantees.md #38).

The token is encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived by HKDF
from SALEOR_TOKEN_KEY, or from SECRET_KEY when that is not set: a copy of the database alone
does not give the token away. It is never logged or shown.
"""

import base64
import logging
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from core.errors import DomainError
from extensions import db
from models import SaleorInstallation, utcnow
from rewards import saleor_client
from rewards.saleor import same_instance
from rewards.saleor_queries import WHO_AM_I

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 1000


class RegistrationRefused(DomainError):
    status = 400
    code = "registration_refused"
    message = _l("This registration is refused.")


class UnknownSaleor(RegistrationRefused):
    status = 403
    code = "saleor_not_allowed"
    message = _l("This InviteLoop accepts installations only from its configured Saleor.")


class TokenNotAccepted(RegistrationRefused):
    status = 403
    code = "token_not_accepted"
    message = _l("Saleor did not accept the token; nothing was stored.")


class TokenUnreadable(DomainError):
    status = 503
    code = "saleor_token_unreadable"
    message = _l(
        "The stored Saleor token cannot be decrypted (SALEOR_TOKEN_KEY or SECRET_KEY changed); "
        "install the app again."
    )


@dataclass(frozen=True)
class Connection:
    """A usable installation: where to call and with what."""

    api_url: str
    token: str


def allowed_api_urls() -> list[str]:
    """The configured SALEOR_API_URL first, then SALEOR_ALLOWED_API_URLS."""
    config = current_app.config
    extra = (config["SALEOR_ALLOWED_API_URLS"] or "").split(",")
    urls = [config["SALEOR_API_URL"] or "", *extra]
    return [url.strip() for url in urls if url.strip()]


def allowed_api_url(claimed: str | None) -> str | None:
    """The allowed API URL `claimed` names (as configured), or None."""
    if not claimed:
        return None
    return next((url for url in allowed_api_urls() if same_instance(claimed, url)), None)


def register(claimed_api_url: str | None, token) -> SaleorInstallation:
    """Store `token` for the Saleor at `claimed_api_url`, once that Saleor is allowed and
    confirms the token is one of its apps'. A reinstall replaces the earlier token."""
    api_url = allowed_api_url(claimed_api_url)
    if api_url is None:
        log.warning("saleor register refused: saleor_not_allowed")
        raise UnknownSaleor()
    if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_CHARS:
        raise RegistrationRefused(_("The body must be JSON with an auth_token string."))
    app_id = _app_id(api_url, token.strip())
    values = {
        "app_id": app_id,
        "token_ciphertext": _cipher().encrypt(token.strip().encode()).decode(),
        "installed_at": utcnow(),
    }
    installation = installation_for(api_url)
    if installation is None:
        try:
            with db.session.begin_nested():
                installation = SaleorInstallation(api_url=api_url, **values)
                db.session.add(installation)
        except IntegrityError:  # registered at the same moment by another request
            installation = installation_for(api_url)
    for name, value in values.items():
        setattr(installation, name, value)
    db.session.flush()
    log.info("Saleor app installed for %s (app %s)", api_url, app_id)
    return installation


def _app_id(api_url: str, token: str) -> str:
    try:
        data = saleor_client.execute(api_url, token, WHO_AM_I)
    except saleor_client.SaleorCallFailed as error:
        raise TokenNotAccepted(
            _("Saleor did not accept the token: %(error)s", error=error.message)
        ) from None
    app = data.get("app")
    if not isinstance(app, dict) or not isinstance(app.get("id"), str):
        raise TokenNotAccepted(_("The token does not belong to a Saleor app; nothing was stored."))
    return app["id"][:200]


def forget(api_url: str) -> bool:
    """Drop the token of the installation at `api_url` (the app was deleted in Saleor)."""
    installation = installation_for(api_url)
    if installation is None:
        return False
    db.session.execute(delete(SaleorInstallation).where(SaleorInstallation.id == installation.id))
    log.info("Saleor app uninstalled from %s; its token is forgotten", api_url)
    return True


def installation_for(api_url: str) -> SaleorInstallation | None:
    """The installation of the allowed Saleor named `api_url`, in any spelling of it."""
    for installation in db.session.scalars(select(SaleorInstallation)):
        if same_instance(installation.api_url, api_url):
            return installation
    return None


def current_installation() -> SaleorInstallation | None:
    """The installation at the configured SALEOR_API_URL, the one rewards are paid through."""
    api_url = current_app.config["SALEOR_API_URL"]
    return installation_for(api_url) if api_url else None


def connection() -> Connection | None:
    """Where and how to call the configured Saleor; None when the app is not installed."""
    installation = current_installation()
    if installation is None:
        return None
    try:
        token = _cipher().decrypt(installation.token_ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenUnreadable() from None
    return Connection(installation.api_url, token)


def _cipher() -> Fernet:
    config = current_app.config
    secret = (config["SALEOR_TOKEN_KEY"] or config["SECRET_KEY"]).encode()
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"inviteloop.saleor-app-token"
    ).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))
