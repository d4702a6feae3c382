"""Claiming an inviter later, phone sign-in, ending sessions on a password reset:
programs.claim_window_days, users.session_version, the phone_codes table; and an index on
users.signup_ip for the staff panel's "same address" lookups.

SQLite cannot add a constraint to an existing table, and rebuilding `users` or `programs`
would drop the leaderboard's expression index and trip the foreign keys that point at them;
so there each new column is added with its named CHECK inline, which SQLite allows and
reflects like a table constraint.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NEW_CHECKED_COLUMNS = (
    # table, column, default, constraint name, condition
    ("programs", "claim_window_days", 14, "ck_programs_claim_window_range",
     "claim_window_days BETWEEN 0 AND 365"),
    ("users", "session_version", 0, "ck_users_session_version_not_negative",
     "session_version >= 0"),
)  # fmt: skip


def upgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, column, default, name, condition in _NEW_CHECKED_COLUMNS:
        if sqlite:
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN {column} INTEGER DEFAULT '{default}' NOT NULL"
                f" CONSTRAINT {name} CHECK ({condition})"
            )
        else:
            op.add_column(
                table,
                sa.Column(column, sa.Integer(), nullable=False, server_default=str(default)),
            )
            op.create_check_constraint(op.f(name), table, condition)
    op.create_index("ix_users_signup_ip", "users", ["signup_ip"])
    op.create_table(
        "phone_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_phone_codes_attempts_not_negative")),
        sa.CheckConstraint("expires_at > created_at", name=op.f("ck_phone_codes_expiry_order")),
        sa.CheckConstraint("phone LIKE '+%'", name=op.f("ck_phone_codes_phone_e164")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_phone_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_codes")),
    )
    op.create_index("ix_phone_codes_phone_created_at", "phone_codes", ["phone", "created_at"])
    op.create_index("ix_phone_codes_user_id", "phone_codes", ["user_id"])


def downgrade():
    op.drop_index("ix_phone_codes_user_id", table_name="phone_codes")
    op.drop_index("ix_phone_codes_phone_created_at", table_name="phone_codes")
    op.drop_table("phone_codes")
    op.drop_index("ix_users_signup_ip", table_name="users")
    # SQLite 3.35+ drops a column with its inline CHECK; PostgreSQL drops the constraint too.
    for table, column, *_ in reversed(_NEW_CHECKED_COLUMNS):
        op.drop_column(table, column)
