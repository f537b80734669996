"""jobs with deadlines (expired state), per-queue fetch and deadline indexes, worker heartbeats

Revision ID: 0002_rel_queue
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

import siyu.db

revision = "0002_rel_queue"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

AVAILABLE = "state IN ('queued', 'failed')"


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline_at", siyu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(op.f("ck_job_state"), type_="check")
        batch_op.create_check_constraint(
            "state", "state IN ('queued', 'running', 'failed', 'done', 'dead', 'expired')")
        batch_op.drop_index("ix_job_finished")
        batch_op.create_index(
            "ix_job_finished", ["finished_at"], unique=False,
            postgresql_where=sa.text("state IN ('done', 'dead', 'expired')"),
            sqlite_where=sa.text("state IN ('done', 'dead', 'expired')"),
        )
        batch_op.create_index(
            "ix_job_queue_ready", ["queue", "run_at", "id"], unique=False,
            postgresql_where=sa.text(AVAILABLE), sqlite_where=sa.text(AVAILABLE),
        )
        batch_op.create_index(
            "ix_job_deadline", ["deadline_at"], unique=False,
            postgresql_where=sa.text(AVAILABLE + " AND deadline_at IS NOT NULL"),
            sqlite_where=sa.text(AVAILABLE + " AND deadline_at IS NOT NULL"),
        )

    op.create_table(
        "job_worker",
        sa.Column("worker_id", sa.String(length=120), nullable=False),
        sa.Column("hostname", sa.String(length=120), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.String(length=500), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_worker")),
        sa.UniqueConstraint("worker_id", name=op.f("uq_job_worker_worker_id")),
    )
    with op.batch_alter_table("job_worker", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_worker_last_seen_at"), ["last_seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_worker", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_worker_last_seen_at"))
    op.drop_table("job_worker")
    op.execute("DELETE FROM job WHERE state = 'expired'")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_deadline")
        batch_op.drop_index("ix_job_queue_ready")
        batch_op.drop_index("ix_job_finished")
        batch_op.create_index(
            "ix_job_finished", ["finished_at"], unique=False,
            postgresql_where=sa.text("state IN ('done', 'dead')"),
            sqlite_where=sa.text("state IN ('done', 'dead')"),
        )
        batch_op.drop_constraint(op.f("ck_job_state"), type_="check")
        batch_op.create_check_constraint("state", "state IN ('queued', 'running', 'failed', 'done', 'dead')")
        batch_op.drop_column("deadline_at")
