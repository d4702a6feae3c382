"""Participants delete their account: users.deleted_at, and a CHECK that a deleted account
holds nothing that identifies or signs in anyone (no phone, password, shop id, addresses;
a placeholder email under .invalid; inactive; member).

As in 0006, SQLite gets the column with its named CHECK inline (a table constraint would
need a rebuild of `users`, which drops the leaderboard's expression index); existing rows
have no `deleted_at`, so they pass.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
_NAME = "ck_users_deleted_is_anonymous"
_CONDITION = (
    "deleted_at IS NULL OR (NOT active AND role = 'member' AND password_hash IS NULL"
    " AND phone IS NULL AND external_id IS NULL AND email_canonical IS NULL"
    " AND display_name = name AND signup_ip IS NULL AND device_id IS NULL"
    " AND email LIKE 'deleted-%@invalid' AND name = 'Deleted participant')"
)


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        # The CHECK on a line of its own: SQLAlchemy reflects SQLite's checks line by line.
        op.execute(
            "ALTER TABLE users ADD COLUMN deleted_at DATETIME\n"
            f"  CONSTRAINT {_NAME} CHECK ({_CONDITION})"
        )
    else:
        op.add_column("users", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        op.create_check_constraint(op.f(_NAME), "users", _CONDITION)


def downgrade():
    # SQLite 3.35+ drops a column with its inline CHECK; PostgreSQL drops the constraint too.
    op.drop_column("users", "deleted_at")
