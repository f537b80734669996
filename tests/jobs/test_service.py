"""The job queue's service functions, one transaction each (the shared rolled-back `session`)."""

from __future__ import annotations

import datetime as dt
import random
import threading

import pytest
from sqlalchemy import select

from siyu.db import utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.jobs import service
from siyu.jobs.models import Job, JobSchedule, JobState
from siyu.jobs.schedule import InvalidCron

W1, W2 = "worker-1", "worker-2"


def lease(session, queue, *, worker=W1, now=None, lease_seconds=30, limit=10):
    return service.fetch_due(session, worker_id=worker, limit=limit, lease_seconds=lease_seconds, queues=[queue],
                             now=now)


# --- enqueue -------------------------------------------------------------------------------------


def test_enqueue_is_part_of_the_callers_transaction(session, queue):
    savepoint = session.begin_nested()
    job = service.enqueue(session, name="test.ok", payload={"a": 1}, queue=queue)
    assert job.id and job.state == "queued" and job.attempt == 0 and job.payload == {"a": 1}
    savepoint.rollback()
    assert session.scalar(select(Job).where(Job.queue == queue)) is None

    kept = service.enqueue(session, name="test.ok", queue=queue)
    session.flush()
    assert session.scalars(select(Job.id).where(Job.queue == queue)).all() == [kept.id]


def test_enqueue_defaults(session, queue):
    before = utcnow()
    job = service.enqueue(session, name="test.ok", queue=queue)
    assert job.run_at >= before and job.enqueued_at >= before
    assert job.max_attempts == service.DEFAULT_MAX_ATTEMPTS and job.priority == 0 and job.corp_id is None


def test_idempotency_key_dedupes(session, queue):
    first = service.enqueue(session, name="test.ok", payload={"n": 1}, queue=queue, idempotency_key=f"{queue}:k")
    again = service.enqueue(session, name="test.ok", payload={"n": 2}, queue=queue, idempotency_key=f"{queue}:k")
    assert again.id == first.id and again.payload == {"n": 1}
    other = service.enqueue(session, name="test.ok", queue=queue, idempotency_key=f"{queue}:other")
    assert other.id != first.id
    assert len(session.scalars(select(Job.id).where(Job.queue == queue)).all()) == 2


def test_enqueue_many_skips_existing_keys(session, queue):
    service.enqueue(session, name="test.ok", queue=queue, idempotency_key=f"{queue}:1")
    ids = service.enqueue_many(session, [
        {"name": "test.ok", "queue": queue, "idempotency_key": f"{queue}:1"},
        {"name": "test.ok", "queue": queue, "idempotency_key": f"{queue}:2"},
        {"name": "test.ok", "queue": queue, "payload": {"x": 1}},
    ])
    assert len(ids) == 2
    assert len(session.scalars(select(Job.id).where(Job.queue == queue)).all()) == 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "test.ok", "queue": ""}, "queue"),
        ({"name": "test.ok", "payload": {"when": dt.datetime.now(dt.UTC)}}, "payload"),
        ({"name": "test.ok", "payload": ["not", "an", "object"]}, "payload"),
        ({"name": "test.ok", "run_at": dt.datetime(2030, 1, 1)}, "run_at"),
        ({"name": "test.ok", "max_attempts": 0}, "max_attempts"),
        ({"name": "test.ok", "idempotency_key": "k" * 256}, "idempotency_key"),
    ],
)
def test_enqueue_refuses_bad_input(session, kwargs, field):
    with pytest.raises(InvalidInput) as info:
        service.enqueue(session, **kwargs)
    assert info.value.field == field


def test_concurrent_enqueues_with_one_key_make_one_job(committed, queue):
    """Two transactions racing with the same key: the second waits for the first (PostgreSQL's
    unique index, SQLite's write lock) and then gets its job instead of a second one."""
    key = f"{queue}:race"
    seen: list[int] = []

    def second() -> None:
        with committed() as s:
            seen.append(service.enqueue(s, name="test.ok", queue=queue, idempotency_key=key).id)
            s.commit()

    with committed() as first:
        job = service.enqueue(first, name="test.ok", queue=queue, idempotency_key=key)
        t = threading.Thread(target=second)
        t.start()
        t.join(0.3)
        waited = t.is_alive()
        first.commit()
    t.join(10)
    assert waited, "the second enqueue should wait for the first transaction"
    assert seen == [job.id]
    with committed() as s:
        assert s.scalars(select(Job.id).where(Job.queue == queue)).all() == [job.id]


