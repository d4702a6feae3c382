"""The analytics home: every figure on a small known data set, worked out by hand here.

The data set and who is who in it are described in tests/analytics_data.py. The headline
cards, their changes and the duration format are docs/guarantees.md #28.
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from core.templating import format_duration
from extensions import cache, db
from models import Campaign, Program
from tests import analytics_data, factories
from tests.analytics_data import D0, RANGE, day, page, text
from tests.helpers import log_in

# The data set and a logged-in admin (fixtures): seeded once per database for the tests
# marked module_data, which only read it.
data = analytics_data.data
staff_client = analytics_data.staff_client


# --- every figure, by hand ----------------------------------------------------------------


@pytest.mark.module_data
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


@pytest.mark.module_data
def test_money_figures_are_net_per_currency_and_leave_points_out(staff_client):
    _, parsed = page(staff_client, **RANGE)
    # Revenue USD: o1 50 + o0 20 + o2 30 + o6 25 - refund o2 30 - refund o0 20 (on d24) = 75.00
    # (C1's second order was ignored, N's unattributed); EUR: o3 40.
    assert money_lines(parsed, "revenue") == ["€40.00", "$75.00"]
    # Reward cost USD: o1 10+5, o0 10+5 (its reversal is written on d24), o6 10+5 = 45.00;
    # o2's were cancelled inside the hold. EUR: Ben's 7.00 cash; C3's 50 points left out.
    assert money_lines(parsed, "reward-cost") == ["€7.00", "$45.00"]
    # Acquired: first purchases in R by C1 C0 C2 C3 C6 = 5 -> 45.00/5, 7.00/5.
    assert money_lines(parsed, "cost-per-customer") == ["€1.40", "$9.00"]
    assert text(parsed, "acquired") == "5"


def money_lines(parsed, ident: str) -> list[str]:
    """The card's amounts, one per currency."""
    return [line.split(" ")[0] for line in card_lines(parsed, ident)]


def card_lines(parsed, ident: str) -> list[str]:
    """Each line of a card: value, the change in words, and the earlier value."""
    return _per_value(text(parsed, ident).replace("▲ ", "").replace("▼ ", "").replace("■ ", ""))


def _per_value(joined: str) -> list[str]:
    """'€40.00 up €40.00 · was €0.00 $75.00 up ...' -> one string per value."""
    pieces = joined.split(" · was ")
    lines, value = [], pieces[0]
    for piece in pieces[1:]:
        earlier, _, next_value = piece.partition(" ")
        lines.append(f"{value} · was {earlier}")
        value = next_value
    return lines


@pytest.mark.module_data
def test_the_k_factor_speed_and_fraud_figures(staff_client):
    _, parsed = page(staff_client, **RANGE)
    # Participants: members joined by the end of d9: Ann Ben Pia C0..C6 C8 N = 12 (C7 joined
    # d11, the admin is staff). K = (10 / 12) x (7 / 10) = 7 / 12.
    assert text(parsed, "participants") == "12"
    assert text(parsed, "k-factor").startswith("0.583 ")
    assert "= 0.833 × 70.0 % = 0.583." in text(parsed, "definitions")
    # Medians are read from buckets (admin/analytics/buckets.py), each within 1/32 of the exact
    # one. Click to signup: C3 30 s, C6 60 s, C2 1800 s, C1 3600 s; the exact median
    # (60 + 1800) / 2 = 930 s; 60 s is its own bucket [60, 61] (60.5), 1800 s lies in
    # [1792, 1855] (1823.5): (60.5 + 1823.5) / 2 = 942 s, 1.3 % off.
    assert text(parsed, "click-to-signup") == "15 min 42 s"
    # Signup to first purchase, first purchase in R: C6 6 h, C1 24 h, C3 26 h, C2 30 h,
    # C0 4 d -> exactly 26 h = 93,600 s, in the bucket [90112, 94207]: 92,159.5 s, 1.5 % off.
    assert text(parsed, "signup-to-purchase") == "1 d 1 h"
    # Flagged: C4 review, C5 rejected, C6 approved after review (risk 50 >= 50) = 3 of 7.
    assert text(parsed, "fraud-rate").startswith("42.9 % (3 of 7)")


