"""users.locale becomes the participant's saved language: NULL when never chosen (until now
every row held the column's default "en", which nobody chose, so those become NULL; another
language, set after a downgrade, is kept), else one of the languages with a catalogue (a
CHECK).

SQLite cannot change a column's type or nullability in place, and a batch rebuild of `users`
would drop the leaderboard's expression index and, with foreign keys on, empty every table
that cascades from users. So there the old column is renamed, a new one added (with its
check), the chosen values copied and the old one dropped.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
_CHECK = "locale IS NULL OR locale IN ('en', 'ru')"
# A value someone chose: any language but the old default.
_CHOSEN = "{} IN ('ru')"


def _on_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    if _on_sqlite():
        op.execute("ALTER TABLE users RENAME COLUMN locale TO locale_unchosen")
        # SQLite keeps the text as written: the check on a line of its own, where SQLAlchemy's
        # reflection (one CHECK per line) finds it.
        op.execute(
            f"ALTER TABLE users ADD COLUMN locale\nVARCHAR(5)\nCONSTRAINT ck_users_locale CHECK ({_CHECK})"
        )
        op.execute(
            f"UPDATE users SET locale = locale_unchosen WHERE {_CHOSEN.format('locale_unchosen')}"
        )
        op.execute("ALTER TABLE users DROP COLUMN locale_unchosen")
        return
    op.alter_column("users", "locale", existing_type=sa.String(length=10), nullable=True)
    op.execute(f"UPDATE users SET locale = NULL WHERE NOT ({_CHOSEN.format('locale')})")
    op.alter_column(
        "users", "locale", existing_type=sa.String(length=10), type_=sa.String(length=5)
    )
    op.create_check_constraint("locale", "users", _CHECK)


def downgrade():
    if _on_sqlite():
        op.execute("ALTER TABLE users RENAME COLUMN locale TO locale_chosen")
        op.execute("ALTER TABLE users ADD COLUMN locale VARCHAR(10) NOT NULL DEFAULT 'en'")
        op.execute("UPDATE users SET locale = locale_chosen WHERE locale_chosen IS NOT NULL")
        op.execute("ALTER TABLE users DROP COLUMN locale_chosen")
        return
    op.drop_constraint(op.f("ck_users_locale"), "users", type_="check")
    op.execute("UPDATE users SET locale = 'en' WHERE locale IS NULL")
    op.alter_column(
        "users", "locale", existing_type=sa.String(length=5), type_=sa.String(length=10)
    )
    op.alter_column("users", "locale", existing_type=sa.String(length=10), nullable=False)
