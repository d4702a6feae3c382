"""The cookies that carry a referral from a click to a signup.

- visitor cookie: a random first-party id for this browser (device checks, click log);
- attribution cookie: the code that was clicked and when, signed so it cannot be forged
  or edited; it is trusted only within the program's attribution window.
"""

import base64
import functools
import re
import secrets
import time
from datetime import UTC, datetime

from flask import after_this_request, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.http import dump_cookie

from referral.codes import MAX_LENGTH, normalize_code

VISITOR_COOKIE = "il_vid"
ATTRIBUTION_COOKIE = "il_ref"
_VISITOR_MAX_AGE = 365 * 24 * 3600
# The longest window a program may have; the program's own window is checked on use.
_ATTRIBUTION_MAX_AGE = 365 * 24 * 3600


def _serializer() -> URLSafeTimedSerializer:
    return _serializer_for(current_app.secret_key)


@functools.lru_cache(maxsize=8)  # one per secret key: made once, not per click
def _serializer_for(secret_key: str | bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        secret_key,
        salt="referral-attribution",
        signer_kwargs={"digest_method": SecureCookieSessionInterface.digest_method},
    )


def _cookie(name: str, value: str, max_age: int) -> str:
    """A Set-Cookie header value, as a response's set_cookie would write it. Its attributes
    (the expiry date, to the second) are made once a second, and a value of the plain
    characters our cookies hold needs no quoting: a click sets two cookies, and writing each
    in full was a tenth of its CPU."""
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    if not _PLAIN_VALUE.fullmatch(value):
        return _dump(name, value, max_age, secure)
    return f"{name}={value}{_attributes(max_age, secure, int(time.time()))}"


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._-]*")  # ids and signed values: no quoting needed


@functools.lru_cache(maxsize=8)  # the current second's, per lifetime and Secure
def _attributes(max_age: int, secure: bool, _second: int) -> str:
    cookie = _dump("x", "", max_age, secure)
    return cookie[len("x=") :]


def _dump(name: str, value: str, max_age: int, secure: bool) -> str:
    return dump_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="Lax", secure=secure
    )


def visitor_id(remember: bool = True) -> str:
    """This browser's id; a new one is set on the response if it had none. With `remember`
    False, only once `remember_visitor()` is called (a click: once it is stored)."""
    if "visitor_id" not in g:
        known = known_visitor_id(request.cookies.get(VISITOR_COOKIE))
        g.visitor_id = known or new_visitor_id()
        g.visitor_is_new = known is None
    if remember:
        remember_visitor()
    return g.visitor_id


def remember_visitor() -> None:
    """Set the cookie of a visitor id new in this request (once, however often asked)."""
    if g.pop("visitor_is_new", False):
        after_this_request(lambda response: set_visitor_cookie(response, g.visitor_id))


def known_visitor_id(cookie: str | None) -> str | None:
    """The id a visitor cookie holds, if it is one this site could have set."""
    if cookie and len(cookie) == 32 and all(ch in "0123456789abcdef" for ch in cookie):
        return cookie
    return None


def new_visitor_id() -> str:
    return secrets.token_hex(16)


def visitor_cookie(visitor_id: str) -> str:
    """The Set-Cookie header value of the visitor cookie."""
    return _cookie(VISITOR_COOKIE, visitor_id, _VISITOR_MAX_AGE)


def set_visitor_cookie(response, visitor_id: str):
    response.headers.add("Set-Cookie", visitor_cookie(visitor_id))
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


def attribution_cookie(code: str, window_days: int) -> str:
    """The Set-Cookie header value of the attribution cookie: `code`, signed now."""
    return _cookie(ATTRIBUTION_COOKIE, _signed(code), window_days * 86400)


def _signed(code: str) -> str:
    """What `_serializer().dumps({"code": code})` gives, in the serializer's own two steps
    (its payload, then its signer's timestamped signature), with each kept once made: the
    payload depends on the code alone, the signer on the key alone."""
    return _signer_for(current_app.secret_key).sign(_payload_of(code)).decode()


@functools.lru_cache(maxsize=8)
def _signer_for(secret_key: str | bytes):
    return _serializer_for(secret_key).make_signer()


def _payload_of(code: str) -> bytes:
    """`dump_payload({"code": code})`, written directly for a code of the stored form: its
    letters and digits need no JSON escaping, and a payload that short never compresses
    (zlib's framing outweighs any repeat in 8 characters), so it is the compact JSON in
    URL-safe base64 without padding (tests/test_click_shortcut.py holds it to the
    serializer's own)."""
    if len(code) > MAX_LENGTH:
        return _serializer_for("").dump_payload({"code": code})  # the same for any key
    return base64.urlsafe_b64encode(b'{"code":"%s"}' % code.encode()).rstrip(b"=")


def set_attribution_cookie(response, code: str, window_days: int):
    response.headers.add("Set-Cookie", attribution_cookie(code, window_days))
    return response
