"""The durable job queue: enqueue inside the caller's transaction, lease, complete, retry, schedule.

The queue lives in the application database (the transactional outbox of Oban, River, Solid
Queue, Procrastinate): a job exists if and only if the transaction that enqueued it commits.

Life of a job (states in `JobState`):

* `enqueue` inserts it `queued` with a `run_at`.
* A worker leases due jobs in batches (`fetch_due`): state `running`, `attempt` + 1, `locked_by`,
  `lease_expires_at`. On PostgreSQL with FOR UPDATE SKIP LOCKED, so workers on many machines
  share the queue; on SQLite one UPDATE ... RETURNING under the database write lock.
* The handler runs in its own transaction that ends with `complete`, fenced on (id, attempt):
  the handler's writes and "done" commit together, or neither does.
* A failure makes it `failed` with a `run_at` pushed out by exponential backoff with full jitter,
  or `dead` when its attempts are used up (or the handler raised PermanentFailure).
* A lease that expires (the worker died or hung) is rescued by any worker (`rescue_expired`): the
  job becomes due again and runs under a new attempt, i.e. a new fencing token; the old holder's
  completion then matches no row and rolls back with its handler's writes.

Corp scoping: functions for the console take `corp_id`; None means "the whole installation" and
is for operators and the CLI only. Console and API code always pass the caller's corp_id, so a
corp sees only its own jobs, never installation-level ones (corp_id NULL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
    values,
)
from sqlalchemy.orm import Session

from siyu.db import UTCDateTime, dialect_insert, is_postgres, utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.jobs import registry
from siyu.jobs.models import AVAILABLE_SQL, FINISHED_SQL, RUNNING_SQL, Job, JobSchedule, JobState, JobWorker
from siyu.jobs.schedule import DEFAULT_TIMEZONE, next_fire, parse_cron, zone

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 10
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0
ERROR_MAX_CHARS = 2000
IDEMPOTENCY_KEY_MAX = 255
# Kinds the demo seeds (`siyu demo`): handled by siyu/jobs/jobs.py in every installation.
DEMO_JOB_KINDS = ("jobs.noop", "jobs.prune")
# How long finished jobs are kept (their idempotency keys dedupe for that long).
DONE_RETENTION = dt.timedelta(days=7)
DEAD_RETENTION = dt.timedelta(days=30)

_t = Job.__table__
_s = JobSchedule.__table__


# --- enqueue -------------------------------------------------------------------------------------


def _job_values(
    *,
    name: str,
    payload: Mapping[str, Any] | None,
    run_at: dt.datetime | None,
    queue: str,
    priority: int,
    idempotency_key: str | None,
    max_attempts: int | None,
    corp_id: int | None,
    now: dt.datetime,
    deadline_at: dt.datetime | None = None,
) -> dict[str, Any]:
    if not name or len(name) > 200:
        raise InvalidInput("a job name is 1-200 characters", field="name")
    if not queue or len(queue) > 64:
        raise InvalidInput("a queue name is 1-64 characters", field="queue")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise InvalidInput("an idempotency key is 1-%(max)s characters", field="idempotency_key",
                           params={"max": IDEMPOTENCY_KEY_MAX})
    if run_at is not None and run_at.tzinfo is None:
        raise InvalidInput("run_at must be timezone-aware", field="run_at")
    if deadline_at is not None and deadline_at.tzinfo is None:
        raise InvalidInput("deadline_at must be timezone-aware", field="deadline_at")
    if max_attempts is None:
        spec = registry.get_handler(name)
        max_attempts = (spec.max_attempts if spec else None) or DEFAULT_MAX_ATTEMPTS
    if max_attempts < 1:
        raise InvalidInput("max_attempts must be at least 1", field="max_attempts")
    return {
        "name": name,
        "queue": queue,
        "priority": priority,
        "state": JobState.QUEUED.value,
        "payload": dict(payload or {}),
        "corp_id": corp_id,
        "idempotency_key": idempotency_key,
        "run_at": run_at or now,
        "enqueued_at": now,
        "deadline_at": deadline_at,
        "attempt": 0,
        "attempt_offset": 0,
        "max_attempts": max_attempts,
    }


def enqueue(
    session: Session,
    *,
    name: str,
    payload: Mapping[str, Any] | None = None,
    run_at: dt.datetime | None = None,
    queue: str = "default",
    priority: int = 0,
    idempotency_key: str | None = None,
    max_attempts: int | None = None,
    corp_id: int | None = None,
    deadline_at: dt.datetime | None = None,
) -> Job:
    """Adds a job in the caller's transaction: it exists if and only if the caller commits.

    With a `deadline_at` (UTC), the job never starts after it: a worker records it `expired`
    instead, without calling its handler, and a retry that would start after it expires it.

    With an `idempotency_key`, a second enqueue with the same key (in this transaction, a
    committed one or one racing it on PostgreSQL) returns the existing job and inserts nothing.
    Payloads are stored as plain JSON: put ids in them, never secrets or personal data."""
    if payload is not None:
        if not isinstance(payload, Mapping):
            raise InvalidInput("a job payload is a JSON object", field="payload")
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("the payload is not JSON: %(error)s", field="payload",
                               params={"error": str(exc)}) from None
    values = _job_values(
        name=name,
        payload=payload,
        run_at=run_at,
        queue=queue,
        priority=priority,
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
        corp_id=corp_id,
        now=utcnow(),
        deadline_at=deadline_at,
    )
    if idempotency_key is None:
        job = Job(**values)
        session.add(job)
        session.flush()
        return job
    # ON CONFLICT DO NOTHING: on PostgreSQL an insert racing an uncommitted one with the same key
    # waits for it, then inserts nothing if it committed (and the select below sees it).
    stmt = (
        dialect_insert(session)(Job)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Job)
    )
    job = session.scalars(stmt).first()
    if job is not None:
        return job
    existing = session.scalars(select(Job).where(Job.idempotency_key == idempotency_key)).first()
    if existing is None:
        # Only under REPEATABLE READ/SERIALIZABLE, whose snapshot predates the conflicting commit.
        raise Conflict("a job with this idempotency key was enqueued concurrently; try again")
    return existing


def enqueue_many(session: Session, jobs: Iterable[Mapping[str, Any]], *, returning: bool = True) -> list[int]:
    """Enqueues many jobs in one round of multi-row INSERTs (a broadcast's sends, the benchmark).

    Each item takes `enqueue`'s keyword arguments. Returns the ids inserted; an item whose
    idempotency key already exists is skipped and has no id in the result. With
    `returning=False` it returns nothing and costs less (a plain executemany)."""
    now = utcnow()
    rows = [
        _job_values(
            name=j["name"],
            payload=j.get("payload"),
            run_at=j.get("run_at"),
            queue=j.get("queue", "default"),
            priority=j.get("priority", 0),
            idempotency_key=j.get("idempotency_key"),
            max_attempts=j.get("max_attempts"),
            corp_id=j.get("corp_id"),
            now=now,
            deadline_at=j.get("deadline_at"),
        )
        for j in jobs
    ]
    if not rows:
        return []
    connection = session.connection()
    key = (connection.dialect.name, returning)
    stmt = _INSERT_OR_SKIP.get(key)
    if stmt is None:  # built once per database kind: this runs for every WeCom callback
        stmt = dialect_insert(session)(_t).on_conflict_do_nothing(index_elements=["idempotency_key"])
        stmt = _INSERT_OR_SKIP[key] = stmt.returning(_t.c.id) if returning else stmt
    if not returning:  # a plain executemany, much cheaper than one with RETURNING
        connection.execute(stmt, rows)
        return []
    return list(connection.execute(stmt, rows).scalars())


_INSERT_OR_SKIP: dict[tuple[str, bool], Any] = {}


# --- leasing, completion, failure (the worker's side) --------------------------------------------


@dataclass(frozen=True, slots=True)
class LeasedJob:
    """A job as a worker holds it: plain values, detached from any session."""

    id: int
    name: str
    queue: str
    priority: int
    payload: dict[str, Any]
    corp_id: int | None
    attempt: int
    attempt_offset: int
    max_attempts: int
    run_at: dt.datetime
    enqueued_at: dt.datetime
    deadline_at: dt.datetime | None = None

    @property
    def attempts_used(self) -> int:
        return self.attempt - self.attempt_offset

    def past_deadline(self, now: dt.datetime) -> bool:
        return self.deadline_at is not None and now >= self.deadline_at


_LEASE_COLUMNS = [
    _t.c.id,
    _t.c.name,
    _t.c.queue,
    _t.c.priority,
    _t.c.payload,
    _t.c.corp_id,
    _t.c.attempt,
    _t.c.attempt_offset,
    _t.c.max_attempts,
    _t.c.run_at,
    _t.c.enqueued_at,
    _t.c.deadline_at,
]

# The statements a worker runs for every job are built once: constructing SQLAlchemy expressions
# costs more than executing them on SQLite. Bound values go in as b_* parameters.

# Only the current lease holder matches: same attempt (the fencing token), still running.
_FENCE = and_(
    _t.c.id == bindparam("b_id"),
    _t.c.attempt == bindparam("b_attempt"),
    _t.c.state == JobState.RUNNING.value,
    _t.c.locked_by == bindparam("b_worker"),
)

_COMPLETE = (
    update(_t)
    .where(_FENCE)
    .values(
        state=JobState.DONE.value,
        started_at=bindparam("b_started"),
        finished_at=bindparam("b_now"),
        locked_by=None,
        lease_expires_at=None,
    )
)


def _fetch_statement(*, postgres: bool, queues: str | None):
    """queues: None (all), "one" (b_queue), "many" (b_queues), "skip" (all but b_skip), "lifo"
    (b_queue, newest first: the adaptive LIFO of a queue under backlog)."""
    pick = (
        select(_t.c.id)
        .where(text(AVAILABLE_SQL), _t.c.run_at <= bindparam("b_now"),
               # Past its deadline a job is not started (the sweep records it expired).
               or_(_t.c.deadline_at.is_(None), _t.c.deadline_at > bindparam("b_now")))
        .limit(bindparam("b_limit", literal_execute=False))
    )
    if queues == "lifo":
        # Walks ix_job_queue_ready backwards from now: the newest due jobs of the queue first.
        pick = pick.where(_t.c.queue == bindparam("b_queue")).order_by(_t.c.run_at.desc(), _t.c.id.desc())
    else:
        pick = pick.order_by(_t.c.priority, _t.c.run_at, _t.c.id)
    if queues == "one":
        pick = pick.where(_t.c.queue == bindparam("b_queue"))
    elif queues == "many":
        # Expanding IN re-renders the SQL on every execution; one queue is the common case.
        pick = pick.where(_t.c.queue.in_(bindparam("b_queues", expanding=True)))
    elif queues == "skip":
        pick = pick.where(_t.c.queue.not_in(bindparam("b_skip", expanding=True)))
    if postgres:
        # Rows another worker is leasing right now are skipped instead of waited for.
        pick = pick.with_for_update(skip_locked=True)
    return (
        update(_t)
        .where(_t.c.id.in_(pick.scalar_subquery()))
        .values(
            state=JobState.RUNNING.value,
            attempt=_t.c.attempt + 1,
            locked_by=bindparam("b_worker"),
            lease_expires_at=bindparam("b_lease"),
            started_at=bindparam("b_now"),
        )
        .returning(*_LEASE_COLUMNS)
    )


_FETCH = {(pg, q): _fetch_statement(postgres=pg, queues=q)
          for pg in (False, True) for q in (None, "one", "many", "skip", "lifo")}


def _fence_params(job: LeasedJob, worker_id: str) -> dict[str, Any]:
    return {"b_id": job.id, "b_attempt": job.attempt, "b_worker": worker_id}


def fetch_due(
    session: Session,
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    queues: Sequence[str] | None = None,
    now: dt.datetime | None = None,
    lifo: Sequence[str] = (),
) -> list[LeasedJob]:
    """Leases up to `limit` due jobs to `worker_id`, most urgent first, in one statement per
    shape. Jobs past their deadline are not leased (`sweep_expired` records them).

    `lifo`: queues (among `queues`) to serve newest first, each in a statement of its own before
    the others (the adaptive LIFO of a queue under backlog: fresh work is done while the stale
    reaches its deadline and is written off without being run).

    The caller commits right away: the lease is what other workers see."""
    if limit <= 0:
        return []
    now = now or utcnow()
    params: dict[str, Any] = {
        "b_now": now,
        "b_limit": limit,
        "b_worker": worker_id,
        "b_lease": now + dt.timedelta(seconds=lease_seconds),
    }
    postgres = is_postgres(session)
    lifo = [q for q in lifo if not queues or q in queues]
    jobs: list[LeasedJob] = []
    for queue in lifo:
        want = limit - len(jobs)
        if want <= 0:
            return jobs
        rows = session.execute(_FETCH[postgres, "lifo"], {**params, "b_limit": want, "b_queue": queue}).all()
        batch = [LeasedJob(*row) for row in rows]
        batch.sort(key=lambda j: (j.run_at, j.id), reverse=True)
        jobs.extend(batch)
    params["b_limit"] = limit - len(jobs)
    if params["b_limit"] <= 0:
        return jobs
    rest = [q for q in queues if q not in lifo] if queues else None
    shape = None
    if queues is not None and queues and not rest:
        return jobs
    if rest and len(rest) == 1:
        shape, params["b_queue"] = "one", rest[0]
    elif rest:
        shape, params["b_queues"] = "many", list(rest)
    elif lifo:
        shape, params["b_skip"] = "skip", list(lifo)
    rows = session.execute(_FETCH[postgres, shape], params).all()
    batch = [LeasedJob(*row) for row in rows]
    # RETURNING has no order; run the batch in the order it was chosen.
    batch.sort(key=lambda j: (j.priority, j.run_at, j.id))
    return jobs + batch


def complete(
    session: Session,
    *,
    job: LeasedJob,
    worker_id: str,
    started_at: dt.datetime,
    now: dt.datetime | None = None,
) -> bool:
    """Marks the job done in the session's transaction (the handler's). False when the lease was
    lost: the caller must then roll back, so the handler's writes are discarded as well."""
    params = _fence_params(job, worker_id)
    params.update(b_started=started_at, b_now=now or utcnow())
    return session.execute(_COMPLETE, params).rowcount == 1


