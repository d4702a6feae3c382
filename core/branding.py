"""The installation's own brand: the name, logo, colour and support address every page and
email shows (docs/guarantees.md #32). Staff set it on the branding screen (admin/settings/).

It is read on every page, so it is kept in the shared cache (Redis in production, so every
machine sees one value) and, within a request, on `g`: a cached brand costs no query. Saving
drops the cached copy (`forget`, after the commit). Nothing set means InviteLoop's own name and
colours, so an unbranded installation looks exactly as it always did.
"""

import logging
from dataclasses import asdict, dataclass

from flask import g, has_request_context, url_for
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.caching import announce_change
from extensions import cache, db
from models import SiteBranding

log = logging.getLogger(__name__)

DEFAULT_NAME = "InviteLoop"
DEFAULT_THEME_COLOR = "#0a58ca"  # the navbar's own blue (static/css/app.css)
# WCAG 2 AA for normal text: white text on the colour, and the colour as text on white.
MIN_CONTRAST = 4.5
CACHE_KEY = "branding"
# An upper bound on how long a process may show an old brand when the cache is per process
# (no REDIS_URL, several processes); with Redis, saving drops the one shared copy at once.
CACHE_SECONDS = 300
LOGO_EXTENSIONS = {"image/png": "png", "image/webp": "webp", "image/svg+xml": "svg"}
_G_KEY = "inviteloop_branding"


@dataclass(frozen=True)
class Branding:
    """What the operator set; None where InviteLoop's own value applies."""

    site_name: str | None = None
    support_email: str | None = None
    primary_color: str | None = None
    logo_type: str | None = None
    logo_hash: str | None = None

    @property
    def name(self) -> str:
        return self.site_name or DEFAULT_NAME

    @property
    def theme_color(self) -> str:
        return self.primary_color or DEFAULT_THEME_COLOR

    @property
    def is_default(self) -> bool:
        return self == Branding()

    @property
    def logo_args(self) -> dict | None:
        """The logo's URL values for `core.brand_logo` (absolute_url takes them too)."""
        if not self.logo_hash:
            return None
        return {
            "digest": logo_digest(self.logo_hash),
            "extension": LOGO_EXTENSIONS[self.logo_type],
        }

    @property
    def logo_url(self) -> str | None:
        return url_for("core.brand_logo", **self.logo_args) if self.logo_hash else None

    @property
    def preview_image_args(self) -> dict | None:
        """The logo as a link preview's picture: chat apps show PNG and WebP, not SVG."""
        return self.logo_args if self.logo_type in ("image/png", "image/webp") else None

    @property
    def theme_url(self) -> str | None:
        """The stylesheet that paints the site in the primary colour (a file, not an inline
        style: the Content-Security-Policy allows only the site's own stylesheets)."""
        if not self.primary_color:
            return None
        return url_for("core.brand_theme", color=self.primary_color.removeprefix("#"))

    @property
    def sender_name(self) -> str | None:
        """The display name of every email's sender; None keeps MAIL_DEFAULT_SENDER's."""
        return self.site_name


def logo_digest(logo_hash: str) -> str:
    """The part of the logo's SHA-256 its URL carries: a new logo gets a new URL."""
    return logo_hash[:16]


def current() -> Branding:
    """The brand in force: from this request, else the shared cache, else the database."""
    if has_request_context() and _G_KEY in g:
        return g.get(_G_KEY)
    brand = _cached()
    if brand is None:
        brand = _read()
        if brand is not None:
            cache.set(CACHE_KEY, asdict(brand), timeout=CACHE_SECONDS)
    brand = brand or Branding()
    if has_request_context():
        setattr(g, _G_KEY, brand)
    return brand


def forget() -> None:
    """Drop the cached brand, after a change is committed, so every machine reads it anew."""
    cache.delete(CACHE_KEY)
    announce_change(cache)  # the pages drawn with the old brand
    if has_request_context():
        g.pop(_G_KEY, None)


def _cached() -> Branding | None:
    stored = cache.get(CACHE_KEY)
    if not isinstance(stored, dict):
        return None
    try:
        return Branding(**stored)
    except TypeError:  # written by another version of this class
        return None


