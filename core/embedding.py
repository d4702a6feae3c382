"""Pages a shop frames on its own site (referral/embed.py): their own session cookie, and a
`frame-ancestors` list instead of 'none'. See docs/guarantees.md #42.

A browser sends a SameSite=Lax cookie to a frame only when the shop and InviteLoop are the
same site, so the frame keeps a session of its own: a cookie scoped to /embed/, SameSite=None
(and so Secure) when the site runs on https. The rest of the site keeps its Lax session
cookie, which a framed page never reads nor changes; a sign-in inside the frame is a sign-in
to the frame only. (Flask-Login's remember-me cookie is the site's, path /: when the shop and
InviteLoop are one site, a participant who asked to be kept signed in is known in the frame
too, as on any InviteLoop page.)
"""

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

EMBED_PREFIX = "/embed/"
FRAME_SESSION_COOKIE = "il_embed_session"


def _in_frame_pages() -> bool:
    return request.path.startswith(EMBED_PREFIX)


class FrameAwareSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with a separate cookie for the pages under /embed/."""

    def open_session(self, app: Flask, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            # No cookie, nothing to verify: skip building the signer (a visitor's every GET).
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_name(self, app: Flask) -> str:
        return FRAME_SESSION_COOKIE if _in_frame_pages() else super().get_cookie_name(app)

    def get_cookie_path(self, app: Flask) -> str:
        return EMBED_PREFIX if _in_frame_pages() else super().get_cookie_path(app)

    def get_cookie_samesite(self, app: Flask) -> str | None:
        if _in_frame_pages() and self.get_cookie_secure(app):
            return "None"  # a cross-site frame gets the cookie only so, and only over https
        return super().get_cookie_samesite(app)


def frame_policy(origins: tuple[str, ...]) -> str:
    """`frame-ancestors` for a framed page: the allowed shop origins, or 'none'."""
    return "frame-ancestors " + (" ".join(origins) if origins else "'none'")
