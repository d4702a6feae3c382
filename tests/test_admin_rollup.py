"""The analytics roll-up: the page shows the same numbers before and after it, and after new
rows arrive; rebuilding changes nothing; today is never rolled up.

The data set is tests/analytics_data.py's (the range R = d0..d9, forty days ago); its
figures are worked out by hand in test_admin_analytics.py and repeated here.
"""

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from admin.analytics.rollup import rollup_analytics, stale_days, watermark
from extensions import cache, db
from models import AnalyticsDaily, AnalyticsDailyAccounts, Click, Program, User
from referral.services import issue_code
from tests import analytics_data
from tests.analytics_data import D0, RANGE, at, code_id_of, day, page, text

# The data set and a logged-in admin, as fixtures of this module too.
data = analytics_data.data
staff_client = analytics_data.staff_client


def today():
    """Read when asserted, not at import: a run that crosses midnight UTC must still pass."""
    return datetime.now(UTC).date()


def rollup(app, rebuild: bool = False, until=None) -> int:
    with app.app_context():
        days = rollup_analytics(until or today(), rebuild=rebuild)
        db.session.commit()
        cache.clear()
        return days


def figures(client, **args) -> dict:
    """What a user reads on the page: clicks, participants, K-factor, new people per day."""
    _, parsed = page(client, **args)
    return {
        "clicks": parsed.tables["funnel"][1][1],
        "participants": text(parsed, "participants"),
        "k_factor": text(parsed, "k-factor").split(" ")[0],
        "joined": [row[1] for row in parsed.tables["daily"][1:]],
    }


# R: clicks Ann 5 + Ben 3 + Spring 2; members by d9: Ann Ben Pia C0..C6 C8 N; joined per day:
# C1 d1, C2 d2, C3 d4, N d5, C4 d6, C5 d7, C6 + C8 d8.
R_FIGURES = {
    "clicks": "10",
    "participants": "12",
    "k_factor": "0.583",
    "joined": ["0", "1", "1", "0", "1", "1", "1", "1", "2", "0"],
}
# Spring: its 2 clicks; Ben holds its only code, issued d-3 (before R).
SPRING_FIGURES = {"clicks": "2", "participants": "1", "k_factor": "1.000", "joined": ["0"] * 10}


def spring_filters(app, data) -> tuple[dict, dict]:
    with app.app_context():
        campaign_id = db.session.get(Program, data["spring"]).campaign_id
    return {"program": data["spring"]}, {"campaign": campaign_id}


def check_the_figures(client, by_program: dict, by_campaign: dict) -> None:
    assert figures(client, **RANGE) == R_FIGURES
    assert figures(client, **RANGE, **by_program) == SPRING_FIGURES
    assert figures(client, **RANGE, **by_campaign) == SPRING_FIGURES
    # d0..d2: clicks d1 08:00, d1 09:00, d2 11:30; members by d2: Ann Ben Pia C0 C1 C2.
    assert figures(client, start=day(0), end=day(2)) == {
        "clicks": "3",
        "participants": "6",
        "k_factor": "0.333",  # (3 / 6) x (2 / 3)
        "joined": ["0", "1", "1"],
    }


def test_the_page_shows_the_same_numbers_before_and_after_the_rollup(staff_client, app, data):
    by_program, by_campaign = spring_filters(app, data)
    check_the_figures(staff_client, by_program, by_campaign)
    assert rollup(app) > 0
    check_the_figures(staff_client, by_program, by_campaign)
    with app.app_context():
        assert watermark() == today()
        rolled = db.session.scalars(
            select(AnalyticsDaily.clicks).where(AnalyticsDaily.day == at(1).date())
        ).all()
    assert rolled == [2]  # Ann's two clicks of d1, which the page now reads from here


def test_rows_arriving_today_are_counted_live(staff_client, app, data, make_participant):
    rollup(app)
    # The last 30 days: C7 joined d11 (in them); members by today: R's 12 and C7.
    assert figures(staff_client)["participants"] == "13"
    assert figures(staff_client)["clicks"] == "0"
    newt = make_participant("Newt New")  # joins now, with a code of the default program
    with app.app_context():
        db.session.execute(
            insert(Click), [{"code_id": code_id_of(newt["code"]), "visitor_id": "t"}]
        )
        db.session.commit()
        cache.clear()
    now = figures(staff_client)
    assert (now["participants"], now["clicks"], now["joined"][-1]) == ("14", "1", "1")
    assert rollup(app) == 0  # today is not closed: nothing more to roll up
    assert figures(staff_client) == now


