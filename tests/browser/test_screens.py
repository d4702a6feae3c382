"""Every page a participant or staff member opens, at phone (390 px) and desktop (1280 px)
width: no serious or critical axe-core violation and no sideways page scroll; and the
signposts that keep people oriented (docs/guarantees.md #25).

SQLite only: the pages' markup does not depend on the database, and axe-core's checks are
the suite's slowest part (a walk takes about a minute on a 2-core machine). The journey in
test_journey.py runs on both databases."""

import csv
import io
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.browser import chromium
from tests.browser.chromium import problems, screenshot, screenshot_section, visit

# Started first: the walks take most of a minute.
pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.slow]

WIDTHS = ["phone", "desktop"]


@pytest.fixture(scope="module")
def database_kind():
    return "sqlite"


def _walk(page, base_url: str, paths: list[str]) -> str:
    """The problems of each page, one line each ("" when there are none)."""
    found = {}
    for path in paths:
        status, missing = visit(page, base_url + path)
        page_problems = problems(page) + [f"file not found: {item}" for item in missing]
        if status >= 500:
            page_problems.append(f"answered {status}")
        if page_problems:
            found[path] = page_problems
    return "\n".join(f"{path}: {problem}" for path, items in found.items() for problem in items)


def _visitor_paths(site) -> list[str]:
    return [
        "/",
        f"/?ref={site.referral_code}",
        f"/r/{site.referral_code}",  # lands on the signup page through the link
        "/auth/signup",
        "/auth/login",
        "/auth/reset",
        site.reset_path,
        site.unsubscribe_path,
        site.stop_invitations_path,
        "/auth/phone",
        "/referral/leaderboard",
        "/no-such-page",
    ]


def _participant_paths() -> list[str]:
    return [
        "/referral/dashboard",
        "/rewards/",
        "/referral/leaderboard",
        "/referral/tree",
        "/auth/profile",
        "/referral/invite",
        "/referral/claim",
        "/admin/",  # a participant gets the 403 page
        "/no-such-page",
    ]


def _staff_paths(page, site) -> list[str]:
    """Every screen of the panel's menu (so a new screen is walked too), and the detail pages
    behind its lists."""
    page.goto(site.base_url + "/admin/")
    menu = page.locator("nav[aria-label='Staff panel'] a").evaluate_all(
        "links => links.map(link => new URL(link.href).pathname + new URL(link.href).search)"
    )
    assert len(menu) > 10, menu
    details = [
        f"/admin/review/referrals/{site.held_referral_id}",
        f"/admin/participants/{site.participant_id}",
        f"/admin/participants/{site.participant_id}/tree",
        f"/admin/programs/{site.program_id}",
        "/admin/programs/new",
        f"/admin/leads/{site.lead_id}",
        "/admin/leads/new",
        "/admin/conversions/new",
        "/admin/campaigns/stats",
        "/admin/integrations/webhooks/new",
        f"/admin/leads/{site.lead_id}/edit",
        f"/admin/leads/{site.lead_id}/contracts/new",
        f"/admin/services/{site.service_id}/edit",
        f"/admin/campaigns/{site.campaign_id}/edit",
        f"/admin/rewards/{site.pending_reward_id}/approve",
        f"/admin/rewards/{site.pending_reward_id}/cancel",
    ]
    return list(dict.fromkeys(menu + details))


