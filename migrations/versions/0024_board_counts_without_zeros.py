"""board_counts without rows at zero: when the last participant leaves a count (their counter
grew past it, or they left the board), its row goes too. Counters grow one referral at a
time, so before this every count anyone ever passed kept a row at zero, and the board's
standing and every rank summed over them: at 100,000 participants with their counters
counted one by one, a few thousand dead rows to a few hundred live ones.

The triggers of migration 0020 are replaced, with the same lock order (the lower count's row
first); on PostgreSQL the row is deleted only by the transaction that took it to zero, which
holds its lock until commit, so a participant arriving at that count meanwhile waits and then
inserts it again (INSERT ... ON CONFLICT retries when the row it waited for was deleted).
Downgrading keeps these triggers: the schema is the same, and no reader needs the zeros.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
SHARDS = 16
ON_BOARD = "{row}.referral_count > 0 AND {row}.active AND {row}.on_leaderboard"

_POSTGRESQL_LEAVE = """
        UPDATE board_counts SET participants = participants - 1
        WHERE referral_count = was AND shard = user_shard
        RETURNING participants INTO left_behind;
        IF left_behind = 0 THEN
            DELETE FROM board_counts WHERE referral_count = was AND shard = user_shard;
        END IF;"""

_POSTGRESQL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION board_counts_follow_user() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was integer := 0;  -- the count this participant stood on the board with (0: not on it)
    now_at integer := 0;  -- and the count they stand with now
    user_shard integer;
    left_behind integer;  -- who still stands on the count left
BEGIN
    IF TG_OP = 'DELETE' THEN
        user_shard := OLD.id % {SHARDS};
    ELSE
        user_shard := NEW.id % {SHARDS};
        IF {ON_BOARD.format(row="NEW")} THEN
            now_at := NEW.referral_count;
        END IF;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        IF {ON_BOARD.format(row="OLD")} THEN
            was := OLD.referral_count;
        END IF;
    END IF;
    IF was = now_at THEN
        RETURN NULL;
    END IF;
    -- The lower count's row first: two participants moving past each other in opposite
    -- directions then lock their rows in the same order and never deadlock.
    IF was > 0 AND (now_at = 0 OR was < now_at) THEN{_POSTGRESQL_LEAVE}
    END IF;
    IF now_at > 0 THEN
        INSERT INTO board_counts (referral_count, shard, participants)
        VALUES (now_at, user_shard, 1)
        ON CONFLICT (referral_count, shard)
        DO UPDATE SET participants = board_counts.participants + 1;
    END IF;
    IF was > now_at AND now_at > 0 THEN{_POSTGRESQL_LEAVE}
    END IF;
    RETURN NULL;
END
$$
"""

_SQLITE_JOIN = f"""
    INSERT INTO board_counts (referral_count, shard, participants)
    SELECT NEW.referral_count, NEW.id % {SHARDS}, 1 WHERE {ON_BOARD.format(row="NEW")}
    ON CONFLICT (referral_count, shard) DO UPDATE SET participants = participants + 1;
"""
_SQLITE_LEAVE = f"""
    UPDATE board_counts SET participants = participants - 1
    WHERE {ON_BOARD.format(row="OLD")}
      AND referral_count = OLD.referral_count AND shard = OLD.id % {SHARDS};
    DELETE FROM board_counts
    WHERE participants = 0 AND referral_count = OLD.referral_count AND shard = OLD.id % {SHARDS};
"""
_SQLITE_MOVED = " OR ".join(
    f"OLD.{column} IS NOT NEW.{column}" for column in ("referral_count", "active", "on_leaderboard")
)
# SQLite has one writer at a time: no lock order to keep. The insert trigger stays as it is.
_SQLITE_TRIGGERS = {
    "users_board_counts_delete": (
        f"AFTER DELETE ON users WHEN {ON_BOARD.format(row='OLD')} BEGIN {_SQLITE_LEAVE} END"
    ),
    "users_board_counts_update": (
        "AFTER UPDATE OF referral_count, active, on_leaderboard ON users "
        f"WHEN {_SQLITE_MOVED} BEGIN {_SQLITE_LEAVE} {_SQLITE_JOIN} END"
    ),
}


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRESQL_FUNCTION)
    else:
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"DROP TRIGGER {name}")
            op.execute(f"CREATE TRIGGER {name} {body}")
    op.execute("DELETE FROM board_counts WHERE participants = 0")


def downgrade():
    pass  # see the docstring: the triggers stay
