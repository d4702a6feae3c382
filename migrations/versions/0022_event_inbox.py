"""Events acknowledged at once (POST /api/v1/events with `Prefer: respond-async`):
event_inbox holds each one from its 202 until the worker has run it through the intake, then
the answer the intake gave. One row per sender and event (a retried delivery finds it); an
outcome exactly when processed.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "event_inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("outcome_status", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "(processed_at IS NULL) = (outcome IS NULL)",
            name=op.f("ck_event_inbox_outcome_when_processed"),
        ),
        sa.CheckConstraint(
            "(processed_at IS NULL) = (outcome_status IS NULL)",
            name=op.f("ck_event_inbox_status_when_processed"),
        ),
        sa.CheckConstraint(
            "kind IN ('signup', 'purchase', 'refund')", name=op.f("ck_event_inbox_kind")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_event_inbox_attempts_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_inbox")),
        sa.UniqueConstraint("sender", "kind", "external_id", name="uq_event_inbox_event"),
    )
    op.create_index(
        "ix_event_inbox_queued",
        "event_inbox",
        ["attempts", "id"],
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )


def downgrade():
    op.drop_index("ix_event_inbox_queued", table_name="event_inbox")
    op.drop_table("event_inbox")