def complete_many(
    session: Session,
    *,
    jobs: Sequence[tuple[LeasedJob, dt.datetime]],
    worker_id: str,
    now: dt.datetime | None = None,
) -> set[int]:
    """Marks several jobs done in one statement, each fenced like `complete`; returns the ids
    marked. For the jobs of a batch handler (in its transaction) and for jobs whose handlers wrote
    nothing to the database (the worker's batch completer): one statement instead of one each."""
    if not jobs:
        return set()
    now = now or utcnow()
    if not is_postgres(session):
        # SQLite has no UPDATE ... FROM (VALUES ...) AS v(columns): one statement per start time
        # (a batch's jobs share theirs), fenced on (id, attempt) row values.
        by_start: dict[dt.datetime, list[tuple[int, int]]] = {}
        for job, started in jobs:
            by_start.setdefault(started, []).append((job.id, job.attempt))
        done: set[int] = set()
        for started, pairs in by_start.items():
            done.update(session.scalars(
                update(_t)
                .where(tuple_(_t.c.id, _t.c.attempt).in_(pairs), _t.c.state == JobState.RUNNING.value,
                       _t.c.locked_by == worker_id)
                .values(state=JobState.DONE.value, started_at=started, finished_at=now, locked_by=None,
                        lease_expires_at=None)
                .returning(_t.c.id)
            ))
        return done
    rows = values(
        column("v_id", BigInteger),
        column("v_attempt", Integer),
        column("v_started", UTCDateTime()),
        name="v",
    ).data([(job.id, job.attempt, started) for job, started in jobs])
    stmt = (
        update(_t)
        .where(
            _t.c.id == rows.c.v_id,
            _t.c.attempt == rows.c.v_attempt,
            _t.c.state == JobState.RUNNING.value,
            _t.c.locked_by == worker_id,
        )
        .values(
            state=JobState.DONE.value,
            started_at=rows.c.v_started,
            finished_at=now,
            locked_by=None,
            lease_expires_at=None,
        )
        .returning(_t.c.id)
    )
    return set(session.scalars(stmt))