@pytest.mark.module_data
def test_each_card_compares_with_the_previous_period_of_the_same_length(staff_client):
    """P = d-10..d-1: clicks Ann d-4 10:00, d-4 11:00, d-1 23:59:59 = 3; signups Pia, C0 = 2, both
    qualified (rewarded); revenue oP 20.00; reward cost Ann 10 + Pia 5 = 15.00; acquired Pia
    -> 15.00 each; members by d-1 Ann Ben Pia C0 = 4: K = (3 / 4) x (2 / 3) = 0.5."""
    _, parsed = page(staff_client, **RANGE)
    assert f"previous 10 days, {day(-10)} to {day(-1)}" in text(parsed, "range")
    assert card_lines(parsed, "clicks") == ["10 up 7 (+233.3 %) · was 3"]
    assert card_lines(parsed, "signups") == ["7 up 5 (+250.0 %) · was 2"]
    assert card_lines(parsed, "qualified") == ["3 up 1 (+50.0 %) · was 2"]
    # A currency missing from P was 0 there: up, with no percentage of nothing.
    assert card_lines(parsed, "revenue") == [
        "€40.00 up €40.00 · was €0.00",
        "$75.00 up $55.00 (+275.0 %) · was $20.00",
    ]
    assert card_lines(parsed, "reward-cost") == [
        "€7.00 up €7.00 · was €0.00",
        "$45.00 up $30.00 (+200.0 %) · was $15.00",
    ]
    # No EUR customer cost in P (nobody acquired in EUR): nothing to compare.
    assert card_lines(parsed, "cost-per-customer") == [
        "€1.40 no comparison · was —",
        "$9.00 down $6.00 (-40.0 %) · was $15.00",
    ]
    assert card_lines(parsed, "k-factor") == ["0.583 up 0.083 (+16.7 %) · was 0.500"]


@pytest.mark.module_data
def test_the_changes_are_marked_in_words_and_judged_by_what_is_better(staff_client):
    response, _ = page(staff_client, **RANGE)
    html = response.text
    # Up is good for revenue, bad for cost; the words and arrows say it without the colour.
    revenue = html[html.index('id="card-revenue"') : html.index('id="card-reward-cost"')]
    cost = html[html.index('id="card-reward-cost"') : html.index('id="card-cost-per-customer"')]
    per_customer = html[
        html.index('id="card-cost-per-customer"') : html.index('id="card-k-factor"')
    ]
    assert 'class="change change-good" data-direction="up"' in revenue
    assert 'class="change change-bad" data-direction="up"' in cost
    assert 'class="change change-good" data-direction="down"' in per_customer
    assert '<span aria-hidden="true">▼</span> down' in per_customer


@pytest.mark.module_data
def test_a_figure_equal_in_both_periods_reads_no_change(staff_client):
    """d5..d9 against d0..d4."""
    _, parsed = page(staff_client, start=day(5), end=day(9))
    # Clicks d0..d4: Ann d1 08:00, d1 09:00, d2 11:30, Spring d4 08:59:30, d4 12:00 = 5;
    # d5..d9: Ben d5, d7, d8, Ann d6, d9 23:59:59 = 5.
    assert card_lines(parsed, "clicks") == ["5 no change · was 5"]
    # Signups C1 C2 C3, then C4 C5 C6 C8; qualified C1 C3 (C2's order was refunded inside
    # its hold), then C6.
    assert card_lines(parsed, "signups") == ["4 up 1 (+33.3 %) · was 3"]
    assert card_lines(parsed, "qualified") == ["1 down 1 (-50.0 %) · was 2"]