def _read() -> Branding | None:
    """The stored brand; None (not cached) when the database cannot answer, so an error
    page can still be drawn with InviteLoop's defaults while it is down."""
    query = select(
        SiteBranding.site_name,
        SiteBranding.support_email,
        SiteBranding.primary_color,
        SiteBranding.logo_type,
        SiteBranding.logo_hash,
    ).where(SiteBranding.id == 1)
    try:
        row = db.session.execute(query).one_or_none()
    except SQLAlchemyError as error:
        log.warning("branding: database unavailable (%s); showing defaults", type(error).__name__)
        return None
    return Branding(**row._asdict()) if row else Branding()


# --- colours ---------------------------------------------------------------------------------


def parse_hex_color(text: str) -> str | None:
    """ "#1A7F5A" or "1a7f5a" or "#abc" -> "#1a7f5a"; None when it is not a hex colour."""
    digits = (text or "").strip().removeprefix("#").lower()
    if len(digits) == 3:
        digits = "".join(2 * digit for digit in digits)
    if len(digits) != 6 or any(digit not in "0123456789abcdef" for digit in digits):
        return None
    return f"#{digits}"


def _channels(color: str) -> tuple[int, int, int]:
    return tuple(int(color[index : index + 2], 16) for index in (1, 3, 5))


def relative_luminance(color: str) -> float:
    """WCAG 2's relative luminance of a "#rrggbb" colour (0 black … 1 white)."""

    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(channel) for channel in _channels(color))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def contrast_with_white(color: str) -> float:
    """White text on the colour and the colour on white: the same ratio, one number."""
    return contrast_ratio(color, "#ffffff")


def readable_on_white(color: str) -> bool:
    return contrast_with_white(color) >= MIN_CONTRAST


def shade(color: str, amount: float) -> str:
    """The colour darkened towards black by `amount` (0.15: Bootstrap's hover shade)."""
    return "#" + "".join(f"{round(channel * (1 - amount)):02x}" for channel in _channels(color))


def rgb_text(color: str) -> str:
    return ", ".join(str(channel) for channel in _channels(color))


def theme_css(color: str) -> str:
    """Bootstrap's primary colour, links and the navbar in `color` (a checked "#rrggbb")."""
    hover, active = shade(color, 0.15), shade(color, 0.2)
    rgb = rgb_text(color)
    return f"""/* The installation's primary colour (core/branding.py). */
:root {{
  --bs-primary: {color}; --bs-primary-rgb: {rgb};
  --bs-link-color: {color}; --bs-link-color-rgb: {rgb};
  --bs-link-hover-color: {hover}; --bs-link-hover-color-rgb: {rgb_text(hover)};
  --bs-primary-text-emphasis: {active};
}}
.site-nav {{ background-color: {color}; --bs-navbar-color: #fff; }}
.btn-primary {{
  --bs-btn-bg: {color}; --bs-btn-border-color: {color};
  --bs-btn-hover-bg: {hover}; --bs-btn-hover-border-color: {hover};
  --bs-btn-active-bg: {active}; --bs-btn-active-border-color: {active};
  --bs-btn-disabled-bg: {color}; --bs-btn-disabled-border-color: {color};
  --bs-btn-focus-shadow-rgb: {rgb};
}}
.btn-outline-primary {{
  --bs-btn-color: {color}; --bs-btn-border-color: {color};
  --bs-btn-hover-bg: {color}; --bs-btn-hover-border-color: {color};
  --bs-btn-active-bg: {color}; --bs-btn-active-border-color: {color};
  --bs-btn-disabled-color: {color}; --bs-btn-disabled-border-color: {color};
  --bs-btn-focus-shadow-rgb: {rgb};
}}
.form-check-input:checked {{ background-color: {color}; border-color: {color}; }}
.pagination {{ --bs-pagination-active-bg: {color}; --bs-pagination-active-border-color: {color}; }}
.list-group {{ --bs-list-group-active-bg: {color}; --bs-list-group-active-border-color: {color}; }}
.nav-pills {{ --bs-nav-pills-link-active-bg: {color}; }}
.timeline-now::before {{ border-color: {color}; }}
"""