def backoff_seconds(
    attempt: int,
    *,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with full jitter (uniform between 0 and min(cap, base * 2^(n-1))),
    so jobs that failed together (an outage) do not retry together."""
    ceiling = min(cap, base * (2.0 ** max(0, attempt - 1)))
    return (rng or random).uniform(0.0, ceiling)


def record_failure(
    session: Session,
    *,
    job: LeasedJob,
    worker_id: str,
    error: BaseException | str,
    started_at: dt.datetime | None = None,
    retry_in: float | None = None,
    permanent: bool = False,
    expire: bool = False,
    now: dt.datetime | None = None,
    rng: random.Random | None = None,
) -> str | None:
    """Records a failed attempt: `failed` with a backoff, or `dead` when attempts are used up, or
    `expired` when the retry would start at or after the job's deadline (a retry backs off within
    the deadline or not at all).

    Returns the new state, or None when the lease was lost (someone else owns the job now)."""
    now = now or utcnow()
    message = error if isinstance(error, str) else describe_error(error)
    if expire:
        values: dict[str, Any] = {"state": JobState.EXPIRED.value, "finished_at": now}
    elif permanent or job.attempts_used >= job.max_attempts:
        values = {"state": JobState.DEAD.value, "finished_at": now}
    else:
        delay = retry_in if retry_in is not None else backoff_seconds(job.attempts_used, rng=rng)
        run_at = now + dt.timedelta(seconds=delay)
        if job.deadline_at is not None and run_at >= job.deadline_at:
            values = {"state": JobState.EXPIRED.value, "finished_at": now}
            message = f"{EXPIRED_ON_RETRY}\n{message}"
        else:
            values = {"state": JobState.FAILED.value, "run_at": run_at}
    values.update(last_error=message[:ERROR_MAX_CHARS], locked_by=None, lease_expires_at=None)
    if started_at is not None:
        values["started_at"] = started_at
    result = session.execute(update(_t).where(_FENCE).values(**values), _fence_params(job, worker_id))
    return values["state"] if result.rowcount == 1 else None


def extend_leases(
    session: Session,
    *,
    job_ids: Sequence[int],
    worker_id: str,
    lease_seconds: float,
    now: dt.datetime | None = None,
) -> set[int]:
    """The heartbeat: pushes out the leases this worker still holds; returns their ids (an id
    missing from the answer was lost, e.g. rescued after the worker stalled past its lease)."""
    if not job_ids:
        return set()
    now = now or utcnow()
    rows = session.execute(
        update(_t)
        .where(
            _t.c.id.in_(list(job_ids)),
            _t.c.locked_by == worker_id,
            _t.c.state == JobState.RUNNING.value,
        )
        .values(lease_expires_at=now + dt.timedelta(seconds=lease_seconds))
        .returning(_t.c.id)
    ).scalars()
    return set(rows)


def release(session: Session, *, jobs: Sequence[LeasedJob], worker_id: str) -> int:
    """Gives back leased jobs whose handlers never started (graceful shutdown): due again at once,
    and the attempt they were leased under is not counted."""
    released = 0
    for job in jobs:
        result = session.execute(
            update(_t)
            .where(_FENCE)
            .values(
                state=JobState.QUEUED.value if job.attempt - 1 == job.attempt_offset else JobState.FAILED.value,
                attempt=_t.c.attempt - 1,
                locked_by=None,
                lease_expires_at=None,
            ),
            _fence_params(job, worker_id),
        )
        released += result.rowcount
    return released


def _rescue(session: Session, *, condition, now: dt.datetime, limit: int, reason: str) -> list:
    pick = select(_t.c.id).where(text(RUNNING_SQL), condition).limit(limit)
    if is_postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    exhausted = (_t.c.attempt - _t.c.attempt_offset) >= _t.c.max_attempts
    too_late = and_(_t.c.deadline_at.is_not(None), _t.c.deadline_at <= now)
    return session.execute(
        update(_t)
        .where(_t.c.id.in_(pick.scalar_subquery()), _t.c.state == JobState.RUNNING.value, condition)
        .values(
            state=case((exhausted, JobState.DEAD.value), (too_late, JobState.EXPIRED.value),
                       else_=JobState.FAILED.value),
            finished_at=case((exhausted, now), (too_late, now), else_=None),
            run_at=now,
            locked_by=None,
            lease_expires_at=None,
            last_error=reason,
        )
        .returning(_t.c.id, _t.c.name, _t.c.attempt, _t.c.state)
    ).all()


def rescue_expired(session: Session, *, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Makes jobs whose lease expired (their worker died or hung) due again, or dead when that
    was their last attempt, or expired when their deadline has passed. Any worker may run this;
    each expired lease is rescued once."""
    now = now or utcnow()
    rows = _rescue(session, condition=_t.c.lease_expires_at < now, now=now, limit=limit,
                   reason="LeaseExpired: the worker stopped or stalled before finishing this attempt")
    for row in rows:
        log.warning("job %s (%s) attempt %s: lease expired, rescued (%s)", row.id, row.name, row.attempt, row.state)
    return len(rows)


