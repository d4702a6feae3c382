"""The admin brands the site in a real browser; the branded pages, at 390 px, carry the new
name, logo and colour and pass axe-core (docs/guarantees.md #32, #25).

SQLite only: the markup does not depend on the database (tests/test_branding.py checks the
brand on both)."""

import pytest
from playwright.sync_api import expect

from tests.browser.chromium import problems, visit

pytestmark = [pytest.mark.server, pytest.mark.browser]

# 5.0:1 against white: close to the 4.5:1 the form asks, so the pages are checked near the
# edge of what it accepts.
VIOLET = "#8a3ffc"
VIOLET_RGB = "rgb(138, 63, 252)"
LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40">'
    b'<circle cx="20" cy="20" r="16" fill="#fff"/></svg>'
)


@pytest.fixture(scope="module")
def database_kind():
    return "sqlite"


@pytest.fixture(scope="module")
def branded(site, contexts):
    """Saved through the branding screen, as an admin would."""
    page = contexts(site.admin_email, "desktop")
    page.goto(f"{site.base_url}/admin/settings/branding")
    page.get_by_label("Site name").fill("Violet Club")
    page.get_by_label("Primary colour").fill(VIOLET)
    page.get_by_label("Support email").fill("help@violet.example.com")
    page.get_by_label("Logo").set_input_files(
        {"name": "violet.svg", "mimeType": "image/svg+xml", "buffer": LOGO}
    )
    page.get_by_role("button", name="Save branding").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_contain_text("Branding saved.")
    return page


@pytest.mark.parametrize("who", ["visitor", "admin"])
def test_branded_pages_pass_axe_on_a_phone(site, contexts, branded, who):
    page = contexts("visitor" if who == "visitor" else site.admin_email, "phone")
    paths = ["/", "/auth/signup", "/referral/leaderboard"]
    if who == "admin":
        paths = ["/admin/settings/branding", "/referral/dashboard"]
    for path in paths:
        status, missing = visit(page, site.base_url + path)
        assert status == 200 and missing == [], (path, missing)
        assert page.title().endswith("· Violet Club"), path
        navbar = page.locator("nav.site-nav")
        assert navbar.evaluate("e => getComputedStyle(e).backgroundColor") == VIOLET_RGB
        logo = page.locator(".navbar-brand img.brand-logo")
        assert logo.evaluate("e => e.complete && e.naturalWidth > 0"), path
        expect(page.locator("footer")).to_contain_text("help@violet.example.com")
        assert problems(page) == [], path