@pytest.mark.parametrize("width", WIDTHS)
def test_visitor_pages(site, contexts, width):
    page = contexts("visitor", width)
    report = _walk(page, site.base_url, _visitor_paths(site))
    assert not report, "\n" + report
    # A form sent empty: every message beside its field, still nothing an axe-core check minds.
    page.goto(site.base_url + "/auth/signup")
    page.locator("#content form[method=post] [type=submit]").click()
    page.locator(".invalid-feedback").first.wait_for()
    assert problems(page) == []
    if width == "desktop":
        page.goto(site.base_url + "/referral/leaderboard")
        screenshot(page, "leaderboard", width, whole_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_participant_pages(site, contexts, width):
    page = contexts(site.held_referrer_email, width)
    report = _walk(page, site.base_url, _participant_paths())
    assert not report, "\n" + report
    page.goto(site.base_url + "/referral/dashboard")
    screenshot(page, "dashboard", width, whole_page=width == "desktop")
    if width == "desktop":
        page.goto(site.base_url + "/rewards/")
        screenshot(page, "ledger", width, whole_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_pages(site, contexts, width):
    page = contexts(site.admin_email, width)
    report = _walk(page, site.base_url, _staff_paths(page, site))
    assert not report, "\n" + report
    page.goto(site.base_url + "/admin/")
    screenshot(page, "admin", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_tree_opened_in_place_stays_usable(site, contexts, width):
    """Levels opened, and one person's branch loaded in place by tree.js."""
    page = contexts(site.held_referrer_email, width)
    page.goto(site.base_url + "/referral/dashboard")
    for level in (1, 2):
        page.locator(f"#tree-level-{level} > summary").click()
    branch = page.locator("#tree-level-1 details[data-tree-src]").first
    branch.locator("summary").click()
    branch.locator("[data-tree-body] .tree-members").wait_for()
    assert problems(page) == []
    screenshot_section(page, "#tree", "tree", width)


def test_every_page_offers_a_skip_link_and_marks_the_current_page(site, contexts):
    page = contexts(site.held_referrer_email, "desktop")
    page.goto(site.base_url + "/rewards/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    assert skip.evaluate("link => link === document.activeElement") and skip.is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"

    current = page.locator("nav[aria-label=Main] [aria-current=page]")
    assert current.all_inner_texts() == ["Rewards"]
    assert current.evaluate("link => getComputedStyle(link).textDecorationLine") == "underline"
    # The navbar's links read at WCAG AA contrast (axe-core checks the ratio in the walks).
    for path in ("/favicon.svg", "/manifest.webmanifest", "/icon-192.png"):
        assert page.request.get(f"{site.base_url}/static{path}").ok, path
    assert page.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"


def test_on_a_phone_the_staff_menu_folds_behind_a_button(site, contexts):
    page = contexts(site.admin_email, "phone")
    page.goto(site.base_url + "/admin/review")
    menu = page.get_by_role("navigation", name="Staff panel")
    assert not menu.is_visible()
    assert page.get_by_role("heading", name="Review queue").is_visible()
    page.get_by_role("button", name="Staff menu").click()
    menu.get_by_role("link", name="Rewards").wait_for()  # the panel slides in
    menu.get_by_role("link", name="Rewards").click()
    page.wait_for_url("**/admin/rewards")


def test_on_a_phone_held_referrals_and_review_reasons_read_in_full(site, contexts):
    page = contexts(site.held_referrer_email, "phone")
    page.goto(site.base_url + "/referral/dashboard")
    status = page.locator("td[data-label=Status]").get_by_text("Under review").first
    assert status.is_visible() and _inside_window(status)

    staff = contexts(site.admin_email, "phone")
    staff.goto(site.base_url + "/admin/review")
    reason = staff.locator("[data-reason=same_ip]").first
    assert reason.get_by_text("Same IP address as the referrer").is_visible()
    assert _inside_window(reason)


def test_on_a_phone_chart_labels_keep_a_readable_size(site, contexts):
    page = contexts(site.admin_email, "phone")
    page.goto(site.base_url + "/admin/")
    figure = page.locator("figure:has(svg)").first
    sizes = figure.locator("span").evaluate_all(
        "spans => spans.map(span => parseFloat(getComputedStyle(span).fontSize))"
    )
    assert sizes and min(sizes) >= 12, sizes
    assert figure.locator("svg text").count() == 0  # no text that shrinks with the drawing


def test_at_desktop_width_admin_tables_fit_their_box(site, contexts):
    """The rewards list's Actions and the review queue's reasons are seen without scrolling
    the table sideways."""
    page = contexts(site.admin_email, "desktop")
    for path in ("/admin/rewards", "/admin/review"):
        page.goto(site.base_url + path)
        box = page.locator(".table-responsive").first
        widths = box.evaluate("box => [box.scrollWidth, box.clientWidth]")
        assert widths[0] <= widths[1], f"{path}: table {widths[0]} px in a {widths[1]} px box"
    page.goto(site.base_url + "/admin/rewards")
    assert _inside_window(page.get_by_role("link", name="Cancel…").first)


def test_shared_links_show_a_preview_card(site, contexts):
    page = contexts("visitor", "desktop")
    for path in ("/", f"/r/{site.referral_code}"):
        page.goto(site.base_url + path)
        meta = {
            name: page.locator(f"meta[property='{name}'], meta[name='{name}']").get_attribute(
                "content"
            )
            for name in ("og:title", "og:description", "og:image", "og:url", "twitter:card")
        }
        assert all(meta.values()), (path, meta)
        assert meta["twitter:card"] == "summary_large_image"
        assert meta["og:image"] == f"{site.base_url}/static/social-card.png"
        image = page.request.get(meta["og:image"])
        assert image.ok and image.headers["content-type"] == "image/png"
    assert meta["og:url"] == f"{site.base_url}/auth/signup?ref={site.referral_code}"


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_land_in_the_panel_and_download_the_referrals_they_filtered(site, browser, width):
    """docs/guarantees.md #29: signed in, the admin is on /admin/; the Referrals screen's
    export holds the rows the filtered screen lists."""
    context = browser.new_context(viewport=chromium.VIEWPORTS[width], accept_downloads=True)
    try:
        page = context.new_page()
        chromium.log_in(page, site.base_url, site.admin_email, site.password)
        assert urlparse(page.url).path == "/admin/"
        page.goto(site.base_url + "/admin/referrals")
        page.get_by_label("Status").select_option("review")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/admin/referrals?*status=review*")
        assert problems(page) == []
        shown = page.locator("tbody tr").evaluate_all(
            "rows => rows.map(row => Number(row.dataset.referral))"
        )
        statuses = page.locator("tbody .referral-status").all_inner_texts()
        assert site.held_referral_id in shown and set(statuses) == {"Under review"}
        with page.expect_download() as started:
            page.get_by_role("link", name="Export referrals (CSV)").click()
        download = started.value
        assert download.suggested_filename == "referrals.csv"
        rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
        assert [int(row["id"]) for row in rows] == shown
        assert {row["status"] for row in rows} == {"review"}
    finally:
        context.close()


def _inside_window(locator) -> bool:
    box = locator.bounding_box()
    width = locator.page.viewport_size["width"]
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


def test_on_a_phone_analytics_reads_at_a_glance(site, contexts):
    """The headline cards first, each change in words; the funnel's labels readable; the
    definitions folded away until asked for (docs/guarantees.md #28)."""
    page = contexts(site.admin_email, "phone")
    page.goto(site.base_url + "/admin/")
    clicks = page.locator("#card-clicks")
    assert clicks.is_visible() and _inside_window(clicks)
    change = " ".join(clicks.locator(".change").inner_text().split())
    assert re.match(r"(▲ up \d|▼ down \d|■ no change|no comparison)", change), change
    assert page.locator("#card-k-factor").get_by_text("was").is_visible()
    labels = page.locator(".funnel-label").evaluate_all(
        "labels => labels.map(label => parseFloat(getComputedStyle(label).fontSize))"
    )
    assert len(labels) == 4 and min(labels) >= 12, labels
    definitions = page.locator("#definitions")
    assert not definitions.get_by_text("Invites per participant").is_visible()
    definitions.locator("summary").click()
    assert definitions.get_by_text("Invites per participant").is_visible()
    assert problems(page) == []
    assert (
        page.locator("select#program").evaluate(
            "select => getComputedStyle(select).backgroundImage"
        )
        != "none"
    )  # drawn with its arrow, like a select


def test_campaign_statistics_take_a_date_range_in_the_browser(site, contexts):
    page = contexts(site.admin_email, "phone")
    page.goto(site.base_url + "/admin/campaigns/stats")
    assert page.get_by_text("ROI = (revenue − cost) ÷ cost").is_visible()
    page.get_by_label("From (UTC)").fill("2020-01-01")
    page.get_by_label("To (UTC, inclusive)").fill("2020-01-31")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**start=2020-01-01**")
    # Nothing happened in January 2020: every campaign's ROI is "—".
    roi = page.locator("#campaign-stats tbody tr[data-campaign] td:last-child").all_inner_texts()
    assert roi and set(roi) == {"—"}
    assert problems(page) == []


@pytest.mark.parametrize("axe_loaded_with_the_page", [False, True])
def test_the_check_names_what_fails_a_page(browser, axe_loaded_with_the_page):
    """The walks' check itself: a faint text and an image without a text alternative are
    reported with the elements to look at, a page too wide for the window too."""
    context = browser.new_context(viewport=chromium.PHONE)
    if axe_loaded_with_the_page:
        chromium.load_axe_on_every_page(context)
    page = context.new_page()
    page.set_content(
        '<html lang="en"><head><title>Check</title></head><body style="margin:0"><main>'
        "<h1>Check</h1>"
        '<p id="faint" style="color:#ccc;background:#fff">Hard to read</p>'
        '<img id="wordless" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
        '<div style="width:2000px">Too wide</div></main></body></html>'
    )
    found = problems(page)
    context.close()
    assert "axe color-contrast (serious): #faint" in found
    assert "axe image-alt (critical): #wordless" in found
    assert "page scrolls sideways: 2000 px wide in a 390 px window" in found
