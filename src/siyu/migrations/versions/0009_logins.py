"""logins: a staff login is unique within its corp, not across the installation

Revision ID: 0009_logins
Revises: 0012_sop
Create Date: 2026-12-07 19:40:00

Existing logins were unique across the installation, so they are unique within each corp too:
the upgrade keeps every row as it is. A downgrade fails (and changes nothing) if two corps have
since given out the same login.
"""

from alembic import op

revision = "0009_logins"
down_revision = "0012_sop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_staff_login"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_staff_corp_id_login"), ["corp_id", "login"])


def downgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_staff_corp_id_login"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_staff_login"), ["login"])
