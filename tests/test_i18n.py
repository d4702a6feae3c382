"""The reader's language (docs/guarantees.md #43): chosen per request in a fixed order (the
saved choice, the `locale` cookie, Accept-Language, DEFAULT_LOCALE), switched from the navbar
or the profile and kept across devices; dates, amounts, relative times and plurals written the
reader's way; every email and SMS in its recipient's language, whoever's request or which
worker caused it."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask_babel import force_locale
from sqlalchemy import select, update

import config
import models
from app import create_app
from auth import email_choices
from config import ConfigError
from core.money import format_amount
from core.templating import format_ago, format_date, format_datetime, format_duration
from extensions import db
from models import Payout, Reward, User, utcnow
from referral.offer import offer_of
from referral.services import default_program
from rewards import ledger, notifications
from rewards.tasks import release_held
from tests import factories
from tests.apps import app_config, close
from tests.helpers import accepted_purchase, configure, csrf_token, log_in, take_outbox
from tests.phone_sign_in import request_code
from tests.russian import english_leftovers, latin_words

PUBLIC_URL = "https://refer.example.com"
RUSSIAN = {"Accept-Language": "ru"}
LANG = re.compile(r'<html lang="([a-z]+)">')
# The fixtures' names and the default program's ("Invite friends"): data, never translated.
NAMES = {"Rita", "Referrer", "Fred", "Friend", "Olga", "Owner", "Invite", "friends"}


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem", "PUBLIC_URL": PUBLIC_URL, "PAYOUT_MINIMUM": 500}


def lang_of(response) -> str:
    return LANG.search(response.get_data(as_text=True))[1]


def save_language(app, user_id: int, language: str | None) -> None:
    with app.app_context():
        db.session.execute(update(User).where(User.id == user_id).values(locale=language))
        db.session.commit()


def saved_language(app, user_id: int) -> str | None:
    with app.app_context():
        return db.session.scalar(select(User.locale).where(User.id == user_id))


def switch(client, language: str, next_path: str = "/referral/leaderboard", **extra):
    """What the navbar's form posts (it carries no CSRF token: see the test below)."""
    data = {"language": language, "next": next_path}
    return client.post("/language", data=data, **extra)


# --- the order of choice ------------------------------------------------------------------


def test_the_language_follows_the_saved_choice_then_cookie_then_browser_then_default(
    app, make_participant
):
    olga = make_participant("Olga Owner")
    visitor = app.test_client()
    assert lang_of(visitor.get("/referral/leaderboard")) == "en"  # DEFAULT_LOCALE
    assert lang_of(visitor.get("/referral/leaderboard", headers=RUSSIAN)) == "ru"
    assert (
        lang_of(visitor.get("/referral/leaderboard", headers={"Accept-Language": "de, ru;q=0.5"}))
        == "ru"
    )
    visitor.set_cookie("locale", "en")
    assert (
        lang_of(visitor.get("/referral/leaderboard", headers=RUSSIAN)) == "en"
    )  # cookie > browser
    visitor.set_cookie("locale", "xx")  # not a language we have: ignored
    assert lang_of(visitor.get("/referral/leaderboard", headers=RUSSIAN)) == "ru"

    member = app.test_client()
    log_in(member, olga["email"])
    save_language(app, olga["id"], "ru")
    member.set_cookie("locale", "en")
    page = member.get("/referral/leaderboard", headers={"Accept-Language": "en"})
    assert lang_of(page) == "ru"  # saved > cookie > browser
    assert "Рейтинг" in page.text
    assert {"Cookie", "Accept-Language"} <= set(page.headers["Vary"].replace(" ", "").split(","))


def test_signup_saves_the_language_the_page_was_shown_in(app, client):
    token = csrf_token(client, "/auth/signup")
    form = {"csrf_token": token, "name": "Nina Novak", "email": "nina@example.com"}
    form["password"] = factories.PASSWORD
    assert client.post("/auth/signup", data=form, headers=RUSSIAN).status_code == 302
    with app.app_context():
        assert factories.user_by_email("nina@example.com").locale == "ru"


