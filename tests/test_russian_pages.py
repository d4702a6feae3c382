"""Every page of the app, rendered in Russian, shows no English a reader would see
(docs/guarantees.md #43): each GET page of the URL map (tests/every_page.py), as the role
that may see it, from a small seeded set of data. A failure lists every page with its
leftover words, so what remains to translate shows at a glance."""

import pytest

from tests.every_page import NOT_PAGES, PAGES, SEEDED_NAMES, browser, seed
from tests.russian import english_leftovers


def get_endpoints(app) -> set[str]:
    return {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in rule.methods}


def test_every_get_endpoint_is_a_listed_page_or_said_not_to_be_one(app):
    endpoints = get_endpoints(app)
    unlisted = sorted(endpoints - PAGES.keys() - NOT_PAGES.keys())
    assert unlisted == [], "add each to PAGES (or NOT_PAGES, with why) in tests/every_page.py"
    assert sorted((PAGES.keys() | NOT_PAGES.keys()) - endpoints) == [], "gone from the app"
    assert PAGES.keys().isdisjoint(NOT_PAGES.keys())


@pytest.fixture
def config_overrides():
    return {"PAYOUT_MINIMUM": 500}  # the seeded $10.00 of credit can be asked for


def test_every_page_reads_in_russian(app, backend):
    if backend != "sqlite":
        pytest.skip("rendered once, on SQLite: the words do not depend on the database")
    seeded = seed(app)
    found: dict[str, str] = {}
    browsers = {}  # one per role: logging in again for each page would hit the login limits
    for endpoint, page in sorted(PAGES.items()):
        if page.who not in browsers:
            browsers[page.who] = browser(app, seeded, page.who)
        client = browsers[page.who]
        if page.prepare:
            page.prepare(client)
        path = page.path(seeded)
        response = client.get(path)
        html = response.get_data(as_text=True)
        if response.status_code != 200:
            found[endpoint] = f"{path}: answered {response.status_code}"
            continue
        if '<html lang="ru"' not in html and "<html" in html:
            found[endpoint] = f"{path}: not in Russian (<html lang>)"
            continue
        leftovers = english_leftovers(html, allowed=SEEDED_NAMES)
        if leftovers:
            found[endpoint] = f"{path}: {' '.join(leftovers)}"
    report = "\n".join(f"  {endpoint} {words}" for endpoint, words in found.items())
    assert not found, f"{len(found)} of {len(PAGES)} pages show English in Russian:\n{report}"
