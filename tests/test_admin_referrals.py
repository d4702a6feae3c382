"""The Referrals screen: every referral with its filters and search, status in words, rows
linking to the participant pages, and `referrals.csv` / `clicks.csv` holding exactly what
the screen's filters select (docs/guarantees.md #29).

The data set and who is who in it are described in tests/analytics_data.py.
"""

import csv
import io

import pytest
from sqlalchemy import select, update

from extensions import db
from models import Campaign, Program, Referral, User
from tests import analytics_data, factories
from tests.analytics_data import day
from tests.apps import seeded_once, sign_in_once, signed_in

ROLES = ("operator", "marketer", "manager")


@seeded_once
def data(app):
    """The analytics data set, its admin and a member of each other staff role, all signed
    in once."""
    seeded = analytics_data.data_set(app)
    with app.app_context():
        staff = {role: factories.staff(role) for role in ROLES}
    return {**seeded, "sign_ins": {role: sign_in_once(app, staff[role]["email"]) for role in ROLES}}


# A logged-in admin (fixture). The tests marked module_data only read the data set: it is
# seeded once per database for them.
staff_client = analytics_data.staff_client

EVERYONE = {
    "Cleo Zero", "Carl One", "Cora Two", "Cid Three", "Cay Four", "Cyd Five", "Cal Six",
    "Cy Eight", "Cole Seven", "Pia Prior",
}  # fmt: skip


def friends_listed(client, **args) -> list[str]:
    """The friends the screen lists, in order (every page of it)."""
    response = client.get("/admin/referrals", query_string=args)
    assert response.status_code == 200, response.text
    html = response.text
    return [
        name
        for _, name in sorted(
            (html.find(f">{name}<", html.find("<tbody")), name)
            for name in EVERYONE
            if f">{name}<" in html[html.find("<tbody") :]
        )
    ]


def friends_exported(client, **args) -> list[str]:
    response = client.get("/admin/export/referrals.csv", query_string=args)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return [row["friend_name"] for row in csv.DictReader(io.StringIO(response.text))]


def id_of(app, model, **where) -> int:
    with app.app_context():
        return db.session.scalar(select(model.id).filter_by(**where))


@pytest.mark.module_data
def test_every_referral_is_listed_newest_first_with_its_status_in_words(app, staff_client):
    response = staff_client.get("/admin/referrals")
    html = response.text
    assert response.status_code == 200
    assert "10 referrals" in html
    assert friends_listed(staff_client) == friends_exported(staff_client)
    assert friends_exported(staff_client)[:2] == ["Cole Seven", "Cy Eight"]
    assert set(friends_exported(staff_client)) == EVERYONE
    for words in ("Under review", "Rejected", "Qualified", "Rewarded", "Joined"):
        assert f'<strong class="referral-status">{words}</strong>' in html, words
    assert "Why: The referrer&#39;s own account" in html  # C5's self-referral, in words
    assert "self_referral" not in html
    # Each row links to the referrer's and the friend's pages.
    ann = id_of(app, User, name="Ann Able")
    cora = id_of(app, User, name="Cora Two")
    assert f'href="/admin/participants/{ann}"' in html
    assert f'href="/admin/participants/{cora}"' in html
    # The held one can be decided from here.
    held = id_of(app, Referral, status="review")
    assert f'href="/admin/review/referrals/{held}"' in html


