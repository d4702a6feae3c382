"""The analytics top ten is the range's real top ten, whatever the range and program: it is
found by walking the participants in the order of their all-time counter (which the database
keeps, migration 0023) and stopping once nobody further down can enter the ten, or, when the
walk would go too far, by grouping the range's referrals. Both give what counting the rows
by hand gives."""

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select

from admin.analytics import queries
from admin.analytics.queries import Scope
from core.dates import midnight
from extensions import db
from models import COUNTED_STATUSES, Program, Referral, ReferralCode, User, utcnow
from referral.services import default_program
from tests import factories
from tests.databases import sequences_past_their_rows
from tests.factories import numbered_code
from tests.helpers import log_in, statements_during

REFERRERS = 300
FIRST_FRIEND = 10_000
STATUSES = ("pending", "qualified", "rewarded", "approved", "review", "rejected")
WEIGHTS = (50, 20, 12, 4, 7, 7)


def _seed(today: datetime) -> tuple[int, list[dict]]:
    """Referrers with skewed counts (a few with many) over 400 days and two programs, one
    friend per referral; returns the second program's id and the referral rows."""
    rng = random.Random(20261206)
    main_id = default_program().id
    other = Program(name="Other", slug="other", starts_at=today - timedelta(days=500))
    db.session.add(other)
    db.session.flush()
    users = [
        {"id": n, "name": f"Referrer {n}", "email": f"r{n}@example.com"}
        for n in range(1, REFERRERS + 1)
    ]
    referrals = []
    for referrer in range(1, REFERRERS + 1):
        # Some lead all time but were quiet lately, some are the other way round.
        lately = rng.random() < 0.3
        for _ in range(min(int(rng.paretovariate(1.2)), 80)):
            days_ago = rng.random() * (30 if lately and rng.random() < 0.8 else 400)
            at = today - timedelta(days=days_ago)
            friend = FIRST_FRIEND + len(referrals)
            users.append({"id": friend, "name": f"Friend {friend}", "email": f"f{friend}@x.com"})
            status = rng.choices(STATUSES, WEIGHTS)[0]
            referrals.append(
                {
                    "id": len(referrals) + 1,
                    "program_id": other.id if rng.random() < 0.25 else main_id,
                    "referrer_id": referrer,
                    "referred_id": friend,
                    "status": status,
                    "reason": "self_referral" if status == "rejected" else None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
    for user in users:
        user.update(email_canonical=user["email"], role="member", locale="en", created_at=today)
    db.session.execute(insert(User), users)
    codes = {}
    for program_id in (main_id, other.id):
        rows = [
            {
                "id": referrer + (REFERRERS if program_id == other.id else 0),
                "code": numbered_code(referrer + (REFERRERS if program_id == other.id else 0)),
                "user_id": referrer,
                "program_id": program_id,
                "status": "active",
                "is_vanity": False,
                "created_at": today - timedelta(days=500),
            }
            for referrer in range(1, REFERRERS + 1)
        ]
        db.session.execute(insert(ReferralCode), rows)
        codes.update({(row["user_id"], program_id): row["id"] for row in rows})
    for referral in referrals:
        referral.update(
            code_id=codes[(referral["referrer_id"], referral["program_id"])],
            source="link",
            risk_score=0,
            risk_reasons=[],
        )
    db.session.execute(insert(Referral), referrals)
    sequences_past_their_rows(db, "users", "referral_codes", "referrals")
    db.session.commit()
    return other.id, referrals


def _by_hand(referrals, start, end, program_id=None) -> list[tuple[int, int, int]]:
    """(referrer, counted, qualified) of the range's top ten, from the rows themselves."""
    tally: dict[int, list[int]] = {}
    for referral in referrals:
        if (
            not (start <= referral["created_at"] < end)
            or referral["status"] not in COUNTED_STATUSES
        ):
            continue
        if program_id is not None and referral["program_id"] != program_id:
            continue
        entry = tally.setdefault(referral["referrer_id"], [0, 0])
        entry[0] += 1
        entry[1] += referral["status"] in ("qualified", "rewarded")
    ranked = sorted(tally.items(), key=lambda item: (-item[1][0], item[0]))
    return [(referrer, counted, qualified) for referrer, (counted, qualified) in ranked[:10]]


@pytest.fixture
def seeded(app, client):
    with app.app_context():
        today = midnight(utcnow().date())
        other_id, referrals = _seed(today)
        admin = factories.staff("admin")
    log_in(client, admin["email"])
    return {"today": today, "other": other_id, "referrals": referrals}


# (first day, last day) in days before today; the referrals all come before today.
RANGES = [(1, 0), (7, 0), (30, 0), (90, 0), (365, 0), (400, 0), (300, 200), (45, 30)]


@pytest.mark.parametrize("walk_most", [5_000, 40])  # 40: short ranges give the walk up
def test_the_top_ten_of_any_range_is_the_one_counted_by_hand(
    app, client, seeded, monkeypatch, walk_most
):
    monkeypatch.setattr(queries, "WALK_MOST", walk_most)
    today = seeded["today"]
    for first_ago, last_ago in RANGES:
        for program_id in (None, seeded["other"]):
            args = {
                "start": (today - timedelta(days=first_ago)).date().isoformat(),
                "end": (today - timedelta(days=last_ago)).date().isoformat(),
            }
            if program_id is not None:
                args["program"] = program_id
            response = client.get("/admin/export/top_referrers.csv", query_string=args)
            assert response.status_code == 200
            shown = []
            for line in response.text.splitlines()[1:]:
                referrer, counted, qualified = line.split(",")[0:1] + line.split(",")[3:5]
                row = (int(referrer), int(counted), int(qualified))
                if row not in shown:  # one line per currency earned
                    shown.append(row)
            start = today - timedelta(days=first_ago)
            end = today - timedelta(days=last_ago - 1)  # the day after the last one
            expected = _by_hand(seeded["referrals"], start, end, program_id)
            assert shown == expected, (args, shown, expected)


def _scope(today: datetime, days: int) -> Scope:
    start = today - timedelta(days=days - 1)
    return Scope(start, today + timedelta(days=1), start.date(), days, None)


def test_a_long_range_is_decided_near_the_top_and_a_short_one_may_give_up(app, seeded, monkeypatch):
    today = seeded["today"]
    with app.app_context():
        counters = db.session.scalars(
            select(User.referral_count).order_by(User.referral_count.desc()).limit(11)
        ).all()
        assert counters[0] > counters[10] > 0  # a board with leaders to find
        found = []
        statements = statements_during(
            app, lambda: found.append(queries.leading_referrers(_scope(today, 400)))
        )
        leaders = found[0]
        expected = _by_hand(seeded["referrals"], today - timedelta(days=399), today + timedelta(1))
        assert leaders == [referrer for referrer, _, _ in expected]
        # The candidates, then one batch or two: never a grouping of the whole range.
        assert 2 <= len(statements) <= 3
        monkeypatch.setattr(queries, "WALK_MOST", 20)
        assert queries.leading_referrers(_scope(today, 1)) is None