def test_models_allow_exactly_the_configured_languages():
    assert models.LOCALES == config.LANGUAGES


# --- the switcher -----------------------------------------------------------------------------


def test_a_visitor_switches_by_cookie_and_comes_back_to_the_same_page(client):
    page = client.get("/referral/leaderboard")
    assert 'action="/language"' in page.text
    assert re.search(r'lang="ru" translate="no"[^>]*>Русский</button>', page.text)
    assert re.search(r'lang="en" translate="no" aria-current="true">English</button>', page.text)

    answer = switch(client, "ru", "/referral/leaderboard?period=month")

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/referral/leaderboard?period=month"
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("locale="))
    assert "locale=ru" in cookie and "Max-Age=31536000" in cookie
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
    russian = client.get("/referral/leaderboard")
    assert lang_of(russian) == "ru"
    assert re.search(r'lang="ru" translate="no" aria-current="true">Русский</button>', russian.text)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "", "/\\evil"])
def test_the_switcher_never_sends_the_browser_off_the_site(client, target):
    answer = switch(client, "ru", target)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"


def test_a_language_we_do_not_have_is_refused_and_nothing_changes(app, make_participant):
    olga = make_participant("Olga Owner")
    client = app.test_client()
    log_in(client, olga["email"])

    answer = switch(client, "de")
    assert answer.status_code == 400
    assert "We have no pages in “de”. Choose one of: English, Русский." in answer.text
    assert not [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("locale=")]
    assert saved_language(app, olga["id"]) is None
    api = switch(client, "xx", headers={"Accept": "application/json"})
    assert api.status_code == 400
    assert api.json["error"]["code"] == "unknown_language"


def test_an_anonymous_page_with_the_switcher_starts_no_session(client):
    page = client.get("/referral/leaderboard")
    assert 'action="/language"' in page.text
    assert 'name="csrf_token"' not in page.text
    assert page.headers.get("Set-Cookie") is None  # nothing to store: the page stays cacheable
    assert switch(client, "ru").status_code == 302
    assert client.get_cookie("locale").value == "ru"


def test_a_forged_cross_site_switch_arrives_signed_out(app, make_participant):
    """The switcher takes no token, so what stops another site from changing a member's
    language is the session cookie's SameSite=Lax: a cross-site POST does not carry it."""
    olga = make_participant("Olga Owner")
    client = app.test_client()
    answer = log_in(client, olga["email"])
    session_cookie = next(
        header
        for header in answer.headers.getlist("Set-Cookie")
        if header.startswith(app.config["SESSION_COOKIE_NAME"] + "=")
    )
    assert "SameSite=Lax" in session_cookie


def test_a_members_choice_follows_them_to_a_new_device(app, make_participant):
    olga = make_participant("Olga Owner")
    laptop = app.test_client()
    log_in(laptop, olga["email"])
    assert switch(laptop, "ru").status_code == 302
    assert saved_language(app, olga["id"]) == "ru"
    logout = {"csrf_token": csrf_token(laptop, "/auth/profile")}
    laptop.post("/auth/logout", data=logout)

    phone = app.test_client()  # no cookie, an English browser
    answer = log_in(phone, olga["email"])
    assert answer.status_code == 302
    assert phone.get_cookie("locale").value == "ru"  # logging in brought the choice along
    profile = phone.get("/auth/profile", headers={"Accept-Language": "en"})
    assert lang_of(profile) == "ru" and "Ваш профиль" in profile.text
    assert '<option value="ru" lang="ru" translate="no" selected>Русский</option>' in profile.text
    phone.post("/auth/logout", data={"csrf_token": csrf_token(phone, "/auth/profile")})
    assert lang_of(phone.get("/referral/leaderboard")) == "ru"  # signed out, the browser remembers


