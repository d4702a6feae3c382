"""users.referral_count kept by the database: a trigger on referrals adds one to the
referrer's counter (and keeps last_referral_at at the latest such change) whenever a referral
enters a counted status, by insert or by a status change, whichever code (or bulk load) wrote
it. Until now each code path that counted a referral ran that UPDATE itself.

A counted referral never leaves the counted statuses (referral/lifecycle.py), so the counter
is never below the referrer's counted referrals of any range and program: the analytics top
ten walks the board's order and stops there (admin/analytics/queries.py). The counters of
today are already right (the application kept them), so nothing is recounted here. The
referrer's index grows by the two columns the walk filters on.

A later migration that rebuilds `referrals` on SQLite (batch_alter_table copies the table)
drops these triggers with it and must create them again (`create_triggers` below);
tests/test_referral_counter.py fails if it does not.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
COUNTED = "('pending', 'qualified', 'rewarded', 'approved')"
# last_referral_at: the latest counting, whatever order the rows were written in.
_COUNT = (
    "UPDATE users SET referral_count = referral_count + 1, last_referral_at = CASE"
    " WHEN last_referral_at >= NEW.updated_at THEN last_referral_at ELSE NEW.updated_at END"
    " WHERE id = NEW.referrer_id;"
)

_POSTGRESQL_FUNCTION = f"""
CREATE FUNCTION referral_count_follows_referrals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN {COUNTED}
       AND (TG_OP = 'INSERT' OR OLD.status NOT IN {COUNTED}) THEN
        {_COUNT}
    END IF;
    RETURN NULL;
END
$$
"""

_POSTGRESQL_TRIGGER = """
CREATE TRIGGER referrals_count_referrer
AFTER INSERT OR UPDATE OF status ON referrals
FOR EACH ROW EXECUTE FUNCTION referral_count_follows_referrals()
"""

_SQLITE_TRIGGERS = {
    "referrals_count_referrer_insert": (
        f"AFTER INSERT ON referrals WHEN NEW.status IN {COUNTED} BEGIN {_COUNT} END"
    ),
    "referrals_count_referrer_update": (
        "AFTER UPDATE OF status ON referrals"
        f" WHEN NEW.status IN {COUNTED} AND OLD.status NOT IN {COUNTED} BEGIN {_COUNT} END"
    ),
}


def create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRESQL_FUNCTION)
        op.execute(_POSTGRESQL_TRIGGER)
    else:
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER referrals_count_referrer ON referrals")
        op.execute("DROP FUNCTION referral_count_follows_referrals()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")


def upgrade():
    create_triggers()
    # The referrer's index also holds what the top ten filters on (status, program), so the
    # walk counts a leader's range from the index alone.
    op.create_index(
        "ix_referrals_referrer_history",
        "referrals",
        ["referrer_id", "created_at", "status", "program_id"],
    )
    op.drop_index("ix_referrals_referrer_id_created_at", table_name="referrals")


def downgrade():
    op.create_index(
        "ix_referrals_referrer_id_created_at", "referrals", ["referrer_id", "created_at"]
    )
    op.drop_index("ix_referrals_referrer_history", table_name="referrals")
    drop_triggers()
