"""A program's eligibility filters: program_filters (one row per Saleor channel slug, ISO 3166
alpha-2 country or product category slug a program's purchases must match), and on
conversions what an order reported for them: channel, country and eligible_amount (the part
of the amount in eligible categories). The program's rollout of Saleor payments:
program_rollouts (its mode and percent; no row: automatic, as before) and
program_payout_allowlist (the participants a `limited` program pays automatically); and
saleor_fulfilments.used_at (when Saleor reported the card spent or the voucher used); and
on saleor_installations the last reconciliation of paid orders (when, found, error).

SQLite rebuilds `conversions` to add its two check constraints (batch mode).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
_FILTER_KINDS = "'channel', 'country', 'category'"
_FULFILMENT_MODES = "'automatic', 'limited', 'manual'"


def upgrade():
    op.create_table(
        "program_rollouts",
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.CheckConstraint(f"mode IN ({_FULFILMENT_MODES})", name=op.f("ck_program_rollouts_mode")),
        sa.CheckConstraint(
            "percent BETWEEN 0 AND 100", name=op.f("ck_program_rollouts_percent_range")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_program_rollouts_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_program_rollouts")),
    )
    op.create_table(
        "program_payout_allowlist",
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_program_payout_allowlist_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_program_payout_allowlist_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("program_id", "user_id", name=op.f("pk_program_payout_allowlist")),
    )
    op.create_index(
        op.f("ix_program_payout_allowlist_user_id"),
        "program_payout_allowlist",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "program_filters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.CheckConstraint(f"kind IN ({_FILTER_KINDS})", name=op.f("ck_program_filters_kind")),
        sa.CheckConstraint(
            "kind <> 'country' OR (length(value) = 2 AND value = upper(value))",
            name=op.f("ck_program_filters_country_alpha2"),
        ),
        sa.CheckConstraint(
            "kind = 'country' OR (length(value) BETWEEN 1 AND 100 AND value = lower(value))",
            name=op.f("ck_program_filters_slug_shape"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_program_filters_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_filters")),
        sa.UniqueConstraint("program_id", "kind", "value", name="uq_program_filters_value"),
    )
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("country", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("eligible_amount", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            "eligible_amount_range",
            "eligible_amount IS NULL OR (eligible_amount >= 0 AND eligible_amount <= amount)",
        )
        batch_op.create_check_constraint("country", "country IS NULL OR length(country) = 2")


    op.add_column("saleor_fulfilments", sa.Column("used_at", sa.DateTime(timezone=True)))
    op.add_column(
        "saleor_installations", sa.Column("reconciled_at", sa.DateTime(timezone=True))
    )
    op.add_column("saleor_installations", sa.Column("reconcile_found", sa.Integer()))
    op.add_column(
        "saleor_installations", sa.Column("reconcile_error", sa.String(length=500))
    )


def downgrade():
    with op.batch_alter_table("saleor_installations", schema=None) as batch_op:
        batch_op.drop_column("reconcile_error")
        batch_op.drop_column("reconcile_found")
        batch_op.drop_column("reconciled_at")
    with op.batch_alter_table("saleor_fulfilments", schema=None) as batch_op:
        batch_op.drop_column("used_at")
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_conversions_country"), type_="check")
        batch_op.drop_constraint(op.f("ck_conversions_eligible_amount_range"), type_="check")
        batch_op.drop_column("eligible_amount")
        batch_op.drop_column("country")
        batch_op.drop_column("channel")
    op.drop_table("program_filters")
    op.drop_index(op.f("ix_program_payout_allowlist_user_id"), "program_payout_allowlist")
    op.drop_table("program_payout_allowlist")
    op.drop_table("program_rollouts")