# --- deadlines -----------------------------------------------------------------------------------

EXPIRED_BEFORE_START = "DeadlinePassed: the job's deadline passed before it could start; it was not run"
EXPIRED_ON_RETRY = "DeadlinePassed: its retry would have started after the job's deadline; it was not retried"


def sweep_expired(session: Session, *, now: dt.datetime | None = None, limit: int = 5000) -> int:
    """Records `expired`, in one statement, up to `limit` waiting jobs whose deadline has passed
    (walking the small partial index ix_job_deadline): a backlog of stale work is written off in
    bulk, without a lease, a handler call or a WeCom call each. Any worker may run this."""
    now = now or utcnow()
    pick = (
        select(_t.c.id)
        .where(text(AVAILABLE_SQL), _t.c.deadline_at.is_not(None), _t.c.deadline_at <= now)
        .limit(limit)
    )
    if is_postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    result = session.execute(
        update(_t)
        .where(_t.c.id.in_(pick.scalar_subquery()), text(AVAILABLE_SQL))
        .values(state=JobState.EXPIRED.value, finished_at=now, locked_by=None, lease_expires_at=None,
                last_error=EXPIRED_BEFORE_START)
    )
    expired = max(0, result.rowcount or 0)
    if expired:
        log.info("%d jobs expired: their deadlines passed before they could start", expired)
    return expired


