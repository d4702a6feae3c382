"""What a shop puts on its own storefront (docs/guarantees.md #42): the snippet that keeps a
`?ref=CODE` on the shop's domain and records the click here, and the script that frames the
widget (auth/widget.py). Scripts are served under a versioned path and cached for a year; a
new version gets a new path.

Only the shop origins of EMBED_ALLOWED_ORIGINS may record clicks (CORS): a browser on any
other site is refused before anything is counted.
"""

import re
import secrets
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from core.clients import ip_prefix
from extensions import csrf, limiter
from referral import clicks

EMBED_VERSION = "v1"
embed_bp = Blueprint("embed", __name__, url_prefix=f"/embed/{EMBED_VERSION}")
_YEAR = 365 * 24 * 3600
_VISITOR = re.compile(r"[0-9a-f]{32}")


def allowed_origins() -> tuple[str, ...]:
    return current_app.config["EMBED_ORIGINS"]


@embed_bp.get('/<any("ref.js", "widget.js"):name>')
def script(name: str):
    source = Path(current_app.static_folder, "embed", name).read_bytes()
    response = current_app.response_class(source, mimetype="text/javascript")
    response.headers["Cache-Control"] = f"public, max-age={_YEAR}, immutable"
    # Any page may load it; on a shop the allow-list leaves out it records and frames nothing.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _cors(response, origin: str):
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Methods"] = "POST"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
    response.vary.add("Origin")
    return response


def _refused(code: str, message: str, status: int, origin: str | None = None):
    """The API's error body; a shop allowed to ask is also allowed to read why not."""
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    return _cors(response, origin) if origin else response


def _capitalized(message: str) -> str:
    return message[:1].upper() + message[1:]


def _text(body: dict, key: str, length: int) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > length:
        raise ValueError(
            _("%(field)s must be text of at most %(num)d characters.", field=key, num=length)
        )
    return value


@embed_bp.route("/clicks", methods=["OPTIONS"])
def click_preflight():
    origin = request.headers.get("Origin")
    if origin not in allowed_origins():
        return _refused("origin_not_allowed", _("This site may not record referral clicks."), 403)
    return _cors(current_app.response_class(status=204), origin)


@embed_bp.post("/clicks", provide_automatic_options=False)  # click_preflight answers
@csrf.exempt  # no cookie is read or set: the shop's page sends only the code it saw
@limiter.limit(lambda: current_app.config["REFERRAL_LINK_LIMITS"])
def record_click():
    """Count a visit through `?ref=CODE` on a shop's page as /r/<code> counts one; answers
    with the program's attribution window, for which the snippet keeps the code."""
    origin = request.headers.get("Origin")
    if origin not in allowed_origins():
        return _refused("origin_not_allowed", _("This site may not record referral clicks."), 403)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _refused(
            "invalid_body", _("Send a JSON object with the referral code."), 400, origin
        )
    try:
        raw_code = _text(body, "code", 64)
        visitor = _text(body, "visitor", 32)
        referrer = _text(body, "referrer", 2000)
        utm = body.get("utm") or {}
        if not isinstance(utm, dict):
            raise ValueError(_("%(field)s must be an object.", field="utm"))
        utm = {key: _text(utm, key, 200) for key in clicks.UTM_KEYS}
    except ValueError as error:
        return _refused("invalid_body", _capitalized(str(error)), 400, origin)
    if visitor is not None and not _VISITOR.fullmatch(visitor):
        return _refused("invalid_body", _("Visitor must be 32 hexadecimal digits."), 400, origin)
    if raw_code is None:
        return _refused("invalid_body", _("Send the referral code."), 400, origin)
    # The same path as /r/<code>: cached link, one write (or Redis queue), same counter.
    visit = clicks.Visit(
        visitor_id=visitor or secrets.token_hex(16),
        ip_prefix=ip_prefix(get_remote_address()),
        user_agent=request.user_agent.string,
        referrer=referrer,
        utm=utm,
    )
    link = clicks.record_click(raw_code, lambda: visit)
    if link is None:
        return _refused("unknown_code", _("This referral code is not in use."), 404, origin)
    response = jsonify(
        code=link.code,
        attribution_window_days=link.attribution_window_days,
        attribution_model=link.attribution_model,
    )
    response.status_code = 201
    return _cors(response, origin)
