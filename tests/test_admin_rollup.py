"""The analytics roll-up: the page shows the same numbers before and after it, and after new
rows arrive; rebuilding changes nothing; today is never rolled up.

The data set is tests/analytics_data.py's (the range R = d0..d9, forty days ago); its
figures are worked out by hand in test_admin_analytics.py and repeated here.
"""

import random
import statistics
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, delete, func, insert, literal, select, union_all, update

from admin.analytics import buckets, services
from admin.analytics.rollup import rollup_analytics, stale_days, watermark
from extensions import cache, db
from models import (
    AnalyticsDaily,
    AnalyticsDailyAccounts,
    AnalyticsGapDay,
    AnalyticsPurchaseDay,
    AnalyticsReferralDay,
    AnalyticsRewardDay,
    AnalyticsRollup,
    Click,
    Conversion,
    Program,
    Referral,
    ReferralCode,
    Reward,
    User,
)
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


def test_the_job_and_the_command_roll_up(app, runner, data):
    celery_app = app.extensions["celery"]
    entries = {entry["task"]: entry["schedule"] for entry in celery_app.conf.beat_schedule.values()}
    assert entries["admin.rollup_analytics"] == 600  # every 10 minutes
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


# --- the roll-up against the rows, over random data ------------------------------------------


def _random_history(rng: random.Random, program_ids: list[int], days: int = 12) -> None:
    """Accounts, codes, referrals in every status, clicks, purchases, refunds and rewards over
    the last `days` days (today included), written as rows: no events, no counters."""
    now = datetime.now(UTC)

    def moment() -> datetime:
        return now - timedelta(seconds=rng.randrange(days * 86400))

    users = [
        {
            "email": f"r{i}@example.com",
            "email_canonical": f"r{i}@example.com",
            "name": f"R {i}",
            "role": "member" if i % 9 else "operator",
            "created_at": moment(),
        }
        for i in range(40)
    ]
    user_ids = list(db.session.scalars(insert(User).returning(User.id), users))
    codes = [
        {
            "code": f"RND{i:04d}",
            "user_id": user_id,
            "program_id": program_ids[i % len(program_ids)],
            "created_at": moment(),
        }
        for i, user_id in enumerate(user_ids)
    ]
    code_rows = db.session.execute(
        insert(ReferralCode).returning(
            ReferralCode.id, ReferralCode.user_id, ReferralCode.program_id
        ),
        codes,
    ).all()
    db.session.execute(
        insert(Click),
        [
            {"code_id": rng.choice(code_rows).id, "visitor_id": f"x{i}", "created_at": moment()}
            for i in range(150)
        ],
    )
    statuses = ("pending", "qualified", "rewarded", "review", "approved", "rejected")
    referrals = []
    for referred_id in user_ids[10:]:
        code = rng.choice([row for row in code_rows if row.user_id != referred_id])
        created = moment()
        status = rng.choice(statuses)
        bought = created + timedelta(seconds=rng.randrange(1, 4 * 86400))
        referrals.append(
            {
                "program_id": code.program_id,
                "code_id": code.id,
                "referrer_id": code.user_id,
                "referred_id": referred_id,
                "source": "link",
                "status": status,
                "reason": "self_referral" if status == "rejected" else None,
                "risk_score": rng.randrange(0, 100),
                "clicked_at": created - timedelta(seconds=rng.randrange(0, 3 * 86400))
                if rng.random() < 0.8
                else None,
                "first_purchase_at": bought if bought < now and rng.random() < 0.6 else None,
                "created_at": created,
            }
        )
    referral_rows = db.session.execute(
        insert(Referral).returning(
            Referral.id, Referral.program_id, Referral.referrer_id, Referral.first_purchase_at
        ),
        referrals,
    ).all()
    for n, referral in enumerate(row for row in referral_rows if row.first_purchase_at):
        currency = rng.choice(("USD", "EUR"))
        purchase = _conversion(n, "purchase", referral, currency, referral.first_purchase_at)
        conversion_id = db.session.scalar(insert(Conversion).returning(Conversion.id), purchase)
        if rng.random() < 0.3:
            refunded = referral.first_purchase_at + timedelta(hours=rng.randrange(1, 100))
            refund = _conversion(n, "refund", referral, currency, min(refunded, now))
            refund["amount"] = rng.choice((None, 500))
            db.session.execute(insert(Conversion), refund)
        db.session.execute(
            insert(Reward),
            {
                "program_id": referral.program_id,
                "conversion_id": conversion_id,
                "referral_id": referral.id,
                "beneficiary_id": referral.referrer_id,
                "role": "referrer",
                "kind": rng.choice(("cash", "points")),
                "amount": 700,
                "currency": currency,
                "status": rng.choice(("pending", "approved", "cancelled")),
                "reason": "refunded",
                "created_at": referral.first_purchase_at,
            },
        )
    db.session.commit()


