"""security hardening: the login throttle replaces the per-account lockout

Revision ID: 0006_security
Revises: 0004_gate
"""

import sqlalchemy as sa
from alembic import op

import siyu.db

revision = "0006_security"
down_revision = "0004_gate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_index(op.f("ix_login_throttle_first_failed_at"), "login_throttle", ["first_failed_at"], unique=False)
    # Verification by the firm's system alone (a number without the one-time code) is withdrawn.
    op.execute("UPDATE gated_community SET verify_by = 'both' WHERE verify_by = 'firm'")
    # The per-account lockout let anyone lock an administrator out: gone (see tenancy.service.authenticate).
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("failed_logins")


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", siyu.db.UTCDateTime(timezone=True), nullable=True))
    op.drop_index(op.f("ix_login_throttle_first_failed_at"), table_name="login_throttle")
    op.drop_table("login_throttle")
