"""English left on a page rendered in Russian (docs/guarantees.md, "In the reader's language").

`english_leftovers(html)` lists the Latin-script words a reader of the Russian page would see:
the text of the page and the attributes read aloud or shown (title, alt, placeholder,
aria-label, button values). What is not prose is skipped: URLs, email addresses, tokens with a
digit (codes, amounts), anything inside <script>, <style>, <code>, <kbd>, <samp>, <pre> or an
element marked translate="no" (the HTML attribute for names and codes), and the names that are
the same in every language (PROPER_NAMES, plus what the caller passes, e.g. its fixtures'
names).
"""

import re
from html.parser import HTMLParser

# Products, formats and standards, spelled the same in a Russian sentence.
PROPER_NAMES = frozenset(
    {
        "InviteLoop",
        "GraphQL",
        "DOC",
        "DOCX",
        "ODT",
        "JPG",
        "JPEG",
        "Saleor",
        "Stripe",
        "Shopify",
        "Bootstrap",
        "Prometheus",
        "Grafana",
        "WhatsApp",
        "Telegram",
        "Facebook",
        "LinkedIn",
        "VK",
        "QR",
        "CSV",
        "API",
        "URL",
        "SMS",
        "ID",
        "IP",
        "UTC",
        "JSON",
        "HTTP",
        "HTTPS",
        "SVG",
        "PNG",
        "WebP",
        "PDF",
        "ISO",
        "HMAC",
        "JWS",
        "JWKS",
        "SMTP",
        "WCAG",
        "ROI",
        "CRM",
        "Webhook",
        "webhook",
    }
)

# Names of several words, spelled the same in a Russian sentence (a standard's name).
PROPER_PHRASES = ("Standard Webhooks",)

_SKIPPED_ELEMENTS = {"script", "style", "code", "kbd", "samp", "pre", "svg", "template"}
_SHOWN_ATTRIBUTES = ("title", "alt", "placeholder", "aria-label")
_VOID_ELEMENTS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip
_URL_OR_EMAIL = re.compile(r"\S*(?:://|@|www\.)\S*|\S+\.(?:com|org|net|ru|test|example)\S*")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")


class _ShownText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._open: list[bool] = []  # per open element: is its content skipped

    def _skipping(self) -> bool:
        return bool(self._open) and self._open[-1]

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        skipped = (
            self._skipping() or tag in _SKIPPED_ELEMENTS or attributes.get("translate") == "no"
        )
        if not skipped:
            for name in _SHOWN_ATTRIBUTES:
                if attributes.get(name):
                    self.pieces.append(attributes[name])
            if tag == "input" and attributes.get("type") in ("submit", "button", "reset"):
                self.pieces.append(attributes.get("value") or "")
        if tag not in _VOID_ELEMENTS:
            self._open.append(skipped)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_ELEMENTS and self._open:
            self._open.pop()

    def handle_endtag(self, tag):
        if tag not in _VOID_ELEMENTS and self._open:
            self._open.pop()

    def handle_data(self, data):
        if not self._skipping():
            self.pieces.append(data)


def shown_text(html: str) -> str:
    parser = _ShownText()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.pieces)


def english_leftovers(html: str, allowed: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The Latin-script words of the page a Russian reader would see, in order, each once."""
    return latin_words(shown_text(html), allowed)


def latin_words(text: str, allowed: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Latin-script words of plain text (an email, an SMS, a CSV header) not in the allowed."""
    text = _URL_OR_EMAIL.sub(" ", text)
    for phrase in PROPER_PHRASES:
        text = text.replace(phrase, " ")
    found: list[str] = []
    for token in text.split():
        if any(character.isdigit() for character in token):
            continue
        for word in (found_word.strip("'’") for found_word in _LATIN_WORD.findall(token)):
            if len(word) < 2 or word in PROPER_NAMES or word in allowed or word in found:
                continue
            found.append(word)
    return found
