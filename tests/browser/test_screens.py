"""Every page a participant or staff member opens, at phone (390 px) and desktop (1280 px)
width: no serious or critical axe-core violation and no sideways page scroll
(docs/guarantees.md #25)."""

import pytest

from tests.browser.browser import log_in, problems, screenshot

pytestmark = [pytest.mark.server, pytest.mark.browser]

WIDTHS = ["phone", "desktop"]


def _walk(page, base_url: str, paths: list[str]) -> str:
    """The problems of each page, one line each ("" when there are none)."""
    found = {}
    for path in paths:
        response = page.goto(base_url + path)
        assert response is not None
        page_problems = problems(page)
        if response.status >= 500:
            page_problems.append(f"answered {response.status}")
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
        "/referral/claim",
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
    ]
    return list(dict.fromkeys(menu + details))


@pytest.mark.parametrize("width", WIDTHS)
def test_visitor_pages(site, contexts, width):
    page = contexts("visitor", width)
    report = _walk(page, site.base_url, _visitor_paths(site))
    assert not report, "\n" + report


@pytest.mark.parametrize("width", WIDTHS)
def test_participant_pages(site, contexts, width):
    page = contexts(site.held_referrer_email, width)
    report = _walk(page, site.base_url, _participant_paths())
    assert not report, "\n" + report
    page.goto(site.base_url + "/referral/dashboard")
    screenshot(page, f"dashboard-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_pages(site, contexts, width):
    page = contexts(site.admin_email, width)
    report = _walk(page, site.base_url, _staff_paths(page, site))
    assert not report, "\n" + report
    page.goto(site.base_url + "/admin/")
    screenshot(page, f"admin-{width}")
