"""Every CSV export speaks one style: snake_case headers, money as a decimal amount in its
currency's decimals beside a currency column (never minor units; points as their number,
with no currency), formulas still defused (docs/guarantees.md #29, #19).

The data set and who is who in it are described in tests/analytics_data.py; this module
adds a payout, a service in yen, a campaign budget and a contract in dinar."""

import csv
import io
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import select, update

from admin import exports
from admin.exports import CsvExport, register
from extensions import db
from models import Campaign, Contract, Lead, Payout, Program, Service, User
from tests import analytics_data
from tests.analytics_data import RANGE

data = analytics_data.data
staff_client = analytics_data.staff_client

# Words that make a column money: such a column must be checked below.
MONEY_WORDS = ("amount", "price", "budget", "revenue", "spend", "earned")
# Exports the data set leaves empty: their header is still checked.
EMPTY_HERE = {"review", "review_purchases", "deliveries"}
# The filters an export needs to hold the data set's rows.
ARGS = {"analytics_daily": RANGE, "top_referrers": RANGE}


def rows_of(client, name: str, **args) -> tuple[list[str], list[dict]]:
    response = client.get(f"/admin/export/{name}.csv", query_string=args or ARGS.get(name))
    assert response.status_code == 200 and response.mimetype == "text/csv", name
    reader = csv.reader(io.StringIO(response.text))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def first(rows: list[dict], **match) -> dict:
    found = [row for row in rows if all(row[key] == value for key, value in match.items())]
    assert found, (match, rows)
    return found[0]


@pytest.fixture
def more(app, data):
    """A paid payout of 20.00, a service at 500 yen, a 19.99 EUR budget, a 1.234 KWD contract."""
    with app.app_context():
        ann = db.session.scalar(select(User).where(User.name == "Ann Able"))
        db.session.add(Payout(user_id=ann.id, kind="cash", amount=2000, currency="USD"))
        service = Service(name="Roof check", price=500, currency="JPY")
        campaign = Campaign(
            name="Radio", channel="offline", budget=1999, currency="EUR", starts_on=date(2026, 1, 1)
        )
        lead = Lead(full_name="Lou Lead", email="lou@example.com")
        db.session.add_all([service, campaign, lead])
        db.session.flush()
        db.session.add(
            Contract(
                name="Roof", service_id=service.id, lead_id=lead.id, file_key="k" * 32,
                file_name="roof.pdf", file_size=10, content_type="application/pdf",
                signed_on=date(2026, 1, 2), valid_from=date(2026, 1, 2),
                valid_until=date(2027, 1, 2), amount=1234, currency="KWD",
            )
        )  # fmt: skip
        db.session.commit()
    return data


def test_every_export_has_snake_case_headers_and_decimal_money(app, staff_client, more):
    files = {name: rows_of(staff_client, name) for name in exports.registered(app)}
    for name, (header, rows) in files.items():
        assert all(exports.HEADER_STYLE.fullmatch(column) for column in header), (name, header)
        assert len(set(header)) == len(header), name
        assert not any("minor" in column for column in header), name
        assert rows or name in EMPTY_HERE, f"{name}.csv has no row to check in this data set"

    checks = {
        "rewards": [
            ({"beneficiary_email": "ann.able@example.com", "amount": "10.00"}, {"currency": "USD"}),
            ({"beneficiary_email": "cid.three@example.com"}, {"amount": "50", "currency": ""}),
        ],
        "conversions": [
            ({"order_id": "o3"}, {"amount": "40.00", "currency": "EUR"}),
            ({"order_id": "o1", "kind": "purchase"}, {"amount": "50.00", "currency": "USD"}),
        ],
        "payouts": [
            ({"user_email": "ann.able@example.com"}, {"amount": "20.00", "currency": "USD"}),
        ],
        "programs": [
            (
                {"slug": "spring"},
                {"currency": "EUR", "min_purchase_amount": "0.00", "referrer_reward_amount": "7.00",
                 "referrer_reward_percent": "", "friend_reward_amount": "50"},
            ),
            (
                {"default": "yes"},
                {"currency": "USD", "min_purchase_amount": "20.00",
                 "referrer_reward_amount": "10.00", "friend_reward_amount": "5.00"},
            ),
        ],
        "services": [({"name": "Roof check"}, {"price": "500", "currency": "JPY"})],
        "campaigns": [({"name": "Radio"}, {"budget": "19.99", "currency": "EUR"})],
        "contracts": [({"name": "Roof"}, {"amount": "1.234", "currency": "KWD"})],
        "campaign_stats": [
            ({"campaign": "Radio"}, {"revenue": "0.00", "spend": "19.99", "currency": "EUR"})
        ],
        "top_referrers": [
            ({"name": "Ben Best", "currency": "EUR"}, {"reward_earned": "7.00"}),
            ({"name": "Ann Able", "currency": "USD"}, {"reward_earned": "20.00"}),
        ],
    }  # fmt: skip
    for name, (header, rows) in files.items():
        money = [column for column in header if any(word in column for word in MONEY_WORDS)]
        if money and name not in EMPTY_HERE:
            assert name in checks, f"{name}.csv has money ({money}) that no check reads"
        if money:
            assert "currency" in header, f"{name}.csv has money without a currency column"
        for row in rows:  # numbers stay numbers: a reversal reads -10.00, not '-10.00
            assert not any(row[column].startswith("'") for column in money), (name, row)
    for name, cases in checks.items():
        _, rows = files[name]
        for match, expected in cases:
            found = first(rows, **match)
            assert {key: found[key] for key in expected} == expected, (name, match)
    negative = [row["amount"] for row in files["rewards"][1] if row["amount"].startswith("-")]
    assert negative and all(amount.startswith("-") for amount in negative)


def test_a_percent_reward_reads_as_a_percent(app, staff_client, more):
    with app.app_context():
        db.session.execute(
            update(Program)
            .where(Program.slug == "spring")
            .values(referrer_reward_basis="percent", referrer_reward_value=1250)
        )
        db.session.commit()
    _, rows = rows_of(staff_client, "programs")
    spring = first(rows, slug="spring")
    assert spring["referrer_reward_percent"] == "12.50"
    assert spring["referrer_reward_amount"] == ""


@pytest.mark.parametrize("header", ["created at", "Created_at", "risk-score", "amount_", ""])
def test_an_export_with_a_header_out_of_style_stops_the_app_from_being_made(header):
    export = CsvExport("things", "analytics.view", (("id", int), (header, int)), lambda a: None)
    with pytest.raises(ValueError, match="snake_case"):
        register(Flask(__name__), [export])


def test_an_export_naming_a_column_twice_stops_the_app_from_being_made():
    export = CsvExport("things", "analytics.view", (("id", int), ("id", int)), lambda a: None)
    with pytest.raises(ValueError, match="twice"):
        register(Flask(__name__), [export])
