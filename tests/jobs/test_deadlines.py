"""Deadlines, adaptive LIFO, worker liveness and queue lag, on the queue's service functions (one
transaction each, rolled back; each test on its own queue)."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import select, update

from siyu.db import utcnow
from siyu.jobs import registry, service
from siyu.jobs.models import Job, JobWorker


def ago(seconds: float) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=seconds)


def soon(seconds: float) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=seconds)


def lease(session, queue, *, limit=10, worker="w1", lifo=()):
    return service.fetch_due(session, worker_id=worker, limit=limit, lease_seconds=60, queues=[queue], lifo=lifo)


@pytest.fixture
def lifo_policy(queue):
    registry.set_lifo_policies({queue: 3.0})
    yield
    registry.set_lifo_policies(None)


def test_a_job_past_its_deadline_is_never_leased_and_the_sweep_expires_a_backlog_in_one_go(session, queue):
    stale = [service.enqueue(session, name="test.ok", queue=queue, deadline_at=ago(1)).id for _ in range(50)]
    fresh = service.enqueue(session, name="test.ok", queue=queue, deadline_at=soon(20)).id
    timeless = service.enqueue(session, name="test.ok", queue=queue).id
    assert {j.id for j in lease(session, queue, limit=100)} == {fresh, timeless}
    assert service.sweep_expired(session) >= 50
    session.expire_all()
    rows = {j.id: j for j in session.scalars(select(Job).where(Job.queue == queue))}
    assert {rows[i].state for i in stale} == {"expired"}
    assert all(rows[i].attempt == 0 and rows[i].finished_at is not None for i in stale), "never run"
    assert "deadline passed before it could start" in rows[stale[0]].last_error
    assert service.counts_by_state(session, corp_id=None)["expired"] >= 50
    assert service.queue_stats(session)[queue].expired == 50


def test_a_retry_is_never_scheduled_past_the_deadline(session, queue):
    job = service.enqueue(session, name="test.ok", queue=queue, deadline_at=soon(5))
    (leased,) = lease(session, queue)
    # A retry inside the deadline is scheduled as asked ...
    assert service.record_failure(session, job=leased, worker_id="w1", error="busy", retry_in=1.0) == "failed"
    session.refresh(job)
    assert job.run_at < job.deadline_at
    # ... one that would start after it expires the job instead (its backoff would be wasted).
    session.execute(update(Job).where(Job.id == job.id).values(run_at=utcnow()))
    (leased,) = lease(session, queue)
    assert service.record_failure(session, job=leased, worker_id="w1", error="busy", retry_in=6.0) == "expired"
    session.refresh(job)
    assert job.state == "expired" and "after the job's deadline" in job.last_error and job.finished_at is not None
    # Exponential backoff too: never past the deadline, however many attempts were used.
    other = service.enqueue(session, name="test.ok", queue=queue, deadline_at=soon(3), max_attempts=50)
    session.execute(update(Job).where(Job.id == other.id).values(attempt=20, attempt_offset=0))
    (leased,) = lease(session, queue)
    state = service.record_failure(session, job=leased, worker_id="w1", error="x", rng=random.Random(1))
    session.refresh(other)
    assert state == "expired" or other.run_at < other.deadline_at


def test_a_lifo_queue_serves_the_newest_first_under_backlog_and_the_oldest_first_otherwise(session, queue,
                                                                                             lifo_policy):
    # No backlog: the oldest due job waited 1 s (threshold 3 s): oldest first.
    jobs = [service.enqueue(session, name="test.ok", queue=queue, run_at=ago(1.0 - i * 0.1)).id for i in range(5)]
    assert service.lifo_queues_now(session, queues=[queue]) == []
    first = lease(session, queue, limit=2, lifo=service.lifo_queues_now(session, queues=[queue]))
    assert [j.id for j in first] == jobs[:2]
    # Backlog: jobs due 30 s ago and more arriving; the newest are served first.
    backlog = [service.enqueue(session, name="test.ok", queue=queue, run_at=ago(30 - i)).id for i in range(20)]
    newest = [service.enqueue(session, name="test.ok", queue=queue, run_at=ago(0.01 * (3 - i))).id for i in range(3)]
    lifo = service.lifo_queues_now(session, queues=[queue])
    assert lifo == [queue]
    assert service.queue_stats(session)[queue].lifo
    got = lease(session, queue, limit=3, lifo=lifo)
    assert [j.id for j in got] == newest[::-1]
    assert not set(backlog) & {j.id for j in got}


def test_a_worker_whose_heartbeat_stopped_has_its_jobs_handed_on_at_once(session, queue):
    service.register_worker(session, worker_id="alive", hostname="h", pid=1, queues=[queue])
    service.register_worker(session, worker_id="gone", hostname="h", pid=2, queues=[queue])
    a = service.enqueue(session, name="test.ok", queue=queue)
    b = service.enqueue(session, name="test.ok", queue=queue)
    late = service.enqueue(session, name="test.ok", queue=queue, deadline_at=soon(30))
    (held_alive,) = lease(session, queue, limit=1, worker="alive")
    gone_jobs = lease(session, queue, limit=2, worker="gone")
    assert {j.id for j in gone_jobs} == {b.id, late.id} and held_alive.id == a.id
    # "gone" was SIGKILLed 10 s ago: no heartbeat since; its 60 s leases have not expired.
    session.execute(update(JobWorker).where(JobWorker.worker_id == "gone").values(last_seen_at=ago(10)))
    session.execute(update(Job).where(Job.id == late.id).values(deadline_at=ago(0.5)))
    assert service.worker_heartbeat(session, worker_id="alive")
    assert service.rescue_expired(session) == 0
    assert service.rescue_dead_workers(session, dead_after=6.0) == 2
    session.expire_all()
    assert session.get(Job, a.id).state == "running"  # a live worker's job stays with it
    handed_on = session.get(Job, b.id)
    assert (handed_on.state, handed_on.locked_by) == ("failed", None) and "WorkerDead" in handed_on.last_error
    assert session.get(Job, late.id).state == "expired"  # handed on past its deadline: written off
    assert [j.id for j in lease(session, queue, worker="alive")] == [b.id]
    assert session.scalar(select(JobWorker).where(JobWorker.worker_id == "gone")) is None
    # The worker was only paused: its next heartbeat finds its row gone and it registers again;
    # its old completions are refused by the fence (its attempt was superseded).
    assert not service.worker_heartbeat(session, worker_id="gone")
    assert not service.complete(session, job=gone_jobs[0], worker_id="gone", started_at=utcnow())


def test_queue_stats_give_depth_lag_running_and_recent_outcomes_per_queue(session, queue):
    other = queue + "-b"
    service.enqueue(session, name="test.ok", queue=queue, run_at=ago(12))
    service.enqueue(session, name="test.ok", queue=queue, run_at=ago(2))
    service.enqueue(session, name="test.ok", queue=queue, run_at=soon(60))
    service.enqueue(session, name="test.ok", queue=other)
    (running,) = lease(session, other)
    done = service.enqueue(session, name="test.ok", queue=other)
    (leased,) = lease(session, other)
    assert leased.id == done.id
    assert service.complete(session, job=leased, worker_id="w1", started_at=utcnow())
    stats = service.queue_stats(session)
    q, o = stats[queue], stats[other]
    assert (q.ready, q.scheduled, q.running, q.done) == (2, 1, 0, 0)
    assert 11 <= q.oldest_ready_age_s < 30
    assert (o.ready, o.running, o.done, o.oldest_ready_age_s) == (0, 1, 1, 0.0)
    assert service.queue_stats(session, corp_id=424242) == {}
