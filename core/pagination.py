"""Reading a page number from a query string, for every paged list and API."""

from flask_babel import lazy_gettext as _l

from core.errors import DomainError

# No list here has a millionth page; past it, the offset would not fit a database integer.
MAX_PAGE = 1_000_000


class PageOutOfRange(DomainError):
    status = 400
    code = "page_out_of_range"
    message = _l("page must be a whole number from 1 to %(last)s.", last=format(MAX_PAGE, ","))


def parse_page(raw: str | None) -> int:
    """The 1-based page asked for; anything that is not a positive number means page 1, and a
    number past MAX_PAGE is refused (PageOutOfRange, 400)."""
    text = (raw or "1").strip()
    try:
        page = int(text)
    except ValueError:
        # Python refuses to read numbers of thousands of digits: those are past the end too.
        if text.isascii() and text.isdigit():
            raise PageOutOfRange() from None
        return 1
    if page > MAX_PAGE:
        raise PageOutOfRange()
    return max(page, 1)
