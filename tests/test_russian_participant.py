"""The participant's side in Russian (docs/guarantees.md #44): signing up through a friend's
link, the dashboard, inviting by email, naming an inviter, the leaderboard, the tree, the
ledger, logging in, resetting a password and signing in by phone, each read by a browser that
asks for Russian, with no English left in what the page itself says; form errors in Russian;
plural forms and the share text as a Russian reader expects them.

The scan covers each page's own content (its <main>) and title: the menu and footer around it
belong to templates/base.html and are checked with it.
"""

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import update

from auth import email_choices
from extensions import db
from models import User, utcnow
from tests import apps, factories
from tests.helpers import (
    accepted_purchase,
    configure,
    csrf_token,
    log_in,
    read_form,
)
from tests.phone_sign_in import NUMBER, last_code
from tests.russian import english_leftovers, latin_words, shown_text

RUSSIAN = {"HTTP_ACCEPT_LANGUAGE": "ru"}
PEOPLE = {"Ann", "Lee", "Bob", "Baker", "Cat", "Cole", "Dan", "Dorn", "Eve", "Eng"}
# The default program's name ("Invite friends") is data its staff wrote, like a person's name.
PROGRAM_NAME = {"Invite", "friends"}
_MAIN = re.compile(r"<main\b.*?</main>", re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)

pytestmark = pytest.mark.usefixtures("sms_log")


@pytest.fixture
def config_overrides():
    # A referrer's first $10.00 reward is enough to ask for a payout.
    return {"PAYOUT_MINIMUM": 1000}


def russian(client):
    """Every request of `client` from here on asks for Russian, as a Russian browser does."""
    client.environ_base.update(RUSSIAN)
    return client


def page_text(response) -> str:
    """The page's own content (its <main>) with its title: what this area renders."""
    page = response.get_data(as_text=True)
    main = _MAIN.search(page)
    assert main, "no <main> on the page"
    title = _TITLE.search(page)
    return (title.group(1) if title else "") + "\n" + main.group(0)


def no_english(response, allowed=frozenset()) -> str:
    """Asserts the page's own content has no English left; returns its text as read, one
    space between words."""
    shown = page_text(response)
    assert english_leftovers(shown, allowed=PEOPLE | PROGRAM_NAME | set(allowed)) == []
    return " ".join(shown_text(shown).split())


# An amount however the language writes it: "$5.00", "$5", "5,00 $".
_AMOUNT = r"\S*\d[\d\s.,]*\S*"


def says(text: str, sentence: str) -> bool:
    """Whether `text` holds `sentence`, each "{amount}" in it standing for an amount."""
    pattern = _AMOUNT.join(re.escape(piece) for piece in sentence.split("{amount}"))
    return re.search(pattern, text) is not None


def participant(app, name, **kwargs):
    with app.app_context():
        return factories.participant(name, **kwargs)


@pytest.fixture
def network(app):
    """Ann brought in Bob (who bought, so Ann's reward is on hold) and Cat; Bob brought Dan."""
    return make_network(app)


@apps.seeded_once
def ann_signed_in(app):
    """The network for the tests that only read it, seeded once per database, with Ann
    signed in once, having chosen Russian (`ann_in_russian`)."""
    made = make_network(app)
    choose_russian(app, made["ann"])
    return {**made, "ann_sign_in": apps.sign_in_once(app, made["ann"]["email"])}


def ann_in_russian(app, ann_signed_in):
    """A Russian browser with the sign-in the seed made for Ann."""
    return russian(apps.signed_in(app.test_client(), ann_signed_in["ann_sign_in"]))


def make_network(app) -> dict:
    configure(app, hold_days=14)
    ann = participant(app, "Ann Lee")
    bob = participant(app, "Bob Baker", invited_by=ann["code"])
    cat = participant(app, "Cat Cole", invited_by=ann["code"])
    dan = participant(app, "Dan Dorn", invited_by=bob["code"])
    accepted_purchase(app, bob["email"], "order-1", 2500)
    return {"ann": ann, "bob": bob, "cat": cat, "dan": dan}


