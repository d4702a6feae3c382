"""The staff panel's part A in Russian (docs/guarantees.md #45): the menu, analytics, people,
users and roles, the tree, referrals, branding and their CSV files, read by a Russian member
of staff, with no English left on the screen, and the same files with English headers for
everyone else.

The screens are read from <main> (the flashed messages and the screen; the navigation bar
and the footer around them are the site's own, checked with every other page) plus <title>.
The data set is tests/analytics_data.py's.
"""

import csv
import io
import re

import pytest
from sqlalchemy import select

from admin import exports
from extensions import db
from models import Referral, User
from tests import analytics_data, factories
from tests.analytics_data import RANGE, day
from tests.apps import seeded_once, sign_in_once, signed_in
from tests.helpers import csrf_token, log_in
from tests.russian import english_leftovers, latin_words

RUSSIAN_ROLES = ("admin", "manager", "marketer")


@seeded_once
def data(app):
    """The analytics data set, and a Russian member of staff of each role in RUSSIAN_ROLES,
    signed in once (`russian_client`)."""
    seeded = analytics_data.data_set(app)
    with app.app_context():
        people = {role: russian_person(role) for role in RUSSIAN_ROLES}
    sign_ins = {role: sign_in_once(app, person["email"]) for role, person in people.items()}
    return {**seeded, "russian_sign_ins": sign_ins}


# The data set's people, programs and campaign, and the staff the tests make: names are data.
NAMES = frozenset(
    {
        "Ann", "Able", "Ben", "Best", "Pia", "Prior", "Cleo", "Zero", "Carl", "One", "Cora",
        "Two", "Cid", "Three", "Nora", "None", "Cay", "Four", "Cyd", "Five", "Cal", "Six", "Cy",
        "Eight", "Cole", "Seven", "Spring", "push", "Invite", "friends", "Admin", "Manager",
        "Marketer", "Operator", "Staff", "Autumn",
    }
)  # fmt: skip
# The UTM parameters keep their names in the clicks file: marketers type them in links.
UTM_WORDS = frozenset({"utm", "source", "medium", "campaign", "term", "content"})


@pytest.fixture
def staff(app):
    def make(role: str) -> dict:
        with app.app_context():
            return factories.staff(role)

    return make


def russian_person(role: str) -> dict:
    """A new staff member of `role` who chose Russian (saved with the account)."""
    person = factories.staff(role)
    db.session.get(User, person["id"]).locale = "ru"
    db.session.commit()
    return person


def russian_staff(app, role: str):
    """A client logged in as a new staff member of `role` who chose Russian and whose
    browser asks for it too."""
    with app.app_context():
        person = russian_person(role)
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"  # every request of this browser
    assert log_in(client, person["email"]).status_code == 302
    return client


def russian_client(app, data, role: str):
    """A browser asking for Russian, signed in as the data set's Russian staff of `role`."""
    client = signed_in(app.test_client(), data["russian_sign_ins"][role])
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    return client


def screen(html: str) -> str:
    """The page's title and <main>: what this part of the panel writes."""
    title = re.search(r"<title>(.*?)</title>", html, re.S)[1]
    main = html[html.index("<main") : html.index("</main>") + len("</main>")]
    return f"<title>{title}</title>{main}"


def leftovers(response, allowed=frozenset()) -> list[str]:
    found = english_leftovers(screen(response.get_data(as_text=True)), NAMES | set(allowed))
    print("English left on", response.request.path, found)  # shown when the test fails
    return found


def shown(response) -> str:
    """The screen's words with whitespace collapsed (no-break spaces as spaces)."""
    html = screen(response.get_data(as_text=True))
    text = re.sub(r"<[^>]+>", " ", html).replace("\xa0", " ").replace("&nbsp;", " ")
    return " ".join(text.split())


