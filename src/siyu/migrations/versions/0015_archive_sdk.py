"""compliance: a corp's settings for reading its chat archive through WeCom's Finance SDK

Revision ID: 0015_archive_sdk
Revises: 0014_customer_search
Create Date: 2026-12-07 20:20:00
"""

import sqlalchemy as sa
from alembic import op

import siyu.db

revision = "0015_archive_sdk"
down_revision = "0014_customer_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_sdk_config",
        sa.Column("corp_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False,
                  nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("private_keys", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=160), nullable=False),
        sa.ForeignKeyConstraint(["corp_id"], ["corp.id"], name=op.f("fk_archive_sdk_config_corp_id_corp"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("corp_id", name=op.f("pk_archive_sdk_config")),
    )


def downgrade() -> None:
    op.drop_table("archive_sdk_config")