def _conversion(n: int, kind: str, referral, currency: str, when: datetime) -> dict:
    return {
        "source": "api",
        "kind": kind,
        "external_id": f"{kind}-{n}",
        "order_id": f"order-{n}",
        "program_id": referral.program_id,
        "referral_id": referral.id,
        "amount": 1000 + n,
        "currency": currency,
        "outcome": "accepted",
        "occurred_at": when,
        "created_at": when,
    }


def _both_ways(filters) -> tuple:
    """(the page's figures with the roll-up, the same counted from the rows alone)."""
    rolled = services.compute(filters)
    db.session.execute(delete(AnalyticsRollup))  # no watermark: every day from the rows
    live = services.compute(filters)
    db.session.rollback()
    return rolled, live


def _every_filter(program_ids: list[int], campaign_id: int) -> list:
    """Every program, then one, then a campaign, over ranges ending today and days ago."""
    end = today()
    return [
        services.make_filters(end - timedelta(days=11), end, None, None),
        services.make_filters(end - timedelta(days=11), end, program_ids[0], None),
        services.make_filters(end - timedelta(days=6), end - timedelta(days=2), None, campaign_id),
    ]


def test_the_rollup_gives_the_rows_figures_over_random_data_and_stale_days(app):
    rng = random.Random(15)
    with app.app_context():
        spring = analytics_data.spring_program()
        program_ids = [db.session.scalar(select(Program.id).where(Program.is_default)), spring.id]
        campaign_id = spring.campaign_id
        _random_history(rng, program_ids)
        every = _every_filter(program_ids, campaign_id)
        before = [_both_ways(filters)[1] for filters in every]
        rollup_analytics(today())
        db.session.commit()
        for table in (
            AnalyticsReferralDay,
            AnalyticsPurchaseDay,
            AnalyticsRewardDay,
            AnalyticsGapDay,
        ):
            assert db.session.scalar(select(func.count()).select_from(table)) > 0
        for filters, counted in zip(every, before, strict=True):
            assert _both_ways(filters) == (counted, counted)
        # Later changes to closed days: statuses, a late click, a refund, a cancelled
        # reward, a deleted click, a stricter review score. The database marks their days
        # stale.
        four_days_ago = datetime.now(UTC) - timedelta(days=4)
        db.session.execute(
            update(Referral)
            .where(Referral.status == "pending", Referral.created_at < four_days_ago)
            .values(status="qualified")
        )
        db.session.execute(
            update(Reward).where(Reward.status == "pending").values(status="cancelled", reason="x")
        )
        code_id = db.session.scalar(select(ReferralCode.id).limit(1))
        db.session.execute(
            insert(Click), {"code_id": code_id, "visitor_id": "late", "created_at": four_days_ago}
        )
        old = (
            db.session.execute(
                select(Conversion).where(Conversion.kind == "purchase").order_by(Conversion.id)
            )
            .scalars()
            .first()
        )
        db.session.execute(
            insert(Conversion),
            {
                **_conversion(999, "refund", old, old.currency, datetime.now(UTC)),
                "order_id": old.order_id,
            },
        )
        oldest_click = select(func.min(Click.id)).where(Click.created_at < four_days_ago)
        db.session.execute(delete(Click).where(Click.id == oldest_click.scalar_subquery()))
        db.session.execute(update(Program).where(Program.id == spring.id).values(review_score=20))
        db.session.commit()
        assert len(stale_days(today())) >= 3
        for filters in every:
            rolled, live = _both_ways(filters)
            assert rolled == live
        assert rollup_analytics(today()) >= 3  # the stale days recounted
        db.session.commit()
        assert stale_days(today()) == ()
        for filters in every:
            rolled, live = _both_ways(filters)
            assert rolled == live


def test_buckets_hold_every_duration_and_a_median_stays_within_a_32nd(app):
    rng = random.Random(32)
    samples = [-5, 0, 1, 31, 32, 33, 63, 64, 1800, 3600, 93_600, 2**40 + 3]
    samples += [rng.randrange(1, 10**7) for _ in range(300)]
    for seconds in samples:
        first, last = buckets.bounds(buckets.bucket_of(seconds))
        assert first <= seconds <= last
    # The database puts every duration in the same bucket.
    with app.app_context():
        values = union_all(*(select(literal(s, BigInteger).label("seconds")) for s in samples))
        query = select(buckets.bucket_sql()).select_from(values.subquery())
        assert list(db.session.scalars(query)) == [buckets.bucket_of(s) for s in samples]
    for size in (1, 2, 3, 10, 101, 1000):
        durations = [
            rng.choice((rng.randrange(0, 120), rng.randrange(0, 10**6))) for _ in range(size)
        ]
        counts: dict[int, int] = {}
        for seconds in durations:
            counts[buckets.bucket_of(seconds)] = counts.get(buckets.bucket_of(seconds), 0) + 1
        exact = statistics.median(durations)
        assert abs(buckets.median(counts) - exact) <= exact * buckets.RELATIVE_ERROR
    assert buckets.median({}) is None
