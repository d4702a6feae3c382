"""The CRM screens: services, campaigns, leads (by hand and from referred signups), turning a
lead into an active client through a contract, and the campaign statistics."""

import csv
import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from admin.crm import contracts
from admin.crm import services as crm
from admin.crm.forms import to_minor_units
from core.money import currency_amount_text as to_text
from extensions import db
from models import AuditLog, Campaign, Lead, Program, Service, User, utcnow
from rewards import ledger
from rewards import services as reward_services
from rewards.conversions import record_event
from rewards.events import EventIn
from tests import factories
from tests.apps import seeded_once, sign_in_once, signed_in
from tests.helpers import count, csrf_token, log_in

PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture(scope="module")
def contracts_folder(tmp_path_factory):
    # The module's: the contract files of data seeded once stay where every test looks.
    return str(tmp_path_factory.mktemp("contracts"))


@pytest.fixture
def config_overrides(contracts_folder):
    return {"CONTRACTS_FOLDER": contracts_folder, "PAYOUT_MINIMUM": 500}


def staff_client(app, role: str):
    client = app.test_client()
    with app.app_context():
        person = factories.staff(role)
    log_in(client, person["email"])
    return client


def post_form(client, path: str, **fields):
    return client.post(path, data={"csrf_token": csrf_token(client, path), **fields})


def audit_actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def make_service(name="Roofing", price=0, currency="USD") -> Service:
    return crm.save_service(None, name=name, description="", price=price, currency=currency)


def make_campaign(name, channel="search", budget=0, currency="USD") -> Campaign:
    return crm.save_campaign(
        None,
        name=name,
        service_id=None,
        channel=channel,
        budget=budget,
        currency=currency,
        starts_on=date(2026, 1, 1),
        ends_on=None,
    )


def make_lead(name, campaign_id=None, phone=None, email=None) -> Lead:
    email = email or (None if phone else f"{name.split()[0].lower()}@example.com")
    return crm.save_lead(None, full_name=name, phone=phone, email=email, campaign_id=campaign_id)


def make_contract(lead_id, service_id, amount, currency="USD", name="Contract"):
    return contracts.upload_contract(
        lead_id=lead_id,
        name=name,
        service_id=service_id,
        signed_on=date(2026, 2, 1),
        valid_from=date(2026, 2, 1),
        valid_until=date(2027, 1, 31),
        amount=amount,
        currency=currency,
        document=io.BytesIO(PDF),
        document_name="contract.pdf",
    )


# --- money ------------------------------------------------------------------------------


def test_amounts_are_converted_exactly():
    assert to_minor_units("12.50", "USD") == 1250
    assert to_minor_units("0.1", "USD") == 10
    assert to_minor_units("19.99", "USD") == 1999  # a float would give 1998.9999
    assert to_minor_units("500", "JPY") == 500
    assert to_minor_units("1.234", "KWD") == 1234
    for bad in ("12.345", "-1", "1e3", "12,50", "", "abc", "99999999999"):
        with pytest.raises(ValueError):
            to_minor_units(bad, "USD")
    with pytest.raises(ValueError):
        to_minor_units("5.5", "JPY")
    assert to_text(1250, "USD") == "12.50" and to_text(500, "JPY") == "500"


# --- services and campaigns -------------------------------------------------------------


def test_a_marketer_adds_and_edits_a_service_and_each_write_is_audited(app):
    marketer = staff_client(app, "marketer")
    response = post_form(
        marketer,
        "/admin/services/new",
        name="Roof repair",
        description="Fix it",
        price="1249.99",
        currency="usd",
    )
    assert response.status_code == 302
    with app.app_context():
        service = db.session.scalars(select(Service)).one()
        assert (service.price, service.currency) == (124999, "USD")
        service_id = service.id
    page = marketer.get("/admin/services").get_data(as_text=True)
    assert "Roof repair" in page and "$1,249.99" in page

    edit = f"/admin/services/{service_id}/edit"
    assert 'value="1249.99"' in marketer.get(edit).get_data(as_text=True)
    response = post_form(
        marketer, edit, name="Roof repair", description="", price="1300", currency="USD"
    )
    assert response.status_code == 302
    with app.app_context():
        entries = db.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert [entry.action for entry in entries] == ["service.create", "service.update"]
        assert entries[1].before == {"description": "Fix it", "price": 124999}
        assert entries[1].after == {"description": "", "price": 130000}


