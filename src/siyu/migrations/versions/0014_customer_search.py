"""customers: the blind index of names and remarks for search by part of a name

Revision ID: 0014_customer_search
Revises: 0007_communities
Create Date: 2026-12-07 20:05:00

Existing customers are indexed after the upgrade by the periodic job `customers.search_backfill`
(it needs the PII key, which a migration does not hold); until then they are found as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_customer_search"
down_revision = "0007_communities"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_version", sa.SmallInteger(), server_default="0", nullable=False))
        batch_op.create_index("ix_customer_search_version", ["search_version"], unique=False)
    op.create_table(
        "customer_search_gram",
        sa.Column("corp_id", BIG_ID, nullable=False),
        sa.Column("gram", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"],
                                name=op.f("fk_customer_search_gram_customer_id_customer"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("corp_id", "gram", "customer_id", name=op.f("pk_customer_search_gram")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("customer_search_gram", schema=None) as batch_op:
        batch_op.create_index("ix_customer_search_gram_customer", ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_search_gram", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_search_gram_customer")
    op.drop_table("customer_search_gram")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_search_version")
        batch_op.drop_column("search_version")
