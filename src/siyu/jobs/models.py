"""Tables of the durable job queue: jobs and recurring schedules.

A job row is the whole truth about a unit of background work; there is no broker beside the
database. The state machine (see `JobState`) is driven only by `siyu.jobs.service`."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, IdMixin, utcnow


class JobState(enum.StrEnum):
    """queued → running → done; running → failed (waits for its retry) → running ...;
    running/failed → dead once its attempts are used up (dead letter: only a person revives it)."""

    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"
    DONE = "done"
    DEAD = "dead"


# States a worker may lease a job from (once its run_at has come).
AVAILABLE_STATES = (JobState.QUEUED.value, JobState.FAILED.value)
ALL_STATES = tuple(s.value for s in JobState)

# Predicates written out as SQL text, identical in the partial indexes and in the queries: a
# planner uses a partial index only when it can see that the query implies the index's WHERE,
# which it cannot when the states arrive as bound parameters (PostgreSQL's generic plans for
# prepared statements, SQLite always).
AVAILABLE_SQL = "state IN ('queued', 'failed')"
RUNNING_SQL = "state = 'running'"
FINISHED_SQL = "state IN ('done', 'dead')"


class Job(IdMixin, Base):
    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'failed', 'done', 'dead')", name="state"),
        # The fetch query walks this partial index in order and stops at LIMIT; it holds only
        # jobs that can still run, so it stays small however many done rows pile up.
        Index(
            "ix_job_fetch",
            "priority",
            "run_at",
            "id",
            postgresql_where=text(AVAILABLE_SQL),
            sqlite_where=text(AVAILABLE_SQL),
        ),
        # Finding expired leases (crashed workers) and a worker's own leases (heartbeat).
        Index(
            "ix_job_lease",
            "lease_expires_at",
            postgresql_where=text(RUNNING_SQL),
            sqlite_where=text(RUNNING_SQL),
        ),
        # Console: counts and listings per corp and state, newest first.
        Index("ix_job_corp_state", "corp_id", "state", "id"),
        # Pruning old finished jobs.
        Index(
            "ix_job_finished",
            "finished_at",
            postgresql_where=text(FINISHED_SQL),
            sqlite_where=text(FINISHED_SQL),
        ),
    )

    # The handler's registered name, e.g. "customers.upsert_contact".
    name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(64), default="default")
    # Lower runs first among due jobs (as in Oban and River): 0 is normal, negative is urgent.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    # NULL: an installation-level job that no corp's staff see. No foreign key: the queue serves
    # every domain and must not depend on the tenancy tables.
    corp_id: Mapped[int | None] = mapped_column(BigInteger)
    # Dedupes enqueues for as long as the row exists (done jobs are pruned after a retention).
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)

    # When the job may run next (its schedule, or the end of its retry backoff).
    run_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Start of the latest attempt (when its handler began) and when the job reached done/dead.
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]

    # Attempts ever leased. Never decreases, so it doubles as the fencing token of a lease:
    # only the holder of the current (id, attempt) may complete the job.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    # `attempt` when a person last retried the job by hand; attempts of the current run are
    # attempt - attempt_offset, so a manual retry grants a full new allowance.
    attempt_offset: Mapped[int] = mapped_column(Integer, default=0)

    locked_by: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[dt.datetime | None]
    # Type and message of the latest failure, secrets redacted, truncated.
    last_error: Mapped[str | None] = mapped_column(Text)

    @property
    def attempts_used(self) -> int:
        return self.attempt - self.attempt_offset


class JobSchedule(IdMixin, Base):
    """A recurring job: a 5-field cron expression evaluated in a time zone (Asia/Shanghai)."""

    __tablename__ = "job_schedule"

    # Stable name chosen by the code or person that made it, e.g. "jobs.prune".
    key: Mapped[str] = mapped_column(String(200), unique=True)
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    name: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    queue: Mapped[str] = mapped_column(String(64), default="default")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    corp_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The next fire time (UTC); the worker materialises a job when it has come.
    next_run_at: Mapped[dt.datetime] = mapped_column(index=True)
    last_run_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