def choose_russian(app, person) -> None:
    """Save `person`'s choice of Russian: what a signed-in participant's pages follow
    (core/i18n.select_locale), whatever the browser asks."""
    with app.app_context():
        db.session.execute(update(User).where(User.id == person["id"]).values(locale="ru"))
        db.session.commit()


def signed_in(app, person):
    """`person` signed in, having chosen Russian."""
    choose_russian(app, person)
    client = russian(app.test_client())
    assert log_in(client, person["email"]).status_code == 302
    return client


# --- a friend's link, the signup form ----------------------------------------------------


def test_a_friends_link_opens_a_russian_signup_page_with_the_offer_in_russian(app, network):
    client = russian(app.test_client())
    follow = client.get(f"/r/{network['ann']['code']}")
    assert follow.status_code == 302
    page = client.get(follow.headers["Location"])
    assert page.status_code == 200
    text = no_english(page)
    assert "Регистрация" in text
    assert says(
        text, "приглашает вас — получите бонус {amount} за первую покупку на сумму от {amount}."
    )
    assert 'lang="ru"' in page.get_data(as_text=True)

    landing = client.get("/", query_string={"ref": network["ann"]["code"]})
    text = no_english(landing)
    assert says(text, "Подарите другу {amount} — получите {amount}")
    assert "Приглашение сохранится на 30 дней." in text


@pytest.mark.module_data
def test_signup_errors_are_in_russian_and_name_every_mistake(app, ann_signed_in):
    client = russian(app.test_client())
    token = csrf_token(client, "/auth/signup")
    data = {
        "csrf_token": token,
        "name": "",
        "email": ann_signed_in["bob"]["email"],
        "password": "short",
    }
    data["referral_code"] = "NOSUCH99"
    page = client.post("/auth/signup", data=data)
    assert page.status_code in (400, 409)
    form = read_form(page)
    assert form.field_errors["name"] == ["Обязательное поле."]
    assert form.field_errors["email"] == [
        "Этот адрес уже зарегистрирован. Вместо регистрации войдите."
    ]
    assert form.field_errors["password"] == ["Используйте не менее 8 символов."]
    assert form.field_errors["referral_code"] == [
        "Такого кода приглашения нет. Проверьте его или оставьте поле пустым."
    ]
    no_english(page)


# --- the dashboard, sharing, inviting, claiming -----------------------------------------


@pytest.mark.module_data
def test_the_dashboard_reads_in_russian_with_its_plurals_statuses_and_timeline(app, ann_signed_in):
    client = ann_in_russian(app, ann_signed_in)
    page = client.get("/referral/dashboard")
    assert page.status_code == 200
    text = no_english(page)
    assert "Здравствуйте, Ann Lee" in text
    assert "Ваша реферальная ссылка" in text
    assert says(
        text, "Вы получаете бонус {amount}, когда приглашённый вами друг делает первую покупку"
    )
    assert "Кто присоединился по вашей ссылке" in text
    # Bob bought: his line says so; Cat has not bought yet.
    assert says(text, "Засчитанная покупка: вы заработали {amount}")
    assert "Вознаграждение на удержании до" in text
    assert says(
        text, "Когда Cat сделает первую покупку на сумму от {amount}, вы получите бонус {amount}."
    )
    # Level 1 holds two people, level 2 one: the Russian plural forms.
    assert re.search(r"Уровень 1\s*—\s*2\s+человека", text)
    assert re.search(r"Уровень 2\s*—\s*1\s+человек\b", text)


