"""The installation's own brand: site_branding, one row at most (id 1), holding the site name,
support email, primary colour and logo (its bytes, type and SHA-256) that every page and
email shows instead of InviteLoop's own.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Spelled out rather than imported: a revision must not change when models.py does.
_LOGO_TYPES = "'image/png', 'image/webp', 'image/svg+xml'"


def upgrade():
    op.create_table(
        "site_branding",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("site_name", sa.String(length=60), nullable=True),
        sa.Column("support_email", sa.String(length=254), nullable=True),
        sa.Column("primary_color", sa.String(length=7), nullable=True),
        sa.Column("logo", sa.LargeBinary(), nullable=True),
        sa.Column("logo_type", sa.String(length=20), nullable=True),
        sa.Column("logo_hash", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_site_branding_single_row")),
        sa.CheckConstraint(
            "primary_color IS NULL OR (length(primary_color) = 7"
            " AND primary_color LIKE '#%' AND primary_color = lower(primary_color))",
            name=op.f("ck_site_branding_primary_color_hex"),
        ),
        sa.CheckConstraint(
            "site_name IS NULL OR length(site_name) > 0",
            name=op.f("ck_site_branding_site_name_not_empty"),
        ),
        sa.CheckConstraint(
            f"logo_type IN ({_LOGO_TYPES})", name=op.f("ck_site_branding_logo_type")
        ),
        sa.CheckConstraint(
            "(logo IS NULL AND logo_type IS NULL AND logo_hash IS NULL)"
            " OR (logo IS NOT NULL AND logo_type IS NOT NULL AND length(logo_hash) = 64)",
            name=op.f("ck_site_branding_logo_complete"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_branding")),
    )


def downgrade():
    op.drop_table("site_branding")
