"""Every partial refund after approval takes back its own share: an entry may now be reversed
once per refund event (unique on reverses_id and the refund's conversion_id) instead of once
in all (unique on reverses_id), so a second partial refund of an approved reward is written.

SQLite cannot drop a table constraint, so there `rewards` is rebuilt by hand. Alembic's batch
mode would drop the old table while the copy's self-reference (reverses_id, ON DELETE CASCADE)
still names it, and SQLite would then delete every reversing entry from the copy. Renaming the
old table first moves that reference with it; the new table is the old one's SQL with the one
constraint swapped, and its indexes are recreated from their own SQL.

Downgrading refuses while an entry has more than one reversing entry (the old constraint
cannot hold them); take those back by hand first.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ONCE_IN_ALL = "CONSTRAINT uq_rewards_reverses_id UNIQUE (reverses_id)"
_ONCE_PER_REFUND = "CONSTRAINT uq_rewards_reversal UNIQUE (reverses_id, conversion_id)"


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_rewards(_ONCE_IN_ALL, _ONCE_PER_REFUND)
        return
    op.drop_constraint("uq_rewards_reverses_id", "rewards", type_="unique")
    op.create_unique_constraint("uq_rewards_reversal", "rewards", ["reverses_id", "conversion_id"])


def downgrade():
    twice = op.get_bind().scalar(
        sa.text(
            "SELECT reverses_id FROM rewards WHERE reverses_id IS NOT NULL "
            "GROUP BY reverses_id HAVING count(*) > 1 LIMIT 1"
        )
    )
    if twice is not None:
        raise RuntimeError(
            f"Cannot downgrade 0010: reward {twice} has more than one reversing entry, "
            "which revision 0007's one-reversal-per-reward constraint cannot hold."
        )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_rewards(_ONCE_PER_REFUND, _ONCE_IN_ALL)
        return
    op.drop_constraint("uq_rewards_reversal", "rewards", type_="unique")
    op.create_unique_constraint("uq_rewards_reverses_id", "rewards", ["reverses_id"])


def _rebuild_sqlite_rewards(old_constraint: str, new_constraint: str) -> None:
    connection = op.get_bind()
    referencing = connection.scalars(
        sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'rewards' "
            "AND sql LIKE '%REFERENCES rewards %'"
        )
    ).all()
    if referencing:  # renaming would move their foreign keys to the table dropped below
        raise RuntimeError(f"0010 expects no table to reference rewards; found {referencing}.")
    table_sql = connection.scalar(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'rewards'")
    )
    if table_sql.count(old_constraint) != 1:
        raise RuntimeError(f"0010: rewards does not hold {old_constraint!r} as expected.")
    index_sql = connection.scalars(
        sa.text(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'rewards' "
            "AND sql IS NOT NULL ORDER BY name"
        )
    ).all()
    op.execute("ALTER TABLE rewards RENAME TO rewards_before_0010")
    op.execute(table_sql.replace(old_constraint, new_constraint))
    # In id order, so an entry is there before the reversing entries that name it.
    op.execute("INSERT INTO rewards SELECT * FROM rewards_before_0010 ORDER BY id")
    op.execute("DROP TABLE rewards_before_0010")
    for sql in index_sql:
        op.execute(sql)
