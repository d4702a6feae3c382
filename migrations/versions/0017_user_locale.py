"""users.locale becomes the participant's saved language: NULL when never chosen (until now
every row held the column's default "en", which nobody chose, so those become NULL), else
one of the languages with a catalogue (a CHECK).

SQLite rebuilds `users` to change the column and add its check constraint (batch mode).

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
_LOCALES = "'en', 'ru'"


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column(
            "locale",
            existing_type=sa.String(length=10),
            type_=sa.String(length=5),
            nullable=True,
        )
    op.execute("UPDATE users SET locale = NULL")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_check_constraint("locale", f"locale IS NULL OR locale IN ({_LOCALES})")


def downgrade():
    op.execute("UPDATE users SET locale = 'en' WHERE locale IS NULL")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_locale"), type_="check")
        batch_op.alter_column(
            "locale",
            existing_type=sa.String(length=5),
            type_=sa.String(length=10),
            nullable=False,
        )