def test_the_profile_select_saves_the_choice(app, make_participant):
    olga = make_participant("Olga Owner")
    client = app.test_client()
    log_in(client, olga["email"])
    answer = switch(client, "ru", "/auth/profile")
    assert answer.headers["Location"] == "/auth/profile"
    assert saved_language(app, olga["id"]) == "ru"
    assert "Язык" in client.get("/auth/profile").text
    assert switch(client, "en", "/auth/profile").status_code == 302
    assert saved_language(app, olga["id"]) == "en"


# --- formats ----------------------------------------------------------------------------------

MOMENT = datetime(2026, 12, 6, 14, 5, tzinfo=UTC)


def test_dates_amounts_and_times_read_the_readers_way(app):
    with app.test_request_context(), force_locale("en"):
        assert format_date(MOMENT) == "2026-12-06"
        assert format_datetime(MOMENT) == "2026-12-06 14:05 UTC"
        assert format_amount(1000, "USD") == "$10.00"
        assert format_amount(123456, "USD") == "$1,234.56"
        assert format_amount(1250, "CHF") == "12.50 CHF"
        assert format_ago(MOMENT - timedelta(days=3), now=MOMENT) == "3 days ago"
        assert format_duration(93_600) == "1 d 2 h"
    with app.test_request_context(), force_locale("ru"):
        assert format_date(MOMENT) == "06.12.2026"
        assert format_datetime(MOMENT) == "06.12.2026 14:05 UTC"
        assert format_amount(1000, "USD") == "10,00\u00a0$"
        assert format_amount(123456, "USD") == "1\u00a0234,56\u00a0$"
        assert format_amount(-500, "EUR") == "-5,00\u00a0€"
        assert format_amount(50000, "RUB") == "500,00\u00a0₽"
        assert format_amount(500, "JPY") == "500\u00a0¥"
        assert format_ago(MOMENT - timedelta(days=3), now=MOMENT) == "3 дня назад"
        assert format_ago(MOMENT - timedelta(hours=5), now=MOMENT) == "5 часов назад"
        assert format_duration(93_600) == "1 д 2 ч"
        assert format_duration(930) == "15 мин 30 с"


@pytest.mark.parametrize(
    ("points", "reads"),
    [(1, "1 балл"), (2, "2 балла"), (5, "5 баллов"), (11, "11 баллов"), (21, "21 балл")],
)
def test_russian_plurals_take_their_three_forms(app, points, reads):
    with app.test_request_context(), force_locale("ru"):
        assert format_amount(points, "USD", "points") == reads


# --- emails and texts in the recipient's language --------------------------------------------


def russian_rita(app, make_participant, **extra) -> dict:
    rita = make_participant("Rita Referrer", email="rita@example.com", **extra)
    save_language(app, rita["id"], "ru")
    return rita


def allowed_in_mail(app) -> set[str]:
    """Names, and the words of strings other parts of the product translate (the email kinds'
    names, auth/email_choices.py): once translated there, they add nothing here."""
    allowed = set(NAMES) | {"InviteLoop"}
    with app.test_request_context(), force_locale("ru"):
        for name in email_choices.KIND_NAMES.values():
            allowed |= set(latin_words(str(name)))
    return allowed


def assert_russian(app, message, *phrases) -> None:
    text = f"{message.subject}\n{message.body}"
    assert latin_words(text, allowed_in_mail(app)) == [], text
    for phrase in phrases:
        assert phrase in text, text


def only_mail_to(app, email: str):
    [message] = take_outbox(app)
    assert message.to == [email]
    return message


def test_a_friend_joining_in_english_is_announced_to_a_russian_referrer_in_russian(
    app, client, make_participant
):
    rita = russian_rita(app, make_participant)
    token = csrf_token(client, "/auth/signup")
    form = {"csrf_token": token, "name": "Fred Friend", "email": "fred@example.com"}
    form |= {"password": factories.PASSWORD, "referral_code": rita["code"]}
    assert client.post("/auth/signup", data=form).status_code == 302  # an English page

    message = only_mail_to(app, "rita@example.com")
    assert message.subject == "Ваш друг зарегистрировался в InviteLoop"
    assert_russian(app, message, "Здравствуйте, Rita Referrer!", "по вашему приглашению")
    with app.app_context():
        assert factories.user_by_email("fred@example.com").locale == "en"


