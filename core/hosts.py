"""Only the host names the operator allows: a request naming any other Host is refused.

Without this, a link built from the request (`url_for(..., _external=True)`) would carry
whatever Host or X-Forwarded-Host an attacker sent, e.g. a password-reset link to their own
site with a live token in it. Production builds every absolute link from PUBLIC_URL; in
development the request's host is used, so it must be one of ALLOWED_HOSTS (localhost names
by default). Checked before anything else runs, for every request.
"""

from flask import Flask, abort, current_app, request
from flask_babel import gettext as _


def host_name(host: str) -> str | None:
    """`"Example.COM:8080"` → `"example.com"`, `"[::1]:5000"` → `"::1"`; None when unreadable."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
    else:
        name = host.partition(":")[0]
    name = name.rstrip(".")
    return name or None


def is_allowed_host(host: str, allowed: list[str] | None) -> bool:
    """True when `allowed` is None (any host) or the host's name is listed; an entry
    starting with a dot (".example.com") also covers every subdomain."""
    if allowed is None:
        return True
    name = host_name(host)
    if name is None:
        return False
    for entry in allowed:
        if entry.startswith("."):
            if name == entry[1:] or name.endswith(entry):
                return True
        elif name == entry:
            return True
    return False


def refuse_unknown_hosts() -> None:
    # request.host is "" when the header holds characters no host name can have.
    if not is_allowed_host(request.host, current_app.config["ALLOWED_HOSTS_LIST"]):
        abort(400, description=_("This site is not served under that host name."))


def register_host_check(app: Flask) -> None:
    """Run the host check first: before the rate limiter, the session and every view."""
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_unknown_hosts)
