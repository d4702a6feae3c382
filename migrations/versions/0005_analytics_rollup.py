"""The analytics roll-up: per closed UTC day, new participants and clicks per program and new
accounts overall, with a one-row watermark; and codes indexed by the day they were issued.
The tables start empty: `flask admin rollup-analytics` (or the hourly job) fills them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "analytics_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("new_participants", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.CheckConstraint("clicks >= 0", name=op.f("ck_analytics_daily_clicks_not_negative")),
        sa.CheckConstraint(
            "new_participants >= 0",
            name=op.f("ck_analytics_daily_new_participants_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_analytics_daily_program_id_programs"),
        ),
        sa.PrimaryKeyConstraint("day", "program_id", name=op.f("pk_analytics_daily")),
    )
    op.create_table(
        "analytics_daily_accounts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("new_accounts", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "new_accounts >= 0", name=op.f("ck_analytics_daily_accounts_new_accounts_not_negative")
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_analytics_daily_accounts")),
    )
    op.create_table(
        "analytics_rollup",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("complete_until", sa.Date(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_analytics_rollup_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_rollup")),
    )
    op.create_index("ix_referral_codes_created_at", "referral_codes", ["created_at", "program_id"])


def downgrade():
    op.drop_index("ix_referral_codes_created_at", table_name="referral_codes")
    op.drop_table("analytics_rollup")
    op.drop_table("analytics_daily_accounts")
    op.drop_table("analytics_daily")
