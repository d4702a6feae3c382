"""Service endpoints that are about the application itself rather than a feature, the
installation's brand assets (core/branding.py) and the language switcher (core/i18n.py)."""

import json

from flask import Blueprint, abort, jsonify, make_response, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from config import LANGUAGES
from core import branding, i18n
from core import health as probes
from core.errors import DomainError
from core.security import is_local_path
from extensions import csrf, db
from models import SiteBranding

bp = Blueprint("core", __name__)

# A hashed URL never changes its content, so browsers and proxies may keep it for a year.
_IMMUTABLE = "public, max-age=31536000, immutable"
# A logo opened on its own (an SVG above all) runs nothing and loads nothing.
_LOGO_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


@bp.get("/health")
def health():
    """200 `ok` or `degraded` while the app can serve, 503 `error` when it cannot; `database`
    keeps its old values (ok / unreachable) for checks written against them."""
    found = probes.check()
    database = "ok" if found.dependencies["database"] == probes.OK else "unreachable"
    body = jsonify(status=found.status, database=database, dependencies=found.dependencies)
    return body, found.http_status


class UnknownLanguage(DomainError):
    code = "unknown_language"


# Without a CSRF token, so that the navbar's switcher gives an anonymous page no session
# cookie (pages stay cacheable, issue 15). A forged cross-site POST can do no more than set
# the visitor's own language cookie: the session cookies are SameSite=Lax, so such a POST
# arrives signed out and changes no account.
@bp.post("/language")
@csrf.exempt
def choose_language():
    """The switcher (navbar, profile): remember the language in the browser for a year and,
    for a member, on the account; then back to the page it was chosen on."""
    language = request.form.get("language", "")
    if language not in LANGUAGES:
        raise UnknownLanguage(
            _(
                "We have no pages in “%(language)s”. Choose one of: %(languages)s.",
                language=language[:20],
                languages=", ".join(i18n.LANGUAGE_NAMES.values()),
            )
        )
    if current_user.is_authenticated:
        current_user.locale = language
        db.session.commit()
    target = request.form.get("next")
    response = redirect(target if is_local_path(target) else url_for("referral.landing"))
    return i18n.set_locale_cookie(response, language)


@bp.get("/brand/logo-<digest>.<extension>")
def brand_logo(digest: str, extension: str):
    """The logo, under a URL made from its content hash; an old or made-up hash is 404."""
    row = db.session.execute(
        select(SiteBranding.logo, SiteBranding.logo_type, SiteBranding.logo_hash).where(
            SiteBranding.id == 1
        )
    ).one_or_none()
    if row is None or row.logo is None or branding.logo_digest(row.logo_hash) != digest:
        abort(404)
    if branding.LOGO_EXTENSIONS[row.logo_type] != extension:
        abort(404)
    response = make_response(row.logo)
    response.headers["Content-Type"] = row.logo_type
    response.headers["Cache-Control"] = _IMMUTABLE
    response.headers["Content-Security-Policy"] = _LOGO_POLICY
    response.set_etag(row.logo_hash)
    return response


@bp.get("/brand/theme-<color>.css")
def brand_theme(color: str):
    """The stylesheet of a primary colour. It depends on the colour alone (named in the
    URL), so it reads nothing; a colour the branding screen would refuse is 404."""
    checked = branding.parse_hex_color(color)
    if checked is None or checked[1:] != color or not branding.readable_on_white(checked):
        abort(404)
    response = make_response(branding.theme_css(checked))
    response.headers["Content-Type"] = "text/css; charset=utf-8"
    response.headers["Cache-Control"] = _IMMUTABLE
    return response


@bp.get("/brand/manifest.webmanifest")
def brand_manifest():
    """The web app manifest with the installation's name, colour and logo."""
    brand = branding.current()
    icons = [
        {"src": url_for("static", filename=f"icon-{size}.png"), "sizes": f"{size}x{size}"}
        | {"type": "image/png"}
        for size in (192, 512)
    ]
    if brand.logo_url:
        icons = [{"src": brand.logo_url, "sizes": "any", "type": brand.logo_type}]
    manifest = {
        "name": brand.name,
        "short_name": brand.name,
        "description": _("Refer friends, follow who joined and the rewards you earned."),
        "start_url": url_for("referral.dashboard"),
        "scope": "/",
        "display": "browser",
        "background_color": "#ffffff",
        "theme_color": brand.theme_color,
        "icons": icons,
    }
    response = make_response(json.dumps(manifest, indent=2))
    response.headers["Content-Type"] = "application/manifest+json"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
