"""The cookies that carry a referral from a click to a signup.

- visitor cookie: a random first-party id for this browser (device checks, click log);
- attribution cookie: the code that was clicked and when, signed so it cannot be forged
  or edited; it is trusted only within the program's attribution window.
"""

import secrets
from datetime import UTC, datetime

from flask import after_this_request, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

from referral.codes import normalize_code

VISITOR_COOKIE = "il_vid"
ATTRIBUTION_COOKIE = "il_ref"
_VISITOR_MAX_AGE = 365 * 24 * 3600
# The longest window a program may have; the program's own window is checked on use.
_ATTRIBUTION_MAX_AGE = 365 * 24 * 3600


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        current_app.secret_key,
        salt="referral-attribution",
        signer_kwargs={"digest_method": SecureCookieSessionInterface.digest_method},
    )


def _cookie_options(max_age: int) -> dict:
    return {
        "max_age": max_age,
        "httponly": True,
        "samesite": "Lax",
        "secure": current_app.config["SESSION_COOKIE_SECURE"],
    }


def visitor_id() -> str:
    """This browser's id; a new one is set on the response if it had none."""
    if "visitor_id" not in g:
        existing = request.cookies.get(VISITOR_COOKIE, "")
        if len(existing) == 32 and all(ch in "0123456789abcdef" for ch in existing):
            g.visitor_id = existing
        else:
            g.visitor_id = secrets.token_hex(16)
            after_this_request(_set_visitor_cookie)
    return g.visitor_id


def _set_visitor_cookie(response):
    response.set_cookie(VISITOR_COOKIE, g.visitor_id, **_cookie_options(_VISITOR_MAX_AGE))
    return response


def read_cookie() -> tuple[str, datetime] | None:
    """(code, clicked_at) from a genuine attribution cookie; None if absent or tampered."""
    raw = request.cookies.get(ATTRIBUTION_COOKIE)
    if not raw:
        return None
    try:
        payload, signed_at = _serializer().loads(
            raw, max_age=_ATTRIBUTION_MAX_AGE, return_timestamp=True
        )
    except BadSignature:  # also covers an expired signature
        return None
    code = normalize_code(payload.get("code")) if isinstance(payload, dict) else None
    if code is None:
        return None
    return code, signed_at.astimezone(UTC)


def set_attribution_cookie(response, code: str, window_days: int):
    value = _serializer().dumps({"code": code})
    response.set_cookie(ATTRIBUTION_COOKIE, value, **_cookie_options(window_days * 86400))
    return response
