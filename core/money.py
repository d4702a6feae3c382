"""Money is integer minor units plus an ISO 4217 code; this is how many decimals each has,
how a typed amount ("12.50") becomes minor units and back, exactly (Decimal, never float),
and how an amount reads in the current language ("$10.00" in English, "10,00 $" in Russian).
"""

from decimal import Decimal, InvalidOperation

from babel import numbers as babel_numbers
from flask_babel import ngettext

from core.i18n import current_locale

# Amount columns are 32-bit integers.
MAX_MINOR_UNITS = 2**31 - 1

# The ISO 4217 codes of currencies in circulation (funds, metals and test codes left out):
# what a currency select offers and accepts.
_IN_CIRCULATION = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL "
    "BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP "
    "ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR "
    "IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL "
    "LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR "
    "NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD "
    "SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX "
    "USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG"
)
CURRENCIES = tuple(_IN_CIRCULATION.split())

# Currencies whose minor unit is not a hundredth.
_EXPONENTS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI"), 0
    ),
    **dict.fromkeys(("VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
    "UYW": 4,
}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}


def exponent(currency: str) -> int:
    """Decimals of the currency's minor unit: 2 for USD, 0 for JPY, 3 for KWD."""
    return _EXPONENTS.get(currency.upper(), 2)


def format_amount(amount: int, currency: str, kind: str | None = None) -> str:
    """Minor units for people, in the current language. English as it always read: "$10.00",
    "¥500", "12.50 CHF", "120 points"; another language as Babel's CLDR data writes it, with
    no-break spaces: "10,00\u00a0$", "12,50\u00a0CHF", "120 баллов" in Russian."""
    locale = current_locale()
    if kind == "points":
        number = f"{amount:,}"
        if locale.language != "en":
            number = babel_numbers.format_decimal(amount, locale=locale)
        return ngettext("%(points)s point", "%(points)s points", abs(amount), points=number)
    if locale.language != "en":
        value = Decimal(amount).scaleb(-exponent(currency))
        return babel_numbers.format_currency(value, currency.upper(), locale=locale)
    decimals = exponent(currency)
    whole, fraction = divmod(abs(amount), 10**decimals)
    number = f"{whole:,}" + (f".{fraction:0{decimals}d}" if decimals else "")
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}"


class AmountNotANumber(ValueError):
    """The text is not a finite decimal number."""


class AmountTooPrecise(ValueError):
    """The text has more decimals than the unit allows."""


class AmountTooLarge(ValueError):
    """The amount does not fit an amount column."""


def to_minor_units(text: str | None, decimals: int) -> int:
    """ "12.50" with 2 decimals -> 1250, exactly; each refusal is its own error, so every form
    can word it for its own field."""
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation:
        raise AmountNotANumber() from None
    if not value.is_finite():
        raise AmountNotANumber()
    minor = value.scaleb(decimals)
    if minor != minor.to_integral_value():
        raise AmountTooPrecise()
    if abs(minor) > MAX_MINOR_UNITS:
        raise AmountTooLarge()
    return int(minor)


def amount_text(amount: int, decimals: int) -> str:
    """1250 with 2 decimals -> "12.50": a stored amount as a form or an export shows it."""
    return f"{Decimal(amount).scaleb(-decimals):.{decimals}f}"


def currency_amount_text(amount: int, currency: str) -> str:
    """1250 USD -> "12.50", 500 JPY -> "500": a stored amount in its currency's decimals."""
    return amount_text(amount, exponent(currency))
