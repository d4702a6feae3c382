"""Reading a page number from a query string, for every paged list and API."""


def parse_page(raw: str | None) -> int:
    """The 1-based page asked for; anything that is not a positive number means page 1."""
    try:
        page = int(raw or 1)
    except (TypeError, ValueError):
        return 1
    return max(page, 1)