@pytest.mark.module_data
def test_the_share_text_and_buttons_are_russian(app, ann_signed_in):
    client = ann_in_russian(app, ann_signed_in)
    page = client.get("/referral/dashboard")
    form = read_form(page)
    message = form.values.get("share-message")
    body = page.get_data(as_text=True)
    shown = html.unescape(re.search(r'id="share-message"[^>]*>(.*?)</textarea>', body, re.S)[1])
    assert says(
        shown,
        "Получите бонус {amount} за первую покупку на сумму от {amount}, зарегистрировавшись по"
        " моей ссылке: http",
    )
    assert latin_words(shown.split("http")[0]) == []
    mailto = re.search(r'href="(mailto:[^"]+)"', body)[1]
    fields = parse_qs(urlsplit(html.unescape(mailto)).query)
    [subject] = fields["subject"]
    assert says(subject, "Приглашение от меня: {amount} для вас")
    assert unquote(fields["body"][0]).startswith("Получите бонус ")
    assert message is None  # a textarea has no value attribute: the text is its content


def test_inviting_by_email_speaks_russian_errors_included(app, network):
    client = signed_in(app, network["ann"])
    page = client.get("/referral/invite")
    text = no_english(page)
    assert "Пригласить друзей по электронной почте" in text
    token = read_form(page).values["csrf_token"]
    refused = client.post(
        "/referral/invite", data={"csrf_token": token, "emails": "not-an-address, x@"}
    )
    assert refused.status_code == 400
    [error] = read_form(refused).field_errors["emails"]
    assert error == "Это не адреса электронной почты: not-an-address, x@."
    no_english(refused, allowed={"not", "an", "address"})
    empty = client.post("/referral/invite", data={"csrf_token": token, "emails": ""})
    assert read_form(empty).field_errors["emails"] == [
        "Введите хотя бы один адрес электронной почты."
    ]


def test_naming_an_inviter_later_is_in_russian_refusals_included(app, network):
    eve = participant(app, "Eve Eng")
    client = signed_in(app, eve)
    dashboard = client.get("/referral/dashboard")
    text = no_english(dashboard)
    assert "Вас пригласил друг?" in text
    page = client.get("/referral/claim")
    text = no_english(page)
    assert "Укажите, кто вас пригласил" in text
    token = read_form(page).values["csrf_token"]
    own = client.post("/referral/claim", data={"csrf_token": token, "referral_code": eve["code"]})
    assert own.status_code == 422
    assert read_form(own).field_errors["referral_code"] == [
        "Это ваш собственный код. Введите код того, кто вас пригласил."
    ]
    no_english(own)
    done = client.post(
        "/referral/claim",
        data={"csrf_token": token, "referral_code": network["ann"]["code"]},
        follow_redirects=True,
    )
    text = no_english(done)
    assert "ваш пригласивший. Спасибо, что сообщили!" in text or "после нашей проверки" in text


# --- the leaderboard and the tree ---------------------------------------------------------


@pytest.mark.module_data
def test_the_leaderboard_is_russian_with_the_readers_rank_and_plural(app, ann_signed_in):
    client = ann_in_russian(app, ann_signed_in)
    page = client.get("/referral/leaderboard")
    text = no_english(page)
    assert "Рейтинг" in text and "За всё время" in text
    assert "Вы на 1-м месте: 2 приглашения (за всё время)." in text
    week = client.get("/referral/leaderboard", query_string={"period": "week"})
    no_english(week)
    anonymous = russian(app.test_client()).get("/referral/leaderboard")
    assert "Участник" in no_english(anonymous)


@pytest.mark.module_data
def test_the_tree_page_and_its_fragments_are_russian(app, ann_signed_in):
    client = ann_in_russian(app, ann_signed_in)
    page = client.get("/referral/tree")
    text = no_english(page)
    assert "Дерево приглашений" in text
    level = client.get("/referral/tree", query_string={"level": 1})
    text = no_english(level)
    assert re.search(r"Уровень 1\s*·\s*2 человека", text)
    assert "Показать 1 приглашённого" in text
    branch = client.get("/referral/tree", query_string={"node": ann_signed_in["bob"]["id"]})
    text = no_english(branch)
    assert "Пригласил(а) Bob B." in text


# --- the ledger and a payout request -------------------------------------------------------


