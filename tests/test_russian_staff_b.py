"""The staff panel's operations, CRM and integrations screens in Russian
(docs/guarantees.md #46): each page as the role that uses it, with no English left on it,
the codes shown in words, and a CRM export whose column titles are Russian."""

import csv
import io
import re
from types import SimpleNamespace

import pytest
from flask import render_template
from sqlalchemy import select

from admin.crm import services as crm
from core.money import CURRENCIES
from core.templating import REASON_LABELS
from extensions import db
from models import REWARD_STATUSES, Reward, User, utcnow
from rewards import ledger
from rewards import services as reward_services
from tests import factories
from tests.helpers import csrf_token, log_in
from tests.russian import english_leftovers, latin_words

RU = {"Accept-Language": "ru"}
# Proper names on these screens: a standard, a query language, the demo program's own name,
# file formats; and the ISO 4217 currency codes, the same in every language.
PROPER = {"Standard", "Webhooks", "GraphQL", "Invite", "friends", "DOC", "DOCX", "ODT", "JPG"}
PROPER |= set(CURRENCIES)
NAMES = {
    "Shop",
    "Rita",
    "Referrer",
    "Fred",
    "Friend",
    "Bob",
    "Buyer",
    "Roofing",
    "Spring",
    "Ivan",
    "Petrov",
}
_MENU = re.compile(
    r'<div class="col-md-3 col-lg-2 mb-md-4">.*?<div class="col-md-9 col-lg-10">', re.S
)


def screen(html: str) -> str:
    """The page's own screen and its flashed messages. The navbar, the staff menu and the
    footer belong to base.html and the staff layout, translated and tested on their own."""
    main = html[html.index("<main") : html.index("</main>")]
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    return f"<p>{title}</p>" + _MENU.sub("", main)


def others_words(app) -> set[str]:
    """The English still in words these screens borrow from other parts of the product (the
    fraud signals' names of core/templating.py, the reward status badge of
    templates/rewards/_status.html), read in Russian: translated elsewhere, and empty once
    they are, which makes this test strict again."""
    with app.test_request_context(headers=RU):
        signals = " ".join(str(label) for label in REASON_LABELS.values())
        badges = " ".join(
            render_template(
                "rewards/_status.html",
                reward=SimpleNamespace(status=status, reason=None, payout_id=None),
            )
            for status in REWARD_STATUSES
        )
    return set(latin_words(signals)) | set(english_leftovers(badges))


def leftovers(html: str) -> list[str]:
    return english_leftovers(screen(html), allowed=NAMES | PROPER | BORROWED)


def assert_russian(html: str, where: str = "") -> None:
    words = leftovers(html)
    assert words == [], f"English left on {where or 'the page'}: {words}"


BORROWED: set[str] = set()


@pytest.fixture(autouse=True)
def borrowed_words(app):
    BORROWED.clear()
    BORROWED.update(others_words(app))


@pytest.fixture
def config_overrides(tmp_path):
    return {"CONTRACTS_FOLDER": str(tmp_path / "contracts"), "PAYOUT_MINIMUM": 500}


def as_role(app, role: str, locale: str = "ru"):
    """A signed-in staff member who chose `locale` (the saved choice wins over the browser's)."""
    client = app.test_client()
    with app.app_context():
        person = factories.staff(role)
        db.session.get(User, person["id"]).locale = locale
        db.session.commit()
    log_in(client, person["email"])
    client.person_id = person["id"]
    return client


def switch_to(app, client, locale: str) -> None:
    with app.app_context():
        db.session.get(User, client.person_id).locale = locale
        db.session.commit()


def page(client, path: str) -> str:
    response = client.get(path, headers=RU)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


@pytest.fixture
def held_and_rewarded(app, make_participant):
    """Rita's friend Fred signed up from her address (held: same_ip); Bob, her other friend,
    bought something, so the ledger has rewards and Bob's purchase is a conversion."""
    rita = make_participant("Rita Referrer", email="rita@example.com", ip="203.0.113.7")
    fred = make_participant(
        "Fred Friend", email="fred@example.com", invited_by=rita["code"], ip="203.0.113.7"
    )
    bob = make_participant("Bob Buyer", email="bob@example.com", invited_by=rita["code"])
    with app.app_context():
        factories.purchase("bob@example.com", "A-100", 5000, now=utcnow())
        db.session.commit()
    return {"rita": rita, "fred": fred, "bob": bob}


