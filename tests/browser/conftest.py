"""Fixtures of the browser tests: one Chromium per test session (per xdist worker), one
seeded site per module and database, and signed-in browser contexts reused by the tests."""

import pytest
from playwright.sync_api import sync_playwright

from tests.browser import chromium
from tests.browser.site import seeded_site


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        launched = chromium.launch(playwright)
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request):
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="module")
def site(browser, database_url, shared_apps, tmp_path_factory):
    contracts = str(tmp_path_factory.mktemp("contracts"))
    mails = str(tmp_path_factory.mktemp("mail"))
    app = shared_apps.get(database_url, {"CONTRACTS_FOLDER": contracts})
    with seeded_site(app, database_url, contracts, mails) as running:
        yield running


@pytest.fixture(scope="module")
def contexts(browser, site):
    """Browser contexts (cookie jars) by (who, viewport), made on first use and kept for the
    module: signing in once per person and width keeps the suite fast."""
    made = {}

    def get(who: str, viewport: str):
        key = (who, viewport)
        if key not in made:
            context = browser.new_context(
                viewport=chromium.VIEWPORTS[viewport], base_url=site.base_url
            )
            context.set_default_timeout(10_000)
            page = context.new_page()
            if who != "visitor":
                chromium.log_in(page, site.base_url, who, site.password)
            made[key] = page
        return made[key]

    yield get
    for page in made.values():
        page.context.close()