def expire_leased(session: Session, *, job: LeasedJob, worker_id: str, now: dt.datetime | None = None) -> bool:
    """Records `expired` a job this worker leased but found past its deadline before starting it
    (fenced like `complete`); its handler is not called."""
    now = now or utcnow()
    result = session.execute(
        update(_t).where(_FENCE).values(state=JobState.EXPIRED.value, finished_at=now, locked_by=None,
                                        lease_expires_at=None, last_error=EXPIRED_BEFORE_START),
        _fence_params(job, worker_id),
    )
    return result.rowcount == 1


# --- worker liveness -----------------------------------------------------------------------------

_w = JobWorker.__table__


def register_worker(session: Session, *, worker_id: str, hostname: str = "", pid: int = 0,
                    queues: Sequence[str] | None = None, concurrency: int = 1,
                    now: dt.datetime | None = None) -> None:
    """Records a worker as alive (at start, and again should its row have been removed as dead)."""
    now = now or utcnow()
    session.execute(
        dialect_insert(session)(_w)
        .values(worker_id=worker_id, hostname=hostname[:120], pid=pid, queues=",".join(queues or [])[:500],
                concurrency=concurrency, started_at=now, last_seen_at=now)
        .on_conflict_do_nothing(index_elements=["worker_id"])
    )


def worker_heartbeat(session: Session, *, worker_id: str, now: dt.datetime | None = None) -> bool:
    """The liveness heartbeat; False when the worker's row is gone (it was taken for dead: its
    jobs were handed on, and it should register again)."""
    now = now or utcnow()
    return session.execute(update(_w).where(_w.c.worker_id == worker_id).values(last_seen_at=now)).rowcount == 1


