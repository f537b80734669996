"""`siyu bench jobs`: the job queue end to end, with `siyu worker` processes.

For each database (a fresh temporary SQLite file; PostgreSQL too when SIYU_BENCH_POSTGRES_URL is
set) it starts real worker processes and measures:

* throughput: N no-op jobs enqueued in batches (1,000 per transaction) while the workers run;
  jobs/s = N / (last job finished - first enqueue started);
* pick-up latency: jobs enqueued at a steady rate (--rate, well below capacity, as in normal
  operation) a few per transaction; pick-up = started_at - max(run_at, enqueued_at), i.e. from
  the moment a job could run to the moment its handler started; the 99th percentile is reported
  (under a saturating backlog pick-up is only queueing time and says nothing about the worker);
* baseline: plain multi-row INSERTs of the same rows, same batches, into a scratch table.

This module is also the workers' handler module (SIYU_EXTRA_JOB_MODULES=siyu.bench.jobs)."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, MetaData, Table, delete, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from siyu.bench.common import BenchError, percentile, stop_processes
from siyu.jobs.registry import JobContext, job_handler

HANDLER = "bench.noop"


@job_handler(HANDLER)
def bench_noop(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """The benchmark's job: no work, so the figures are the queue's own cost."""


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench jobs", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20000, help="jobs in the throughput run")
    p.add_argument("--batch", type=int, default=1000, help="jobs per enqueue transaction (throughput run)")
    p.add_argument("--latency-jobs", type=int, default=2000, help="jobs in the pick-up latency run")
    p.add_argument("--rate", type=float, default=500.0, help="jobs/s enqueued in the latency run")
    # SQLite takes one writer at a time, so more threads than this only wait; on PostgreSQL more
    # transactions in flight share each WAL flush (group commit).
    p.add_argument("--concurrency", type=int, default=4, help="executor threads per worker process on SQLite")
    p.add_argument("--postgres-concurrency", type=int, default=8,
                   help="executor threads per worker process on PostgreSQL")
    p.add_argument("--sqlite-workers", type=int, default=1, help="worker processes on SQLite")
    p.add_argument("--postgres-workers", type=int, default=2, help="worker processes on PostgreSQL")
    p.add_argument("--timeout", type=float, default=120.0, help="give up on a phase after this many seconds")
    return p.parse_args(argv)


def _rows(queue: str, start: int, count: int) -> list[dict[str, Any]]:
    return [{"name": HANDLER, "queue": queue, "payload": {"i": i}} for i in range(start, start + count)]


def _baseline(engine: Engine, queue: str, n: int, batch: int) -> float:
    """Inserts per second for the same rows into a plain table shaped like `job` (no indexes
    beyond its primary key): what the database costs before any queue logic."""
    from siyu.jobs import service
    from siyu.jobs.models import Job

    md = MetaData()
    src = Job.__table__
    table = Table(
        f"bench_baseline_{secrets.token_hex(4)}",
        md,
        *(Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in src.columns),
    )
    md.create_all(engine)
    try:
        with Session(engine) as session:
            # The same values enqueue_many writes (defaults filled in the same way).
            template = [service._job_values(**{**_spec_defaults(), **r}) for r in _rows(queue, 0, batch)]
        t0 = time.perf_counter()
        done = 0
        while done < n:
            count = min(batch, n - done)
            with Session(engine) as session:
                session.execute(insert(table), template[:count])
                session.commit()
            done += count
        return n / (time.perf_counter() - t0)
    finally:
        md.drop_all(engine)


def _spec_defaults() -> dict[str, Any]:
    from siyu.db import utcnow

    return {
        "run_at": None,
        "priority": 0,
        "idempotency_key": None,
        "max_attempts": None,
        "corp_id": None,
        "now": utcnow(),
    }


def _count(engine: Engine, queue: str, state: str | None = None) -> int:
    from siyu.jobs.models import Job

    stmt = select(func.count()).select_from(Job).where(Job.queue == queue)
    if state:
        stmt = stmt.where(Job.state == state)
    with Session(engine) as session:
        return session.scalar(stmt) or 0


def _wait_done(engine: Engine, queue: str, n: int, procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if _count(engine, queue, "done") >= n:
            return
        for p in procs:
            if p.poll() is not None:
                raise BenchError(f"a worker exited with status {p.returncode}")
        if time.monotonic() > deadline:
            raise BenchError(f"{n} jobs were not done within {timeout:.0f} s")
        time.sleep(0.05)


def _clear(engine: Engine, queue: str) -> None:
    from siyu.jobs.models import Job

    with Session(engine) as session:
        session.execute(delete(Job).where(Job.queue == queue))
        session.commit()


def _start_workers(url: str, queue: str, processes: int, concurrency: int, log_dir: Path) -> list[subprocess.Popen]:
    env = dict(
        os.environ,
        SIYU_DATABASE_URL=url,
        SIYU_EXTRA_JOB_MODULES=__name__,
        SIYU_LOG_LEVEL=os.environ.get("SIYU_LOG_LEVEL", "WARNING"),
    )
    procs = []
    for i in range(processes):
        log = open(log_dir / f"worker-{i}.log", "w")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "siyu.cli", "worker", "--concurrency", str(concurrency), "--queues", queue],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
        log.close()
    return procs


def run_backend(
    url: str, *, processes: int, concurrency: int, args: argparse.Namespace, log_dir: Path
) -> dict[str, float]:
    from siyu.db import make_engine
    from siyu.jobs import service
    from siyu.jobs.models import Job
    from siyu.migrate import upgrade

    upgrade("head", url)
    engine = make_engine(url)
    queue = f"bench-{secrets.token_hex(4)}"
    procs: list[subprocess.Popen] = []
    try:
        baseline = _baseline(engine, queue, args.jobs, args.batch)
        procs = _start_workers(url, queue, processes, concurrency, log_dir)

        # Warm-up: the workers are up and have their connections.
        warm = processes * concurrency * 4
        with Session(engine) as session:
            service.enqueue_many(session, _rows(queue, 0, warm))
            session.commit()
        _wait_done(engine, queue, warm, procs, args.timeout)
        _clear(engine, queue)

        # Throughput: enqueue in batches while the workers drain.
        t0 = time.time()
        for start in range(0, args.jobs, args.batch):
            with Session(engine) as session:
                service.enqueue_many(session, _rows(queue, start, min(args.batch, args.jobs - start)))
                session.commit()
        _wait_done(engine, queue, args.jobs, procs, args.timeout)
        with Session(engine) as session:
            last = session.scalar(select(func.max(Job.finished_at)).where(Job.queue == queue))
        jobs_per_s = args.jobs / (last.timestamp() - t0)
        _clear(engine, queue)

        # Pick-up latency at a steady rate, a few jobs per transaction every 10 ms.
        tick = 0.01
        per_tick = max(1, round(args.rate * tick))
        sent = 0
        next_at = time.perf_counter()
        while sent < args.latency_jobs:
            count = min(per_tick, args.latency_jobs - sent)
            with Session(engine) as session:
                service.enqueue_many(session, _rows(queue, sent, count))
                session.commit()
            sent += count
            next_at += tick
            time.sleep(max(0.0, next_at - time.perf_counter()))
        _wait_done(engine, queue, args.latency_jobs, procs, args.timeout)
        with Session(engine) as session:
            rows = session.execute(
                select(Job.started_at, Job.run_at, Job.enqueued_at).where(Job.queue == queue)
            ).all()
        pickups = [(s - max(r, e)).total_seconds() * 1000 for s, r, e in rows]
        _clear(engine, queue)
        return {
            "jobs_per_s": round(jobs_per_s, 1),
            "p50_pickup_ms": round(percentile(pickups, 0.50), 1),
            "p99_pickup_ms": round(percentile(pickups, 0.99), 1),
            "baseline_inserts_per_s": round(baseline, 1),
        }
    except BenchError as exc:
        tails = []
        for log in sorted(log_dir.glob("worker-*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"--- {log.name}\n" + "\n".join(lines))
        raise BenchError(f"{exc}\n" + "\n".join(tails)) from None
    finally:
        stop_processes(procs)
        with contextlib.suppress(Exception):
            _clear(engine, queue)
        engine.dispose()


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="siyu-bench-") as tmp:
        tmp_path = Path(tmp)
        sqlite_url = f"sqlite:///{tmp_path / 'bench.db'}"
        lite = run_backend(sqlite_url, processes=args.sqlite_workers, concurrency=args.concurrency, args=args,
                           log_dir=tmp_path)
        pg_url = os.environ.get("SIYU_BENCH_POSTGRES_URL")
        pg = None
        if pg_url:
            pg = run_backend(pg_url, processes=args.postgres_workers, concurrency=args.postgres_concurrency,
                             args=args, log_dir=tmp_path)
    result: dict[str, Any] = {
        "jobs_per_s_sqlite": lite["jobs_per_s"],
        "jobs_per_s_postgres": pg["jobs_per_s"] if pg else None,
        "p99_pickup_ms": lite["p99_pickup_ms"],
        "baseline_inserts_per_s": lite["baseline_inserts_per_s"],
        # Details: the same figures per database, and how they were taken.
        "p50_pickup_ms": lite["p50_pickup_ms"],
        "p99_pickup_ms_postgres": pg["p99_pickup_ms"] if pg else None,
        "baseline_inserts_per_s_postgres": pg["baseline_inserts_per_s"] if pg else None,
        "jobs": args.jobs,
        "latency_rate_per_s": args.rate,
        "workers": {
            "sqlite": {"processes": args.sqlite_workers, "concurrency": args.concurrency},
            "postgres": {"processes": args.postgres_workers, "concurrency": args.postgres_concurrency} if pg else None,
        },
        "postgres": make_url(pg_url).render_as_string(hide_password=True) if pg_url else None,
    }
    return result
