"""The all-time board's size and ranks without counting it: board_counts holds, per referral
count (spread over 16 shards by user id), how many participants on the board have it. Triggers
on users keep it: a row joins, leaves or moves whenever a participant's referral_count,
active or on_leaderboard changes, whichever code (or bulk load) changed it. Filled here from
the counters already on users.

A later migration that rebuilds `users` on SQLite (batch_alter_table copies the table) drops
these triggers with it and must create them again (`create_triggers` below); the board tests
fail if it does not.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
SHARDS = 16
ON_BOARD = "{row}.referral_count > 0 AND {row}.active AND {row}.on_leaderboard"

_POSTGRESQL_FUNCTION = f"""
CREATE FUNCTION board_counts_follow_user() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was integer := 0;  -- the count this participant stood on the board with (0: not on it)
    now_at integer := 0;  -- and the count they stand with now
    user_shard integer;
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
    IF was > 0 AND (now_at = 0 OR was < now_at) THEN
        UPDATE board_counts SET participants = participants - 1
        WHERE referral_count = was AND shard = user_shard;
    END IF;
    IF now_at > 0 THEN
        INSERT INTO board_counts (referral_count, shard, participants)
        VALUES (now_at, user_shard, 1)
        ON CONFLICT (referral_count, shard)
        DO UPDATE SET participants = board_counts.participants + 1;
    END IF;
    IF was > now_at AND now_at > 0 THEN
        UPDATE board_counts SET participants = participants - 1
        WHERE referral_count = was AND shard = user_shard;
    END IF;
    RETURN NULL;
END
$$
"""

_POSTGRESQL_TRIGGER = """
CREATE TRIGGER users_board_counts
AFTER INSERT OR DELETE OR UPDATE OF referral_count, active, on_leaderboard ON users
FOR EACH ROW EXECUTE FUNCTION board_counts_follow_user()
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
"""
_SQLITE_MOVED = " OR ".join(
    f"OLD.{column} IS NOT NEW.{column}" for column in ("referral_count", "active", "on_leaderboard")
)
_SQLITE_TRIGGERS = {
    # SQLite has one writer at a time: no lock order to keep, only work to skip.
    "users_board_counts_insert": (
        f"AFTER INSERT ON users WHEN {ON_BOARD.format(row='NEW')} BEGIN {_SQLITE_JOIN} END"
    ),
    "users_board_counts_delete": (
        f"AFTER DELETE ON users WHEN {ON_BOARD.format(row='OLD')} BEGIN {_SQLITE_LEAVE} END"
    ),
    "users_board_counts_update": (
        "AFTER UPDATE OF referral_count, active, on_leaderboard ON users "
        f"WHEN {_SQLITE_MOVED} BEGIN {_SQLITE_LEAVE} {_SQLITE_JOIN} END"
    ),
}


def create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRESQL_FUNCTION)
        op.execute(_POSTGRESQL_TRIGGER)
    else:
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER users_board_counts ON users")
        op.execute("DROP FUNCTION board_counts_follow_user()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")


def upgrade():
    op.create_table(
        "board_counts",
        sa.Column("referral_count", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("participants", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "referral_count > 0", name=op.f("ck_board_counts_referral_count_positive")
        ),
        sa.CheckConstraint(
            f"shard >= 0 AND shard < {SHARDS}", name=op.f("ck_board_counts_shard_in_range")
        ),
        sa.CheckConstraint(
            "participants >= 0", name=op.f("ck_board_counts_participants_not_negative")
        ),
        sa.PrimaryKeyConstraint("referral_count", "shard", name=op.f("pk_board_counts")),
    )
    op.execute(
        "INSERT INTO board_counts (referral_count, shard, participants) "
        f"SELECT referral_count, id % {SHARDS}, count(*) FROM users "
        f"WHERE {ON_BOARD.format(row='users')} GROUP BY referral_count, id % {SHARDS}"
    )
    create_triggers()


def downgrade():
    drop_triggers()
    op.drop_table("board_counts")
