"""Referral links served from a cache, clicks through a queue: clicks.queue_id (the id a click
carried through the Redis queue, unique so a batch moved again after a crash stores nothing
twice; NULL for clicks written directly) and link_cache_generation (one row whose number
every change to what a link resolves to increases, so each process's cache sees it).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("clicks") as batch:
        batch.add_column(sa.Column("queue_id", sa.String(length=32), nullable=True))
        batch.create_unique_constraint(op.f("uq_clicks_queue_id"), ["queue_id"])
    generation = op.create_table(
        "link_cache_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_link_cache_generation_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_cache_generation")),
    )
    op.bulk_insert(generation, [{"id": 1, "value": 0}])


def downgrade():
    op.drop_table("link_cache_generation")
    with op.batch_alter_table("clicks") as batch:
        batch.drop_constraint(op.f("uq_clicks_queue_id"), type_="unique")
        batch.drop_column("queue_id")
