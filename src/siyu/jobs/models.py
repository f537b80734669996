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
    running/failed → dead once its attempts are used up (dead letter: only a person revives it);
    queued/failed → expired when its `deadline_at` passed before it could start (its handler is
    never called: the work no longer makes sense, e.g. a welcome code past WeCom's 20 s)."""

    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"
    DONE = "done"
    DEAD = "dead"
    EXPIRED = "expired"


# States a worker may lease a job from (once its run_at has come).
AVAILABLE_STATES = (JobState.QUEUED.value, JobState.FAILED.value)
ALL_STATES = tuple(s.value for s in JobState)

# Predicates written out as SQL text, identical in the partial indexes and in the queries: a
# planner uses a partial index only when it can see that the query implies the index's WHERE,
# which it cannot when the states arrive as bound parameters (PostgreSQL's generic plans for
# prepared statements, SQLite always).
AVAILABLE_SQL = "state IN ('queued', 'failed')"
RUNNING_SQL = "state = 'running'"
FINISHED_SQL = "state IN ('done', 'dead', 'expired')"


class Job(IdMixin, Base):
    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'failed', 'done', 'dead', 'expired')", name="state"),
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
        # The fetch of one queue, newest first (adaptive LIFO under backlog) or oldest first, and
        # the oldest ready job's age per queue (queue lag).
        Index(
            "ix_job_queue_ready",
            "queue",
            "run_at",
            "id",
            postgresql_where=text(AVAILABLE_SQL),
            sqlite_where=text(AVAILABLE_SQL),
        ),
        # The sweep that expires, in one statement, waiting jobs whose deadline has passed.
        Index(
            "ix_job_deadline",
            "deadline_at",
            postgresql_where=text(AVAILABLE_SQL + " AND deadline_at IS NOT NULL"),
            sqlite_where=text(AVAILABLE_SQL + " AND deadline_at IS NOT NULL"),
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
    # The job must not start after this (UTC): past it, the work is worthless and the job is
    # recorded `expired` without running (a welcome code's 20 s, an SOP slot, a campaign window).
    # Retries that would start after it expire the job instead. NULL: no deadline.
    deadline_at: Mapped[dt.datetime | None]
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


class JobWorker(IdMixin, Base):
    """A running `siyu worker` process, as its heartbeat last reported it (every
    SIYU_WORKER_HEARTBEAT_SECONDS). A worker whose heartbeat stopped for SIYU_WORKER_DEAD_AFTER_SECONDS
    is dead: any other worker hands its running jobs on at once, without waiting for their leases
    (which a live worker keeps extending for as long as a call is in flight)."""

    __tablename__ = "job_worker"

    worker_id: Mapped[str] = mapped_column(String(120), unique=True)
    hostname: Mapped[str] = mapped_column(String(120), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    queues: Mapped[str] = mapped_column(String(500), default="")  # comma-separated; empty: all
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