def unregister_worker(session: Session, *, worker_id: str) -> None:
    session.execute(delete(_w).where(_w.c.worker_id == worker_id))


def rescue_dead_workers(session: Session, *, dead_after: float, now: dt.datetime | None = None,
                        limit: int = 1000) -> int:
    """Hands on the running jobs of workers whose heartbeat stopped `dead_after` seconds ago
    (SIGKILL, a lost machine), without waiting for their leases: due again at once under a new
    attempt (fencing token), or expired past their deadline. Then forgets those workers.

    An effect such a job had claimed but not recorded stays as its send-once record says
    (`sending` becomes `unknown` on the next run and is never repeated)."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=dead_after)
    dead = [row[0] for row in session.execute(select(_w.c.worker_id).where(_w.c.last_seen_at < cutoff).limit(100))]
    if not dead:
        return 0
    rows = _rescue(session, condition=_t.c.locked_by.in_(dead), now=now, limit=limit,
                   reason="WorkerDead: the worker's heartbeat stopped before it finished this attempt")
    for row in rows:
        log.warning("job %s (%s) attempt %s: its worker stopped, handed on (%s)", row.id, row.name, row.attempt,
                    row.state)
    if len(rows) < limit:
        session.execute(delete(_w).where(_w.c.worker_id.in_(dead), _w.c.last_seen_at < cutoff))
    return len(rows)


def list_workers(session: Session) -> list[JobWorker]:
    return list(session.scalars(select(JobWorker).order_by(JobWorker.started_at)))


# --- errors --------------------------------------------------------------------------------------

_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # First, so that "Authorization: Bearer x" loses x and not only the word Bearer.
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer ***"),
    # key=value / key: value pairs whose name says "secret" (query strings, dict reprs, headers).
    (
        re.compile(
            r"(?i)([\"']?\b(?:access_token|corpsecret|client_secret|secret|password|passwd|token|api[_-]?key|"
            r"authorization|encoding_?aes_?key|aes_?key|private_?key|signature|msg_signature|cookie)\b[\"']?"
            r"\s*[=:]\s*[\"']?)([^\s&\"',;}]+)"
        ),
        r"\1***",
    ),
    (re.compile(r"\bsk_[A-Za-z0-9_-]{6,}"), "sk_***"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "://***@"),
    # Long digit runs: phone, ID and bank card numbers are personal data.
    (re.compile(r"\d{11,}"), lambda m: m.group(0)[:3] + "***"),  # type: ignore[list-item]
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def describe_error(exc: BaseException) -> str:
    """Type, message (secrets and long numbers redacted) and where it was raised, truncated.

    No local variables or payload values: only file, line and function of the last frames."""
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)[-3:] if exc.__traceback__ else []
    for frame in frames:
        path = "/".join(PurePath(frame.filename).parts[-2:])
        text += f"\n  at {path}:{frame.lineno} in {frame.name}"
    text = redact(text)
    if len(text) > ERROR_MAX_CHARS:
        text = text[: ERROR_MAX_CHARS - 1] + "…"
    return text


# --- console and API -----------------------------------------------------------------------------

COUNTED_STATES = (JobState.QUEUED.value, JobState.RUNNING.value, JobState.FAILED.value, JobState.DEAD.value,
                  JobState.EXPIRED.value)


def _scoped(stmt, corp_id: int | None):
    return stmt if corp_id is None else stmt.where(Job.corp_id == corp_id)


def counts_by_state(session: Session, *, corp_id: int | None) -> dict[str, int]:
    """Jobs per state (queued, running, failed, dead, expired; done jobs pile up and are not counted)."""
    stmt = _scoped(select(Job.state, func.count()).where(Job.state.in_(COUNTED_STATES)), corp_id).group_by(Job.state)
    counts = dict.fromkeys(COUNTED_STATES, 0)
    for state, n in session.execute(stmt):
        counts[state] = n
    return counts


RECENT_OUTCOMES = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class QueueStats:
    """One queue's lag and recent outcomes (`queue_stats`)."""

    queue: str
    ready: int  # due now and waiting for a worker (the depth)
    scheduled: int  # waiting for a later run_at (retries backing off, scheduled work)
    running: int
    oldest_ready_age_s: float  # how long the oldest due job has waited (0 when none): the queue lag
    # Outcomes of the last RECENT_OUTCOMES (by finish time), and the jobs failed now, awaiting retry.
    done: int
    retrying: int
    dead: int
    expired: int
    lifo: bool = False  # served newest first now (adaptive LIFO under backlog)


