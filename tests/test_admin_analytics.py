"""The analytics home: every figure on a small known data set, worked out by hand here.

The data set and who is who in it are described in tests/analytics_data.py.
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from extensions import cache, db
from models import Campaign, Program
from tests import analytics_data, factories
from tests.analytics_data import D0, RANGE, day, page, text
from tests.helpers import log_in

# The data set and a logged-in admin (fixtures).
data = analytics_data.data
staff_client = analytics_data.staff_client


# --- every figure, by hand ----------------------------------------------------------------


def test_the_funnel_counts_the_ranges_clicks_and_referrals(staff_client):
    response, parsed = page(staff_client, **RANGE)
    assert response.status_code == 200
    # Clicks: Ann 5 (not d-1 23:59:59, not d10 00:00), Ben 3, Spring 2 = 10.
    # Signups: C1 C2 C3 C4 C5 C6 C8 = 7; qualified: C1 C3 rewarded, C6 qualified = 3;
    # rewarded: C1 C3 = 2.
    assert parsed.tables["funnel"][1:] == [
        ["Clicks", "10", ""],
        ["Referred signups", "7", "70.0 %"],
        ["Qualified", "3", "42.9 %"],  # 3/7
        ["Rewarded", "2", "66.7 %"],  # 2/3
        ["Clicks to rewarded", "", "20.0 %"],  # 2/10
    ]


def test_money_figures_are_net_per_currency_and_leave_points_out(staff_client):
    _, parsed = page(staff_client, **RANGE)
    # Revenue USD: o1 50 + o0 20 + o2 30 + o6 25 - refund o2 30 - refund o0 20 (on d24) = 75.00
    # (C1's second order was ignored, N's unattributed); EUR: o3 40.
    assert text(parsed, "revenue").startswith("€40.00 $75.00 ")
    # Reward cost USD: o1 10+5, o0 10+5 (its reversal is written on d24), o6 10+5 = 45.00;
    # o2's were cancelled inside the hold. EUR: Ben's 7.00 cash; C3's 50 points left out.
    assert text(parsed, "reward-cost").startswith("€7.00 $45.00 ")
    # Acquired: first purchases in R by C1 C0 C2 C3 C6 = 5 -> 45.00/5, 7.00/5.
    assert text(parsed, "cost-per-customer").startswith("€1.40 $9.00 ")
    assert "(5)" in text(parsed, "cost-per-customer")


def test_the_k_factor_speed_and_fraud_figures(staff_client):
    _, parsed = page(staff_client, **RANGE)
    # Participants: members joined by the end of d9: Ann Ben C0..C6 C8 N = 11 (C7 joined d11,
    # the admin is staff). K = (10 / 11) x (7 / 10) = 7 / 11.
    assert text(parsed, "participants") == "11"
    assert text(parsed, "k-factor").startswith("0.636 Invites per participant")
    assert "= 0.909 × 70.0 %" in text(parsed, "k-factor")
    # Click to signup: C3 30 s, C6 60 s, C2 1800 s, C1 3600 s -> (60 + 1800) / 2 = 930 s.
    assert text(parsed, "click-to-signup").startswith("15 min 30 s (930 s)")
    # Signup to first purchase, first purchase in R: C6 6 h, C1 24 h, C3 26 h, C2 30 h,
    # C0 4 d -> 26 h = 93,600 s.
    assert text(parsed, "signup-to-purchase").startswith("1 d 2 h (93,600 s)")
    # Flagged: C4 review, C5 rejected, C6 approved after review (risk 50 >= 50) = 3 of 7.
    assert text(parsed, "fraud-rate").startswith("42.9 % (3 of 7)")


def test_days_and_top_referrers(staff_client, data):
    _, parsed = page(staff_client, **RANGE)
    joined = {1: 1, 2: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 2}  # C1 C2 C3 N C4 C5 C6+C8
    bought = {2: 1, 3: 2, 5: 1, 8: 1}  # o1; o0 o2; o3; o6
    assert parsed.tables["daily"][1:] == [
        [day(n), str(joined.get(n, 0)), str(bought.get(n, 0))] for n in range(10)
    ]
    assert '<svg id="chart-participants"' in staff_client.get("/admin/", query_string=RANGE).text
    # Ben: C3 C6 C8 counted (C5 rejected), C3 C6 qualified; earned o3 7.00 EUR, o6 10.00.
    # Ann: C1 C2 counted (C4 in review), C1 qualified; earned o1 10.00 + o0 10.00.
    rows = parsed.tables["top-referrers"][1:]
    assert [row[2:] for row in rows] == [["3", "2", "€7.00 $10.00"], ["2", "1", "$20.00"]]
    assert rows[0][1].startswith("Ben Best") and rows[1][1].startswith("Ann Able")


def test_the_csv_exports_hold_the_same_numbers(staff_client, data):
    daily = staff_client.get("/admin/export/analytics_daily.csv", query_string=RANGE)
    assert daily.status_code == 200
    lines = daily.text.splitlines()
    assert lines[0] == "day,new_participants,conversions"
    assert lines[1:4] == [f"{day(0)},0,0", f"{day(1)},1,0", f"{day(2)},1,1"]
    assert lines[9] == f"{day(8)},2,1" and len(lines) == 11
    top = staff_client.get("/admin/export/top_referrers.csv", query_string=RANGE).text
    assert top.splitlines()[1:] == [
        f"{data['ben']},Ben Best,ben.best@example.com,3,2,7.00,EUR",
        f"{data['ben']},Ben Best,ben.best@example.com,3,2,10.00,USD",
        f"{data['ann']},Ann Able,ann.able@example.com,2,1,20.00,USD",
    ]
    bad = staff_client.get("/admin/export/top_referrers.csv", query_string={"start": "nope"})
    assert bad.status_code == 400


# --- filters ------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["program", "campaign"])
def test_a_program_or_its_campaign_shows_only_its_own_figures(staff_client, data, app, by):
    with app.app_context():
        campaign_id = db.session.get(Program, data["spring"]).campaign_id
    choice = {"program": data["spring"]} if by == "program" else {"campaign": campaign_id}
    _, parsed = page(staff_client, **RANGE, **choice)
    assert parsed.tables["funnel"][1:] == [
        ["Clicks", "2", ""],
        ["Referred signups", "1", "50.0 %"],
        ["Qualified", "1", "100.0 %"],
        ["Rewarded", "1", "100.0 %"],
        ["Clicks to rewarded", "", "50.0 %"],
    ]
    assert text(parsed, "revenue").startswith("€40.00 ")
    assert text(parsed, "reward-cost").startswith("€7.00 ")
    assert text(parsed, "cost-per-customer").startswith("€7.00 Reward cost")
    # Only Ben holds a Spring code: K = (2 / 1) x (1 / 2) = 1.
    assert text(parsed, "participants") == "1"
    assert text(parsed, "k-factor").startswith("1.000 ")
    assert text(parsed, "click-to-signup").startswith("30 s (30 s)")
    assert text(parsed, "signup-to-purchase").startswith("1 d 2 h (93,600 s)")
    assert text(parsed, "fraud-rate").startswith("0.0 % (0 of 1)")
    assert [row[1:] for row in parsed.tables["daily"][1:]] == [
        ["0", "1" if n == 5 else "0"] for n in range(10)
    ]
    assert [row[2:] for row in parsed.tables["top-referrers"][1:]] == [["1", "1", "€7.00"]]


def test_a_campaign_without_programs_shows_zeros(staff_client, app):
    with app.app_context():
        autumn = db.session.scalar(db.select(Campaign.id).where(Campaign.name == "Autumn push"))
    _, parsed = page(staff_client, **RANGE, campaign=autumn)
    assert [row[1] for row in parsed.tables["funnel"][1:5]] == ["0", "0", "0", "0"]
    assert text(parsed, "revenue").startswith("none ")
    assert text(parsed, "k-factor").startswith("— ")
    assert text(parsed, "click-to-signup").startswith("— ")
    assert "top-referrers" not in parsed.tables


def test_a_shorter_range_counts_fewer(staff_client):
    _, parsed = page(staff_client, start=day(0), end=day(2))
    # Clicks d1 08:00, d1 09:00, d2 11:30; signups C1 C2; C1 qualified and rewarded.
    assert [row[1] for row in parsed.tables["funnel"][1:5]] == ["3", "2", "1", "1"]
    # Revenue: o1 only (o0 and o2 were bought on d3).
    assert text(parsed, "revenue").startswith("$50.00 ")
    # One day: the reversal of o0's rewards (d24) now falls inside, the rewards (d3) do not.
    _, later = page(staff_client, start=day(24), end=day(24))
    assert text(later, "reward-cost").startswith("-$15.00 ")


@pytest.mark.parametrize(
    ("args", "field", "message"),
    [
        ({"start": "2026-13-01"}, "start", "Enter the date as YYYY-MM-DD"),
        ({"start": day(5), "end": day(1)}, "start", "The start date is after the end date"),
        ({"start": "2020-01-01", "end": "2023-12-31"}, "end", "at most 1098 days"),
        ({"program": "999999"}, "program", "There is no such program."),
        ({"program": "abc"}, "program", "Choose one of the listed entries."),
        ({"campaign": "999999"}, "campaign", "There is no such campaign."),
    ],
)
def test_bad_filters_are_refused_with_a_clear_message(staff_client, args, field, message):
    response, parsed = page(staff_client, **args)
    assert response.status_code == 400
    assert message in text(parsed, f"{field}-error")
    assert "funnel" not in parsed.tables
    if field in ("start", "end"):  # the typed dates are kept
        for value in args.values():
            assert f'value="{value}"' in response.text


def test_a_program_outside_the_chosen_campaign_is_refused(staff_client, app, data):
    with app.app_context():
        default_id = db.session.scalar(db.select(Program.id).where(Program.is_default))
        spring_campaign = db.session.get(Program, data["spring"]).campaign_id
    response, parsed = page(staff_client, program=default_id, campaign=spring_campaign)
    assert response.status_code == 400
    assert "not part of the chosen campaign" in text(parsed, "program-error")


# --- defaults, cache, access --------------------------------------------------------------


def test_the_default_is_the_last_30_days_and_figures_are_cached(app, client, make_participant):
    with app.app_context():
        admin = factories.staff("operator")  # every staff role sees the analytics
    log_in(client, admin["email"])
    today = datetime.now(UTC).date()
    _, parsed = page(client)
    assert text(parsed, "range").startswith(
        f"{(today - timedelta(days=29)).isoformat()} to {today}"
    )
    assert parsed.tables["daily"][-1] == [today.isoformat(), "0", "0"]

    make_participant("Newt New")  # joins now; the cached figures do not move yet
    _, cached = page(client)
    assert cached.tables["daily"][-1] == [today.isoformat(), "0", "0"]
    with app.app_context():
        cache.clear()
    _, fresh = page(client)
    assert fresh.tables["daily"][-1] == [today.isoformat(), "1", "0"]


def test_dates_before_the_range_are_not_in_the_default(staff_client):
    _, parsed = page(staff_client)
    assert len(parsed.tables["daily"]) == 31
    assert date.fromisoformat(parsed.tables["daily"][1][0]) > D0 + timedelta(days=9)