def test_filters_and_search_select_the_same_rows_on_the_screen_and_in_the_file(app, staff_client):
    spring = id_of(app, Program, slug="spring")
    campaign = id_of(app, Campaign, name="Spring push")
    with app.app_context():
        # Carl came in through the link itself, the others typed a code.
        carl = db.session.scalar(select(User.id).where(User.name == "Carl One"))
        db.session.execute(
            update(Referral).where(Referral.referred_id == carl).values(source="link")
        )
        db.session.commit()
        spring_code = db.session.scalar(
            select(Referral).where(Referral.program_id == spring)
        ).code.code
    cases = [
        ({"status": "review"}, ["Cay Four"]),
        ({"status": "rejected"}, ["Cyd Five"]),
        ({"source": "link"}, ["Carl One"]),
        ({"program": str(spring)}, ["Cid Three"]),
        ({"campaign": str(campaign)}, ["Cid Three"]),
        ({"since": day(1), "until": day(2)}, ["Cora Two", "Carl One"]),
        ({"q": "CORA"}, ["Cora Two"]),  # a friend's name, any case
        ({"q": "cid.three@"}, ["Cid Three"]),  # a friend's email
        ({"q": "ben best"}, ["Cy Eight", "Cal Six", "Cyd Five", "Cid Three"]),  # a referrer
        ({"q": spring_code.lower()}, ["Cid Three"]),  # a code
        ({"q": "ann", "status": "pending", "since": day(0)}, ["Cole Seven", "Cora Two"]),
        ({"q": "100%_"}, []),  # wildcards are plain text
    ]
    for args, expected in cases:
        assert friends_listed(staff_client, **args) == expected, args
        assert friends_exported(staff_client, **args) == expected, args
    empty = staff_client.get("/admin/referrals", query_string={"q": "nobody at all"}).text
    assert "No referral matches these filters" in empty
    # The export buttons carry the filters.
    page = staff_client.get("/admin/referrals", query_string={"status": "review", "q": "ann"})
    assert "/admin/export/referrals.csv?q=ann&amp;status=review" in page.text


@pytest.mark.module_data
def test_bad_filters_are_all_named_at_once_and_nothing_is_listed(staff_client):
    args = {"status": "lost", "since": "yesterday", "program": "999999", "campaign": "x"}
    response = staff_client.get("/admin/referrals", query_string=args)
    html = response.text
    assert response.status_code == 400
    assert "Not a valid choice" in html  # status
    assert "Enter the date as YYYY-MM-DD" in html
    assert "There is no such program." in html
    assert "Choose one of the listed entries." in html  # campaign
    assert "<tbody" not in html and "Export referrals" not in html
    swapped = staff_client.get("/admin/referrals", query_string={"since": day(5), "until": day(1)})
    assert swapped.status_code == 400 and "swap them" in swapped.text
    far = {"until": "9999-12-31", "q": "x" * 101}  # no date arithmetic overflows into a 500
    for path in ("/admin/referrals", "/admin/export/referrals.csv", "/admin/export/clicks.csv"):
        answer = staff_client.get(path, query_string=far)
        assert answer.status_code == 400 and "between 1970-01-01 and 2100-12-31" in answer.text
    export = staff_client.get("/admin/export/referrals.csv", query_string=args)
    assert export.status_code == 400
    assert "There is no such program." in export.text and "YYYY-MM-DD" in export.text
    assert staff_client.get("/admin/export/clicks.csv", query_string=args).status_code == 400


@pytest.mark.module_data
def test_clicks_export_follows_the_dates_and_program_and_holds_no_addresses(app, staff_client):
    spring = id_of(app, Program, slug="spring")
    range_ = {"since": day(0), "until": day(9)}
    answer = staff_client.get("/admin/export/clicks.csv", query_string=range_)
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert answer.status_code == 200 and len(rows) == 10  # as the analytics funnel counts
    assert not any("ip" in header.split("_") for header in rows[0])
    spring_only = staff_client.get(
        "/admin/export/clicks.csv", query_string={**range_, "program": spring}
    )
    rows = list(csv.DictReader(io.StringIO(spring_only.text)))
    assert [row["program"] for row in rows] == ["Spring", "Spring"]
    assert rows[0]["clicked_at"] > rows[1]["clicked_at"]  # newest first
    page = staff_client.get("/admin/referrals", query_string={**range_, "status": "review"})
    link = f"/admin/export/clicks.csv?since={day(0)}&amp;until={day(9)}"
    assert link in page.text  # the clicks button drops what clicks cannot have


@pytest.mark.module_data
@pytest.mark.parametrize("role", ROLES)
def test_who_sees_the_referrals(client, data, role):
    signed_in(client, data["sign_ins"][role])
    page = client.get("/admin/referrals")
    export = client.get("/admin/export/referrals.csv")
    menu = client.get("/admin/").text
    if role == "operator":
        assert page.status_code == 403 and export.status_code == 403
        assert 'href="/admin/referrals"' not in menu
        return
    assert page.status_code == 200 and export.status_code == 200
    assert 'href="/admin/referrals"' in menu
    # Marketers see names and emails but may not open participant pages: no dead links.
    links = 'href="/admin/participants/' in page.text
    assert links == (role == "manager")
    assert "Cora Two" in page.text
