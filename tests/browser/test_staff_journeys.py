"""The journeys where participants and staff meet, in a real browser (docs/guarantees.md #33):
a participant requests a payout of approved rewards and sees it pending; a manager pays it
after a confirmation step, and the participant then sees it paid and has the email; a
manager uploads a signed contract in the CRM and downloads it back; a manager approves a held
referral on a phone. Every page on the way: no serious or critical axe-core violation and no
sideways scroll, at 390 px and at 1280 px (docs/guarantees.md #25).

On SQLite and PostgreSQL (the payout and the review change rows on each). The markup does not
depend on the database, so the pages are checked with axe-core on the SQLite run only, as in
test_screens.py: axe-core is the suite's slowest part."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from demo.people import STAFF_EMAILS
from extensions import db
from models import Payout, Referral, utcnow
from rewards import services as reward_services
from tests import factories
from tests.apps import other_app
from tests.browser.chromium import VIEWPORTS, log_in, problems
from tests.browser.site import site_mail

# Started first: a journey with its axe-core checks takes 10 to 20 s.
pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.slow]

MANAGER = STAFF_EMAILS["manager"]
MARKETER = STAFF_EMAILS["marketer"]
PAYMENT_REFERENCE = "BANK-4711"
# A tiny but real PDF: the upload checks the first bytes, the download must return them all.
SIGNED_PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def checks_markup(database_url) -> bool:
    return database_url.startswith("sqlite")


@pytest.fixture
def open_page(browser, site):
    """A fresh browser (cookie jar) at a width, signed in as someone (with the demo password
    unless told): open_page(email, width)."""
    contexts = []

    def open_as(email: str, width: str, password: str | None = None, **options):
        context = browser.new_context(viewport=VIEWPORTS[width], base_url=site.base_url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        log_in(page, site.base_url, email, password or site.password)
        return page

    yield open_as
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def earner(site, database_url) -> dict:
    """A participant whose two friends bought three weeks ago: their $10.00 rewards are out
    of the 14-day hold and approved, $20.00 in all, the least a payout may claim."""
    three_weeks_ago = utcnow() - timedelta(days=21)
    with other_app(database_url) as app, app.app_context():
        penny = factories.participant("Penny Payout", now=three_weeks_ago)
        for number in (1, 2):
            friend = factories.participant(
                f"Friend{number} Payout", invited_by=penny["code"], now=three_weeks_ago
            )
            later = three_weeks_ago + timedelta(hours=number)
            outcome = factories.purchase(friend["email"], f"penny-{number}", 2500, now=later)
            assert outcome.outcome == "accepted", outcome
        db.session.commit()
        assert reward_services.release_held_rewards(utcnow()) >= 2
        db.session.commit()
    return penny


def looks_right(page, checks_markup: bool) -> list[str]:
    """What a person would trip over on the open page at 390 px and at 1280 px; the page is
    left at the width it had."""
    if not checks_markup:
        return []
    page.wait_for_load_state("load")
    width = page.viewport_size
    found = []
    for name, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        found += [f"{name}: {problem}" for problem in problems(page)]
    page.set_viewport_size(width)
    return found


def test_a_payout_is_requested_paid_by_a_manager_and_seen_paid_with_an_email(
    site, database_url, earner, open_page, checks_markup
):
    # The participant, on a phone: $20.00 available, asked for, then waiting.
    phone = open_page(earner["email"], "phone", factories.PASSWORD)
    phone.goto("/rewards/")
    balance = phone.locator("#balance-credit-USD")
    assert " ".join(balance.locator(".stat-value").inner_text().split()) == "$20.00"
    assert looks_right(phone, checks_markup) == []
    balance.get_by_role("button", name="Request payout of $20.00").click()
    expect(phone.get_by_text("Payout of $20.00 requested. We will email you")).to_be_visible()
    waiting = balance.locator(".open-payout")
    assert "Payout of $20.00 requested on" in waiting.inner_text()
    assert "waiting to be paid" in waiting.inner_text()
    assert balance.locator("dt:text-is('Requested') + dd").inner_text().strip() == "$20.00"
    assert set(phone.locator("tbody td[data-label=Status] .badge").all_inner_texts()) == {
        "Payout requested"
    }
    assert looks_right(phone, checks_markup) == []
    received = site_mail(site, earner["email"], "We received your payout request for $20.00")
    assert len(received) == 1

    # A marketer may look at the panel, not pay.
    marketer = open_page(MARKETER, "desktop")
    assert marketer.goto("/admin/payouts").status == 403
    assert marketer.get_by_role("heading", name="Not allowed").is_visible()

    # The manager pays it, through the confirmation step.
    staff = open_page(MANAGER, "desktop")
    staff.goto("/admin/payouts?status=requested")
    row = staff.locator("tbody tr", has_text="Penny Payout")
    assert "$20.00" in row.inner_text() and "requested" in row.inner_text()
    assert looks_right(staff, checks_markup) == []
    row.get_by_role("link", name="Mark paid…").click()
    payout_id = _read(database_url, select(Payout.id).where(Payout.user_id == earner["id"]))
    expect(
        staff.get_by_role("heading", name=f"Mark paid: payout request #{payout_id}")
    ).to_be_visible()
    staff.get_by_label("Payment reference (optional)").fill(PAYMENT_REFERENCE)
    staff.get_by_role("button", name="Confirm").click()  # the box is not ticked yet
    expect(staff.get_by_text("Tick the box to confirm.")).to_be_visible()
    assert looks_right(staff, checks_markup) == []
    assert _payout_status(database_url, payout_id) == "requested"
    staff.get_by_label("I confirm").check()
    staff.get_by_role("button", name="Confirm").click()
    expect(staff.get_by_text(f"Payout request #{payout_id} marked paid.")).to_be_visible()
    assert urlparse(staff.url).path == "/admin/payouts"
    assert _payout_status(database_url, payout_id) == "paid"

    # The participant sees it paid, and has the email.
    phone.goto("/rewards/")
    assert balance.locator(".open-payout").count() == 0
    assert balance.locator("dt:text-is('Paid') + dd").inner_text().strip() == "$20.00"
    statuses = phone.locator("tbody td[data-label=Status] .badge").all_inner_texts()
    assert set(statuses) == {"Paid"}
    assert looks_right(phone, checks_markup) == []
    [mail] = site_mail(site, earner["email"], "Your payout of $20.00 is paid")
    assert f"Payment reference: {PAYMENT_REFERENCE}." in mail
    assert f"{site.base_url}/rewards/" in mail


def _payout_status(database_url: str, payout_id: int) -> str:
    return _read(database_url, select(Payout.status).where(Payout.id == payout_id))


def _read(database_url: str, query):
    with other_app(database_url) as app, app.app_context():
        return db.session.scalar(query)


def test_a_manager_uploads_a_contract_and_downloads_it_back(site, open_page, checks_markup):
    staff = open_page(MANAGER, "desktop", accept_downloads=True)
    staff.goto(f"/admin/leads/{site.lead_id}")
    staff.get_by_role("link", name="Upload a contract").click()
    assert looks_right(staff, checks_markup) == []
    name = "Yearly plan, signed"
    staff.get_by_label("Name").fill(name)
    staff.get_by_label("Service").select_option(index=0)
    for label, day in (("Signed on", "2026-11-02"), ("Valid from", "2026-11-02")):
        staff.get_by_label(label).fill(day)
    staff.get_by_label("Valid until").fill("2027-11-01")
    staff.get_by_label("Amount").fill("1200.00")
    document = staff.get_by_label("Signed document")

    # A program renamed .pdf is refused, and says what is accepted.
    document.set_input_files(
        files=[{"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00"}]
    )
    staff.get_by_role("button", name="Upload contract").click()
    expect(staff.get_by_text("Upload a PDF, DOC, DOCX, ODT, PNG or JPG file.")).to_be_visible()
    assert looks_right(staff, checks_markup) == []

    file_name = "signed-contract.pdf"
    staff.get_by_label("Signed document").set_input_files(
        files=[{"name": file_name, "mimeType": "application/pdf", "buffer": SIGNED_PDF}]
    )
    staff.get_by_role("button", name="Upload contract").click()
    expect(staff.get_by_text(f"Contract “{name}” uploaded ({file_name}).")).to_be_visible()
    assert urlparse(staff.url).path == f"/admin/leads/{site.lead_id}"
    row = staff.locator("tbody tr", has_text=name)
    assert "$1,200.00" in row.inner_text()
    assert looks_right(staff, checks_markup) == []

    with staff.expect_download() as started:
        row.get_by_role("link", name=file_name).click()
    download = started.value
    assert download.suggested_filename == file_name
    assert Path(download.path()).read_bytes() == SIGNED_PDF


def test_a_manager_approves_a_held_referral_on_a_phone(
    site, database_url, open_page, checks_markup
):
    held_id = site.held_referral_id
    friend, public_name = _friend_of(database_url, held_id)
    staff = open_page(MANAGER, "phone")
    staff.goto("/admin/review")
    row = staff.locator("tbody tr", has=staff.locator(f"#pick-{held_id}"))
    assert row.locator("td[data-label=Friend] a").inner_text() == friend
    assert looks_right(staff, checks_markup) == []
    row.get_by_role("link", name="Decide…").click()
    expect(staff.get_by_role("heading", name=f"Referral #{held_id}")).to_be_visible()
    reasons = staff.locator(".risk-reasons [data-reason] strong").all_inner_texts()
    assert reasons and all(" " in reason and "_" not in reason for reason in reasons)
    assert looks_right(staff, checks_markup) == []
    staff.get_by_label("Reason").fill("Flatmates, checked by phone")
    staff.get_by_role("button", name="Approve").click()
    expect(staff.get_by_text(f"1 approved: #{held_id}.")).to_be_visible()
    assert staff.locator(f"#pick-{held_id}").count() == 0  # out of the queue
    assert looks_right(staff, checks_markup) == []
    assert _read(database_url, select(Referral.status).where(Referral.id == held_id)) == (
        "approved"
    )

    referrer = open_page(site.held_referrer_email, "phone")
    referrer.goto("/referral/dashboard")
    row = referrer.locator("tbody tr", has_text=public_name)
    row.locator("summary").click()
    assert "Approved after review" in row.locator(".timeline-steps").inner_text()
    [mail] = site_mail(site, site.held_referrer_email, "A friend joined InviteLoop through you")
    assert public_name in mail


def _friend_of(database_url: str, referral_id: int) -> tuple[str, str]:
    """The held friend's full name (what staff see) and public name (what the referrer sees)."""
    with other_app(database_url) as app, app.app_context():
        friend = db.session.get(Referral, referral_id).referred
        return friend.name, friend.public_name
