"""Indexes for the analytics home: each figure reads its range from one index that holds
every column it needs (index-only scans on PostgreSQL, covering indexes on SQLite).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_HAS_FIRST_PURCHASE = sa.text("first_purchase_at IS NOT NULL")


def upgrade():
    op.create_index(
        "ix_referrals_analytics",
        "referrals",
        ["created_at", "program_id", "status", "referrer_id", "risk_score", "clicked_at"],
    )
    op.create_index(
        "ix_referrals_first_purchase_at",
        "referrals",
        ["first_purchase_at", "program_id", "created_at"],
        postgresql_where=_HAS_FIRST_PURCHASE,
        sqlite_where=_HAS_FIRST_PURCHASE,
    )
    op.create_index(
        "ix_conversions_analytics",
        "conversions",
        ["kind", "outcome", "occurred_at", "program_id"],
    )
    op.create_index(
        "ix_rewards_analytics",
        "rewards",
        ["created_at", "program_id", "status", "kind", "currency", "amount"],
    )
    op.create_index("ix_users_role_created_at", "users", ["role", "created_at"])


def downgrade():
    op.drop_index("ix_users_role_created_at", table_name="users")
    op.drop_index("ix_rewards_analytics", table_name="rewards")
    op.drop_index("ix_conversions_analytics", table_name="conversions")
    op.drop_index("ix_referrals_first_purchase_at", table_name="referrals")
    op.drop_index("ix_referrals_analytics", table_name="referrals")
