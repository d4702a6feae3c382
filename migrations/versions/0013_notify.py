"""Emails people chose, and invitations by email: programs.notify_rejected (off), the
email_opt_outs table (a participant's "no thanks" per kind of email), invitations (one per
address and program, ever) and invitation_suppressions (addresses that asked never to be
invited again).

SQLite adds the column in place (a constant default needs no rebuild of `programs`).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
_EMAIL_KINDS = "'friends', 'rewards', 'payouts', 'news'"


def upgrade():
    op.add_column(
        "programs",
        sa.Column("notify_rejected", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "email_opt_outs",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN ({_EMAIL_KINDS})", name=op.f("ck_email_opt_outs_kind")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_opt_outs_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_email_opt_outs")),
    )
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=True),
        sa.Column("email_canonical", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "email_canonical = lower(email_canonical)",
            name=op.f("ck_invitations_canonical_lower_case"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_invitations_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["users.id"],
            name=op.f("fk_invitations_sender_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint(
            "program_id", "email_canonical", name="uq_invitations_program_address"
        ),
    )
    op.create_index(
        "ix_invitations_sender_id_created_at", "invitations", ["sender_id", "created_at"]
    )
    op.create_table(
        "invitation_suppressions",
        sa.Column("email_canonical", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "email_canonical = lower(email_canonical)",
            name=op.f("ck_invitation_suppressions_canonical_lower_case"),
        ),
        sa.PrimaryKeyConstraint("email_canonical", name=op.f("pk_invitation_suppressions")),
    )


def downgrade():
    op.drop_table("invitation_suppressions")
    op.drop_index("ix_invitations_sender_id_created_at", table_name="invitations")
    op.drop_table("invitations")
    op.drop_table("email_opt_outs")
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("notify_rejected")
