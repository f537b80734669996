"""The worker for real: threads and `siyu worker` processes on the test database (committed rows,
each test on its own queue), graceful shutdown, and a crash mid-job that must not repeat an effect."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from siyu.db import utcnow
from siyu.jobs import service
from siyu.jobs.models import Job
from siyu.jobs.worker import run_worker
from waiting import wait_for

from .conftest import EFFECT_TABLE, worker_command, worker_env

pytestmark = pytest.mark.slow


def states(committed, queue) -> dict[int, str]:
    with committed() as s:
        return dict(s.execute(select(Job.id, Job.state).where(Job.queue == queue)).all())


def effects(committed, key: str) -> list[tuple]:
    with committed() as s:
        return list(s.execute(text(f"SELECT key, job_id, attempt FROM {EFFECT_TABLE} WHERE key = :k"), {"k": key}))


def enqueue(committed, **kwargs) -> int:
    with committed() as s:
        job = service.enqueue(s, **kwargs)
        s.commit()
        return job.id


@contextlib.contextmanager
def worker_thread(database_url: str, queue: str, **kwargs) -> Iterator[threading.Event]:
    stop = threading.Event()
    kwargs.setdefault("poll_seconds", 0.01)
    kwargs.setdefault("lease_seconds", 30)
    thread = threading.Thread(
        target=run_worker,
        kwargs={"concurrency": 2, "queues": [queue], "stop_event": stop, "database_url": database_url, **kwargs},
        daemon=True,
    )
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the worker thread did not stop"


@contextlib.contextmanager
def worker_process(database_url: str, queue: str, log: Path, concurrency: int = 2, **env: str):
    with open(log, "ab") as out:
        proc = subprocess.Popen(worker_command(queue, concurrency), env=worker_env(database_url, **env),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_worker_runs_jobs_and_records_each_outcome(database_url, committed, queue):
    k = f"{queue}:"
    ok = enqueue(committed, name="test.ok", payload={"key": k + "ok"}, queue=queue)
    plain = enqueue(committed, name="test.ok", queue=queue)  # writes nothing: marked done in a batch
    boom = enqueue(committed, name="test.boom", payload={"key": k + "boom"}, queue=queue, max_attempts=1)
    flaky = enqueue(committed, name="test.flaky", payload={"key": k + "flaky"}, queue=queue, max_attempts=3)
    permanent = enqueue(committed, name="test.permanent", queue=queue, max_attempts=5)
    unknown = enqueue(committed, name="test.no-such-handler", queue=queue, max_attempts=1)
    commits = enqueue(committed, name="test.commits", queue=queue, max_attempts=1)
    later = enqueue(committed, name="test.ok", queue=queue, run_at=utcnow() + dt.timedelta(hours=1))
    expected = {ok: "done", plain: "done", boom: "dead", flaky: "done", permanent: "dead", unknown: "dead",
                commits: "dead", later: "queued"}

    with worker_thread(database_url, queue):
        wait_for(lambda: states(committed, queue) == expected, 20, f"states {expected}, {states(committed, queue)}")

    assert effects(committed, k + "ok") == [(k + "ok", ok, 1)]
    assert effects(committed, k + "boom") == []  # rolled back with the failed attempt
    assert effects(committed, k + "flaky") == [(k + "flaky", flaky, 2)]
    with committed() as s:
        rows = {j.id: j for j in s.scalars(select(Job).where(Job.queue == queue))}
    assert rows[boom].last_error.startswith("RuntimeError: boom: corpsecret=***")
    assert "13800138000" not in rows[boom].last_error
    assert rows[permanent].attempt == 1 and "PermanentFailure" in rows[permanent].last_error
    assert "UnknownJob" in rows[unknown].last_error
    assert "must not commit" in rows[commits].last_error
    assert rows[ok].started_at is not None and rows[ok].finished_at >= rows[ok].started_at
    assert rows[ok].locked_by is None and rows[ok].lease_expires_at is None
    assert rows[plain].finished_at >= rows[plain].started_at and rows[plain].locked_by is None


def test_heartbeat_keeps_a_long_job_from_being_taken(database_url, committed, queue, tmp_path):
    """A job running past its lease length stays with its worker: the heartbeat extends the lease,
    so a second worker never rescues it and the effect is written once, on attempt 1."""
    key = f"{queue}:long"
    job_id = enqueue(committed, name="test.slow", payload={"key": key, "seconds": 2.5}, queue=queue)
    with worker_thread(database_url, queue, lease_seconds=1), worker_thread(database_url, queue, lease_seconds=1):
        wait_for(lambda: states(committed, queue) == {job_id: "done"}, 20, "the long job to finish")
    assert effects(committed, key) == [(key, job_id, 1)]
    with committed() as s:
        assert s.get(Job, job_id).attempt == 1


def test_sigterm_finishes_the_running_job_and_gives_back_the_rest(database_url, committed, queue, tmp_path):
    started = tmp_path / "started"
    key = f"{queue}:slow"
    slow = enqueue(committed, name="test.slow", priority=-1, queue=queue,
                   payload={"key": key, "seconds": 1.5, "started_file": str(started), "note": "payload-not-logged"})
    rest = [enqueue(committed, name="test.ok", queue=queue, payload={"note": "payload-not-logged"})
            for _ in range(3)]
    log = tmp_path / "worker.log"
    with worker_process(database_url, queue, log, concurrency=1) as proc:
        wait_for(started.exists, 30, "the slow job to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    output = log.read_text()
    assert "payload-not-logged" not in output
    assert effects(committed, key) == [(key, slow, 1)]
    with committed() as s:
        jobs = {j.id: j for j in s.scalars(select(Job).where(Job.queue == queue))}
    assert jobs[slow].state == "done"
    for job_id in rest:  # leased into the buffer but never started, or never leased
        assert (jobs[job_id].state, jobs[job_id].attempt, jobs[job_id].locked_by) == ("queued", 0, None)


def test_a_crash_mid_job_reruns_it_after_its_lease_and_the_effect_happens_once(database_url, committed, queue,
                                                                                   tmp_path):
    """The handler writes its effect and hangs before the commit; the worker is SIGKILLed there.
    Nothing of that attempt is committed; another worker rescues the job when its lease expires
    and runs it again; the effect (a row with a unique key) exists once, from attempt 2."""
    hang = tmp_path / "hanging"
    key = f"{queue}:effect"
    job_id = enqueue(committed, name="test.effect", queue=queue, payload={"key": key, "hang_file": str(hang)})
    log = tmp_path / "workers.log"
    with worker_process(database_url, queue, log, concurrency=1, SIYU_JOB_LEASE_SECONDS="2") as first:
        wait_for(hang.exists, 30, "the handler to write its effect and hang")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert effects(committed, key) == []  # the killed attempt committed nothing
    with committed() as s:
        row = s.get(Job, job_id)
        assert (row.state, row.attempt) == ("running", 1)

    with worker_process(database_url, queue, log, concurrency=1, SIYU_JOB_LEASE_SECONDS="2") as second:
        wait_for(lambda: states(committed, queue) == {job_id: "done"}, 30, "the rescued job to finish")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    assert effects(committed, key) == [(key, job_id, 2)]
    with committed() as s:
        row = s.get(Job, job_id)
        assert row.attempt == 2 and "LeaseExpired" in row.last_error
