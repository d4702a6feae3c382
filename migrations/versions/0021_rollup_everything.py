"""The analytics roll-up for every figure of the analytics home: per closed day and program, the
referrals by what became of them, the purchases and referred revenue, the reward cost, and the
click-to-signup and signup-to-first-purchase times in buckets; and analytics_stale_days, the
days whose rows changed after they closed, marked by triggers of the database itself (so no
writer anywhere can forget): an insert, a change or a delete of a counted row of a day before
today, a refund of a purchase of such a day, a program's new review score. The page counts a
stale day from the rows; the job recounts it. The tables start empty: the job fills them.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
_MEASURES = "'click_to_signup', 'signup_to_purchase'"

# Per table: the columns whose change moves a figure (None: rows never change them, so no
# update trigger), and which days a changed row touches: ("at", timestamp) for the day of a
# timestamp of the row ($), or (timestamp, joined table, join condition) for other rows'.
_TRACKED = {
    "clicks": (None, [("$.created_at",)]),
    "users": (None, [("$.created_at",)]),
    "referral_codes": (
        ("user_id", "program_id", "created_at"),
        # A code's day, and the later codes of its holder in the program (which of them is
        # the first one depends on it).
        [
            ("$.created_at",),
            (
                "c.created_at",
                "referral_codes c",
                "c.user_id = $.user_id AND c.program_id = $.program_id",
            ),
        ],
    ),
    "referrals": (
        ("status", "risk_score", "program_id", "clicked_at", "first_purchase_at", "created_at"),
        [("$.created_at",), ("$.first_purchase_at",)],
    ),
    "conversions": (
        ("kind", "outcome", "occurred_at", "program_id", "referral_id", "amount", "currency"),
        # A refund changes the referred revenue of the day of the purchase it refunds (found
        # by the order alone, so the order's index finds it; its other refunds' days come too).
        [
            ("$.occurred_at",),
            (
                "p.occurred_at",
                "conversions p",
                "$.kind = 'refund' AND p.source = $.source AND p.order_id = $.order_id",
            ),
        ],
    ),
    "rewards": (
        ("status", "amount", "kind", "currency", "program_id", "created_at"),
        [("$.created_at",)],
    ),
}


def upgrade():
    _tables()
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _tables():
    def day_and_program(table):
        return [
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("program_id", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(
                ["program_id"], ["programs.id"], name=op.f(f"fk_{table}_program_id_programs")
            ),
        ]

    op.create_table(
        "analytics_referral_days",
        *day_and_program("analytics_referral_days"),
        sa.Column("signups", sa.Integer(), nullable=False),
        sa.Column("qualified", sa.Integer(), nullable=False),
        sa.Column("rewarded", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "rewarded >= 0 AND qualified >= rewarded AND signups >= qualified"
            " AND flagged >= 0 AND signups >= flagged",
            name=op.f("ck_analytics_referral_days_counts_nest"),
        ),
        sa.PrimaryKeyConstraint("day", "program_id", name=op.f("pk_analytics_referral_days")),
    )
    op.create_table(
        "analytics_purchase_days",
        *day_and_program("analytics_purchase_days"),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("purchases", sa.Integer(), nullable=False),
        sa.Column("referred", sa.Integer(), nullable=False),
        sa.Column("referred_net", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "referred >= 0 AND purchases >= referred",
            name=op.f("ck_analytics_purchase_days_counts_nest"),
        ),
        sa.PrimaryKeyConstraint(
            "day", "program_id", "currency", name=op.f("pk_analytics_purchase_days")
        ),
    )
    op.create_table(
        "analytics_reward_days",
        *day_and_program("analytics_reward_days"),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "program_id", "currency", name=op.f("pk_analytics_reward_days")
        ),
    )
    op.create_table(
        "analytics_gap_days",
        *day_and_program("analytics_gap_days"),
        sa.Column("measure", sa.String(length=20), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("referrals", sa.Integer(), nullable=False),
        sa.CheckConstraint(f"measure IN ({_MEASURES})", name=op.f("ck_analytics_gap_days_measure")),
        sa.CheckConstraint("referrals > 0", name=op.f("ck_analytics_gap_days_referrals_positive")),
        sa.PrimaryKeyConstraint(
            "day", "program_id", "measure", "bucket", name=op.f("pk_analytics_gap_days")
        ),
    )
    # Marks, not unique per day: a writer marking a day another is marking too adds its own
    # mark instead of waiting for the other's commit (as a unique key would make it).
    op.create_table(
        "analytics_stale_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_stale_days")),
    )
    op.create_index("ix_analytics_stale_days_day", "analytics_stale_days", ["day"])


# --- PostgreSQL: one statement-level trigger per table and event, reading the statement's
# changed rows once (a bulk insert of a million backdated rows is one INSERT ... SELECT).


def _pg_days(rows: str, fragments) -> str:
    parts = []
    for fragment in fragments:
        at = fragment[0].replace("$", "r")
        source = f"{rows} r"
        if len(fragment) == 3:
            source += f" JOIN {fragment[1]} ON {fragment[2].replace('$', 'r')}"
        parts.append(f"SELECT {at} AS at FROM {source}")  # noqa: S608 - fixed names
    touched = " UNION ALL ".join(parts)
    return (
        "INSERT INTO analytics_stale_days (day)"  # noqa: S608 - fixed names
        " SELECT DISTINCT CAST(at AT TIME ZONE 'UTC' AS date) AS day"
        " FROM (" + touched + ") AS touched"
        " WHERE at < date_trunc('day', statement_timestamp(), 'UTC')"
        " AND NOT EXISTS (SELECT FROM analytics_stale_days s"
        " WHERE s.day = CAST(at AT TIME ZONE 'UTC' AS date));"
    )


def _pg_changed(side: str, columns) -> str:
    """The rows of one side of an update whose counted columns changed."""
    other = "old_rows" if side == "new_rows" else "new_rows"
    mine = ", ".join(f"m.{column}" for column in columns)
    theirs = ", ".join(f"o.{column}" for column in columns)
    return (
        f"(SELECT m.* FROM {side} m JOIN {other} o ON o.id = m.id"  # noqa: S608 - fixed names
        f" WHERE ({mine}) IS DISTINCT FROM ({theirs}))"
    )


def _postgres_triggers():
    for table, (columns, fragments) in _TRACKED.items():
        name = f"analytics_stale_{table}"
        body = [
            f"IF TG_OP = 'INSERT' THEN {_pg_days('new_rows', fragments)}",
            f"ELSIF TG_OP = 'DELETE' THEN {_pg_days('old_rows', fragments)}",
        ]
        if columns:
            body.append(
                f"ELSE {_pg_days(_pg_changed('new_rows', columns), fragments)}"
                f" {_pg_days(_pg_changed('old_rows', columns), fragments)}"
            )
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" {' '.join(body)} END IF; RETURN NULL; END $$"
        )
        events = {"insert": "NEW TABLE AS new_rows", "delete": "OLD TABLE AS old_rows"}
        if columns:
            events["update"] = "OLD TABLE AS old_rows NEW TABLE AS new_rows"
        for event, referencing in events.items():
            op.execute(
                f"CREATE TRIGGER {name}_{event} AFTER {event.upper()} ON {table}"
                f" REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
    op.execute(
        "CREATE FUNCTION analytics_stale_programs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " INSERT INTO analytics_stale_days (day) SELECT DISTINCT d.day"
        " FROM analytics_referral_days d JOIN new_rows n ON n.id = d.program_id"
        " JOIN old_rows o ON o.id = n.id WHERE n.review_score <> o.review_score;"
        " RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER analytics_stale_programs_update AFTER UPDATE ON programs"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION analytics_stale_programs()"
    )


# --- SQLite: row triggers (the writer is alone anyway); for a row of today they insert nothing.


def _sqlite_days(row: str, fragments, when: str = "") -> str:
    statements = []
    for fragment in fragments:
        at = fragment[0].replace("$", row)
        source = ""
        if len(fragment) == 3:
            source = f" FROM {fragment[1]} WHERE {fragment[2].replace('$', row)}"
        # The day compared, not the time: a joined row is then found by its own key, never
        # by a scan of the time index.
        day = f"substr({at}, 1, 10)"
        statements.append(
            "INSERT INTO analytics_stale_days (day)"  # noqa: S608 - fixed names
            f" SELECT DISTINCT {day}{source}"
            f"{' AND' if source else ' WHERE'} {day} < date('now')"
            f" AND NOT EXISTS (SELECT 1 FROM analytics_stale_days s WHERE s.day = {day});"
        )
    return " ".join(statements)


def _sqlite_triggers():
    for table, (columns, fragments) in _TRACKED.items():
        name = f"analytics_stale_{table}"
        op.execute(
            f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table}"
            f" BEGIN {_sqlite_days('NEW', fragments)} END"
        )
        op.execute(
            f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table}"
            f" BEGIN {_sqlite_days('OLD', fragments)} END"
        )
        if columns:
            changed = (
                f"({', '.join(f'NEW.{c}' for c in columns)})"
                f" IS NOT ({', '.join(f'OLD.{c}' for c in columns)})"
            )
            op.execute(
                f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table} WHEN {changed}"
                f" BEGIN {_sqlite_days('NEW', fragments)} {_sqlite_days('OLD', fragments)} END"
            )
    op.execute(
        "CREATE TRIGGER analytics_stale_programs_update AFTER UPDATE OF review_score ON programs"
        " WHEN NEW.review_score IS NOT OLD.review_score BEGIN"
        " INSERT INTO analytics_stale_days (day) SELECT day FROM analytics_referral_days"
        " WHERE program_id = NEW.id; END"
    )


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, (columns, _fragments) in (*_TRACKED.items(), ("programs", (("review_score",), []))):
        name = f"analytics_stale_{table}"
        events = ("update",) if table == "programs" else ("insert", "delete")
        if columns and table != "programs":
            events += ("update",)
        for event in events:
            op.execute(f"DROP TRIGGER {name}_{event}" + (f" ON {table}" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")
    for table in (
        "analytics_stale_days",
        "analytics_gap_days",
        "analytics_reward_days",
        "analytics_purchase_days",
        "analytics_referral_days",
    ):
        op.drop_table(table)