def test_a_change_of_role_counts_at_once_without_a_rebuild(staff_client, app, data):
    rollup(app)
    with app.app_context():
        nora = db.session.scalar(select(User).where(User.name == "Nora None"))
        nora.role = "operator"  # staff are no participants
        db.session.commit()
        cache.clear()
    after = figures(staff_client, **RANGE)
    assert after["participants"] == "11"
    assert after["joined"][5] == "0"  # N joined d5


def test_a_late_row_for_a_closed_day_counts_at_once_and_the_next_run_recounts_it(
    staff_client, app, data
):
    rollup(app)
    with app.app_context():
        ann_code = db.session.scalar(select(User).where(User.id == data["ann"])).codes[0].id
        late = {"code_id": ann_code, "visitor_id": "late", "created_at": at(3)}
        db.session.execute(insert(Click), [late])  # a backdated import
        db.session.commit()
        cache.clear()
        assert stale_days(today()) == (D0 + timedelta(days=3),)  # the database marked d3
    assert figures(staff_client, **RANGE)["clicks"] == "11"  # d3 is counted from the rows
    assert rollup(app) == 1  # d3 recounted, no new day
    with app.app_context():
        assert stale_days(today()) == ()
    assert figures(staff_client, **RANGE)["clicks"] == "11"
    d3 = D0 + timedelta(days=3)
    assert sum(clicks for day_, _, _, clicks in rolled_rows(app)[0] if day_ == d3) == 1


def rolled_rows(app) -> tuple[list, list]:
    with app.app_context():
        daily = db.session.execute(
            select(AnalyticsDaily).order_by(AnalyticsDaily.day, AnalyticsDaily.program_id)
        )
        accounts = db.session.execute(select(AnalyticsDailyAccounts).order_by("day"))
        return (
            [(r.day, r.program_id, r.new_participants, r.clicks) for (r,) in daily],
            [(r.day, r.new_accounts) for (r,) in accounts],
        )


def test_a_rebuild_changes_nothing_and_today_is_never_rolled_up(staff_client, app, data):
    first = rollup(app, until=today() + timedelta(days=5))
    rows = rolled_rows(app)
    with app.app_context():
        assert watermark() == today()
    assert all(row[0] < today() for row in rows[0] + rows[1])
    # Ann's first day: her join (d-5) is the first thing counted.
    assert first == (today() - at(-5).date()).days
    assert rollup(app, rebuild=True) == first
    assert rollup(app, rebuild=True) == first
    assert rolled_rows(app) == rows
    assert rollup(app) == 0
    assert figures(staff_client, **RANGE) == R_FIGURES
    # New accounts per day match the page's joins for R (the admin joined today).
    assert [n for d, n in rows[1] if at(0).date() <= d <= at(9).date()] == [1, 1, 1, 1, 1, 1, 2]


def test_the_hourly_job_and_the_command_roll_up(app, runner, data):
    celery_app = app.extensions["celery"]
    entries = {entry["task"]: entry["schedule"] for entry in celery_app.conf.beat_schedule.values()}
    assert entries["admin.rollup_analytics"] == 3600
    assert celery_app.tasks["admin.rollup_analytics"].delay().get() > 0
    with app.app_context():
        assert watermark() == today()
    result = runner.invoke(args=["admin", "rollup-analytics"])
    assert result.exit_code == 0, result.output
    assert f"0 days computed; complete before {today()}" in result.output
    rebuilt = runner.invoke(args=["admin", "rollup-analytics", "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"Rolled up the days before {today()}" in rebuilt.output


def test_an_empty_database_rolls_up_nothing_and_marks_the_days_done(app):
    assert rollup(app) == 0
    with app.app_context():
        assert watermark() == today()


def test_a_person_in_two_programs_of_a_campaign_counts_once(staff_client, app, data):
    with app.app_context():
        spring = db.session.get(Program, data["spring"])
        extra = Program(
            name="Spring extra",
            slug="spring-extra",
            starts_at=spring.starts_at,
            campaign_id=spring.campaign_id,
        )
        db.session.add(extra)
        db.session.flush()
        ben = db.session.get(User, data["ben"])
        issue_code(ben, extra).created_at = at(-2)
        db.session.commit()
        extra_id, campaign_id = extra.id, spring.campaign_id
    rollup(app)
    assert figures(staff_client, **RANGE, program=extra_id)["participants"] == "1"
    assert figures(staff_client, **RANGE, campaign=campaign_id)["participants"] == "1"  # Ben
