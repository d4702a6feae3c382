"""Fixtures of the browser tests: one Chromium per test session (per xdist worker), the demo
seed once per database for the whole run, a copy of it and a server on that copy per module
and database, and signed-in browser contexts reused by the tests."""

import pytest
from playwright.sync_api import sync_playwright

from tests.apps import close
from tests.browser import chromium
from tests.browser.site import KINDS, SiteTemplates, run_folder, seeded_site


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        launched = chromium.launch(playwright)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def site_templates(tmp_path_factory):
    templates = SiteTemplates(run_folder(tmp_path_factory) / "seeded-site")
    yield templates
    templates.release()


@pytest.fixture(scope="module", params=KINDS)
def database_kind(request):
    return request.param


@pytest.fixture(scope="module")
def site_copy(database_kind, site_templates, tmp_path_factory):
    """The module's own copy of the seeded database: what its journeys write stays in it."""
    copy = site_templates.copy(database_kind, tmp_path_factory.mktemp("site"))
    yield copy
    copy.drop()


@pytest.fixture(scope="module")
def database_url(site_copy):
    return site_copy.database_url


@pytest.fixture(scope="module")
def site(browser, site_copy, shared_apps, tmp_path_factory):
    mails = str(tmp_path_factory.mktemp("mail"))
    contracts = site_copy.contracts_folder
    app = shared_apps.get(site_copy.database_url, {"CONTRACTS_FOLDER": contracts})
    with seeded_site(app, site_copy.database_url, contracts, mails) as running:
        yield running
    close(app)  # its connections go before its copy does


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
            chromium.load_axe_on_every_page(context)
            page = context.new_page()
            if who != "visitor":
                chromium.log_in(page, site.base_url, who, site.password)
            made[key] = page
        return made[key]

    yield get
    for page in made.values():
        page.context.close()
