"""The Saleor app: saleor_installations (one encrypted auth token per Saleor API URL) and
saleor_fulfilments (one row per reward paid as a Saleor gift card or voucher, with its last
error, and when a refunded card was deactivated).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "saleor_installations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_url", sa.String(length=300), nullable=False),
        sa.Column("app_id", sa.String(length=200), nullable=False),
        sa.Column("token_ciphertext", sa.Text(), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saleor_installations")),
        sa.UniqueConstraint("api_url", name="uq_saleor_installations_api_url"),
    )
    op.create_table(
        "saleor_fulfilments",
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("saleor_id", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "attempts >= 0", name=op.f("ck_saleor_fulfilments_attempts_not_negative")
        ),
        sa.CheckConstraint(
            "fulfilled_at IS NULL OR saleor_id IS NOT NULL",
            name=op.f("ck_saleor_fulfilments_done_has_id"),
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"],
            ["rewards.id"],
            name=op.f("fk_saleor_fulfilments_reward_id_rewards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("reward_id", name=op.f("pk_saleor_fulfilments")),
        sa.UniqueConstraint("saleor_id", name="uq_saleor_fulfilments_saleor_id"),
    )


def downgrade():
    op.drop_table("saleor_fulfilments")
    op.drop_table("saleor_installations")
