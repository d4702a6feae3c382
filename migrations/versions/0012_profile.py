"""Participants may leave the public leaderboard: users.on_leaderboard (default true), carried
in ix_users_leaderboard so the all-time board and its ranks still read the index alone, and a
partial index of those who left, so period boards leave them out cheaply.

The column is added in place (no batch rebuild of `users`, which would drop the
leaderboard's expression index); the index is dropped and created again with the column.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BOARD_WHERE = sa.text("referral_count > 0")


def _board_index(columns):
    op.create_index(
        "ix_users_leaderboard",
        "users",
        [sa.text("referral_count DESC"), "last_referral_at", "id", *columns],
        unique=False,
        postgresql_where=_BOARD_WHERE,
        sqlite_where=_BOARD_WHERE,
    )


def upgrade():
    op.add_column(
        "users",
        sa.Column("on_leaderboard", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.drop_index("ix_users_leaderboard", table_name="users")
    _board_index(["active", "on_leaderboard"])
    op.create_index(
        "ix_users_off_leaderboard",
        "users",
        ["id"],
        unique=False,
        postgresql_where=sa.text("NOT on_leaderboard"),
        sqlite_where=sa.text("on_leaderboard = 0"),
    )


def downgrade():
    op.drop_index("ix_users_off_leaderboard", table_name="users")
    op.drop_index("ix_users_leaderboard", table_name="users")
    _board_index(["active"])
    op.drop_column("users", "on_leaderboard")
