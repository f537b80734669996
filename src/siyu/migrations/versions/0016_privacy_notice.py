"""privacy: the corp's privacy notice by version, and the version a visitor or a consent agreed to

Revision ID: 0016_privacy_notice
Revises: 0015_archive_sdk
Create Date: 2026-12-07 20:40:00
"""

import sqlalchemy as sa
from alembic import op

import siyu.db

revision = "0016_privacy_notice"
down_revision = "0015_archive_sdk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_notice",
        sa.Column("corp_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("published_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=120), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["corp_id"], ["corp.id"], name=op.f("fk_privacy_notice_corp_id_corp"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_notice")),
        sa.UniqueConstraint("corp_id", "version", name=op.f("uq_privacy_notice_corp_id_version")),
    )
    with op.batch_alter_table("consent_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("gated_visit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("consented_at", siyu.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gated_visit", schema=None) as batch_op:
        batch_op.drop_column("consented_at")
        batch_op.drop_column("notice_version")
    with op.batch_alter_table("consent_record", schema=None) as batch_op:
        batch_op.drop_column("notice_version")
    op.drop_table("privacy_notice")
