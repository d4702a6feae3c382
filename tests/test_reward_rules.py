"""Program rules: validation on save, and what each rule pays (through the real services)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Click, Conversion, Program, Referral, ReferralCode, Reward, User, utcnow
from referral import lifecycle
from referral.services import default_program
from rewards import programs, review, services
from rewards.conversions import record_event
from rewards.events import EventIn
from tests.helpers import buy, configure, referral_of

# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"trigger_event": "birthday"}, "trigger_event", "trigger"),
        ({"referrer_reward_value": 0}, "referrer_reward_value", "more than zero"),
        ({"referrer_reward_kind": "hugs"}, "referrer_reward_kind", "kind"),
        (
            {"referrer_reward_basis": "percent", "referrer_reward_value": 12000},
            "referrer_reward_value",
            "100 %",
        ),
        (
            {"trigger_event": "signup", "referrer_reward_basis": "percent"},
            "referrer_reward_basis",
            "needs a purchase",
        ),
        ({"friend_reward_value": None}, "friend_reward_value", "more than zero"),
        ({"max_depth": 1, "level_shares": [50]}, "level_shares", "depth"),
        ({"level_shares": [150]}, "level_shares", "0 to 100"),
        ({"milestone_every": 5}, "milestone_amount", "both"),
        ({"milestone_every": 1, "milestone_amount": 100}, "milestone_every", "2 or more"),
        ({"cap_per_day": 10, "cap_per_month": 5}, "cap_per_day", "cannot exceed"),
        ({"cap_total": 0}, "cap_total", "above zero"),
        ({"hold_days": -1}, "hold_days", "0 to 365"),
        ({"reward_expiry_days": 0}, "reward_expiry_days", "1 to 3650"),
        ({"review_score": 80, "reject_score": 60}, "reject_score", "below the review"),
        ({"currency": "usd"}, "currency", "capitals"),
        ({"min_purchase_amount": -1}, "min_purchase_amount", "0 or more"),
        ({"excluded_email_domains": ["not a domain"]}, "excluded_email_domains", "example.com"),
        ({"color": "blue"}, "color", "not a program setting"),
    ],
)
def test_impossible_rules_are_refused_with_a_clear_message(app, changes, field, words):
    with app.app_context():
        program = default_program()
        before = {name: getattr(program, name) for name in programs.RULE_FIELDS}
        with pytest.raises(programs.InvalidRules) as refused:
            programs.update_program(program, changes)
        assert refused.value.field == field
        assert words in refused.value.message
        db.session.rollback()
        program = default_program()
        assert {name: getattr(program, name) for name in programs.RULE_FIELDS} == before


def test_the_default_program_has_the_promised_rules(app):
    with app.app_context():
        program = default_program()
        assert (program.trigger_event, program.min_purchase_amount) == ("first_purchase", 2000)
        assert (program.referrer_reward_kind, program.referrer_reward_value) == ("credit", 1000)
        assert (program.friend_reward_kind, program.friend_reward_value) == ("credit", 500)
        assert program.hold_days == 14 and program.currency == "USD"


def test_the_cli_changes_rules_and_refuses_bad_ones(app, runner):
    ok = runner.invoke(args=["rewards", "program", "set", "default", "level_shares=50,20"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(args=["rewards", "program", "set", "default", "hold_days=-3"])
    assert bad.exit_code != 0 and "0 to 365" in bad.output
    shown = runner.invoke(args=["rewards", "program", "show"])
    assert "level_shares" in shown.output and "50,20" in shown.output
    with app.app_context():
        assert default_program().hold_days == 14


# --- what the rules pay ----------------------------------------------------------------------


def ledger(app, user_id):
    with app.app_context():
        return [
            (r.role, r.level, r.kind, r.amount, r.status, r.milestone)
            for r in db.session.scalars(
                select(Reward).where(Reward.beneficiary_id == user_id).order_by(Reward.id)
            )
        ]


def test_multi_level_shares_pay_the_inviters_inviters(app, make_participant):
    configure(app, level_shares=[50, 20])
    top = make_participant("Tina Top")
    middle = make_participant("Mia Middle", invited_by=top["code"])
    lower = make_participant("Lou Lower", invited_by=middle["code"])
    buyer = make_participant("Bea Buyer", invited_by=lower["code"])
    assert buy(app, buyer["email"], "o1").outcome == "accepted"
    assert ledger(app, lower["id"]) == [("referrer", 1, "credit", 1000, "pending", None)]
    assert ledger(app, middle["id"]) == [("referrer", 2, "credit", 500, "pending", None)]
    assert ledger(app, top["id"]) == [("referrer", 3, "credit", 200, "pending", None)]


def test_the_depth_stops_the_network_rewards(app, make_participant):
    configure(app, max_depth=2, level_shares=[50])
    top = make_participant("Tina Top")
    middle = make_participant("Mia Middle", invited_by=top["code"])
    lower = make_participant("Lou Lower", invited_by=middle["code"])
    buyer = make_participant("Bea Buyer", invited_by=lower["code"])
    buy(app, buyer["email"], "o1")
    assert [entry[1] for entry in ledger(app, middle["id"])] == [2]
    assert ledger(app, top["id"]) == []


def test_a_percent_reward_is_a_share_of_the_purchase(app, make_participant):
    configure(app, referrer_reward_basis="percent", referrer_reward_value=1000)  # 10 %
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    buy(app, fred["email"], "o1", amount=4999)
    assert ledger(app, rita["id"])[0][3] == 499  # rounded down, never up


def test_every_purchase_programs_pay_each_purchase(app, make_participant):
    configure(app, trigger_event="every_purchase")
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    for order in ("o1", "o2", "o3"):
        assert buy(app, fred["email"], order).outcome == "accepted"
    assert len(ledger(app, rita["id"])) == 3


def test_a_signup_program_pays_when_the_friend_joins(app, make_participant):
    configure(app, trigger_event="signup", friend_reward_kind="points", friend_reward_value=50)
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    assert ledger(app, rita["id"]) == [("referrer", 1, "credit", 1000, "pending", None)]
    assert ledger(app, fred["id"]) == [("referee", 1, "points", 50, "pending", None)]
    with app.app_context():
        conversion = db.session.scalar(select(Conversion))
        assert (conversion.source, conversion.kind, conversion.outcome) == (
            "app",
            "signup",
            "accepted",
        )


def test_a_milestone_bonus_comes_with_every_nth_qualified_referral(app, make_participant):
    configure(app, milestone_every=2, milestone_amount=700)
    rita = make_participant("Rita Referrer")
    friends = [
        make_participant(f"Friend Number{n}", email=f"f{n}@example.com", invited_by=rita["code"])
        for n in range(4)
    ]
    for number, friend in enumerate(friends):
        buy(app, friend["email"], f"o{number}")
    bonuses = [entry for entry in ledger(app, rita["id"]) if entry[0] == "bonus"]
    assert bonuses == [
        ("bonus", 1, "credit", 700, "pending", 1),
        ("bonus", 1, "credit", 700, "pending", 2),
    ]


def test_a_daily_cap_stops_the_referrer_reward_but_not_the_friends(app, make_participant):
    configure(app, cap_per_day=1)
    rita = make_participant("Rita Referrer")
    first = make_participant("First Friend", invited_by=rita["code"])
    second = make_participant("Second Friend", invited_by=rita["code"])
    buy(app, first["email"], "o1")
    outcome = buy(app, second["email"], "o2")
    assert (outcome.outcome, outcome.reason) == ("accepted", "daily_cap_reached")
    assert len(ledger(app, rita["id"])) == 1
    assert ledger(app, second["id"]) == [("referee", 1, "credit", 500, "pending", None)]


def test_coupon_rewards_get_unique_unguessable_codes(app, make_participant):
    configure(app, referrer_reward_kind="coupon", trigger_event="every_purchase")
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    for order in ("o1", "o2", "o3"):
        buy(app, fred["email"], order)
    with app.app_context():
        codes = db.session.scalars(
            select(Reward.coupon_code).where(Reward.beneficiary_id == rita["id"])
        ).all()
    assert len(set(codes)) == 3 and all(
        code.startswith("IL-") and len(code) == 15 for code in codes
    )


def test_no_hold_means_approved_at_once(app, make_participant):
    configure(app, hold_days=0)
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    buy(app, fred["email"], "o1")
    assert ledger(app, rita["id"])[0][4] == "approved"


def test_a_program_that_has_ended_pays_nothing(app, make_participant):
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    configure(app, ends_at=utcnow() - timedelta(minutes=1))
    outcome = buy(app, fred["email"], "o1")
    assert (outcome.outcome, outcome.reason) == ("ignored", "program_not_running")


def test_a_customer_who_bought_before_being_referred_is_not_new(app, make_participant):
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend")
    buy(app, fred["email"], "before", now=utcnow() - timedelta(days=3))
    with app.app_context():
        # Fred is referred afterwards, through an event carrying Rita's code.
        record_event(
            EventIn(
                source="api",
                kind="signup",
                external_id="late-signup",
                customer_email=fred["email"],
                ref_code=rita["code"],
            )
        )
        db.session.commit()
    outcome = buy(app, fred["email"], "after")
    assert (outcome.outcome, outcome.reason) == ("ignored", "existing_customer")


# --- holds, expiry and release ---------------------------------------------------------------


def test_release_approves_after_the_hold_and_marks_the_referral_rewarded(app, make_participant):
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    buy(app, fred["email"], "o1")
    with app.app_context():
        assert services.release_held_rewards(utcnow() + timedelta(days=13)) == 0
        assert services.release_held_rewards(utcnow() + timedelta(days=15)) == 2
        assert services.release_held_rewards(utcnow() + timedelta(days=15)) == 0
        db.session.commit()
        status = db.session.scalar(
            select(Referral.status).where(Referral.referred_id == fred["id"])
        )
    assert status == "rewarded"
    assert ledger(app, rita["id"])[0][4] == "approved"


def test_release_and_expire_from_the_command_line(app, runner, make_participant):
    configure(app, hold_days=0, reward_expiry_days=30)
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    buy(app, fred["email"], "o1", now=utcnow() - timedelta(days=31))
    result = runner.invoke(args=["rewards", "expire"])
    assert result.exit_code == 0 and "Expired 2 reward(s)" in result.output
    assert ledger(app, rita["id"])[0][4] == "expired"
    result = runner.invoke(args=["rewards", "release-held"])
    assert result.exit_code == 0 and "Approved 0" in result.output


# --- fraud at signup and at conversion -------------------------------------------------------


def counter_of(app, user_id):
    with app.app_context():
        return db.session.get(User, user_id).referral_count


def test_a_friend_on_the_referrers_ip_is_held_for_review_and_not_counted(app, make_participant):
    rita = make_participant("Rita Referrer", ip="203.0.113.7")
    fred = make_participant("Fred Friend", invited_by=rita["code"], ip="203.0.113.7")
    referral = referral_of(app, fred["id"])
    assert (referral.status, referral.reason) == ("review", "same_ip")
    assert [reason["code"] for reason in referral.risk_reasons] == ["same_ip"]
    assert counter_of(app, rita["id"]) == 0
    outcome = buy(app, fred["email"], "o1")
    assert (outcome.outcome, outcome.reason) == ("accepted", "held_for_review")
    assert ledger(app, rita["id"])[0][4] == "review"
    with app.app_context():
        # Held rewards are not released by the hold's end: they wait for staff.
        assert services.release_held_rewards(utcnow() + timedelta(days=30)) == 0


def test_a_disposable_email_is_held_for_review(app, make_participant):
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", email="fred@mailinator.com", invited_by=rita["code"])
    referral = referral_of(app, fred["id"])
    assert (referral.status, referral.reason) == ("review", "disposable_email")


def test_an_excluded_domain_is_rejected_by_policy(app, make_participant):
    configure(app, excluded_email_domains=["competitor.example"])
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", email="fred@competitor.example", invited_by=rita["code"])
    referral = referral_of(app, fred["id"])
    assert (referral.status, referral.reason) == ("rejected", "excluded_domain")
    assert buy(app, fred["email"], "o1").outcome == "rejected"
    assert ledger(app, rita["id"]) == []


def test_a_stricter_policy_rejects_what_the_default_would_review(app, make_participant):
    configure(app, review_score=20, reject_score=50)
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", email="fred@mailinator.com", invited_by=rita["code"])
    assert referral_of(app, fred["id"]).status == "rejected"


def test_the_sixth_signup_from_one_ip_with_one_code_in_a_day_is_held(app, make_participant):
    rita = make_participant("Rita Referrer")
    friends = [
        make_participant(
            f"Friend Number{n}", email=f"f{n}@example.com", invited_by=rita["code"], ip="198.51.1.9"
        )
        for n in range(6)
    ]
    statuses = [referral_of(app, friend["id"]).status for friend in friends]
    assert statuses == ["pending"] * 5 + ["review"]
    assert referral_of(app, friends[-1]["id"]).reason == "ip_velocity"
    assert counter_of(app, rita["id"]) == 5


def test_too_many_signups_per_code_in_an_hour_are_held(app, make_participant):
    configure(app, max_signups_per_code_per_hour=3)
    rita = make_participant("Rita Referrer")
    friends = [
        make_participant(f"Friend Number{n}", email=f"f{n}@example.com", invited_by=rita["code"])
        for n in range(4)
    ]
    assert [referral_of(app, f["id"]).status for f in friends] == ["pending"] * 3 + ["review"]


def test_a_purchase_seconds_after_the_click_is_flagged(app, make_participant):
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    now = utcnow()
    with app.app_context():
        code_id = db.session.scalar(
            select(ReferralCode.id).where(ReferralCode.code == rita["code"])
        )
        db.session.add(Click(code_id=code_id, visitor_id="v" * 32, created_at=now))
        db.session.commit()
    outcome = buy(app, fred["email"], "o1", now=now + timedelta(seconds=3))
    assert (outcome.outcome, outcome.reason) == ("accepted", "held_for_review")
    with app.app_context():
        conversion = db.session.scalar(select(Conversion))
        assert [reason["code"] for reason in conversion.risk_reasons] == ["fast_purchase"]


def test_a_code_that_would_close_a_cycle_is_refused(app, make_participant):
    ann = make_participant("Ann Anchor")
    bob = make_participant("Bob Branch", invited_by=ann["code"])
    with app.app_context():
        # Ann (not referred) is attributed to Bob, whom she invited: a loop.
        record_event(
            EventIn(
                source="api",
                kind="signup",
                external_id="cycle",
                customer_email=ann["email"],
                ref_code=bob["code"],
            )
        )
        db.session.commit()
    referral = referral_of(app, ann["id"])
    assert (referral.status, referral.reason) == ("rejected", "cycle")
    with app.app_context():
        assert db.session.get(User, ann["id"]).referred_by_id is None
        total = db.session.scalar(select(func.sum(User.referral_count)))
    assert total == 1


# --- staff decisions on held referrals -------------------------------------------------------


def held_pair(app, make_participant):
    rita = make_participant("Rita Referrer", ip="203.0.113.7")
    fred = make_participant("Fred Friend", invited_by=rita["code"], ip="203.0.113.7")
    buy(app, fred["email"], "o1")
    return rita, fred


def test_approving_a_held_referral_counts_it_and_starts_the_hold(app, runner, make_participant):
    rita, fred = held_pair(app, make_participant)
    listed = runner.invoke(args=["rewards", "review", "list"])
    assert "same_ip" in listed.output and fred["email"] in listed.output
    referral_id = referral_of(app, fred["id"]).id
    result = runner.invoke(args=["rewards", "review", "approve", str(referral_id)])
    assert result.exit_code == 0, result.output
    assert counter_of(app, rita["id"]) == 1
    assert referral_of(app, fred["id"]).status == "qualified"
    assert ledger(app, rita["id"])[0][4] == "pending"
    again = runner.invoke(args=["rewards", "review", "approve", str(referral_id)])
    assert again.exit_code != 0 and "not waiting for review" in again.output
    assert counter_of(app, rita["id"]) == 1


def test_rejecting_a_held_referral_rejects_its_rewards(app, runner, make_participant):
    rita, fred = held_pair(app, make_participant)
    referral_id = referral_of(app, fred["id"]).id
    result = runner.invoke(
        args=["rewards", "review", "reject", str(referral_id), "--reason", "household"]
    )
    assert result.exit_code == 0, result.output
    assert counter_of(app, rita["id"]) == 0
    assert (referral_of(app, fred["id"]).status, referral_of(app, fred["id"]).reason) == (
        "rejected",
        "household",
    )
    assert {entry[4] for entry in ledger(app, rita["id"]) + ledger(app, fred["id"])} == {"rejected"}


def test_a_new_program_is_created_with_checked_rules(app, runner):
    made = runner.invoke(
        args=["rewards", "program", "create", "spring", "name=Spring promo", "hold_days=7"]
    )
    assert made.exit_code == 0, made.output
    again = runner.invoke(args=["rewards", "program", "create", "spring"])
    assert again.exit_code != 0 and "already has this short name" in again.output
    bad = runner.invoke(args=["rewards", "program", "create", "autumn", "cap_total=0"])
    assert bad.exit_code != 0 and "above zero" in bad.output
    with app.app_context():
        spring = db.session.scalar(select(Program).where(Program.slug == "spring"))
        assert (spring.name, spring.hold_days, spring.is_default) == ("Spring promo", 7, False)
        assert spring.trigger_event == "first_purchase" and spring.currency == "USD"
        assert db.session.scalar(select(func.count()).select_from(Program)) == 2


# PostgreSQL only: SQLite's transactions begin IMMEDIATE, so two decisions cannot overlap.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_approvals_at_once_count_the_referral_once(app, make_participant):
    rita, fred = held_pair(app, make_participant)
    referral_id = referral_of(app, fred["id"]).id
    barrier = threading.Barrier(2, timeout=10)

    def approve() -> str:
        with app.app_context():
            referral = db.session.get(Referral, referral_id)
            barrier.wait()
            try:
                review.approve_referral(referral, utcnow())
                db.session.commit()
                return "approved"
            except lifecycle.NotUnderReview:
                db.session.rollback()
                return "refused"

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = sorted(pool.map(lambda _: approve(), range(2)))
    assert answers == ["approved", "refused"]
    assert counter_of(app, rita["id"]) == 1
