"""A program's texts in each language: program_texts (one row per program, language and text
an admin wrote: name, description, headline, share_text, usage_text, email_intro). The
default language's name, description, share text and usage text stay on programs.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
_LOCALES = "'en', 'ru'"
_FIELDS = "'name', 'description', 'headline', 'share_text', 'usage_text', 'email_intro'"


def upgrade():
    op.create_table(
        "program_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("locale", sa.String(length=5), nullable=False),
        sa.Column("field", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.CheckConstraint(f"locale IN ({_LOCALES})", name=op.f("ck_program_texts_locale")),
        sa.CheckConstraint(f"field IN ({_FIELDS})", name=op.f("ck_program_texts_field")),
        sa.CheckConstraint(
            "length(text) BETWEEN 1 AND 2000", name=op.f("ck_program_texts_text_length")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_program_texts_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_texts")),
        sa.UniqueConstraint("program_id", "locale", "field", name="uq_program_texts_field"),
    )


def downgrade():
    op.drop_table("program_texts")
