"""Checking an uploaded logo by what it holds, never by its name or the browser's word.

PNG and WebP are known by their first bytes. An SVG is a program as much as a picture (it
may carry scripts, event handlers, links to other sites), so it is refused, not rewritten,
unless it uses only drawing elements and attributes from the lists below and refers to
nothing outside itself; a DOCTYPE (and with it any entity) is refused before parsing. It is
then served with a sandboxing Content-Security-Policy as well (core/routes.py).
"""

import re
import xml.etree.ElementTree as ElementTree

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.errors import DomainError

MAX_LOGO_BYTES = 256 * 1024
ALLOWED_LABEL = "PNG, WebP or SVG"

_PNG = b"\x89PNG\r\n\x1a\n"
_SVG_NS = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_DRAWING_ELEMENTS = frozenset(
    {
        "svg", "g", "defs", "title", "desc", "symbol", "use", "path", "rect", "circle",
        "ellipse", "line", "polyline", "polygon", "text", "tspan", "linearGradient",
        "radialGradient", "stop", "clipPath", "mask", "pattern",
    }
)  # fmt: skip
_DRAWING_ATTRIBUTES = frozenset(
    {
        "id", "class", "viewBox", "width", "height", "x", "y", "x1", "y1", "x2", "y2", "cx",
        "cy", "r", "rx", "ry", "d", "points", "fill", "fill-opacity", "fill-rule", "stroke",
        "stroke-width", "stroke-opacity", "stroke-linecap", "stroke-linejoin",
        "stroke-dasharray", "stroke-miterlimit", "opacity", "transform", "offset",
        "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "spreadMethod",
        "clip-path", "clip-rule", "mask", "font-family", "font-size", "font-weight",
        "text-anchor", "dominant-baseline", "letter-spacing", "preserveAspectRatio",
        "version", "role", "aria-label", "aria-hidden", "href", "patternUnits",
        "patternTransform", "maskUnits", "clipPathUnits", "fx", "fy", "style",
    }
)  # fmt: skip
_XML_DECLARATION = re.compile(rb"^\s*(\xef\xbb\xbf)?\s*<\?xml\s[^>]*\?>")
_OUTSIDE_REFERENCE = re.compile(r"url\s*\(\s*['\"]?(?!#)|@import|expression\s*\(|javascript:", re.I)


class UnsupportedLogo(DomainError):
    status = 415
    code = "unsupported_logo"
    field = "logo"
    message = _l("Upload a %(formats)s image.", formats=ALLOWED_LABEL)


class UnsafeSvg(DomainError):
    status = 415
    code = "unsafe_svg"
    field = "logo"


class LogoTooLarge(DomainError):
    status = 413
    code = "logo_too_large"
    field = "logo"
    message = _l(
        "The logo is larger than %(size)s KB; upload a smaller one.", size=MAX_LOGO_BYTES // 1024
    )


def logo_type(data: bytes) -> str:
    """The content type of an acceptable logo; a DomainError naming what is wrong otherwise."""
    if len(data) > MAX_LOGO_BYTES:
        raise LogoTooLarge()
    if not data:
        raise UnsupportedLogo(
            _("The file is empty. Upload a %(formats)s image.", formats=ALLOWED_LABEL)
        )
    if data.startswith(_PNG):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if _looks_like_svg(data):
        check_svg(data)
        return "image/svg+xml"
    raise UnsupportedLogo(
        _("This file is not a %(formats)s image; upload one of those.", formats=ALLOWED_LABEL)
    )


def _looks_like_svg(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype")) and b"<svg" in data.lower()


def check_svg(data: bytes) -> None:
    """Refuse an SVG that could run code, load something or is not plain drawing."""
    if b"<!doctype" in data.lower() or b"<!entity" in data.lower():
        raise UnsafeSvg(_("SVG logos may not declare a DOCTYPE or entities."))
    if b"<?" in _XML_DECLARATION.sub(b"", data, count=1):  # e.g. <?xml-stylesheet href=...?>
        raise UnsafeSvg(_("SVG logos may not hold processing instructions such as stylesheets."))
    try:
        root = ElementTree.fromstring(data)  # noqa: S314 (no DOCTYPE, so no entities, above)
    except ElementTree.ParseError:
        raise UnsupportedLogo(_("This SVG file is not well-formed XML.")) from None
    if root.tag != f"{_SVG_NS}svg":
        raise UnsupportedLogo(_("This file is not an SVG image (its root is not <svg>)."))
    for element in root.iter():
        _check_element(element)


def _check_element(element: ElementTree.Element) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    name = tag.removeprefix(_SVG_NS)
    if name == tag or name not in _DRAWING_ELEMENTS:
        raise UnsafeSvg(
            f"SVG logos may hold only drawing elements; <{_local(tag) or '?'}> is not allowed."
        )
    for attribute, value in element.attrib.items():
        local = _local(attribute)
        if attribute == _XLINK_HREF or local == "href":
            if not value.strip().startswith("#"):
                raise UnsafeSvg(_("SVG logos may not link or load anything outside themselves."))
        elif local not in _DRAWING_ATTRIBUTES or attribute.startswith("{"):
            raise UnsafeSvg(f"SVG logos may not use the attribute “{local}”.")
        if _OUTSIDE_REFERENCE.search(value):
            raise UnsafeSvg(_("SVG logos may not link or load anything outside themselves."))
    if element.text and _OUTSIDE_REFERENCE.search(element.text):
        raise UnsafeSvg(_("SVG logos may not link or load anything outside themselves."))


def _local(name: str) -> str:
    return name.rpartition("}")[2]
