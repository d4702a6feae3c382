"""A participant's profile and the leaderboard in a real browser, at 390 and 1280 px: tied
with the leader they share first place and their row is marked; they change their public
name, leave the board and rejoin it, and change their password (docs/guarantees.md #25,
#27). On SQLite and PostgreSQL."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select, update

from extensions import db
from models import User, utcnow
from tests.browser import chromium
from tests.browser.chromium import VIEWPORTS, problems

pytestmark = [pytest.mark.server, pytest.mark.browser]

NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture(scope="module")
def tied(site, shared_apps, database_url):
    """The held referrer and another participant, both given the board's highest count (the
    other reached it first): a tie for first place. Set before anyone opens the board, so
    no cached page predates it."""
    app = shared_apps.get(database_url, {})
    with app.app_context():
        me = db.session.scalar(select(User).where(User.email == site.held_referrer_email))
        other = db.session.scalars(
            select(User).where(User.referral_count > 0, User.active, User.id != me.id)
        ).first()
        top = db.session.scalar(select(func.max(User.referral_count)))
        now = utcnow()
        for person, reached in ((other, now - timedelta(seconds=1)), (me, now)):
            db.session.execute(
                update(User)
                .where(User.id == person.id)
                .values(referral_count=top, last_referral_at=reached, display_name=None)
            )
        db.session.commit()
        return {"email": me.email, "public_name": me.public_name, "count": top}


def settled_problems(page) -> list[str]:
    # After a click the new page may still be loading its styles; axe must see it finished.
    page.wait_for_load_state("load")
    return problems(page)


def _board_rows(page) -> list[tuple[str, str, str]]:
    rows = page.locator("table tbody tr")
    return [
        tuple(cell.strip() for cell in rows.nth(index).locator("td").all_inner_texts())
        for index in range(rows.count())
    ]


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_a_tie_for_first_place_shares_the_rank_and_marks_my_row(browser, site, tied, width):
    context = browser.new_context(viewport=VIEWPORTS[width], base_url=site.base_url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        chromium.log_in(page, site.base_url, tied["email"], site.password)
        page.goto("/referral/leaderboard")
        first, second = _board_rows(page)[:2]
        assert first[0] == second[0] == "1"
        assert first[2] == second[2] == str(tied["count"])
        mine = page.locator('tbody tr[aria-current="true"]')
        assert mine.count() == 1
        assert mine.locator("td").first.inner_text().strip() == "1"
        assert re.fullmatch(
            rf"{re.escape(tied['public_name'])}\s+You",
            mine.locator("td").nth(1).inner_text().strip(),
        )
        assert f"You are #1 with {tied['count']} referrals" in page.locator("#my-rank").inner_text()
        assert settled_problems(page) == []
    finally:
        context.close()


def test_profile_changes_in_the_browser(browser, site, tied):
    context = browser.new_context(viewport=VIEWPORTS["phone"], base_url=site.base_url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        chromium.log_in(page, site.base_url, tied["email"], site.password)
        page.goto("/auth/profile")
        assert settled_problems(page) == []

        page.get_by_label("Public name (optional)").fill("Top Sharer")
        page.get_by_role("button", name="Save my details").click()
        expect(page.get_by_text("The leaderboard shows you as Top Sharer.")).to_be_visible()
        page.goto("/referral/leaderboard")
        assert "Top Sharer" in page.locator('tbody tr[aria-current="true"]').inner_text()

        page.goto("/auth/profile")
        page.get_by_role("button", name="Leave the leaderboard").click()
        expect(page.get_by_text("You left the public leaderboard").first).to_be_visible()
        page.goto("/referral/leaderboard")
        assert "Top Sharer" not in page.locator("main").inner_text()
        expect(page.get_by_text("You have left the public board")).to_be_visible()
        assert settled_problems(page) == []
        page.get_by_role("link", name="Rejoin it from your profile").click()
        page.get_by_role("button", name="Rejoin the leaderboard").click()
        expect(page.get_by_text("You are back on the public leaderboard.")).to_be_visible()

        # Two mistakes, both shown after one submit; then the change itself.
        page.get_by_label("Current password").fill("not my password")
        page.get_by_label("New password").fill("password")
        page.get_by_role("button", name="Change my password").click()
        expect(page.get_by_text("This is not your current password.")).to_be_visible()
        expect(page.get_by_text("This is one of the most common passwords")).to_be_visible()
        assert settled_problems(page) == []
        page.get_by_label("Current password").fill(site.password)
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change my password").click()
        expect(page.get_by_text("Password changed.")).to_be_visible()

        page.set_viewport_size(VIEWPORTS["desktop"])
        page.reload()
        assert settled_problems(page) == []
    finally:
        context.close()
    again = browser.new_context(base_url=site.base_url)
    try:
        chromium.log_in(again.new_page(), site.base_url, tied["email"], NEW_PASSWORD)
    finally:
        again.close()
