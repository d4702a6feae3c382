"""The offer in words: programs.share_text (sent with a shared link, {placeholders} filled
from the rules) and programs.reward_usage_text (how to use a reward), both optional; and the
default program's old description, which promised that "you both climb the board" instead of
the rewards, emptied so the pages show the offer made from the rules.

As in 0006, SQLite gets each column with its named CHECK inline (adding a table constraint
would need a rebuild of `programs`, which other tables reference).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_NEW_COLUMNS = (
    # column, length, constraint name, condition
    ("share_text", 280, "ck_programs_share_text_length",
     "share_text IS NULL OR length(share_text) BETWEEN 1 AND 280"),
    ("reward_usage_text", 500, "ck_programs_reward_usage_text_length",
     "reward_usage_text IS NULL OR length(reward_usage_text) BETWEEN 1 AND 500"),
)  # fmt: skip

_OLD_DESCRIPTION = "Share your link. When a friend joins, you both climb the board."


def upgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column, length, name, condition in _NEW_COLUMNS:
        if sqlite:
            # The CHECK on a line of its own: SQLAlchemy reflects SQLite's checks line by line.
            op.execute(
                f"ALTER TABLE programs ADD COLUMN {column} VARCHAR({length})\n"
                f"  CONSTRAINT {name} CHECK ({condition})"
            )
        else:
            op.add_column("programs", sa.Column(column, sa.String(length), nullable=True))
            op.create_check_constraint(op.f(name), "programs", condition)
    op.execute(
        sa.text("UPDATE programs SET description = '' WHERE description = :old").bindparams(
            old=_OLD_DESCRIPTION
        )
    )


def downgrade():
    # SQLite 3.35+ drops a column with its inline CHECK; PostgreSQL drops the constraint too.
    for column, *_ in reversed(_NEW_COLUMNS):
        op.drop_column("programs", column)