# --- leasing -------------------------------------------------------------------------------------


def test_fetch_leases_due_jobs_by_priority_then_time(session, queue):
    now = utcnow()
    late = service.enqueue(session, name="test.ok", queue=queue, run_at=now - dt.timedelta(seconds=5))
    early = service.enqueue(session, name="test.ok", queue=queue, run_at=now - dt.timedelta(seconds=10))
    urgent = service.enqueue(session, name="test.ok", queue=queue, priority=-1, run_at=now)
    future = service.enqueue(session, name="test.ok", queue=queue, run_at=now + dt.timedelta(hours=1))
    service.enqueue(session, name="test.ok", queue=queue + "-other")

    jobs = lease(session, queue, now=now)
    assert [j.id for j in jobs] == [urgent.id, early.id, late.id]
    assert all(j.attempt == 1 and j.attempts_used == 1 for j in jobs)
    session.expire_all()
    row = session.get(Job, early.id)
    assert row.state == "running" and row.locked_by == W1
    assert row.lease_expires_at == now + dt.timedelta(seconds=30)
    assert session.get(Job, future.id).state == "queued"
    # Leased jobs are not handed out again.
    assert lease(session, queue, worker=W2, now=now) == []


def test_fetch_respects_the_limit_and_queues(session, queue):
    for _ in range(5):
        service.enqueue(session, name="test.ok", queue=queue)
    service.enqueue(session, name="test.ok", queue=queue + "-b")
    assert len(lease(session, queue, limit=3)) == 3
    both = service.fetch_due(session, worker_id=W1, limit=10, lease_seconds=30, queues=[queue, queue + "-b"])
    assert len(both) == 3
    assert service.fetch_due(session, worker_id=W1, limit=0, lease_seconds=30) == []


def test_complete_is_fenced_by_the_attempt(session, queue):
    job = service.enqueue(session, name="test.ok", queue=queue)
    now = utcnow()
    (first,) = lease(session, queue, now=now, lease_seconds=5)
    # The first worker stalls past its lease; another worker rescues and leases the job.
    later = now + dt.timedelta(seconds=6)
    assert service.rescue_expired(session, now=later) == 1
    (second,) = lease(session, queue, worker=W2, now=later)
    assert second.attempt == 2

    assert service.complete(session, job=first, worker_id=W1, started_at=now) is False
    assert service.record_failure(session, job=first, worker_id=W1, error="late") is None
    assert service.complete(session, job=second, worker_id=W2, started_at=later) is True
    session.expire_all()
    row = session.get(Job, job.id)
    assert row.state == "done" and row.attempt == 2 and row.locked_by is None and row.finished_at is not None
    # Done is final: a duplicate completion matches nothing.
    assert service.complete(session, job=second, worker_id=W2, started_at=later) is False


def test_complete_many_marks_a_batch_in_one_statement_fenced_per_job(session, queue):
    """A batch handler's jobs (and the completer's) are marked done together; each is fenced like
    `complete`: a job whose lease passed to another worker is not marked, the others are."""
    ids = [service.enqueue(session, name="test.ok", queue=queue).id for _ in range(4)]
    now = utcnow()
    held = lease(session, queue, now=now, lease_seconds=5)
    assert sorted(j.id for j in held) == ids
    # The last one is rescued after the lease and taken by another worker.
    session.execute(Job.__table__.update().where(Job.id == ids[-1]).values(lease_expires_at=now))
    later = now + dt.timedelta(seconds=1)
    assert service.rescue_expired(session, now=later) == 1
    (taken,) = lease(session, queue, worker=W2, now=later)
    statements = []
    from sqlalchemy import event

    def count(*_args):
        statements.append(1)

    event.listen(session.connection(), "before_cursor_execute", count)
    try:
        started = [now, now, now + dt.timedelta(milliseconds=3), now]
        done = service.complete_many(session, jobs=list(zip(held, started, strict=True)), worker_id=W1, now=later)
    finally:
        event.remove(session.connection(), "before_cursor_execute", count)
    assert done == set(ids[:3])
    assert len(statements) <= 2  # one per distinct start time at most (SQLite), one on PostgreSQL
    session.expire_all()
    rows = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
    assert [rows[i].state for i in ids] == ["done", "done", "done", "running"]
    assert rows[ids[2]].started_at == started[2] and rows[ids[0]].finished_at == later
    assert rows[ids[-1]].locked_by == W2
    # Done is final: completing again marks nothing, nor does the other worker's own fence pass for W1.
    assert service.complete_many(session, jobs=[(held[0], now), (taken, later)], worker_id=W1) == set()
    assert service.complete_many(session, jobs=[(taken, later)], worker_id=W2) == {ids[-1]}


