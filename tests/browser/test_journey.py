"""A friend's first minutes on a phone, in a real browser: the referral link, signup, the
dashboard and the copy button (docs/guarantees.md #25); a participant inviting friends by
email and choosing their emails (#31). On SQLite and PostgreSQL."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.chromium import PHONE, log_in, problems

pytestmark = [pytest.mark.server, pytest.mark.browser]


@pytest.fixture
def phone(browser, site):
    context = browser.new_context(
        viewport=PHONE,
        base_url=site.base_url,
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_a_friend_joins_through_a_link_and_copies_their_own(site, phone):
    phone.goto(f"/r/{site.referral_code}")
    assert re.search(rf"/auth/signup\?ref={site.referral_code}$", phone.url)
    assert phone.locator("#referral_code").input_value() == site.referral_code

    phone.locator("#name").fill("Nora Newcomer")
    phone.locator("#email").fill("nora.newcomer@example.com")
    phone.locator("#password").fill("correct horse battery staple")
    phone.get_by_role("button", name="Create my account").click()

    phone.wait_for_url("**/referral/dashboard")
    assert phone.get_by_role("heading", name="Hi Nora Newcomer").is_visible()
    assert problems(phone) == []
    link = phone.locator("#referral-link").input_value()
    assert re.fullmatch(rf"{re.escape(site.base_url)}/r/[A-Z0-9]{{6,8}}", link)

    copy = phone.get_by_role("button", name="Copy", exact=True)
    copy.click()
    # The copy is a promise (the clipboard API): wait for the button to say it is done.
    expect(phone.get_by_role("button", name="Copied!")).to_be_visible()
    assert phone.evaluate("navigator.clipboard.readText()") == link


def test_a_participant_invites_friends_and_chooses_their_emails_on_a_phone(site, phone):
    """docs/guarantees.md #31: the dashboard's invitation form and the profile's choices."""
    log_in(phone, site.base_url, site.held_referrer_email, site.password)
    phone.goto("/referral/dashboard")
    phone.get_by_label("Your friends' email addresses").fill("not-an-email, pia@example.com")
    phone.get_by_role("button", name="Send invitations").click()
    # The answer to a click is a new page: wait for it, as the visitor would.
    expect(phone.get_by_text("These are not email addresses: not-an-email.")).to_be_visible()
    assert problems(phone) == []  # the refused form, on its own page

    phone.get_by_label("Your friends' email addresses").fill("pia@example.com")
    phone.get_by_role("button", name="Send invitations").click()
    phone.wait_for_url("**/referral/dashboard")
    assert phone.get_by_text("Thanks! Your invitation is on its way.").is_visible()

    phone.goto("/auth/profile")
    news = phone.get_by_role("checkbox", name="News and offers")
    assert news.is_checked()
    news.uncheck()
    phone.get_by_role("button", name="Save email choices").click()
    expect(phone.get_by_text("Your email choices are saved.")).to_be_visible()
    assert not phone.get_by_role("checkbox", name="News and offers").is_checked()
    assert phone.get_by_role("checkbox", name="Payouts").is_checked()
    assert problems(phone) == []