def test_the_ledger_is_russian_with_statuses_and_an_empty_state(app, network):
    client = signed_in(app, network["ann"])
    page = client.get("/rewards/")
    text = no_english(page, allowed={"USD"})
    assert "Мои вознаграждения" in text and "История начислений" in text
    assert "На удержании" in text
    assert "Вы пригласили: Bob Baker" in text
    assert "Бонусы копятся на вашем балансе" in text
    eve = participant(app, "Eve Eng", invited_by=network["ann"]["code"])
    empty = signed_in(app, eve).get("/rewards/")
    text = no_english(empty, allowed={"USD"})
    assert says(
        text, "Вы присоединились по ссылке друга. Получите бонус {amount} за первую покупку"
    )
    assert text.count("Вознаграждений пока нет.") == 1


def test_a_payout_request_is_confirmed_in_russian(app, network):
    configure(app, hold_days=0)
    eve = participant(app, "Eve Eng", invited_by=network["cat"]["code"])
    with app.app_context():
        factories.purchase(eve["email"], "order-2", 2500, now=utcnow() - timedelta(minutes=5))
        db.session.commit()
    client = signed_in(app, network["cat"])
    page = client.get("/rewards/")
    text = no_english(page, allowed={"USD"})
    assert "Запросить выплату" in text
    form = read_form(page)
    done = client.post(
        "/rewards/payouts",
        data={"csrf_token": form.values["csrf_token"], "kind": "credit", "currency": "USD"},
        follow_redirects=True,
    )
    assert says(no_english(done, allowed={"USD"}), "Выплата {amount} запрошена.")


# --- logging in, resetting a password, signing in by phone --------------------------------


@pytest.mark.module_data
def test_login_and_its_refusal_are_russian(app, ann_signed_in):
    client = russian(app.test_client())
    page = client.get("/auth/login")
    text = no_english(page)
    assert "Забыли пароль?" in text
    wrong = log_in(client, ann_signed_in["ann"]["email"], password="not the password")
    assert wrong.status_code == 401
    assert "Неверная электронная почта или пароль." in no_english(wrong)
    empty = client.post("/auth/login", data={"csrf_token": csrf_token(client, "/auth/login")})
    assert read_form(empty).field_errors["email"] == ["Обязательное поле."]


def test_asking_for_a_reset_link_is_russian(app, network):
    client = russian(app.test_client())
    page = client.get("/auth/reset")
    text = no_english(page)
    assert "Сброс пароля" in text
    token = read_form(page).values["csrf_token"]
    sent = client.post("/auth/reset", data={"csrf_token": token, "email": network["ann"]["email"]})
    assert "мы отправили на него ссылку для сброса пароля" in no_english(sent)


def test_phone_sign_in_forms_and_their_errors_are_russian(app, sms_log):
    client = russian(app.test_client())
    page = client.get("/auth/phone")
    text = no_english(page)
    assert "Войти по номеру телефона" in text
    token = read_form(page).values["csrf_token"]
    bad = client.post("/auth/phone", data={"csrf_token": token, "phone": "12"})
    assert bad.status_code == 400
    [error] = read_form(bad).field_errors["phone"]
    assert error.startswith("Это неверный номер телефона.")
    no_english(bad)
    asked = client.post("/auth/phone", data={"csrf_token": token, "phone": NUMBER})
    assert asked.status_code == 302
    verify = client.get("/auth/phone/verify")
    text = no_english(verify)
    assert "Введите код" in text and "Он действует 5 минут." in text
    token = read_form(verify).values["csrf_token"]
    shape = client.post("/auth/phone/verify", data={"csrf_token": token, "code": "12"})
    assert read_form(shape).field_errors["code"] == ["Код — это 6 цифр из SMS."]
    wrong_code = "000000" if last_code(sms_log) != "000000" else "111111"
    wrong = client.post("/auth/phone/verify", data={"csrf_token": token, "code": wrong_code})
    assert read_form(wrong).field_errors["code"] == [
        "Неверный код. Проверьте SMS или запросите новый код."
    ]
    no_english(wrong)


