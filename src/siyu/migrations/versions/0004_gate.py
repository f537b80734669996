"""content items owned by a typed reference; per-kind approval requirement

Revision ID: 0004_gate
Revises: 0003_wording
"""

import sqlalchemy as sa
from alembic import op

import siyu.db

revision = "0004_gate"
down_revision = "0003_wording"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Items made before owners were typed keep their free-text ref and a NULL owner: no sender
    # asks for them, so nothing is ever sent from them (docs/compliance.md, "Content approval").
    with op.batch_alter_table("content_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("owner_id", BIGID, nullable=True))
        batch_op.create_index("ix_content_item_owner", ["corp_id", "owner_type", "owner_id"], unique=False)
    op.create_table(
        "approval_requirement",
        sa.Column("corp_id", BIGID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["corp_id"], ["corp.id"], name=op.f("fk_approval_requirement_corp_id_corp"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("corp_id", "kind", name=op.f("pk_approval_requirement")),
    )


def downgrade() -> None:
    op.drop_table("approval_requirement")
    with op.batch_alter_table("content_item", schema=None) as batch_op:
        batch_op.drop_index("ix_content_item_owner")
        batch_op.drop_column("owner_id")
        batch_op.drop_column("owner_type")
