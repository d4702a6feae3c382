"""Numbers as the staff panel writes them, in the reader's language: the digits Python's
"%.Nf" gives (so English stays exactly as it was), with the language's decimal sign."""

from babel.numbers import get_decimal_symbol
from flask_babel import get_locale


def fixed(number: float, places: int = 1, sign: bool = False) -> str:
    """0.8333 -> "0.833" in English, «0,833» in Russian (places=3); `sign` adds "+"."""
    text = f"{number:{'+' if sign else ''}.{places}f}"
    return text.replace(".", get_decimal_symbol(get_locale() or "en"))