def queue_stats(session: Session, *, now: dt.datetime | None = None, corp_id: int | None = None,
                window: dt.timedelta = RECENT_OUTCOMES) -> dict[str, QueueStats]:
    """Per queue: depth (ready), scheduled, running, the oldest ready job's age in seconds, and the
    outcomes of the last `window` (done, dead, expired by finish time; retrying = failed now).

    Two grouped queries over the partial indexes (waiting and running jobs, and finished jobs of
    the window): cheap enough for a metrics scrape every few seconds. `corp_id` narrows it to one
    corp (the console); None is the whole installation (operators, /metrics)."""
    now = now or utcnow()
    ready = and_(text(AVAILABLE_SQL), _t.c.run_at <= now)
    live = (
        select(
            _t.c.queue,
            func.count().filter(ready),
            func.count().filter(text(AVAILABLE_SQL), _t.c.run_at > now),
            func.count().filter(_t.c.state == JobState.RUNNING.value),
            func.count().filter(_t.c.state == JobState.FAILED.value),
            func.min(_t.c.run_at).filter(ready),
        )
        .where(_t.c.state.in_((JobState.QUEUED.value, JobState.FAILED.value, JobState.RUNNING.value)))
        .group_by(_t.c.queue)
    )
    recent = (
        select(_t.c.queue, _t.c.state, func.count())
        .where(text(FINISHED_SQL), _t.c.finished_at >= now - window)
        .group_by(_t.c.queue, _t.c.state)
    )
    if corp_id is not None:
        live, recent = live.where(_t.c.corp_id == corp_id), recent.where(_t.c.corp_id == corp_id)
    stats: dict[str, dict[str, Any]] = {}

    def entry(queue: str) -> dict[str, Any]:
        return stats.setdefault(queue, {"queue": queue, "ready": 0, "scheduled": 0, "running": 0,
                                        "oldest_ready_age_s": 0.0, "done": 0, "retrying": 0, "dead": 0,
                                        "expired": 0})

    for queue, n_ready, n_later, n_running, n_failed, oldest in session.execute(live):
        e = entry(queue)
        e.update(ready=n_ready, scheduled=n_later, running=n_running, retrying=n_failed)
        if oldest is not None:
            if oldest.tzinfo is None:  # an aggregate loses the column type on SQLite
                oldest = _parse_utc(oldest)
            e["oldest_ready_age_s"] = max(0.0, (now - oldest).total_seconds())
    for queue, state, n in session.execute(recent):
        entry(queue)[state] = n
    policies = registry.lifo_policies()
    return {
        q: QueueStats(**e, lifo=q in policies and e["oldest_ready_age_s"] >= policies[q])
        for q, e in sorted(stats.items())
    }


def _parse_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def lifo_queues_now(session: Session, *, queues: Sequence[str] | None = None,
                    now: dt.datetime | None = None) -> list[str]:
    """The adaptive-LIFO queues (registry.lifo_policies) in backlog now: their oldest due job has
    waited at least the queue's threshold. One indexed look-up per such queue (the first entry of
    ix_job_queue_ready), run by each worker about once a second."""
    now = now or utcnow()
    out = []
    for queue, after in registry.lifo_policies().items():
        if queues and queue not in queues:
            continue
        oldest = session.scalar(
            select(_t.c.run_at)
            .where(text(AVAILABLE_SQL), _t.c.queue == queue, _t.c.run_at <= now,
                   or_(_t.c.deadline_at.is_(None), _t.c.deadline_at > now))
            .order_by(_t.c.run_at)
            .limit(1)
        )
        if oldest is not None and (now - _parse_utc(oldest)).total_seconds() >= after:
            out.append(queue)
    return out


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    # Pass as `before_id` for the next (older) page; None on the last page.
    next_before_id: int | None


