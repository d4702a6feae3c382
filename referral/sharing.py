"""What the dashboard offers for sharing a link: a QR code and ready-made share links."""

from functools import lru_cache
from urllib.parse import quote, urlencode

import segno
from flask_babel import pgettext


# Encoding a QR code is a fifth of a dashboard's CPU, and a link's code never changes: the
# members active now are remembered (a few kB each) in every process.
@lru_cache(maxsize=512)
def qr_svg(link: str) -> str:
    """An inline SVG (no script, no external reference) that scanners read at any size."""
    return segno.make(link, error="m").svg_inline(scale=5, border=2, omitsize=True)


def share_links(link: str, text: str, subject: str) -> list[tuple[str, str]]:
    """Ready-made links of each app, carrying the program's share text (referral/offer.py)."""
    message = f"{text} {link}"
    email = urlencode({"subject": subject, "body": message}, quote_via=quote)
    return [
        (pgettext("share button", "Email"), "mailto:?" + email),
        ("Telegram", "https://t.me/share/url?" + urlencode({"url": link, "text": text})),
        ("WhatsApp", "https://wa.me/?" + urlencode({"text": message})),
        ("X", "https://twitter.com/intent/tweet?" + urlencode({"text": text, "url": link})),
        ("Facebook", "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": link})),
    ]