def test_review_queue_and_one_item_in_russian(app, held_and_rewarded):
    manager = as_role(app, "manager")
    queue = page(manager, "/admin/review")
    assert_russian(queue)
    assert "Очередь проверки" in queue and "Связанные аккаунты" in queue
    assert "зарегистрировался с IP-адреса пригласившего" in queue  # the signal's detail
    referral_id = re.search(r"/admin/review/referrals/(\d+)", queue).group(1)
    item = page(manager, f"/admin/review/referrals/{referral_id}")
    assert_russian(item)
    assert f"Приглашение №{referral_id}" in item
    refused = manager.post(
        f"/admin/review/referrals/{referral_id}",
        data={
            "csrf_token": csrf_token(manager, "/admin/review"),
            "ids": referral_id,
            "reject": "1",
        },
        headers=RU,
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert_russian(html)
    assert "Укажите причину отклонения." in html


def test_rewards_payouts_and_a_confirmation_in_russian(app, held_and_rewarded):
    manager = as_role(app, "manager")
    rewards = page(manager, "/admin/rewards")
    assert_russian(rewards)
    with app.app_context():
        total = db.session.query(Reward).count()
        reward_id = db.session.query(Reward.id).filter(Reward.status == "pending").first()[0]
    # Russian plural: 1 вознаграждение, 2–4 вознаграждения, 5+ вознаграждений
    word = {1: "вознаграждение", 2: "вознаграждения", 3: "вознаграждения"}.get(total)
    assert f"{total} {word or 'вознаграждений'}" in rewards
    confirm = page(manager, f"/admin/rewards/{reward_id}/approve")
    assert_russian(confirm)
    assert f"Одобрить до конца удержания: вознаграждение №{reward_id}" in confirm
    approved = manager.post(
        f"/admin/rewards/{reward_id}/approve",
        data={"csrf_token": csrf_token(manager, "/admin/rewards"), "confirm": "y"},
        headers=RU,
        follow_redirects=True,
    )
    html = approved.get_data(as_text=True)
    assert_russian(html)
    assert f"Вознаграждение №{reward_id} одобрено до конца удержания" in html

    payouts = page(manager, "/admin/payouts")
    assert_russian(payouts)
    assert "Заявок на выплату пока нет." in payouts
    with app.app_context():
        rita = db.session.get(User, held_and_rewarded["rita"]["id"])
        hers = db.session.scalars(select(Reward).where(Reward.beneficiary_id == rita.id)).all()
        reward_services.approve_rewards([reward.id for reward in hers], utcnow())
        payout = ledger.request_payout(rita, hers[0].kind, hers[0].currency, utcnow())
        db.session.commit()
        payout_id = payout.id
    listed = page(manager, "/admin/payouts")
    assert_russian(listed)
    assert "подана" in listed
    cancel = page(manager, f"/admin/payouts/{payout_id}/cancel")
    assert_russian(cancel)
    assert f"Отменить заявку на выплату №{payout_id}" in cancel


def test_conversions_and_a_refused_purchase_in_russian(app, held_and_rewarded):
    manager = as_role(app, "manager")
    conversions = page(manager, "/admin/conversions")
    assert_russian(conversions)
    assert "Конверсии" in conversions and "покупка" in conversions
    form = page(manager, "/admin/conversions/new")
    assert_russian(form)
    assert "Внести покупку" in form
    refused = manager.post(
        "/admin/conversions/new",
        data={
            "csrf_token": csrf_token(manager, "/admin/conversions/new"),
            "email": "nobody@example.com",
            "order_id": "B-1",
            "amount": "12.505",
            "currency": "USD",
            "occurred_on": "2999-01-01",
        },
        headers=RU,
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code in (400, 422)
    assert_russian(html)
    assert "Нет участника с таким адресом эл. почты." in html
    assert "Дата покупки не может быть в будущем." in html


def test_crm_screens_with_data_and_empty_in_russian(app, held_and_rewarded):
    marketer, operator, manager = (as_role(app, r) for r in ("marketer", "operator", "manager"))
    empty = {
        marketer: ["/admin/services", "/admin/campaigns", "/admin/campaigns/stats"],
        manager: ["/admin/contracts"],
    }
    for client, paths in empty.items():
        for path in paths:
            assert_russian(page(client, path), path)
    assert "Услуг пока нет." in page(marketer, "/admin/services")
    with app.app_context():
        service = crm.save_service(
            None, name="Roofing", description="", price=150000, currency="USD"
        )
        crm.save_campaign(
            None,
            name="Spring",
            service_id=service.id,
            channel="search",
            budget=10000,
            currency="USD",
            starts_on=utcnow().date(),
            ends_on=None,
        )
        lead = crm.save_lead(
            None,
            full_name="Ivan Petrov",
            phone="+7 912 000 00 00",
            email=None,
            campaign_id=None,
            status="potential",
            created_by_id=None,
        )
        db.session.commit()
        lead_id = lead.id
    for client, path in (
        (marketer, "/admin/services"),
        (marketer, "/admin/campaigns"),
        (marketer, "/admin/campaigns/stats"),
        (operator, "/admin/leads"),
        (operator, f"/admin/leads/{lead_id}"),
        (manager, "/admin/contracts"),
        (manager, f"/admin/leads/{lead_id}/contracts/new"),
        (marketer, "/admin/campaigns/new"),
    ):
        assert_russian(page(client, path), path)
    assert "Поиск" in page(marketer, "/admin/campaigns")
    assert "потенциальный" in page(operator, "/admin/leads")
    refused = marketer.get("/admin/campaigns/stats?start=2026-13-01", headers=RU)
    assert refused.status_code == 400
    stats = refused.get_data(as_text=True)
    assert_russian(stats)
    assert "Введите дату в виде ГГГГ-ММ-ДД" in stats


def test_a_crm_export_in_russian_has_russian_column_titles(app):
    operator = as_role(app, "operator")
    with app.app_context():
        crm.save_lead(
            None,
            full_name="Ivan Petrov",
            phone="+7 912 000 00 00",
            email=None,
            campaign_id=None,
            status="potential",
            created_by_id=None,
        )
        db.session.commit()
    russian = operator.get("/admin/export/leads.csv", headers=RU).get_data(as_text=True)
    switch_to(app, operator, "en")
    english = operator.get("/admin/export/leads.csv").get_data(as_text=True)
    english_rows = list(csv.reader(io.StringIO(english)))
    russian_rows = list(csv.reader(io.StringIO(russian)))
    assert english_rows[0][:3] == ["id", "full_name", "phone"]
    assert russian_rows[0][:3] == ["номер", "полное_имя", "телефон"]
    assert latin_words(" ".join(russian_rows[0])) == []
    assert russian_rows[1:] == english_rows[1:]  # the cells stay as they are


def test_integrations_in_russian(app):
    admin = as_role(app, "admin")
    index = page(admin, "/admin/integrations")
    assert_russian(index)
    assert "API-ключей пока нет." in index and "Исходящие вебхуки" in index
    created = admin.post(
        "/admin/integrations/api-keys",
        data={
            "csrf_token": csrf_token(admin, "/admin/integrations"),
            "name": "Shop",
            "scopes": ["events:write"],
        },
        headers=RU,
    )
    html = created.get_data(as_text=True)
    assert created.status_code == 200
    assert_russian(html)
    assert "API-ключ создан" in html and "Больше он не будет показан" in html
    refused = admin.post(
        "/admin/integrations/webhooks/new",
        data={
            "csrf_token": csrf_token(admin, "/admin/integrations/webhooks/new"),
            "url": "not a url",
            "events": ["reward.paid"],
        },
        headers=RU,
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert_russian(html)
    assert "Это не адрес." in html
    for path in ("/admin/outbox", "/admin/outbox?status=sent", "/admin/audit"):
        assert_russian(page(admin, path), path)
    assert "Очередь отправки" in page(admin, "/admin/outbox")
    assert "Журнал действий" in page(admin, "/admin/audit")


def test_the_saleor_app_page_in_russian(client):
    shown = client.get("/saleor/app", headers=RU).get_data(as_text=True)
    assert_russian(shown)
    assert "InviteLoop в Saleor" in shown and "Saleor не настроен" in shown