def test_expired_lease_is_rescued_and_run_again(session, queue):
    job = service.enqueue(session, name="test.ok", queue=queue)
    now = utcnow()
    lease(session, queue, now=now, lease_seconds=10)
    assert service.rescue_expired(session, now=now + dt.timedelta(seconds=9)) == 0
    assert service.rescue_expired(session, now=now + dt.timedelta(seconds=11)) == 1
    session.expire_all()
    row = session.get(Job, job.id)
    assert row.state == "failed" and row.locked_by is None and "LeaseExpired" in row.last_error
    assert [j.id for j in lease(session, queue, now=now + dt.timedelta(seconds=11))] == [job.id]


def test_expired_lease_on_the_last_attempt_is_dead(session, queue):
    job = service.enqueue(session, name="test.ok", queue=queue, max_attempts=1)
    now = utcnow()
    lease(session, queue, now=now, lease_seconds=1)
    assert service.rescue_expired(session, now=now + dt.timedelta(seconds=2)) == 1
    session.expire_all()
    assert session.get(Job, job.id).state == "dead"


def test_heartbeat_extends_only_own_running_leases(session, queue):
    a = service.enqueue(session, name="test.ok", queue=queue)
    now = utcnow()
    (leased,) = lease(session, queue, now=now, lease_seconds=10)
    later = now + dt.timedelta(seconds=8)
    assert service.extend_leases(session, job_ids=[a.id], worker_id=W2, lease_seconds=10, now=later) == set()
    assert service.extend_leases(session, job_ids=[a.id], worker_id=W1, lease_seconds=10, now=later) == {a.id}
    # Extended: not expired where the first lease would have been.
    assert service.rescue_expired(session, now=now + dt.timedelta(seconds=12)) == 0
    assert service.complete(session, job=leased, worker_id=W1, started_at=now)


def test_release_gives_back_unstarted_jobs_without_counting_an_attempt(session, queue):
    job = service.enqueue(session, name="test.ok", queue=queue)
    jobs = lease(session, queue)
    assert service.release(session, jobs=jobs, worker_id=W1) == 1
    session.expire_all()
    row = session.get(Job, job.id)
    assert row.state == "queued" and row.attempt == 0 and row.locked_by is None


