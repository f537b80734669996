"""audiences: saved segments and their daily counts

Revision ID: 0020_audiences
Revises: 0017_analytics
Create Date: 2026-12-07 22:42:59.147918

Saved segments (siyu.audiences) with the per-day count history, and the indexes that segment rules
need: timeline events and orders by corp, kind and time (with the customer id), joins by customer.
"""

import sqlalchemy as sa
from alembic import op

import siyu.db

revision = "0020_audiences"
down_revision = "0017_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment",
        sa.Column("corp_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("owner_staff_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("last_count", sa.Integer(), nullable=True),
        sa.Column("last_counted_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["corp_id"], ["corp.id"], name=op.f("fk_segment_corp_id_corp"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["owner_staff_id"], ["staff.id"], name=op.f("fk_segment_owner_staff_id_staff"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment")),
        sa.UniqueConstraint("corp_id", "name", name=op.f("uq_segment_corp_id_name")),
    )
    with op.batch_alter_table("segment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segment_corp_id"), ["corp_id"], unique=False)

    op.create_table(
        "segment_count",
        sa.Column("corp_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("segment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("counted_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["corp_id"], ["corp.id"], name=op.f("fk_segment_count_corp_id_corp"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_segment_count_segment_id_segment"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_count")),
        sa.UniqueConstraint("segment_id", "day", name=op.f("uq_segment_count_segment_id_day")),
    )
    with op.batch_alter_table("segment_count", schema=None) as batch_op:
        batch_op.create_index("ix_segment_count_corp_day", ["corp_id", "day"], unique=False)

    with op.batch_alter_table("customer_event", schema=None) as batch_op:
        batch_op.create_index("ix_customer_event_corp_kind_at", ["corp_id", "kind", "at", "customer_id"], unique=False)

    with op.batch_alter_table("firm_order", schema=None) as batch_op:
        batch_op.create_index(
            "ix_firm_order_corp_kind_at", ["corp_id", "kind", "occurred_at", "customer_id"], unique=False
        )

    with op.batch_alter_table("group_join", schema=None) as batch_op:
        batch_op.create_index("ix_group_join_customer", ["customer_id", "join_way_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("group_join", schema=None) as batch_op:
        batch_op.drop_index("ix_group_join_customer")

    with op.batch_alter_table("firm_order", schema=None) as batch_op:
        batch_op.drop_index("ix_firm_order_corp_kind_at")

    with op.batch_alter_table("customer_event", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_event_corp_kind_at")

    with op.batch_alter_table("segment_count", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_count_corp_day")

    op.drop_table("segment_count")
    with op.batch_alter_table("segment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segment_corp_id"))

    op.drop_table("segment")