@pytest.mark.parametrize(
    ("seconds", "reads"),
    [
        (None, "—"),
        (0, "0 s"),
        (30, "30 s"),
        (59.5, "1 min"),
        (930, "15 min 30 s"),
        (3600, "1 h"),
        (93_600, "1 d 2 h"),
        (1_000_080, "11 d 13 h"),  # not "1.00008e+06 s"
        (400 * 86_400 + 1, "400 d"),
    ],
)
def test_durations_read_in_their_two_largest_units(seconds, reads):
    assert format_duration(seconds) == reads


@pytest.mark.module_data
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


@pytest.mark.module_data
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


@pytest.mark.module_data
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
    assert money_lines(parsed, "revenue") == ["€40.00"]
    assert money_lines(parsed, "reward-cost") == ["€7.00"]
    assert money_lines(parsed, "cost-per-customer") == ["€7.00"]
    # Only Ben holds a Spring code: K = (2 / 1) x (1 / 2) = 1. Before R nobody clicked one.
    assert text(parsed, "participants") == "1"
    assert card_lines(parsed, "k-factor") == ["1.000 no comparison · was —"]
    assert card_lines(parsed, "clicks") == ["2 up 2 · was 0"]
    assert text(parsed, "click-to-signup") == "30 s"  # below 32 s every second is exact
    assert text(parsed, "signup-to-purchase") == "1 d 1 h"  # 26 h, read as 92,159.5 s
    assert text(parsed, "fraud-rate").startswith("0.0 % (0 of 1)")
    assert [row[1:] for row in parsed.tables["daily"][1:]] == [
        ["0", "1" if n == 5 else "0"] for n in range(10)
    ]
    assert [row[2:] for row in parsed.tables["top-referrers"][1:]] == [["1", "1", "€7.00"]]


@pytest.mark.module_data
def test_a_campaign_without_programs_shows_zeros(staff_client, app):
    with app.app_context():
        autumn = db.session.scalar(db.select(Campaign.id).where(Campaign.name == "Autumn push"))
    _, parsed = page(staff_client, **RANGE, campaign=autumn)
    assert [row[1] for row in parsed.tables["funnel"][1:5]] == ["0", "0", "0", "0"]
    assert text(parsed, "revenue") == "none nothing in either period"
    assert card_lines(parsed, "clicks") == ["0 no change · was 0"]
    assert card_lines(parsed, "k-factor") == ["— no comparison · was —"]
    assert text(parsed, "click-to-signup") == "—"
    assert "top-referrers" not in parsed.tables


@pytest.mark.module_data
def test_a_shorter_range_counts_fewer(staff_client):
    _, parsed = page(staff_client, start=day(0), end=day(2))
    # Clicks d1 08:00, d1 09:00, d2 11:30; signups C1 C2; C1 qualified and rewarded.
    assert [row[1] for row in parsed.tables["funnel"][1:5]] == ["3", "2", "1", "1"]
    # Revenue: o1 only (o0 and o2 were bought on d3).
    assert money_lines(parsed, "revenue") == ["$50.00"]
    # One day: the reversal of o0's rewards (d24) now falls inside, the rewards (d3) do not.
    _, later = page(staff_client, start=day(24), end=day(24))
    assert money_lines(later, "reward-cost") == ["-$15.00"]


@pytest.mark.module_data
@pytest.mark.parametrize(
    ("args", "field", "message"),
    [
        ({"start": "2026-13-01"}, "start", "Enter the date as YYYY-MM-DD"),
        ({"start": day(5), "end": day(1)}, "start", "The start date is after the end date"),
        ({"start": "2020-01-01", "end": "2023-12-31"}, "end", "at most 1098 days"),
        # The period before it would start before the year 1.
        ({"start": "0001-01-01", "end": "0001-01-31"}, "start", "Pick a date between 1970"),
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


@pytest.mark.module_data
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


@pytest.mark.module_data
def test_dates_before_the_range_are_not_in_the_default(staff_client):
    _, parsed = page(staff_client)
    assert len(parsed.tables["daily"]) == 31
    assert date.fromisoformat(parsed.tables["daily"][1][0]) > D0 + timedelta(days=9)