def list_jobs(
    session: Session,
    *,
    corp_id: int | None,
    state: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> JobPage:
    """Newest first, keyset-paginated by id (stable while jobs are added)."""
    if state is not None and state not in {s.value for s in JobState}:
        raise InvalidInput("unknown job state %(state)s", field="state", params={"state": state})
    limit = max(1, min(limit, 200))
    stmt = _scoped(select(Job), corp_id)
    if state is not None:
        stmt = stmt.where(Job.state == state)
    if before_id is not None:
        stmt = stmt.where(Job.id < before_id)
    items = list(session.scalars(stmt.order_by(Job.id.desc()).limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    return JobPage(items=items, next_before_id=items[-1].id if more else None)


def get_job(session: Session, *, job_id: int, corp_id: int | None) -> Job:
    job = session.get(Job, job_id)
    if job is None or (corp_id is not None and job.corp_id != corp_id):
        raise NotFound("no such job")
    return job


def retry_job(session: Session, *, job_id: int, corp_id: int | None = None) -> Job:
    """Re-queues a dead or failed job to run now, with a full new allowance of attempts."""
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    if job is None or (corp_id is not None and job.corp_id != corp_id):
        raise NotFound("no such job")
    if job.state not in (JobState.DEAD.value, JobState.FAILED.value):
        raise Conflict("only failed or dead jobs can be retried; this one is %(state)s", params={"state": job.state})
    job.state = JobState.QUEUED.value
    job.run_at = utcnow()
    job.finished_at = None
    job.locked_by = None
    job.lease_expires_at = None
    # `attempt` keeps counting (it is the fencing token); the allowance restarts from here.
    job.attempt_offset = job.attempt
    session.flush()
    return job


def prune(session: Session, *, now: dt.datetime | None = None, batch: int = 5000) -> int:
    """Deletes done and expired jobs older than DONE_RETENTION and dead ones older than
    DEAD_RETENTION."""
    now = now or utcnow()
    deleted = 0
    for state, keep in ((JobState.DONE.value, DONE_RETENTION), (JobState.EXPIRED.value, DONE_RETENTION),
                        (JobState.DEAD.value, DEAD_RETENTION)):
        pick = (
            select(_t.c.id)
            .where(text(FINISHED_SQL), _t.c.state == state, _t.c.finished_at < now - keep)
            .limit(batch)
        )
        result = session.execute(delete(_t).where(_t.c.id.in_(pick.scalar_subquery())))
        deleted += result.rowcount
    return deleted


# --- recurring schedules -------------------------------------------------------------------------


def upsert_schedule(
    session: Session,
    *,
    key: str,
    cron: str,
    name: str,
    payload: Mapping[str, Any] | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int | None = None,
    corp_id: int | None = None,
    enabled: bool | None = None,
    now: dt.datetime | None = None,
) -> JobSchedule:
    """Creates or updates the schedule called `key`. `enabled=None` keeps an existing schedule's
    switch (so code re-declaring a built-in schedule does not undo an operator's choice)."""
    if not key or len(key) > 200:
        raise InvalidInput("a schedule key is 1-200 characters", field="key")
    cron = parse_cron(cron)
    zone(timezone)
    now = now or utcnow()
    sched = session.scalars(select(JobSchedule).where(JobSchedule.key == key)).first()
    if sched is None:
        sched = JobSchedule(key=key, enabled=True if enabled is None else enabled)
        session.add(sched)
    elif enabled is not None:
        sched.enabled = enabled
    if sched.cron != cron or sched.timezone != timezone or sched.next_run_at is None:
        sched.next_run_at = next_fire(cron, now, timezone)
    sched.cron = cron
    sched.timezone = timezone
    sched.name = name
    sched.payload = dict(payload or {})
    sched.queue = queue
    sched.priority = priority
    sched.max_attempts = max_attempts
    sched.corp_id = corp_id
    session.flush()
    return sched


def delete_schedule(session: Session, *, key: str) -> bool:
    return session.execute(delete(_s).where(_s.c.key == key)).rowcount == 1


def list_schedules(session: Session, *, corp_id: int | None) -> list[JobSchedule]:
    stmt = select(JobSchedule)
    if corp_id is not None:
        stmt = stmt.where(JobSchedule.corp_id == corp_id)
    return list(session.scalars(stmt.order_by(JobSchedule.key)))


def schedule_job_key(schedule_key: str, fire_at: dt.datetime) -> str:
    raw = f"schedule:{schedule_key}:{fire_at.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%MZ')}"
    if len(raw) <= IDEMPOTENCY_KEY_MAX:
        return raw
    return "schedule:" + hashlib.sha256(raw.encode()).hexdigest()


def materialise_schedules(session: Session, *, now: dt.datetime | None = None, limit: int = 100) -> list[Job]:
    """Enqueues a job for every schedule whose fire time has come and moves it to its next one.

    The job's idempotency key is schedule key + fire time, so two workers doing this at once
    enqueue it once (PostgreSQL also skips schedule rows another worker has locked). A schedule
    that missed several fire times while no worker ran fires once, for the earliest, then
    continues from now: a backlog of identical reports helps nobody."""
    now = now or utcnow()
    stmt = (
        select(JobSchedule)
        .where(JobSchedule.enabled.is_(True), JobSchedule.next_run_at <= now)
        .order_by(JobSchedule.next_run_at)
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    made: list[Job] = []
    for sched in session.scalars(stmt):
        fire_at = sched.next_run_at
        made.append(
            enqueue(
                session,
                name=sched.name,
                payload=sched.payload,
                run_at=fire_at,
                queue=sched.queue,
                priority=sched.priority,
                max_attempts=sched.max_attempts,
                corp_id=sched.corp_id,
                idempotency_key=schedule_job_key(sched.key, fire_at),
            )
        )
        sched.last_run_at = fire_at
        sched.next_run_at = next_fire(sched.cron, max(fire_at, now), sched.timezone)
    session.flush()
    return made


def ensure_builtin_schedules(session: Session, *, now: dt.datetime | None = None) -> int:
    """Creates or updates the schedules that domains declare in code (registry.builtin_schedule)."""
    specs = registry.builtin_schedules()
    for spec in specs:
        upsert_schedule(
            session,
            key=spec.key,
            cron=spec.cron,
            name=spec.name,
            payload=spec.payload,
            timezone=spec.timezone,
            queue=spec.queue,
            now=now,
        )
    return len(specs)