def test_a_reward_a_worker_releases_is_mailed_in_russian(app, make_participant):
    rita = russian_rita(app, make_participant)
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    take_outbox(app)
    accepted_purchase(app, fred["email"], "o1")
    with app.app_context():  # the beat task: no request, no reader
        db.session.execute(update(Reward).values(available_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
        release_held.run()

    messages = [m for m in take_outbox(app) if m.to == ["rita@example.com"]]
    [message] = messages
    assert message.subject == "Ваше вознаграждение на 10,00\u00a0$ одобрено"
    assert_russian(app, message, "благодаря Fred F.", "истории начислений", "Отключить их")


def test_payout_emails_are_russian_even_when_english_staff_pay(app, make_participant):
    rita = russian_rita(app, make_participant)
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    accepted_purchase(app, fred["email"], "o1")
    with app.app_context():
        reward = db.session.scalars(select(Reward).where(Reward.beneficiary_id == rita["id"]))
        ledger.approve_reward_early(reward.first(), utcnow())
        db.session.commit()
    take_outbox(app)
    client = app.test_client()
    log_in(client, rita["email"])
    form = {"csrf_token": csrf_token(client, "/rewards/"), "kind": "credit", "currency": "USD"}
    assert client.post("/rewards/payouts", data=form).status_code == 302
    requested = only_mail_to(app, "rita@example.com")
    assert_russian(app, requested, "Мы получили ваш запрос на выплату 10,00\u00a0$ (бонус")

    with app.app_context():
        manager = factories.staff("manager")
        payout_id = db.session.scalar(select(Payout.id).where(Payout.user_id == rita["id"]))
    staff = app.test_client()
    log_in(staff, manager["email"])
    path = f"/admin/payouts/{payout_id}/pay"
    data = {"csrf_token": csrf_token(staff, path), "confirm": "y", "reference": "TX-7731"}
    assert staff.post(path, data=data).status_code == 302
    paid = only_mail_to(app, "rita@example.com")
    assert paid.subject == "Выплата 10,00\u00a0$ сделана"
    assert_russian(app, paid, "Номер платежа: TX-7731.")


def test_a_rejected_signup_and_a_shop_code_are_mailed_in_russian(app, make_participant):
    rita = russian_rita(app, make_participant, ip="203.0.113.7")
    configure(app, notify_rejected=True, reject_score=50)
    make_participant("Fred Friend", invited_by=rita["code"], ip="203.0.113.7")
    rejected = only_mail_to(app, "rita@example.com")
    assert_russian(app, rejected, "Регистрация друга не засчитана", "не засчитывается")

    fred = make_participant("Fred Friend", email="fred2@example.com", invited_by=rita["code"])
    accepted_purchase(app, fred["email"], "o2")
    take_outbox(app)
    with app.app_context():
        reward = db.session.scalars(
            select(Reward).where(Reward.beneficiary_id == rita["id"])
        ).first()
        reward.kind, reward.coupon_code = "gift_card", "GC-4821-XK"
        notifications.issued_in_shop(reward)
        db.session.commit()
    shop = only_mail_to(app, "rita@example.com")
    assert shop.subject == "Готово: подарочная карта на 10,00\u00a0$"
    assert_russian(app, shop, "Ваш код (подарочная карта): GC-4821-XK")


def test_password_mails_follow_the_account_not_the_english_page(app, make_participant):
    rita = russian_rita(app, make_participant)
    client = app.test_client()  # an English page asks for the link
    token = csrf_token(client, "/auth/reset")
    client.post("/auth/reset", data={"csrf_token": token, "email": rita["email"]})
    reset = only_mail_to(app, "rita@example.com")
    assert reset.subject == "Сброс пароля InviteLoop"
    assert_russian(app, reset, "Ссылка действует 30 минут и только один раз.")

    link = re.search(re.escape(PUBLIC_URL) + r"(/auth/reset/\S+)", reset.body)[1]
    token = csrf_token(client, link)
    new = "another horse battery staple"
    client.post(link, data={"csrf_token": token, "password": new})
    changed = only_mail_to(app, "rita@example.com")
    assert changed.subject == "Пароль InviteLoop изменён"
    assert_russian(app, changed, "по ссылке для сброса")


def test_an_invitation_to_a_stranger_is_in_the_inviters_language(app, make_participant):
    rita = russian_rita(app, make_participant)
    client = app.test_client()
    log_in(client, rita["email"])
    token = csrf_token(client, "/referral/dashboard")
    client.post("/referral/invite", data={"csrf_token": token, "emails": "ann@example.com"})
    [message] = take_outbox(app)
    assert message.to == ["ann@example.com"]
    assert message.subject == "Rita R. приглашает вас в InviteLoop"
    with app.test_request_context(), force_locale("ru"):
        offer = offer_of(default_program()).invitation("Rita R.")
    allowed = allowed_in_mail(app) | set(latin_words(offer))
    assert latin_words(f"{message.subject}\n{message.body}", allowed) == [], message.body
    assert "Зарегистрируйтесь по ссылке от Rita R.:" in message.body


def test_the_sign_in_code_is_texted_in_the_language_of_the_page(client, sms_log):
    client.get("/auth/phone", headers=RUSSIAN)
    answer = request_code(client, "+14155550132")
    assert answer.status_code == 302
    [record] = [r for r in sms_log.records if r.name == "inviteloop.sms"]
    text = record.getMessage().partition(": ")[2]
    assert re.fullmatch(r"Your InviteLoop code is \d{6}\. It expires in 5 minutes\.", text)

    russian = client.application.test_client()
    russian.set_cookie("locale", "ru")
    sms_log.clear()
    assert request_code(russian, "+14155550133").status_code == 302
    [record] = [r for r in sms_log.records if r.name == "inviteloop.sms"]
    text = record.getMessage().partition(": ")[2]
    assert re.fullmatch(r"Ваш код InviteLoop: \d{6}\. Он действует 5 минут\.", text), text
    assert latin_words(text) == []


# --- errors ----------------------------------------------------------------------------------


def test_error_pages_and_json_messages_speak_russian_with_english_codes(client):
    page = client.get("/no/such/page", headers=RUSSIAN)
    assert page.status_code == 404
    assert "Страница не найдена" in page.text
    assert english_leftovers(page.text) == []
    api = client.get("/api/v1/no-such-thing", headers=RUSSIAN)
    assert api.status_code == 404
    assert api.json["error"]["code"] == "not_found"
    assert api.json["error"]["message"].startswith("По этому адресу ничего нет.")
    english = client.get("/no/such/page")
    assert "Page not found" in english.text and lang_of(english) == "en"


# --- the installation's default --------------------------------------------------------------


def test_default_locale_ru_speaks_russian_to_a_browser_that_asks_for_nothing(database_url):
    app = create_app(app_config(database_url, DEFAULT_LOCALE="ru"))
    try:
        page = app.test_client().get("/referral/leaderboard")
        assert lang_of(page) == "ru" and "Рейтинг" in page.text
        german = app.test_client().get("/referral/leaderboard", headers={"Accept-Language": "de"})
        assert lang_of(german) == "ru"
        assert (
            lang_of(
                app.test_client().get("/referral/leaderboard", headers={"Accept-Language": "en"})
            )
            == "en"
        )
    finally:
        close(app)


def test_a_default_locale_without_a_catalogue_stops_the_start(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("DEFAULT_LOCALE", "de")
    with pytest.raises(ConfigError, match="DEFAULT_LOCALE"):
        create_app()