# --- the widget a shop frames ---------------------------------------------------------------


@pytest.mark.module_data
def test_the_widget_follows_the_readers_language(app, ann_signed_in):
    client = russian(app.test_client())
    page = client.get("/embed/v1/widget")
    body = page.get_data(as_text=True)
    assert '<html lang="ru">' in body
    assert english_leftovers(body, allowed=PEOPLE | PROGRAM_NAME) == []
    assert "Уже участвуете? Войдите" in html.unescape(body)


# --- a referral held for review, a paused program -------------------------------------------


def test_a_held_referral_is_explained_in_russian_with_its_plural(app):
    ann = participant(app, "Ann Lee", ip="10.201.0.1")
    participant(app, "Bob Baker", invited_by=ann["code"], ip="10.201.0.1")  # same IP: held
    page = signed_in(app, ann).get("/referral/dashboard")
    text = no_english(page)
    assert "На проверке" in text
    assert "Регистрация пришла из той же сети или с того же устройства" in text
    assert "+1 на проверке" in text
    assert "1 человек, пришедший по вашей ссылке, на проверке (см. выше)." in text


def test_a_paused_program_says_so_in_russian(app, network):
    configure(app, active=False)
    page = signed_in(app, network["ann"]).get("/referral/dashboard")
    text = no_english(page)
    assert "приостановлена" in text
    assert "Сейчас регистрации и покупки по вашей ссылке не приносят вознаграждений." in text
    body = page.get_data(as_text=True)
    shown = html.unescape(re.search(r'id="share-message"[^>]*>(.*?)</textarea>', body, re.S)[1])
    assert shown.startswith("Присоединяйтесь по моей ссылке: http")
    landing = russian(app.test_client()).get("/")
    no_english(landing)


# --- the account's own pages -----------------------------------------------------------------


def test_the_account_pages_of_this_area_are_russian(app, network):
    client = signed_in(app, network["ann"])
    delete = client.get("/auth/profile/delete")
    text = no_english(delete)
    assert "Удаление аккаунта" in text and "Что произойдёт" in text
    token = read_form(delete).values["csrf_token"]
    refused = client.post("/auth/profile/delete", data={"csrf_token": token, "password": "x"})
    assert read_form(refused).field_errors["confirm"] == [
        "Отметьте флажок, чтобы подтвердить удаление аккаунта."
    ]
    # The page is this area's; the reason under its heading comes from auth/reset.py.
    bad_link = russian(app.test_client()).get("/auth/reset/not-a-token")
    assert "Эта ссылка не работает" in " ".join(shown_text(page_text(bad_link)).split())


def test_the_unsubscribe_pages_are_russian(app, network):
    with app.app_context():
        token = email_choices.unsubscribe_token(network["ann"]["id"], "friends")
    client = russian(app.test_client())
    asked = client.get(f"/auth/emails/unsubscribe/{token}")
    assert "Отключить письма «Новые друзья»?" in no_english(asked)
    done = client.post(f"/auth/emails/unsubscribe/{token}")
    assert "Мы больше не будем присылать письма «Новые друзья» на" in no_english(done)


def test_the_signed_in_widget_is_russian(app, network):
    signed_in(app, network["ann"])  # saves Ann's choice of Russian
    client = russian(app.test_client())
    token = re.search(
        r'name="login-csrf_token"[^>]*value="([^"]+)"', client.get("/embed/v1/widget").text
    )
    login = {"login-csrf_token": token[1], "login-email": network["ann"]["email"]}
    login["login-password"] = factories.PASSWORD
    assert client.post("/embed/v1/widget/login", data=login).status_code == 302
    page = client.get("/embed/v1/widget")
    body = page.get_data(as_text=True)
    assert '<html lang="ru">' in body
    assert english_leftovers(body, allowed=PEOPLE | PROGRAM_NAME) == []
    text = " ".join(shown_text(body).split())
    assert "Переходы" in text and "Регистрации" in text and "Почта" in text
