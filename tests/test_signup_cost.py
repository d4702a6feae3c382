"""What a signup costs the server (docs/guarantees.md #52): the password hash, then one
transaction on one pooled connection, and nothing on the database after its commit. The
hash comes first, so no connection (and on SQLite no write lock) waits on the CPU."""

import pytest
from sqlalchemy import event, func, select

import auth.forms
from core import outbox
from extensions import db
from models import Lead, OutboxMessage, Referral, User
from referral import fraud
from tests.helpers import csrf_token, read_form

# Statements a referred signup sends: the form's check of the code, the code's fraud
# counts, the account (with its inviter; its unique key says whether the email is taken),
# its code, the referral and its counter, the announcement's outbox row and the session row;
# PostgreSQL's one more is the code's advisory lock. It was 32 over three transactions, each
# on its own pool checkout; then 18 on PostgreSQL, with savepoints around the code and the
# lead, the inviter written by an UPDATE after the account, and the email, the lead and the
# webhook subscribers on the request; then 9, with the email looked up before the INSERT.
REFERRED_SIGNUP_STATEMENTS = {"sqlite": 7, "postgresql": 8}
PLAIN_SIGNUP_STATEMENTS = 4


@pytest.fixture
def config_overrides():
    # The outbox's rows wait for a worker, as in production; the tests' inline delivery
    # would send them on the request, after the commit.
    return {"OUTBOX_DELIVERY": "celery", "CELERY_ALWAYS_EAGER": False}


@pytest.fixture
def cost(app, monkeypatch):
    """Records, in order, the hash, each BEGIN, statement, COMMIT and pool checkout."""
    seen: list[tuple[str, str]] = []
    real_hash = auth.forms.hash_password

    def hash_and_note(password):
        seen.append(("hash", ""))
        return real_hash(password)

    monkeypatch.setattr(auth.forms, "hash_password", hash_and_note)
    with app.app_context():
        engine = db.engine
    listeners = [
        (engine, "begin", lambda _conn: seen.append(("begin", ""))),
        (engine, "commit", lambda _conn: seen.append(("commit", ""))),
        (engine, "before_cursor_execute", lambda _c, _k, sql, *_a: seen.append(("sql", sql))),
        (engine.pool, "checkout", lambda *_a: seen.append(("checkout", ""))),
    ]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    yield seen
    for target, name, listener in listeners:
        event.remove(target, name, listener)


def _sign_up(client, token, **extra):
    data = {
        "csrf_token": token,
        "name": "Bob Baker",
        "email": "bob@example.com",
        "password": "correct horse battery staple",
        **extra,
    }
    return client.post("/auth/signup", data=data)


def _statements(seen) -> list[str]:
    """The statements sent, SQLite's BEGIN aside (PostgreSQL's driver sends its own)."""
    return [sql for kind, sql in seen if kind == "sql" and not sql.startswith("BEGIN")]


def _shape(seen) -> list[str]:
    """The order of events with the statements folded into one "sql" step (SQLite's BEGIN
    statement is the "begin" step itself)."""
    shape: list[str] = []
    for kind, sql in seen:
        if kind == "sql" and sql.startswith("BEGIN"):
            continue
        if kind != "sql" or shape[-1:] != ["sql"]:
            shape.append(kind)
    return shape


def test_a_referred_signup_is_the_hash_then_one_transaction(
    app, backend, client, make_participant, cost
):
    alice = make_participant("Alice Zimmer")
    token = csrf_token(client, "/auth/signup")
    cost.clear()

    response = _sign_up(client, token, referral_code=alice["code"])

    assert response.status_code == 302
    assert _shape(cost) == ["hash", "checkout", "begin", "sql", "commit"]
    statements = _statements(cost)
    assert len(statements) <= REFERRED_SIGNUP_STATEMENTS[backend], "\n".join(statements)
    # No savepoints (the code and the lead skip a clash in their INSERT) and no UPDATE.
    assert not [sql for sql in statements if "SAVEPOINT" in sql or sql.startswith("UPDATE")]
    # Everything the signup promises was in that one transaction.
    with app.app_context():
        bob = db.session.scalar(select(User).where(User.email == "bob@example.com"))
        referral = db.session.scalar(select(Referral).where(Referral.referred_id == bob.id))
        assert referral.status == "pending" and referral.counted
        assert db.session.get(User, alice["id"]).referral_count == 1
        assert bob.referred_by_id == alice["id"] and bob.locale == "en"
        # What the referral sets off waits in one outbox row, for after the commit.
        [(announcement, job)] = db.session.execute(select(OutboxMessage.id, OutboxMessage.job))
        assert job == "referral.announce"
        assert db.session.scalar(select(func.count()).select_from(Lead)) == 0
        # A worker runs it: the lead, and the referrer's email queued in turn.
        assert outbox.drain(only=[announcement]) == 1
        assert db.session.scalar(select(Lead.full_name).where(Lead.participant_id == bob.id))
        assert db.session.scalars(
            select(OutboxMessage.job).where(OutboxMessage.status == "pending")
        ).all() == ["rewards.send_email"]
    # Signed in by that same commit.
    assert client.get("/referral/dashboard").status_code == 200


def test_a_signup_without_a_code_is_one_short_transaction(app, client, cost):
    token = csrf_token(client, "/auth/signup")
    cost.clear()

    response = _sign_up(client, token)

    assert response.status_code == 302
    assert _shape(cost) == ["hash", "checkout", "begin", "sql", "commit"]
    assert len(_statements(cost)) <= PLAIN_SIGNUP_STATEMENTS, _statements(cost)
    assert client.get("/referral/dashboard").status_code == 200


def test_a_refused_signup_is_not_hashed_twice_and_writes_nothing(app, client, cost):
    assert _sign_up(client, csrf_token(client, "/auth/signup")).status_code == 302
    other = app.test_client()
    token = csrf_token(other, "/auth/signup")
    cost.clear()

    response = _sign_up(other, token, name="Bob Again")

    assert response.status_code == 409
    assert read_form(response).field_errors["email"] == [
        "This email is already registered. Log in instead."
    ]
    assert [kind for kind, _ in cost].count("hash") == 1
    # The account's INSERT was the check (its unique key refused it): nothing committed.
    assert "commit" not in [kind for kind, _ in cost]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1
        assert db.session.scalar(select(User.name)) == "Bob Baker"


# SQLite's plan is fixed by the indexes; PostgreSQL's planner weighs the table's size, so its
# plan on a test's few rows says nothing (the index is there: models and migrations agree).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("same_ip", [True, False])
def test_the_velocity_checks_read_only_the_codes_recent_referrals(app, same_ip):
    """However many referrals a code has had, a signup through it counts only those of the
    last day (a code with 17,000 took each signup 14 ms on SQLite when all were read)."""
    counts = fraud._velocity_counts(leave_out=True, same_ip=same_ip)
    with app.app_context(), db.engine.connect() as connection:
        compiled = counts.compile(dialect=connection.dialect)
        placeholders = tuple("2026-12-07 12:00:00.000000" for _ in compiled.positiontup)
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", placeholders).all()
    steps = [step[-1] for step in plan]
    assert any(
        "ix_referrals_code_history (code_id=? AND created_at>?)" in step for step in steps
    ), steps