def test_renaming_a_campaign_to_a_taken_name_is_refused_and_changes_nothing(app):
    with app.app_context():
        make_campaign("Spring search")
        summer = make_campaign("Summer search")
        db.session.commit()
        with pytest.raises(crm.NameTaken):
            crm.save_campaign(
                summer,
                name="Spring search",
                service_id=None,
                channel="search",
                budget=0,
                currency="USD",
                starts_on=date(2026, 1, 1),
                ends_on=None,
            )
        db.session.rollback()
        names = db.session.scalars(select(Campaign.name).order_by(Campaign.name)).all()
    assert names == ["Spring search", "Summer search"]


def test_a_taken_name_or_a_bad_price_is_refused_and_the_typed_values_kept(app):
    with app.app_context():
        make_service("Roofing")
        db.session.commit()
    marketer = staff_client(app, "marketer")
    taken = post_form(marketer, "/admin/services/new", name="Roofing", price="10", currency="USD")
    assert taken.status_code == 409
    assert "already used" in taken.get_data(as_text=True)

    bad = post_form(marketer, "/admin/services/new", name="Gutters", price="12.345", currency="USD")
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "at most 2 decimal places" in page and 'value="Gutters"' in page
    assert count(app, Service) == 1
    assert audit_actions(app) == ["service.create"]  # the setup's, nothing more


def test_a_currency_is_picked_from_the_iso_list_and_a_record_keeps_its_own(app):
    """docs/guarantees.md #33: off the list is refused beside the field and saves nothing; a
    service whose currency has left the list shows it selected and keeps it on edit."""
    marketer = staff_client(app, "marketer")
    form = marketer.get("/admin/services/new").get_data(as_text=True)
    assert re.search(r'<select[^>]*name="currency"', form)
    bad = post_form(marketer, "/admin/services/new", name="Gutters", price="12", currency="XYZ")
    assert bad.status_code == 400
    assert "Choose a currency from the list (ISO 4217" in bad.get_data(as_text=True)
    assert count(app, Service) == 0

    with app.app_context():
        service = make_service("Old money", price=500, currency="XTS")
        db.session.commit()
        service_id = service.id
    edit = f"/admin/services/{service_id}/edit"
    page = marketer.get(edit).get_data(as_text=True)
    assert re.search(r'<option selected value="XTS">|<option value="XTS" selected>', page)
    saved = post_form(marketer, edit, name="Old money", description="", price="6", currency="XTS")
    assert saved.status_code == 302
    with app.app_context():
        assert db.session.get(Service, service_id).currency == "XTS"


def test_campaign_dates_and_channel_are_checked(app):
    marketer = staff_client(app, "marketer")
    fields = dict(name="Spring", service_id="0", channel="search", budget="100.00", currency="USD")
    backwards = post_form(
        marketer, "/admin/campaigns/new", starts_on="2026-05-01", ends_on="2026-04-30", **fields
    )
    assert backwards.status_code == 400
    assert "end date cannot be before the start date" in backwards.get_data(as_text=True)
    wrong_channel = post_form(
        marketer, "/admin/campaigns/new", starts_on="2026-05-01", **{**fields, "channel": "tv"}
    )
    assert wrong_channel.status_code == 400
    assert count(app, Campaign) == 0

    good = post_form(
        marketer, "/admin/campaigns/new", starts_on="2026-05-01", ends_on="2026-05-01", **fields
    )
    assert good.status_code == 302
    with app.app_context():
        campaign = db.session.scalars(select(Campaign)).one()
        assert (campaign.budget, campaign.channel, campaign.ends_on) == (
            10000,
            "search",
            date(2026, 5, 1),
        )
    assert audit_actions(app) == ["campaign.create"]


def test_a_campaign_with_referral_programs_keeps_the_referral_channel(app):
    with app.app_context():
        campaign = make_campaign("Friends", channel="referral")
        db.session.scalars(select(Program)).one().campaign_id = campaign.id
        db.session.commit()
        campaign_id = campaign.id
    marketer = staff_client(app, "marketer")
    response = post_form(
        marketer,
        f"/admin/campaigns/{campaign_id}/edit",
        name="Friends",
        service_id="0",
        channel="social",
        budget="0",
        currency="USD",
        starts_on="2026-01-01",
    )
    assert response.status_code == 409
    assert "stays referral" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Campaign, campaign_id).channel == "referral"


