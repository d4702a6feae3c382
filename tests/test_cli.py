"""Command-line tools: staff accounts, roles and demo data, through the same services."""

import pytest
from sqlalchemy import func, select

from extensions import db
from models import COUNTED_STATUSES, Click, OutboxMessage, Referral, User
from tests import factories
from tests.helpers import take_outbox


@pytest.fixture
def config_overrides(tmp_path):
    """The demo seed stores contract documents: in the test's folder, not instance/."""
    return {"CONTRACTS_FOLDER": str(tmp_path / "contracts")}


def test_create_admin_then_log_in(app, runner, login, client):
    result = runner.invoke(
        args=[
            "admin",
            "create-admin",
            "--email",
            "Boss@Example.com",
            "--name",
            "Bo Ss",
            "--password",
            "a sturdy admin passphrase",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Admin boss@example.com created." in result.output
    with app.app_context():
        admin = factories.user_by_email("boss@example.com")
        assert admin.role == "admin"
        assert factories.code_of(admin.id)
    assert login("boss@example.com", "a sturdy admin passphrase").status_code == 302


def test_create_admin_prompts_for_what_is_missing(app, runner):
    result = runner.invoke(
        args=["admin", "create-admin", "--email", "boss@example.com"],
        input="Bo Ss\na sturdy admin passphrase\na sturdy admin passphrase\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert factories.user_by_email("boss@example.com").name == "Bo Ss"


def test_create_admin_refuses_bad_input_and_changes_nothing(app, runner, make_participant):
    make_participant("Alice Zimmer", email="alice@example.com")
    cases = [
        (
            ["--email", "alice@EXAMPLE.com", "--name", "X Y", "--password", "long enough pass"],
            "already registered",
        ),
        (
            ["--email", "not-an-email", "--name", "X Y", "--password", "long enough pass"],
            "not valid",
        ),
        (["--email", "new@example.com", "--name", "X Y", "--password", "password"], "common"),
    ]
    for args, message in cases:
        result = runner.invoke(args=["admin", "create-admin", *args])
        assert result.exit_code != 0
        assert message in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1


def test_set_role_changes_the_role_and_reports_it(app, runner, make_participant):
    alice = make_participant("Alice Zimmer")
    result = runner.invoke(args=["admin", "set-role", alice["email"].upper(), "manager"])
    assert result.exit_code == 0, result.output
    assert f"{alice['email']}: member -> manager" in result.output
    with app.app_context():
        assert db.session.get(User, alice["id"]).role == "manager"


def test_set_role_refuses_unknown_roles_and_accounts(app, runner, make_participant):
    alice = make_participant("Alice Zimmer")
    bad_role = runner.invoke(args=["admin", "set-role", alice["email"], "emperor"])
    assert bad_role.exit_code != 0 and "emperor" in bad_role.output
    nobody = runner.invoke(args=["admin", "set-role", "nobody@example.com", "admin"])
    assert nobody.exit_code != 0 and "No account has this email address." in nobody.output
    with app.app_context():
        assert db.session.get(User, alice["id"]).role == "member"


def test_demo_seed_fills_an_empty_database_once(app, runner):
    result = runner.invoke(args=["demo", "seed", "--participants", "60", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert "Created 60 participants" in result.output  # more in tests/test_demo.py
    with app.app_context():
        participants = db.session.scalar(select(func.count(User.id)).where(User.role == "member"))
        referrals = db.session.scalar(select(func.count(Referral.id)))
        clicks = db.session.scalar(select(func.count(Click.id)))
        counted = db.session.scalar(
            select(func.count(Referral.id)).where(Referral.status.in_(COUNTED_STATUSES))
        )
        counters = db.session.scalar(select(func.sum(User.referral_count)))
        waiting = db.session.scalar(select(func.count(OutboxMessage.id)))
    assert participants == 60 and referrals > 20 and clicks >= referrals
    assert counters == counted  # counters equal the rows they count
    assert waiting == 0  # demo people are not real: nothing is mailed to them, not even later
    assert take_outbox(app) == []
    again = runner.invoke(args=["demo", "seed", "--if-empty"])
    assert again.exit_code == 0 and "skipped" in again.output
    refused = runner.invoke(args=["demo", "seed"])
    assert refused.exit_code != 0 and "not empty" in refused.output
