"""The participant's journey in Russian, in a real browser at phone width (docs/guarantees.md
#44): a friend's link, the signup form and its errors, the dashboard with its copy button,
the tree, the leaderboard and the ledger, each with no English left in the page's own content
and nothing axe-core minds. INVITELOOP_SCREENSHOTS=1 retakes docs/dashboard-ru.png and
docs/leaderboard-ru.png. On SQLite and PostgreSQL."""

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from extensions import db
from models import Program, User
from tests.apps import other_app
from tests.browser.chromium import DESKTOP, PHONE, problems, screenshot
from tests.russian import english_leftovers
from tests.server import SERVER_SECRET

pytestmark = [pytest.mark.server, pytest.mark.browser]

# A browser set to Russian: its Accept-Language and its own interface.
RUSSIAN = {"locale": "ru-RU", "extra_http_headers": {"Accept-Language": "ru"}}
NEWCOMER = {"Nora", "Novikova"}


def main_html(page) -> str:
    """The page's own content: the menu and footer around it belong to templates/base.html."""
    return page.locator("main").evaluate("element => element.outerHTML")


@pytest.fixture(scope="module")
def names(site, database_url) -> set[str]:
    """Every word of the site's people's and programs' names: data, the same in every
    language (and currency codes)."""
    with other_app(database_url, SECRET_KEY=SERVER_SECRET) as app, app.app_context():
        texts = [*db.session.execute(select(User.name, User.display_name)).all()]
        texts += [(name,) for name in db.session.scalars(select(Program.name))]
    words = {word for row in texts for text in row if text for word in _WORD.findall(text)}
    return words | NEWCOMER | {"USD"}


_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")


def assert_russian(page, names) -> None:
    assert english_leftovers(main_html(page), allowed=names) == []
    assert page.locator("html").get_attribute("lang") == "ru"
    assert problems(page) == []


def choose_russian(database_url, email: str) -> None:
    """The participant's saved choice of Russian (what a signed-in participant's pages
    follow, core/i18n.select_locale)."""
    with other_app(database_url, SECRET_KEY=SERVER_SECRET) as app, app.app_context():
        db.session.execute(update(User).where(User.email == email).values(locale="ru"))
        db.session.commit()


def new_page(browser, site, viewport, **extra):
    context = browser.new_context(viewport=viewport, base_url=site.base_url, **RUSSIAN, **extra)
    context.set_default_timeout(10_000)
    return context.new_page()


@pytest.fixture
def phone(browser, site):
    page = new_page(browser, site, PHONE, permissions=["clipboard-read", "clipboard-write"])
    yield page
    page.context.close()


def test_a_friend_signs_up_in_russian_and_copies_their_link(site, phone, names, database_url):
    phone.goto(f"/r/{site.referral_code}")
    assert re.search(rf"/auth/signup\?ref={site.referral_code}$", phone.url)
    expect(phone.get_by_role("heading", name="Регистрация")).to_be_visible()
    assert_russian(phone, names)

    # Sent empty first: every field's message in Russian.
    phone.get_by_role("button", name="Зарегистрироваться").click()
    phone.locator(".invalid-feedback").first.wait_for()
    assert phone.get_by_text("Обязательное поле.").count() >= 3
    assert_russian(phone, names)

    phone.get_by_label("Ваше имя").fill("Nora Novikova")
    phone.get_by_label("Электронная почта").fill("nora.novikova@example.com")
    phone.get_by_label("Пароль").fill("correct horse battery staple")
    phone.get_by_role("button", name="Зарегистрироваться").click()
    phone.wait_for_url("**/referral/dashboard")

    choose_russian(database_url, "nora.novikova@example.com")
    phone.reload()
    expect(phone.get_by_role("heading", name="Здравствуйте, Nora Novikova")).to_be_visible()
    assert_russian(phone, names)
    link = phone.locator("#referral-link").input_value()
    phone.get_by_role("button", name="Копировать", exact=True).click()
    expect(phone.get_by_role("button", name="Скопировано!")).to_be_visible()
    assert phone.evaluate("navigator.clipboard.readText()") == link


def test_a_participants_pages_read_in_russian_on_a_phone(browser, site, names, database_url):
    choose_russian(database_url, site.held_referrer_email)
    page = new_page(browser, site, PHONE)
    try:
        log_in_russian(page, site)
        for path in ("/referral/dashboard", "/referral/tree", "/referral/leaderboard", "/rewards/"):
            page.goto(path)
            assert_russian(page, names)
        page.goto("/referral/dashboard")
        expect(page.get_by_text("На проверке").first).to_be_visible()
        expect(page.get_by_role("heading", name="Ваша реферальная ссылка")).to_be_visible()
    finally:
        page.context.close()


def test_the_russian_screenshots(browser, site, names, database_url):
    """docs/dashboard-ru.png (a participant with a friend under review) and
    docs/leaderboard-ru.png, at desktop width."""
    choose_russian(database_url, site.held_referrer_email)
    page = new_page(browser, site, DESKTOP)
    try:
        page.goto("/referral/leaderboard")
        expect(page.get_by_role("heading", name="Рейтинг")).to_be_visible()
        assert_russian(page, names)
        screenshot(page, "leaderboard-ru", "desktop", whole_page=True)
        log_in_russian(page, site)
        page.goto("/referral/dashboard")
        assert_russian(page, names)
        screenshot(page, "dashboard-ru", "desktop", whole_page=True)
    finally:
        page.context.close()


def log_in_russian(page, site) -> None:
    page.goto("/auth/login")
    expect(page.get_by_role("heading", name="Войти")).to_be_visible()
    page.get_by_label("Электронная почта").fill(site.held_referrer_email)
    page.get_by_label("Пароль").fill(site.password)
    with page.expect_navigation():  # as chromium.log_in: the POST's answer, not the form
        page.get_by_role("button", name="Войти").click()
    assert "/auth/login" not in page.url
