"""Rewards: programs' reward rules and fraud policy; conversions, rewards, payouts, API keys.

The default program gets the rules the product promises: 10.00 credit to the referrer on the
friend's first purchase of at least 20.00, 5.00 credit to the friend, a 14-day hold.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=8), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("length(prefix) = 8", name=op.f("ck_api_keys_prefix_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('cash', 'credit')", name=op.f("ck_payouts_kind")),
        sa.CheckConstraint(
            "status <> 'paid' OR paid_at IS NOT NULL", name=op.f("ck_payouts_paid_at")
        ),
        sa.CheckConstraint(
            "status IN ('requested', 'paid', 'cancelled')", name=op.f("ck_payouts_status")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payouts_amount_positive")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_payouts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_payouts_one_open",
            ["user_id", "kind", "currency"],
            unique=True,
            postgresql_where=sa.text("status = 'requested'"),
            sqlite_where=sa.text("status = 'requested'"),
        )

    op.create_table(
        "conversions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("program_id", sa.Integer(), nullable=True),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column("customer_external_id", sa.String(length=100), nullable=True),
        sa.Column("customer_email", sa.String(length=254), nullable=True),
        sa.Column("ref_code", sa.String(length=8), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("risk_reasons", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('signup', 'purchase', 'refund')", name=op.f("ck_conversions_kind")
        ),
        sa.CheckConstraint(
            "outcome = 'accepted' OR reason IS NOT NULL", name=op.f("ck_conversions_outcome_reason")
        ),
        sa.CheckConstraint(
            "outcome IN ('accepted', 'duplicate', 'unattributed', 'ignored', 'rejected')",
            name=op.f("ck_conversions_outcome"),
        ),
        sa.CheckConstraint(
            "source IN ('api', 'saleor', 'stripe', 'manual', 'app')",
            name=op.f("ck_conversions_source"),
        ),
        sa.CheckConstraint(
            "amount IS NULL OR amount >= 0", name=op.f("ck_conversions_amount_not_negative")
        ),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_conversions_currency")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["users.id"],
            name=op.f("fk_conversions_participant_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_conversions_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_conversions_referral_id_referrals"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("source", "kind", "external_id", name="uq_conversions_event"),
    )
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.create_index("ix_conversions_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_conversions_participant_id_occurred_at",
            ["participant_id", "occurred_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_conversions_program_id"), ["program_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_conversions_referral_id"), ["referral_id"], unique=False
        )
        batch_op.create_index(
            "ix_conversions_source_order_id", ["source", "order_id"], unique=False
        )

    op.create_table(
        "rewards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column("beneficiary_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("milestone", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("reverses_id", sa.Integer(), nullable=True),
        sa.Column("coupon_code", sa.String(length=40), nullable=True),
        sa.Column("external_reference", sa.String(length=200), nullable=True),
        sa.Column("payout_id", sa.Integer(), nullable=True),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('credit', 'points', 'coupon', 'gift_card', 'cash')",
            name=op.f("ck_rewards_kind"),
        ),
        sa.CheckConstraint(
            "role IN ('referrer', 'referee', 'bonus')", name=op.f("ck_rewards_role")
        ),
        sa.CheckConstraint(
            "status <> 'paid' OR paid_at IS NOT NULL", name=op.f("ck_rewards_paid_at")
        ),
        sa.CheckConstraint(
            "status IN ('review', 'pending', 'approved', 'paid', 'redeemed', 'expired', 'cancelled', 'rejected')",
            name=op.f("ck_rewards_status"),
        ),
        sa.CheckConstraint(
            "status NOT IN ('cancelled', 'rejected', 'expired') OR reason IS NOT NULL",
            name=op.f("ck_rewards_closed_reason"),
        ),
        sa.CheckConstraint(
            "(reverses_id IS NULL AND amount > 0) OR (reverses_id IS NOT NULL AND amount < 0)",
            name=op.f("ck_rewards_amount_sign"),
        ),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_rewards_currency")),
        sa.CheckConstraint("level BETWEEN 1 AND 10", name=op.f("ck_rewards_level_range")),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["users.id"],
            name=op.f("fk_rewards_beneficiary_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversion_id"], ["conversions.id"], name=op.f("fk_rewards_conversion_id_conversions")
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"],
            ["payouts.id"],
            name=op.f("fk_rewards_payout_id_payouts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_rewards_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_rewards_referral_id_referrals"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["rewards.id"],
            name=op.f("fk_rewards_reverses_id_rewards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards")),
        sa.UniqueConstraint(
            "conversion_id", "beneficiary_id", "role", "level", name="uq_rewards_issuance"
        ),
        sa.UniqueConstraint("coupon_code", name=op.f("uq_rewards_coupon_code")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_rewards_reverses_id")),
    )
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rewards_beneficiary_id_created_at", ["beneficiary_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_rewards_conversion_id"), ["conversion_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rewards_payout_id"), ["payout_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rewards_program_id"), ["program_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rewards_referral_id"), ["referral_id"], unique=False)
        batch_op.create_index(
            "ix_rewards_status_available_at", ["status", "available_at"], unique=False
        )
        batch_op.create_index(
            "ix_rewards_status_expires_at", ["status", "expires_at"], unique=False
        )
        batch_op.create_index(
            "uq_rewards_one_milestone",
            ["program_id", "beneficiary_id", "milestone"],
            unique=True,
            postgresql_where=sa.text("milestone IS NOT NULL"),
            sqlite_where=sa.text("milestone IS NOT NULL"),
        )

    # New rule columns, filled for existing programs by their server defaults, which are then
    # dropped so the models stay the single source of defaults.
    new_columns = [
        ("trigger_event", sa.String(length=16), "first_purchase"),
        ("min_purchase_amount", sa.Integer(), "0"),
        ("currency", sa.String(length=3), current_app.config.get("DEFAULT_CURRENCY", "USD")),
        ("referrer_reward_kind", sa.String(length=10), "credit"),
        ("referrer_reward_basis", sa.String(length=7), "fixed"),
        ("referrer_reward_value", sa.Integer(), "1000"),
        ("max_depth", sa.Integer(), "3"),
        ("level_shares", sa.JSON(), "[]"),
        ("hold_days", sa.Integer(), "14"),
        ("review_score", sa.Integer(), "50"),
        ("reject_score", sa.Integer(), "100"),
        ("max_signups_per_ip_per_day", sa.Integer(), "5"),
        ("max_signups_per_code_per_hour", sa.Integer(), "200"),
        ("min_seconds_click_to_purchase", sa.Integer(), "10"),
        ("excluded_email_domains", sa.JSON(), "[]"),
    ]
    optional_columns = [
        ("friend_reward_kind", sa.String(length=10)),
        ("friend_reward_basis", sa.String(length=7)),
        ("friend_reward_value", sa.Integer()),
        ("milestone_every", sa.Integer()),
        ("milestone_amount", sa.Integer()),
        ("cap_per_day", sa.Integer()),
        ("cap_per_month", sa.Integer()),
        ("cap_total", sa.Integer()),
        ("reward_expiry_days", sa.Integer()),
    ]
    with op.batch_alter_table("programs", schema=None) as batch_op:
        for name, type_, default in new_columns:
            batch_op.add_column(
                sa.Column(name, type_, nullable=False, server_default=sa.text(f"'{default}'"))
            )
        for name, type_ in optional_columns:
            batch_op.add_column(sa.Column(name, type_, nullable=True))

    op.execute(
        "UPDATE programs SET min_purchase_amount = 2000, friend_reward_kind = 'credit',"
        " friend_reward_basis = 'fixed', friend_reward_value = 500 WHERE is_default"
    )

    with op.batch_alter_table("programs", schema=None) as batch_op:
        for name, type_, _default in new_columns:
            batch_op.alter_column(name, existing_type=type_, server_default=None)
        for name, condition in PROGRAM_CHECKS:
            batch_op.create_check_constraint(name, condition)


def downgrade():
    with op.batch_alter_table("programs", schema=None) as batch_op:
        for name, _condition in PROGRAM_CHECKS:
            batch_op.drop_constraint(op.f(f"ck_programs_{name}"), type_="check")
        for column in PROGRAM_COLUMNS:
            batch_op.drop_column(column)
    op.drop_table("rewards")
    op.drop_table("conversions")
    op.drop_table("payouts")
    op.drop_table("api_keys")


PROGRAM_COLUMNS = (
    "trigger_event",
    "min_purchase_amount",
    "currency",
    "referrer_reward_kind",
    "referrer_reward_basis",
    "referrer_reward_value",
    "friend_reward_kind",
    "friend_reward_basis",
    "friend_reward_value",
    "max_depth",
    "level_shares",
    "milestone_every",
    "milestone_amount",
    "cap_per_day",
    "cap_per_month",
    "cap_total",
    "hold_days",
    "reward_expiry_days",
    "review_score",
    "reject_score",
    "max_signups_per_ip_per_day",
    "max_signups_per_code_per_hour",
    "min_seconds_click_to_purchase",
    "excluded_email_domains",
)

# The programs table's new check constraints, as models.py names them.
PROGRAM_CHECKS = (
    (
        "friend_reward_complete",
        "(friend_reward_kind IS NULL) = (friend_reward_basis IS NULL) AND (friend_reward_kind IS NULL) = (friend_reward_value IS NULL)",
    ),
    (
        "milestone_range",
        "milestone_every IS NULL OR (milestone_every >= 2 AND milestone_amount > 0)",
    ),
    ("referrer_basis", "referrer_reward_basis IN ('fixed', 'percent')"),
    ("code_limit_positive", "max_signups_per_code_per_hour > 0"),
    ("cap_total_positive", "cap_total IS NULL OR cap_total > 0"),
    ("min_purchase_not_negative", "min_purchase_amount >= 0"),
    ("depth_range", "max_depth BETWEEN 1 AND 10"),
    ("expiry_days_range", "reward_expiry_days IS NULL OR reward_expiry_days BETWEEN 1 AND 3650"),
    ("policy_order", "review_score > 0 AND reject_score >= review_score"),
    (
        "friend_kind",
        "friend_reward_kind IS NULL OR friend_reward_kind IN ('credit', 'points', 'coupon', 'gift_card', 'cash')",
    ),
    ("referrer_value_positive", "referrer_reward_value > 0"),
    ("cap_per_day_positive", "cap_per_day IS NULL OR cap_per_day > 0"),
    ("click_gap_not_negative", "min_seconds_click_to_purchase >= 0"),
    ("currency", "length(currency) = 3 AND currency = upper(currency)"),
    ("friend_basis", "friend_reward_basis IS NULL OR friend_reward_basis IN ('fixed', 'percent')"),
    ("hold_days_range", "hold_days BETWEEN 0 AND 365"),
    ("trigger_event", "trigger_event IN ('signup', 'first_purchase', 'every_purchase')"),
    ("milestone_complete", "(milestone_every IS NULL) = (milestone_amount IS NULL)"),
    ("ip_limit_positive", "max_signups_per_ip_per_day > 0"),
    ("referrer_percent_range", "referrer_reward_basis = 'fixed' OR referrer_reward_value <= 10000"),
    (
        "referrer_kind",
        "referrer_reward_kind IN ('credit', 'points', 'coupon', 'gift_card', 'cash')",
    ),
    ("cap_per_month_positive", "cap_per_month IS NULL OR cap_per_month > 0"),
    (
        "friend_value_range",
        "friend_reward_value IS NULL OR (friend_reward_value > 0 AND (friend_reward_basis = 'fixed' OR friend_reward_value <= 10000))",
    ),
)
