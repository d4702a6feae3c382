"""The offer and the timeline on a phone, in a real browser (docs/guarantees.md #26): a friend
opens a link and reads what they get before signing up; after their purchase the referrer's
dashboard tells the referral's story up to "reward on hold until DATE", and the friend's
ledger says how to use the reward. On SQLite and PostgreSQL."""

from datetime import timedelta

import pytest

from extensions import db
from models import utcnow
from tests import factories
from tests.apps import other_app
from tests.browser.chromium import PHONE, log_in, problems

pytestmark = [pytest.mark.server, pytest.mark.browser]


@pytest.fixture
def phone(browser, site):
    context = browser.new_context(viewport=PHONE, base_url=site.base_url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _buy(database_url: str, email: str, order: str) -> None:
    """The shop reports the friend's purchase, a minute after the click."""
    later = utcnow() + timedelta(minutes=1)
    with other_app(database_url) as app, app.app_context():
        outcome = factories.purchase(email, order, 2500, now=later)
        db.session.commit()
    assert outcome.outcome == "accepted", outcome


def test_a_friend_reads_the_offer_signs_up_buys_and_both_see_what_happens(
    site, phone, browser, database_url
):
    phone.goto(f"/r/{site.referral_code}")
    invitation = phone.locator("#invitation")
    assert invitation.is_visible()
    assert " invited you — get $5.00 credit on your first purchase of $20.00 or more." in (
        invitation.inner_text()
    )
    assert problems(phone) == []

    phone.locator("#name").fill("Olga Offer")
    phone.locator("#email").fill("olga.offer@example.com")
    phone.locator("#password").fill("correct horse battery staple")
    phone.get_by_role("button", name="Create my account").click()
    phone.wait_for_url("**/referral/dashboard")
    assert phone.locator("#offer-heading").inner_text() == "Give $5, get $10"
    assert "when you join with my link:" in phone.locator("#share-message").input_value()

    _buy(database_url, "olga.offer@example.com", "olga-order-1")

    phone.goto("/rewards/")
    assert phone.get_by_role("heading", name="How to use your rewards").is_visible()
    assert problems(phone) == []

    referrer = browser.new_context(viewport=PHONE, base_url=site.base_url)
    try:
        page = referrer.new_page()
        log_in(page, site.base_url, site.held_referrer_email, site.password)
        page.goto("/referral/dashboard")
        row = page.locator("tr", has_text="Olga O.")  # the list shows public names
        row.locator("summary").click()
        timeline = row.locator(".timeline-steps")
        assert timeline.is_visible()
        hold_ends = (utcnow() + timedelta(days=14, minutes=1)).strftime("%Y-%m-%d")
        assert "Qualifying purchase: you earned $10.00" in timeline.inner_text()
        assert f"Reward on hold until {hold_ends}" in timeline.inner_text()
        assert problems(page) == []
    finally:
        referrer.close()
