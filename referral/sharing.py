"""What the dashboard offers for sharing a link: a QR code and ready-made share links."""

from urllib.parse import quote, urlencode

import segno

SHARE_TEXT = "Join me on InviteLoop with my link:"


def qr_svg(link: str) -> str:
    """An inline SVG (no script, no external reference) that scanners read at any size."""
    return segno.make(link, error="m").svg_inline(scale=5, border=2, omitsize=True)


def share_links(link: str, text: str = SHARE_TEXT) -> list[tuple[str, str]]:
    message = f"{text} {link}"
    return [
        ("Email", "mailto:?" + urlencode({"subject": "Join me", "body": message}, quote_via=quote)),
        ("Telegram", "https://t.me/share/url?" + urlencode({"url": link, "text": text})),
        ("WhatsApp", "https://wa.me/?" + urlencode({"text": message})),
        ("X", "https://twitter.com/intent/tweet?" + urlencode({"text": text, "url": link})),
        ("Facebook", "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": link})),
    ]