def read_csv(response) -> tuple[list[str], list[list[str]]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    return rows[0], rows[1:]


# --- the menu and analytics ---------------------------------------------------------------


@pytest.mark.module_data
def test_analytics_with_data_reads_in_russian(app, data):
    client = russian_client(app, data, "admin")
    response = client.get("/admin/", query_string=RANGE)
    assert response.status_code == 200
    assert leftovers(response) == []
    text = shown(response)
    # The menu, every entry in Russian for an admin.
    for entry in ("Аналитика", "Участники", "Приглашения", "Пользователи и роли", "Оформление"):
        assert entry in text, entry
    # Plural forms and the reader's decimal sign.
    assert f"С {day(0)} по {day(9)} (10 дней, UTC)." in text
    assert "по сравнению с предыдущими 10 днями" in text
    assert "Регистрации по приглашениям 7 70,0 %" in text  # the funnel's table
    assert "Переходы 10 ▲ больше на 7 (+233,3 %) · было 3" in text  # the clicks card
    assert "= 0,833 × 70,0 % = 0,583." in text  # the K-factor, worked out
    assert "Новые участники по дням" in text and "10 дней, максимум" in response.text


def test_analytics_without_data_and_with_a_bad_filter_read_in_russian(app, client):
    russian = russian_staff(app, "marketer")
    response = russian.get("/admin/")
    assert response.status_code == 200
    assert leftovers(response) == []
    text = shown(response)
    assert "За этот период нет засчитанных приглашений." in text
    assert "без изменений · было 0" in text and "ни в одном из периодов ничего нет" in text

    refused = russian.get("/admin/", query_string={"start": "21.11.2026", "end": "2020-01-01"})
    assert refused.status_code == 400
    assert leftovers(refused) == []
    assert "Введите дату в виде ГГГГ-ММ-ДД, например 2026-11-21." in shown(refused)


# --- participants, users and roles, the tree ---------------------------------------------


@pytest.mark.module_data
def test_the_participants_list_and_a_participant_read_in_russian(app, data):
    client = russian_client(app, data, "admin")
    listed = client.get("/admin/participants")
    assert listed.status_code == 200
    assert leftovers(listed) == []
    # 13 participants, the data set's admin and the 3 Russian staff: the plural for many.
    assert "17 учётных записей" in shown(listed)

    ann = client.get(f"/admin/participants/{data['ann']}")
    assert ann.status_code == 200
    assert leftovers(ann) == []
    text = shown(ann)
    for phrase in (
        "Что участник видит в личном кабинете",
        "Признаки мошенничества",
        "Дерево приглашений вокруг участника",
        "История начислений",
        "Отключить учётную запись Ann Able",
    ):
        assert phrase in text, phrase
    # Role names in the reader's words; the stored code stays English.
    assert ">участник</span>" in ann.text and '<option selected value="member">Участник' in ann.text

    with app.app_context():
        cleo = db.session.scalar(select(User.id).where(User.name == "Cleo Zero"))
    friend = client.get(f"/admin/participants/{cleo}")
    assert leftovers(friend) == []
    assert "Приглашение от Ann Able" in shown(friend)
    assert "на 1 уровень выше:" in shown(friend)


@pytest.mark.module_data
def test_the_tree_reads_in_russian(app, data):
    client = russian_client(app, data, "manager")
    response = client.get(f"/admin/participants/{data['ann']}/tree")
    assert response.status_code == 200
    assert leftovers(response) == []
    assert "Дерево приглашений ниже участника Ann Able" in shown(response)


def test_users_and_roles_read_in_russian_and_a_change_is_told_in_russian(app, staff):
    client = russian_staff(app, "admin")
    manager = staff("manager")
    page = client.get("/admin/users")
    assert page.status_code == 200
    assert leftovers(page) == []
    assert "<td>менеджер</td>" in page.text and ">Менеджер</option>" in page.text

    token = csrf_token(client, "/admin/users")
    changed = client.post(
        "/admin/users/role",
        data={"csrf_token": token, "email": manager["email"], "role": "marketer"},
        follow_redirects=True,
    )
    assert leftovers(changed, {manager["email"]}) == []
    assert f"{manager['email']}: менеджер → маркетолог." in shown(changed)

    unknown = client.post(
        "/admin/users/role",
        data={"csrf_token": token, "email": "nobody@example.com", "role": "admin"},
    )
    assert unknown.status_code == 404
    assert leftovers(unknown) == []
    assert "Нет учётной записи с таким адресом электронной почты." in shown(unknown)


# --- referrals -----------------------------------------------------------------------------


@pytest.mark.module_data
def test_the_referrals_list_reads_in_russian(app, data):
    client = russian_client(app, data, "marketer")
    response = client.get("/admin/referrals")
    assert response.status_code == 200
    assert leftovers(response) == []
    text = shown(response)
    assert "10 приглашений" in text  # Pia and C0 to C8
    for words in ("На проверке", "Отклонено", "Одобрено после проверки", "Засчитано"):
        assert words in text, words
    assert "Причина: " in text and "Код, введённый при регистрации" in text

    with app.app_context():
        held = db.session.scalars(select(Referral.id).where(Referral.status == "review")).all()
    assert len(held) == 1  # C4: the plural for one
    one = client.get("/admin/referrals", query_string={"status": "review"})
    assert "1 приглашение " in shown(one)

    refused = client.get(
        "/admin/referrals",
        query_string={"since": "2026-02-30", "program": "999999", "campaign": "x"},
    )
    assert refused.status_code == 400
    assert leftovers(refused) == []
    text = shown(refused)
    assert "Такой программы нет." in text and "Выберите одно из значений списка." in text


# --- branding -----------------------------------------------------------------------------


def test_branding_with_a_refused_colour_reads_in_russian(app):
    client = russian_staff(app, "admin")
    page = client.get("/admin/settings/branding")
    assert page.status_code == 200
    assert leftovers(page) == []

    token = csrf_token(client, "/admin/settings/branding")
    fields = {"csrf_token": token, "site_name": "", "support_email": ""}
    refused = client.post("/admin/settings/branding", data={**fields, "primary_color": "#777777"})
    assert refused.status_code == 400
    assert leftovers(refused) == []
    assert (
        "Белый текст на #777777 и текст цвета #777777 на белом дают контраст всего 4,48:1,"
        " а WCAG требует не меньше 4,5:1. Выберите цвет темнее."
    ) in shown(refused)

    saved = client.post(
        "/admin/settings/branding", data={**fields, "primary_color": ""}, follow_redirects=True
    )
    assert "Ничего не изменилось." in shown(saved)


# --- CSV files ----------------------------------------------------------------------------

# The part A files and their English headers, as they always were.
ENGLISH_HEADERS = {
    "analytics_daily": ["day", "new_participants", "conversions"],
    "top_referrers": [
        "participant_id", "name", "email", "counted_referrals", "qualified", "reward_earned",
        "currency",
    ],
    "participants": [
        "id", "name", "email", "phone", "role", "active", "active_codes", "referrals", "joined",
    ],
    "users": ["id", "name", "email", "role", "active", "joined"],
    "referrals": [
        "id", "created_at", "status", "reason", "program_id", "program", "campaign_id", "source",
        "code", "referrer_id", "referrer_name", "referrer_email", "friend_id", "friend_name",
        "friend_email", "risk_score", "clicked_at", "first_purchase_at",
    ],
    "clicks": [
        "id", "clicked_at", "program_id", "program", "code", "referrer_id", "referring_page",
        "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    ],
}  # fmt: skip
ARGS = {"analytics_daily": RANGE, "top_referrers": RANGE}


@pytest.mark.module_data
def test_part_a_files_have_russian_headers_and_the_same_cells(app, data):
    english = signed_in(app.test_client(), data["admin_cookies"])
    russian = russian_client(app, data, "admin")
    for name, headers in ENGLISH_HEADERS.items():
        path = f"/admin/export/{name}.csv"
        english_header, english_rows = read_csv(english.get(path, query_string=ARGS.get(name)))
        russian_header, russian_rows = read_csv(russian.get(path, query_string=ARGS.get(name)))
        assert english_header == headers, name
        assert english_rows, f"{name}.csv has no row to compare"
        assert russian_rows == english_rows, name  # codes, amounts, dates: as stored
        assert len(russian_header) == len(headers), name
        assert latin_words(" ".join(russian_header), UTM_WORDS) == [], name
        assert all(exports.HEADER_STYLE.fullmatch(title) for title in russian_header), name

    header, _ = read_csv(russian.get("/admin/export/top_referrers.csv", query_string=RANGE))
    assert header[:4] == ["номер_участника", "имя", "почта", "учтённые_приглашения"]
    header, _ = read_csv(russian.get("/admin/export/clicks.csv"))
    assert header[-5:] == ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"]


@pytest.mark.module_data
def test_every_file_keeps_the_header_style_in_russian(app, data):
    client = russian_client(app, data, "admin")
    for name in exports.registered(app):
        header, _ = read_csv(client.get(f"/admin/export/{name}.csv"))
        assert all(exports.HEADER_STYLE.fullmatch(title) for title in header), (name, header)
        assert len(set(header)) == len(header), name


@pytest.mark.module_data
def test_a_refused_export_explains_itself_in_russian(app, data):
    client = russian_client(app, data, "admin")
    response = client.get("/admin/export/referrals.csv", query_string={"program": "999999"})
    assert response.status_code == 400
    assert leftovers(response, {"referrals", "csv"}) == []
    text = shown(response)
    assert "Файл referrals.csv не удалось создать" in text
    assert "Программа: Такой программы нет." in text
