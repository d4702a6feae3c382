"""Response headers and redirect targets that keep pages from being abused."""

from urllib.parse import urlsplit

from flask import Flask, current_app, request

_BASE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'"
)
_CSP = f"{_BASE_CSP}; frame-ancestors 'none'"


def framed_csp(frame_policy: str) -> str:
    """The site's policy with another `frame-ancestors` (a page shops may frame)."""
    return f"{_BASE_CSP}; {frame_policy}"


def is_local_path(target: str | None) -> bool:
    """True for a path on this site ("/referral/dashboard"), false for anything that could
    leave it ("https://evil.example", "//evil.example", "/\\evil.example", "javascript:")."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    if any(ord(ch) < 32 for ch in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def carries_no_session() -> bool:
    """True when the request brings neither a session nor a remember-me cookie: nobody is
    signed in and no message waits for the visitor, known without loading a session."""
    cookies, config = request.cookies, current_app.config
    return (
        current_app.session_interface.get_cookie_name(current_app) not in cookies
        and config.get("REMEMBER_COOKIE_NAME", "remember_token") not in cookies
    )


def default_security_headers(
    mimetype: str, production: bool, own_policy: str = ""
) -> list[tuple[str, str]]:
    """The headers an answer of `mimetype` carries unless it set its own; `own_policy` is its
    own Content-Security-Policy, if it has one."""
    headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ]
    if "frame-ancestors" not in own_policy:
        # A page whose own policy names its frame-ancestors is framed by those alone.
        headers.append(("X-Frame-Options", "DENY"))
    if mimetype == "text/html":
        headers.append(("Content-Security-Policy", _CSP))
    if production:
        headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return headers


def add_security_headers(response, production: bool):
    """The headers every answer carries, unless the view set its own."""
    headers = response.headers
    own_policy = headers.get("Content-Security-Policy", "")
    for name, value in default_security_headers(response.mimetype, production, own_policy):
        headers.setdefault(name, value)
    return response


def register_security_headers(app: Flask) -> None:
    production = app.config["APP_ENV"] == "production"

    @app.after_request
    def add_headers(response):
        return add_security_headers(response, production)