# --- leads ------------------------------------------------------------------------------


def test_an_operator_enters_a_lead_with_a_normalised_phone(app):
    operator = staff_client(app, "operator")
    response = post_form(
        operator,
        "/admin/leads/new",
        full_name="Ola Lead",
        phone="+49 151-234 5678",
        email="Ola@Example.COM",
        campaign_id="0",
        status="potential",
    )
    assert response.status_code == 302
    with app.app_context():
        lead = db.session.scalars(select(Lead)).one()
        assert (lead.phone, lead.email, lead.source) == (
            "+491512345678",
            "ola@example.com",
            "manual",
        )
    assert audit_actions(app) == ["lead.create"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"phone": "", "email": ""}, "phone number or an email address"),
        ({"phone": "call me maybe", "email": ""}, "7 to 15 digits"),
        ({"phone": "123", "email": ""}, "7 to 15 digits"),
        ({"phone": "12+34567890", "email": ""}, "7 to 15 digits"),
        ({"phone": "", "email": "not-an-email"}, "not valid"),
    ],
)
def test_a_lead_needs_a_valid_way_to_reach_them(app, fields, message):
    operator = staff_client(app, "operator")
    base = {"full_name": "Nina", "campaign_id": "0", "status": "potential"}
    response = post_form(operator, "/admin/leads/new", **base, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count(app, Lead) == 0


def test_roles_on_leads_operator_edits_manager_converts_marketer_neither(app):
    with app.app_context():
        lead_id = make_lead("Lee Lead").id
        db.session.commit()
    manager, operator, marketer = (
        staff_client(app, r) for r in ("manager", "operator", "marketer")
    )
    assert manager.get("/admin/leads").status_code == 200
    assert manager.get("/admin/leads/new").status_code == 403
    assert manager.get(f"/admin/leads/{lead_id}/edit").status_code == 403
    assert operator.get(f"/admin/leads/{lead_id}/edit").status_code == 200
    token = csrf_token(operator, f"/admin/leads/{lead_id}")
    refused = operator.post(
        f"/admin/leads/{lead_id}/convert", data={"csrf_token": token, "contract_id": "1"}
    )
    assert refused.status_code == 403
    assert marketer.get("/admin/leads").status_code == 403
    assert operator.get("/admin/services").status_code == 403
    assert manager.get("/admin/campaigns").status_code == 403
    assert operator.get("/admin/contracts").status_code == 403
    for client in (manager, operator, marketer):
        assert client.get("/admin/campaigns/stats").status_code == 200
    with app.app_context():
        assert db.session.get(Lead, lead_id).status == "potential"


def test_the_lead_list_filters_and_its_export_holds_the_same_rows(app):
    with app.app_context():
        spring = make_campaign("Spring").id
        make_lead("Anna Apple", spring, email="anna@example.com")
        make_lead("Bert Berry", spring, phone="+1 555 123 4567")
        make_lead("Cleo Cherry", None, email="cleo@fruit.example")
        lost = make_lead("Dina Date", spring, email="dina@example.com")
        crm.save_lead(
            lost,
            full_name=lost.full_name,
            phone=None,
            email=lost.email,
            campaign_id=spring,
            status="lost",
        )
        db.session.commit()
    operator = staff_client(app, "operator")

    def names(query: str) -> list[str]:
        page = operator.get(f"/admin/leads?{query}").get_data(as_text=True)
        return re.findall(r'/admin/leads/\d+">([^<]+)</a>', page)

    def exported(query: str) -> list[str]:
        text = operator.get(f"/admin/export/leads.csv?{query}").get_data(as_text=True)
        return [row["full_name"] for row in csv.DictReader(io.StringIO(text))]

    assert sorted(names("")) == ["Anna Apple", "Bert Berry", "Cleo Cherry", "Dina Date"]
    assert names(f"campaign={spring}&status=potential") == ["Bert Berry", "Anna Apple"]
    assert names("status=lost") == ["Dina Date"]
    assert names("campaign=none") == ["Cleo Cherry"]
    assert names("q=fruit.example") == ["Cleo Cherry"]
    assert names("q=555-123") == ["Bert Berry"]
    assert names("q=APPLE") == ["Anna Apple"]
    assert names("q=nobody") == []
    for query in (f"campaign={spring}&status=potential", "q=555-123", "status=lost", ""):
        assert exported(query) == names(query)
    assert "Nothing matches these filters" in operator.get("/admin/leads?q=nobody").get_data(
        as_text=True
    )


def test_the_lead_list_is_paginated_with_the_filters_kept(app):
    app.config["ADMIN_PAGE_SIZE"] = 2
    with app.app_context():
        for number in range(5):
            make_lead(f"Lead Number{number}", email=f"lead{number}@example.com")
        db.session.commit()
    operator = staff_client(app, "operator")
    page = operator.get("/admin/leads?q=lead&page=2").get_data(as_text=True)
    assert "Page 2 of 3" in page
    assert "page=3&amp;q=lead" in page or "q=lead&amp;page=3" in page


# --- leads from referred signups ----------------------------------------------------------


def test_a_referred_signup_becomes_one_lead_of_the_programs_campaign(app, make_participant):
    with app.app_context():
        campaign_id = make_campaign("Friends", channel="referral").id
        db.session.scalars(select(Program)).one().campaign_id = campaign_id
        db.session.commit()
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    # Rita's own browser and address: the referral is refused, and no lead is made.
    with app.app_context():
        rita_user = db.session.get(User, rita["id"])
        device, ip = rita_user.device_id or "dev-rita", rita_user.signup_ip
        rita_user.device_id = device
        db.session.commit()
    make_participant("Sock Puppet", invited_by=rita["code"], device_id=device, ip=ip)

    with app.app_context():
        leads = db.session.scalars(select(Lead)).all()
        assert [(lead.full_name, lead.participant_id) for lead in leads] == [
            ("Fred Friend", fred["id"])
        ]
        assert (leads[0].campaign_id, leads[0].source, leads[0].email) == (
            campaign_id,
            "referral",
            fred["email"],
        )
        # A participant is a lead once, whatever happens again.
        with pytest.raises(IntegrityError), db.session.begin_nested():
            db.session.add(
                Lead(full_name="Again", email="x@example.com", participant_id=fred["id"])
            )
        db.session.rollback()


# --- conversion -------------------------------------------------------------------------


@pytest.fixture
def two_leads(app):
    """Two leads, each with a contract: {"lead", "contract", "other_lead", "other_contract"}."""
    with app.app_context():
        service = make_service()
        lead, other = make_lead("Lena Lead"), make_lead("Otto Other")
        ids = {
            "lead": lead.id,
            "other_lead": other.id,
            "contract": make_contract(lead.id, service.id, 1000).id,
            "other_contract": make_contract(other.id, service.id, 2000).id,
        }
        db.session.commit()
        return ids


def test_a_lead_becomes_active_only_through_its_own_contract(app, two_leads):
    manager = staff_client(app, "manager")
    lead_page = f"/admin/leads/{two_leads['lead']}"
    path = f"{lead_page}/convert"
    foreign = post_form(manager, path, contract_id=str(two_leads["other_contract"]))
    assert foreign.status_code == 400
    with app.app_context():
        assert db.session.get(Lead, two_leads["lead"]).status == "potential"

    token = csrf_token(manager, lead_page)
    converted = manager.post(path, data={"csrf_token": token, "contract_id": two_leads["contract"]})
    assert converted.status_code == 302
    page = manager.get(lead_page).get_data(as_text=True)
    assert "is now an active client" in page and ">active</span>" in page
    with app.app_context():
        lead = db.session.get(Lead, two_leads["lead"])
        assert (lead.status, lead.contract_id) == ("active", two_leads["contract"])
        entry = db.session.scalars(select(AuditLog).where(AuditLog.action == "lead.convert")).one()
        assert entry.before == {"status": "potential", "contract_id": None}
        assert entry.after == {"status": "active", "contract_id": two_leads["contract"]}

    # Converting again changes nothing and says why.
    with app.app_context():
        assert crm.contracts_of(db.session.get(Lead, two_leads["lead"]))
        with pytest.raises(crm.AlreadyActive):
            crm.convert_lead(db.session.get(Lead, two_leads["lead"]), two_leads["contract"])
        db.session.rollback()
    assert audit_actions(app).count("lead.convert") == 1


def test_the_database_refuses_an_active_lead_without_its_own_contract(app, two_leads):
    with app.app_context():
        with pytest.raises(IntegrityError):
            db.session.execute(
                update(Lead).where(Lead.id == two_leads["lead"]).values(status="active")
            )
            db.session.flush()
        db.session.rollback()
        with pytest.raises(IntegrityError):
            db.session.execute(
                update(Lead)
                .where(Lead.id == two_leads["lead"])
                .values(status="active", contract_id=two_leads["other_contract"])
            )
            db.session.commit()
        db.session.rollback()


def test_an_active_lead_cannot_be_edited_back_and_status_active_needs_a_contract(app, two_leads):
    operator = staff_client(app, "operator")
    forged = post_form(
        operator,
        "/admin/leads/new",
        full_name="Ann",
        email="ann@example.com",
        campaign_id="0",
        status="active",
    )
    assert forged.status_code == 400
    assert count(app, Lead) == 2
    with app.app_context():
        crm.convert_lead(db.session.get(Lead, two_leads["lead"]), two_leads["contract"])
        db.session.commit()
    edit = f"/admin/leads/{two_leads['lead']}/edit"
    assert 'name="status"' not in operator.get(edit).get_data(as_text=True)
    saved = post_form(
        operator, edit, full_name="Lena Renamed", email="lena@example.com", campaign_id="0"
    )
    assert saved.status_code == 302
    with app.app_context():
        lead = db.session.get(Lead, two_leads["lead"])
        assert (lead.full_name, lead.status) == ("Lena Renamed", "active")


# --- campaign statistics ----------------------------------------------------------------


@seeded_once
def statistics_data(app):
    """The hand-computed data set, with an operator and an admin signed in once
    (`signed_in_as`); returns the campaigns' ids by name and the sign-ins:

    Every campaign started on 2026-01-01 and has no end; the contracts are signed on
    2026-02-01; everything else happens today.
    Friends (referral, USD, budget 500.00): leads Fred and Gina (referred signups); Fred bought
      100.00, Gina 40.00 and refunded it all inside the hold; Fred's contract 300.00 USD
      (active) and one of 50.00 EUR; Rita's 10.00 reward for Fred paid out, Fred's 5.00
      approved (Gina's cancelled). Revenue 300 + 140 - 40 = 400.00; cost 500 + 15 = 515.00.
    Search ads (search, budget 200.00 USD): Sam (active, contract 500.00) and Sue.
    Flyers (offline, budget 0): Carl, no contract.
    Euro social (social, EUR, budget 100.00): Dora (active, contract 80.00 EUR).
    """

    def make_participant(name, **kwargs):
        with app.app_context():
            return factories.participant(name, **kwargs)

    with app.app_context():
        service_id = make_service().id
        friends = make_campaign("Friends", channel="referral", budget=50000)
        search = make_campaign("Search ads", budget=20000)
        flyers = make_campaign("Flyers", channel="offline")
        euro = make_campaign("Euro social", channel="social", budget=10000, currency="EUR")
        db.session.scalars(select(Program)).one().campaign_id = friends.id
        db.session.commit()
        ids = {c.name: c.id for c in (friends, search, flyers, euro)}
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    gina = make_participant("Gina Guest", invited_by=rita["code"])
    with app.app_context():
        now = utcnow()
        factories.purchase(fred["email"], "f1", 10000, now=now, source="manual", external_id="f1")
        factories.purchase(gina["email"], "g1", 4000, now=now, source="manual", external_id="g1")
        refund = EventIn(source="manual", kind="refund", external_id="g1-refund", order_id="g1")
        record_event(refund, now=now)
        reward_services.release_held_rewards(now + timedelta(days=30))
        referrer = db.session.get(User, rita["id"])
        payout = ledger.request_payout(referrer, "credit", "USD", now)
        ledger.mark_payout_paid(payout, "bank transfer", now)

        fred_lead = db.session.scalars(select(Lead).where(Lead.participant_id == fred["id"])).one()
        contract = make_contract(fred_lead.id, service_id, 30000)
        make_contract(fred_lead.id, service_id, 5000, currency="EUR", name="Euro add-on")
        crm.convert_lead(fred_lead, contract.id)
        sam = make_lead("Sam Search", ids["Search ads"])
        crm.convert_lead(sam, make_contract(sam.id, service_id, 50000).id)
        make_lead("Sue Search", ids["Search ads"])
        make_lead("Carl Flyer", ids["Flyers"])
        dora = make_lead("Dora Euro", ids["Euro social"])
        crm.convert_lead(dora, make_contract(dora.id, service_id, 8000, currency="EUR").id)
        db.session.commit()
        staff = {role: factories.staff(role) for role in ("operator", "admin")}
    sign_ins = {role: sign_in_once(app, person["email"]) for role, person in staff.items()}
    return {**ids, "sign_ins": sign_ins}


def signed_in_as(app, statistics_data, role: str):
    """A client of the sign-in the statistics seed made for its member of staff of `role`."""
    return signed_in(app.test_client(), statistics_data["sign_ins"][role])


EXPECTED = {
    # campaign: (channel, leads, active, revenue, spend, reward cost, cost, ROI)
    # ROI = (revenue - cost) / cost: Friends (400 - 515) / 515 = -22.3 %.
    "Friends": ("Referral", "2", "1", "$400.00", "$500.00", "$15.00", "$515.00", "-22.3 %"),
    "Search ads": ("Search", "2", "1", "$500.00", "$200.00", "$0.00", "$200.00", "+150.0 %"),
    "Flyers": ("Offline", "1", "0", "$0.00", "$0.00", "$0.00", "$0.00", "—"),
    "Euro social": ("Social", "1", "1", "€80.00", "€100.00", "€0.00", "€100.00", "-20.0 %"),
}


def stats_table(page: str) -> dict[str, tuple]:
    rows = re.findall(r'<tr data-campaign="\d+">(.*?)</tr>', page, re.S)
    table = {}
    for row in rows:
        cells = [
            re.sub(r"\s+", " ", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        table[cells[0]] = tuple(cells[1:])
    return table


@pytest.mark.module_data
def test_campaign_statistics_equal_the_hand_computed_figures(app, statistics_data):
    operator = signed_in_as(app, statistics_data, "operator")
    page = operator.get("/admin/campaigns/stats")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert stats_table(text) == EXPECTED
    assert "Not included (other currencies):" in text and "revenue €50.00" in text
    assert "ROI = (revenue − cost) ÷ cost" in text and "cost = spend + reward cost" in text

    only_search = operator.get("/admin/campaigns/stats?channel=search").get_data(as_text=True)
    assert list(stats_table(only_search)) == ["Search ads"]

    export = operator.get("/admin/export/campaign_stats.csv").get_data(as_text=True)
    rows = {row["campaign"]: row for row in csv.DictReader(io.StringIO(export))}
    assert {
        name: (
            row["leads"],
            row["active_clients"],
            row["revenue"],
            row["spend"],
            row["reward_cost"],
            row["cost"],
            row["roi_percent"],
            row["entries_in_other_currencies_left_out"],
        )
        for name, row in rows.items()
    } == {
        "Friends": ("2", "1", "400.00", "500.00", "15.00", "515.00", "-22.3", "1"),
        "Search ads": ("2", "1", "500.00", "200.00", "0.00", "200.00", "150.0", "0"),
        "Flyers": ("1", "0", "0.00", "0.00", "0.00", "0.00", "", "0"),
        "Euro social": ("1", "1", "80.00", "100.00", "0.00", "100.00", "-20.0", "0"),
    }


def test_campaign_statistics_over_a_date_range(app, statistics_data, make_participant):
    """docs/guarantees.md #28: the range, and ROI = (revenue - cost) / cost."""
    operator = staff_client(app, "operator")

    def table(**dates):
        page = operator.get("/admin/campaigns/stats", query_string=dates)
        assert page.status_code == 200
        return stats_table(page.get_data(as_text=True))

    # The day the contracts were signed: their revenue only; budgets count in full.
    signed = table(start="2026-02-01", end="2026-02-01")
    assert signed["Friends"] == (
        ("Referral", "0", "0", "$300.00", "$500.00", "$0.00", "$500.00", "-40.0 %")
    )
    assert signed["Search ads"][3:] == ("$500.00", "$200.00", "$0.00", "$200.00", "+150.0 %")
    # Before any campaign began: nothing, not even a budget.
    before = table(start="2025-01-01", end="2025-12-31")
    assert {row[3:] for row in before.values()} == {
        ("$0.00", "$0.00", "$0.00", "$0.00", "—"),
        ("€0.00", "€0.00", "€0.00", "€0.00", "—"),
    }
    # Today: the leads and purchases (100 + 40 - 40) and their rewards; a new friend's
    # purchase adds rewards still inside their hold (pending), which count as cost too.
    today = utcnow().date().isoformat()
    assert table(start=today, end=today)["Friends"] == (
        ("Referral", "2", "1", "$100.00", "$500.00", "$15.00", "$515.00", "-80.6 %")
    )
    rita = db_user_code(app, "Rita Referrer")
    hal = make_participant("Hal Later", invited_by=rita)
    with app.app_context():
        factories.purchase(hal["email"], "h1", 3000, source="manual", external_id="h1")
        db.session.commit()
    # Hal's 30.00; pending rewards 10.00 + 5.00: (130 - 530) / 530.
    assert table(start=today)["Friends"] == (
        ("Referral", "3", "1", "$130.00", "$500.00", "$30.00", "$530.00", "-75.5 %")
    )
    export = operator.get("/admin/export/campaign_stats.csv", query_string={"start": today})
    rows = {row["campaign"]: row for row in csv.DictReader(io.StringIO(export.text))}
    assert (rows["Friends"]["reward_cost"], rows["Friends"]["roi_percent"]) == ("30.00", "-75.5")


@pytest.mark.module_data
@pytest.mark.parametrize(
    ("dates", "field", "message"),
    [
        ({"start": "2026-02-30"}, "start", "Enter the date as YYYY-MM-DD"),
        ({"start": "2026-03-01", "end": "2026-02-01"}, "start", "after the end date"),
        ({"end": "0001-01-01"}, "end", "Pick a date between 1970-01-01"),
    ],
)
def test_bad_campaign_statistics_dates_are_refused_clearly(
    app, statistics_data, dates, field, message
):
    operator = signed_in_as(app, statistics_data, "operator")
    page = operator.get("/admin/campaigns/stats", query_string=dates)
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert re.search(rf'id="{field}-error"[^>]*>[^<]*{message}', text)
    assert "campaign-stats" not in text  # no figures for a range nobody meant
    for value in dates.values():
        assert f'value="{value}"' in text  # what was typed is kept
    export = operator.get("/admin/export/campaign_stats.csv", query_string=dates)
    assert export.status_code == 400


def db_user_code(app, name: str) -> str:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.name == name))
        return user.codes[0].code


def test_statistics_without_campaigns_say_so(app):
    page = staff_client(app, "manager").get("/admin/campaigns/stats").get_data(as_text=True)
    assert "No campaigns yet" in page


@pytest.mark.module_data
def test_every_crm_page_renders_for_an_admin(app, statistics_data):
    admin = signed_in_as(app, statistics_data, "admin")
    with app.app_context():
        lead = db.session.scalars(select(Lead).where(Lead.status == "active")).first()
        service_id = db.session.scalar(select(Service.id))
    pages = [
        "/admin/services",
        "/admin/services/new",
        f"/admin/services/{service_id}/edit",
        "/admin/campaigns",
        "/admin/campaigns/new",
        f"/admin/campaigns/{statistics_data['Friends']}/edit",
        "/admin/campaigns/stats",
        "/admin/leads",
        "/admin/leads/new",
        f"/admin/leads/{lead.id}",
        f"/admin/leads/{lead.id}/edit",
        f"/admin/leads/{lead.id}/contracts/new",
        "/admin/contracts",
        f"/admin/contracts?lead={lead.id}",
    ]
    for path in pages:
        assert admin.get(path).status_code == 200, path
    for name in ("services", "campaigns", "leads", "contracts", "campaign_stats"):
        export = admin.get(f"/admin/export/{name}.csv")
        header = export.get_data(as_text=True).splitlines()[0]
        export.close()
        assert export.status_code == 200 and export.mimetype == "text/csv", name
        assert header.startswith(("id,", "campaign,")), name
    assert admin.get("/admin/leads/999999").status_code == 404
    assert admin.get("/admin/services/999999/edit").status_code == 404
