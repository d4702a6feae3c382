"""`flask db backup` and `flask db restore`: a round trip gives back every row and balance,
and a restore never lands on live data (docs/guarantees.md #37)."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import User, utcnow
from rewards import ledger
from tests import databases, factories
from tests.helpers import accepted_purchase


@pytest.fixture
def people(app, make_participant):
    """Rita invited Fred and Gina; both bought; returns their plain values."""
    rita = make_participant("Rita Referrer")
    fred = make_participant("Fred Friend", invited_by=rita["code"])
    gina = make_participant("Gina Guest", invited_by=rita["code"])
    a_week_ago = utcnow() - timedelta(days=7)
    accepted_purchase(app, fred["email"], "order-1", 2500, now=a_week_ago)
    accepted_purchase(app, gina["email"], "order-2", 9900)
    return rita, fred, gina


def snapshot(app) -> dict:
    """Rows per table, and every participant's balances."""
    with app.app_context():
        rows = {
            table.name: db.session.scalar(select(func.count()).select_from(table))
            for table in db.metadata.sorted_tables
        }
        balances = {
            user.email: [tuple(vars(b).values()) for b in ledger.balances(user)]
            for user in db.session.scalars(select(User).order_by(User.id))
        }
        db.session.rollback()
    return {"rows": rows, "balances": balances}


def wipe(app) -> None:
    with app.app_context():
        databases.empty_tables(db)


def test_backup_wipe_restore_gives_back_every_row_and_balance(app, runner, people, tmp_path):
    rita, fred, _gina = people
    before = snapshot(app)
    assert before["rows"]["rewards"] == 4 and before["rows"]["referrals"] == 2
    path = tmp_path / "inviteloop.backup"

    made = runner.invoke(args=["db", "backup", str(path)])
    assert made.exit_code == 0, made.output
    assert f"Backed up to {path}" in made.output
    assert len(made.output.splitlines()) >= 3  # progress lines before the summary
    assert path.stat().st_size > 0
    assert not list(tmp_path.glob("*.partial"))

    wipe(app)
    assert snapshot(app)["rows"]["users"] == 0

    restored = runner.invoke(args=["db", "restore", str(path)])
    assert restored.exit_code == 0, restored.output
    assert "Restored" in restored.output
    assert snapshot(app) == before

    # The restored installation carries on: new ids do not collide with restored ones.
    with app.app_context():
        newcomer = factories.participant("Nora Newcomer", invited_by=rita["code"])
    assert newcomer["id"] > fred["id"]


def test_restore_refuses_a_database_with_data_and_changes_nothing(app, runner, people, tmp_path):
    path = tmp_path / "inviteloop.backup"
    assert runner.invoke(args=["db", "backup", str(path)]).exit_code == 0
    with app.app_context():
        factories.participant("Late Larry")
    before = snapshot(app)

    refused = runner.invoke(args=["db", "restore", str(path)])

    assert refused.exit_code == 1
    assert "The database is not empty (it holds" in refused.output
    assert "4 users" in refused.output
    assert snapshot(app) == before


def test_backup_does_not_overwrite_and_restore_checks_the_file(app, runner, backend, tmp_path):
    existing = tmp_path / "old.backup"
    existing.write_bytes(b"last week's backup")
    refused = runner.invoke(args=["db", "backup", str(existing)])
    assert refused.exit_code == 1
    assert "already exists" in refused.output
    assert existing.read_bytes() == b"last week's backup"

    assert runner.invoke(args=["db", "restore", str(existing)]).exit_code == 1
    assert (
        "is not a backup made by `flask db backup`"
        in runner.invoke(args=["db", "restore", str(existing)]).output
    )

    wrong_kind = tmp_path / "other.backup"
    if backend == "sqlite":
        wrong_kind.write_bytes(b"PGDMP\x01\x0e\x00" + bytes(64))
        expected = "is a PostgreSQL backup; this installation uses SQLite"
    else:
        wrong_kind.write_bytes(b"SQLite format 3\x00" + bytes(84))
        expected = "is a SQLite backup; this installation uses PostgreSQL"
    answer = runner.invoke(args=["db", "restore", str(wrong_kind)])
    assert answer.exit_code == 1 and expected in answer.output