# --- failures, backoff, dead letters, retry ------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter():
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(service.BACKOFF_CAP_SECONDS, service.BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        samples = [service.backoff_seconds(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        # Full jitter: spread over the whole range, not clustered at the ceiling.
        assert min(samples) < ceiling * 0.1 and max(samples) > ceiling * 0.9
    assert service.backoff_seconds(50, rng=rng) <= service.BACKOFF_CAP_SECONDS


def test_failure_waits_for_a_retry_then_dies_when_attempts_are_used_up(session, queue):
    job = service.enqueue(session, name="test.boom", queue=queue, max_attempts=2)
    now = utcnow()
    (first,) = lease(session, queue, now=now)
    state = service.record_failure(session, job=first, worker_id=W1, error=RuntimeError("boom"), now=now,
                                   rng=random.Random(1))
    assert state == "failed"
    session.expire_all()
    row = session.get(Job, job.id)
    assert row.state == "failed" and row.last_error.startswith("RuntimeError: boom")
    assert now <= row.run_at <= now + dt.timedelta(seconds=service.BACKOFF_BASE_SECONDS)
    assert lease(session, queue, now=now - dt.timedelta(seconds=1)) == []  # not due before its backoff

    (second,) = lease(session, queue, now=row.run_at)
    assert second.attempts_used == 2
    assert service.record_failure(session, job=second, worker_id=W1, error="again", now=row.run_at) == "dead"
    session.expire_all()
    row = session.get(Job, job.id)
    assert row.state == "dead" and row.finished_at is not None and row.last_error == "again"
    assert lease(session, queue, now=row.run_at + dt.timedelta(days=1)) == []


def test_retry_later_and_permanent_failures(session, queue):
    service.enqueue(session, name="test.ok", queue=queue)
    service.enqueue(session, name="test.ok", queue=queue)
    now = utcnow()
    a, b = lease(session, queue, now=now)
    assert service.record_failure(session, job=a, worker_id=W1, error="rate limited", retry_in=30, now=now) == "failed"
    assert session.get(Job, a.id).run_at == now + dt.timedelta(seconds=30)
    assert service.record_failure(session, job=b, worker_id=W1, error="bad", permanent=True, now=now) == "dead"


def test_retry_job_requeues_dead_and_failed_jobs_with_a_new_allowance(session, queue):
    job = service.enqueue(session, name="test.boom", queue=queue, max_attempts=1, corp_id=41)
    (leased,) = lease(session, queue)
    service.record_failure(session, job=leased, worker_id=W1, error="boom")
    session.expire_all()
    assert session.get(Job, job.id).state == "dead"

    with pytest.raises(NotFound):
        service.retry_job(session, job_id=job.id, corp_id=42)
    retried = service.retry_job(session, job_id=job.id, corp_id=41)
    assert retried.state == "queued" and retried.attempts_used == 0 and retried.attempt == 1
    with pytest.raises(Conflict):
        service.retry_job(session, job_id=job.id)
    (again,) = lease(session, queue)
    assert again.attempt == 2 and again.attempts_used == 1  # a new fencing token, a fresh allowance
    with pytest.raises(NotFound):
        service.retry_job(session, job_id=10**12)


def test_error_text_is_redacted_and_truncated():
    try:
        raise ValueError("GET /gettoken?corpid=ww1&corpsecret=abc123 Authorization: Bearer tok.en-1 "
                         "password=hunter2 key sk_live_abcdefgh id 110101199003077777 " + "x" * 5000)
    except ValueError as exc:
        text = service.describe_error(exc)
    for secret in ("abc123", "tok.en-1", "hunter2", "sk_live_abcdefgh", "110101199003077777"):
        assert secret not in text
    assert text.startswith("ValueError: GET /gettoken?corpid=ww1&corpsecret=***")
    assert len(text) <= service.ERROR_MAX_CHARS


# --- console queries -----------------------------------------------------------------------------


def test_counts_and_listing_are_per_corp(session, queue):
    corp_a, corp_b = 9_000_001, 9_000_002
    for _ in range(3):
        service.enqueue(session, name="test.ok", queue=queue, corp_id=corp_a)
    service.enqueue(session, name="test.ok", queue=queue, corp_id=corp_b)
    service.enqueue(session, name="test.ok", queue=queue)  # installation-level
    (leased, *_rest) = lease(session, queue, limit=1)
    assert service.counts_by_state(session, corp_id=corp_a) == {"queued": 2, "running": 1, "failed": 0, "dead": 0,
                                                                "expired": 0}
    assert service.counts_by_state(session, corp_id=corp_b)["queued"] == 1

    page = service.list_jobs(session, corp_id=corp_a, limit=2)
    assert len(page.items) == 2 and page.next_before_id == page.items[-1].id
    assert [j.id for j in page.items] == sorted((j.id for j in page.items), reverse=True)
    rest = service.list_jobs(session, corp_id=corp_a, limit=2, before_id=page.next_before_id)
    assert len(rest.items) == 1 and rest.next_before_id is None
    assert all(j.corp_id == corp_a for j in page.items + rest.items)
    running = service.list_jobs(session, corp_id=corp_a, state="running")
    assert [j.id for j in running.items] == [leased.id]
    with pytest.raises(InvalidInput):
        service.list_jobs(session, corp_id=corp_a, state="bogus")
    with pytest.raises(NotFound):
        service.get_job(session, job_id=leased.id, corp_id=corp_b)


def test_prune_deletes_old_finished_jobs(session, queue):
    now = utcnow()
    old_done = service.enqueue(session, name="test.ok", queue=queue)
    new_done = service.enqueue(session, name="test.ok", queue=queue)
    old_dead = service.enqueue(session, name="test.ok", queue=queue)
    queued = service.enqueue(session, name="test.ok", queue=queue)
    session.flush()
    for job, state, age in ((old_done, "done", 8), (new_done, "done", 1), (old_dead, "dead", 31)):
        job.state, job.finished_at = state, now - dt.timedelta(days=age)
    session.flush()
    assert service.prune(session, now=now) >= 2
    remaining = set(session.scalars(select(Job.id).where(Job.queue == queue)))
    assert remaining == {new_done.id, queued.id}


# --- schedules -----------------------------------------------------------------------------------


def test_schedule_materialises_once_per_fire_time(session, queue):
    t0 = dt.datetime(2030, 3, 1, 1, 2, tzinfo=dt.UTC)  # 09:02 in Shanghai
    sched = service.upsert_schedule(session, key=f"{queue}:report", cron="30 9 * * *", name="test.ok",
                                    payload={"r": 1}, queue=queue, corp_id=7, now=t0)
    assert sched.next_run_at == dt.datetime(2030, 3, 1, 1, 30, tzinfo=dt.UTC)
    assert service.materialise_schedules(session, now=t0) == []

    fire = dt.datetime(2030, 3, 1, 1, 30, 5, tzinfo=dt.UTC)
    (job,) = service.materialise_schedules(session, now=fire)
    assert job.name == "test.ok" and job.payload == {"r": 1} and job.corp_id == 7 and job.queue == queue
    assert job.run_at == sched.last_run_at == dt.datetime(2030, 3, 1, 1, 30, tzinfo=dt.UTC)
    assert sched.next_run_at == dt.datetime(2030, 3, 2, 1, 30, tzinfo=dt.UTC)
    assert service.materialise_schedules(session, now=fire) == []

    # A second worker that read the schedule before the first moved it on enqueues nothing new.
    sched.next_run_at = job.run_at
    session.flush()
    (same,) = service.materialise_schedules(session, now=fire)
    assert same.id == job.id
    assert len(session.scalars(select(Job.id).where(Job.queue == queue)).all()) == 1


def test_a_schedule_that_missed_fires_runs_once_then_continues_from_now(session, queue):
    t0 = dt.datetime(2030, 3, 1, 0, 0, tzinfo=dt.UTC)
    sched = service.upsert_schedule(session, key=f"{queue}:tick", cron="*/10 * * * *", name="test.ok",
                                    queue=queue, now=t0)
    much_later = t0 + dt.timedelta(hours=5, minutes=3)
    made = service.materialise_schedules(session, now=much_later)
    assert len(made) == 1
    assert sched.next_run_at == dt.datetime(2030, 3, 1, 5, 10, tzinfo=dt.UTC)


def test_upsert_schedule_updates_and_keeps_the_switch(session, queue):
    t0 = dt.datetime(2030, 3, 1, 0, 0, tzinfo=dt.UTC)
    key = f"{queue}:s"
    service.upsert_schedule(session, key=key, cron="0 * * * *", name="test.ok", queue=queue, now=t0)
    sched = service.upsert_schedule(session, key=key, cron="0 * * * *", name="test.ok", queue=queue,
                                    enabled=False, now=t0)
    again = service.upsert_schedule(session, key=key, cron="15 * * * *", name="test.ok", queue=queue, now=t0)
    assert again.id == sched.id and again.enabled is False
    assert again.next_run_at == dt.datetime(2030, 3, 1, 0, 15, tzinfo=dt.UTC)
    # Disabled: never materialised.
    assert service.materialise_schedules(session, now=t0 + dt.timedelta(days=1)) == []
    assert [s.key for s in service.list_schedules(session, corp_id=None) if s.key == key] == [key]
    assert service.delete_schedule(session, key=key) is True
    assert session.scalar(select(JobSchedule).where(JobSchedule.key == key)) is None


@pytest.mark.parametrize("cron", ["* * * *", "* * * * * *", "61 * * * *", "0 0 30 2 *", "0 0 L * *", "@daily",
                                  "H * * * *"])
def test_bad_cron_expressions_are_refused(session, queue, cron):
    with pytest.raises(InvalidCron):
        service.upsert_schedule(session, key=f"{queue}:bad", cron=cron, name="test.ok")


def test_builtin_schedules_are_created(session):
    from siyu.jobs import registry

    registry.load_handlers()
    assert service.ensure_builtin_schedules(session) >= 1
    prune = session.scalar(select(JobSchedule).where(JobSchedule.key == "jobs.prune"))
    assert prune is not None and prune.enabled and prune.name == "jobs.prune"


def test_states_are_the_documented_six():
    assert [s.value for s in JobState] == ["queued", "running", "failed", "done", "dead", "expired"]
