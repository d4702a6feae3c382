"""Initial schema: programs, users, referral codes, clicks, referrals; the default program.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('programs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('slug', sa.String(length=60), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attribution_window_days', sa.Integer(), nullable=False),
    sa.Column('attribution_model', sa.String(length=5), nullable=False),
    sa.Column('landing_url', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("attribution_model IN ('first', 'last')", name=op.f('ck_programs_attribution_model')),
    sa.CheckConstraint('attribution_window_days BETWEEN 1 AND 365', name=op.f('ck_programs_attribution_window_range')),
    sa.CheckConstraint('ends_at IS NULL OR ends_at > starts_at', name=op.f('ck_programs_window_order')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_programs')),
    sa.UniqueConstraint('slug', name=op.f('uq_programs_slug'))
    )
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.create_index('uq_programs_single_default', ['is_default'], unique=True, postgresql_where=sa.text('is_default'), sqlite_where=sa.text('is_default'))

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('email_canonical', sa.String(length=254), nullable=True),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('display_name', sa.String(length=60), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('locale', sa.String(length=10), nullable=False),
    sa.Column('referred_by_id', sa.Integer(), nullable=True),
    sa.Column('signup_ip', sa.String(length=45), nullable=True),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.Column('referral_count', sa.Integer(), nullable=False),
    sa.Column('last_referral_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('member', 'operator', 'marketer', 'manager', 'admin')", name=op.f('ck_users_role')),
    sa.CheckConstraint('email = lower(email)', name=op.f('ck_users_email_lower_case')),
    sa.CheckConstraint('referral_count >= 0', name=op.f('ck_users_referral_count_not_negative')),
    sa.CheckConstraint('referred_by_id IS NULL OR referred_by_id <> id', name=op.f('ck_users_not_own_inviter')),
    sa.ForeignKeyConstraint(['referred_by_id'], ['users.id'], name=op.f('fk_users_referred_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('external_id', name=op.f('uq_users_external_id')),
    sa.UniqueConstraint('phone', name=op.f('uq_users_phone'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_users_email_canonical'), ['email_canonical'], unique=False)
        batch_op.create_index(batch_op.f('ix_users_referred_by_id'), ['referred_by_id'], unique=False)
    # The leaderboard's order, read a page at a time (mixed directions need their own index).
    op.create_index(
        "ix_users_leaderboard",
        "users",
        [sa.text("referral_count DESC"), "last_referral_at", "id", "active"],
        unique=False,
        postgresql_where=sa.text("referral_count > 0"),
        sqlite_where=sa.text("referral_count > 0"),
    )
    op.create_index(
        "ix_users_inactive",
        "users",
        ["id"],
        unique=False,
        postgresql_where=sa.text("NOT active"),
        sqlite_where=sa.text("active = 0"),
    )

    op.create_table('referral_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('is_vanity', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'disabled')", name=op.f('ck_referral_codes_status')),
    sa.CheckConstraint('code = upper(code)', name=op.f('ck_referral_codes_code_upper_case')),
    sa.CheckConstraint('length(code) BETWEEN 6 AND 8', name=op.f('ck_referral_codes_code_length')),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], name=op.f('fk_referral_codes_program_id_programs')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_referral_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_codes')),
    sa.UniqueConstraint('code', name=op.f('uq_referral_codes_code'))
    )
    with op.batch_alter_table('referral_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referral_codes_program_id'), ['program_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_referral_codes_user_id'), ['user_id'], unique=False)
        batch_op.create_index('uq_referral_codes_one_active', ['user_id', 'program_id'], unique=True, postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))

    op.create_table('clicks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sa.String(length=32), nullable=False),
    sa.Column('ip_prefix', sa.String(length=50), nullable=True),
    sa.Column('user_agent', sa.String(length=400), nullable=True),
    sa.Column('referrer', sa.String(length=400), nullable=True),
    sa.Column('utm_source', sa.String(length=100), nullable=True),
    sa.Column('utm_medium', sa.String(length=100), nullable=True),
    sa.Column('utm_campaign', sa.String(length=100), nullable=True),
    sa.Column('utm_term', sa.String(length=100), nullable=True),
    sa.Column('utm_content', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['code_id'], ['referral_codes.id'], name=op.f('fk_clicks_code_id_referral_codes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clicks'))
    )
    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.create_index('ix_clicks_code_id_created_at', ['code_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_clicks_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_clicks_visitor_id'), ['visitor_id'], unique=False)

    op.create_table('referrals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('code_id', sa.Integer(), nullable=False),
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('referred_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('risk_score', sa.Integer(), nullable=False),
    sa.Column('risk_reasons', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source IN ('link', 'code', 'claimed', 'api')", name=op.f('ck_referrals_source')),
    sa.CheckConstraint("status <> 'rejected' OR reason IS NOT NULL", name=op.f('ck_referrals_rejection_reason')),
    sa.CheckConstraint("status IN ('pending', 'qualified', 'rewarded', 'review', 'approved', 'rejected')", name=op.f('ck_referrals_status')),
    sa.CheckConstraint('referrer_id <> referred_id', name=op.f('ck_referrals_not_self')),
    sa.CheckConstraint('risk_score >= 0', name=op.f('ck_referrals_risk_score_not_negative')),
    sa.ForeignKeyConstraint(['code_id'], ['referral_codes.id'], name=op.f('fk_referrals_code_id_referral_codes')),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], name=op.f('fk_referrals_program_id_programs')),
    sa.ForeignKeyConstraint(['referred_id'], ['users.id'], name=op.f('fk_referrals_referred_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referrer_id'], ['users.id'], name=op.f('fk_referrals_referrer_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referrals')),
    sa.UniqueConstraint('referred_id', name=op.f('uq_referrals_referred_id'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referrals_code_id'), ['code_id'], unique=False)
        batch_op.create_index('ix_referrals_created_at_referrer', ['created_at', 'referrer_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_referrals_program_id'), ['program_id'], unique=False)
        batch_op.create_index('ix_referrals_referrer_id_created_at', ['referrer_id', 'created_at'], unique=False)
        batch_op.create_index('ix_referrals_status_created_at', ['status', 'created_at', 'referrer_id'], unique=False)

    programs = sa.table(
        "programs",
        sa.column("name", sa.String),
        sa.column("slug", sa.String),
        sa.column("description", sa.Text),
        sa.column("is_default", sa.Boolean),
        sa.column("active", sa.Boolean),
        sa.column("starts_at", sa.DateTime(timezone=True)),
        sa.column("attribution_window_days", sa.Integer),
        sa.column("attribution_model", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(timezone.utc)
    op.bulk_insert(
        programs,
        [
            {
                "name": "Invite friends",
                "slug": "default",
                "description": "Share your link. When a friend joins, you both climb the board.",
                "is_default": True,
                "active": True,
                "starts_at": now,
                "attribution_window_days": 30,
                "attribution_model": "last",
                "created_at": now,
            }
        ],
    )



def downgrade():
    for table in ("referrals", "clicks", "referral_codes", "users", "programs"):
        op.drop_table(table)
