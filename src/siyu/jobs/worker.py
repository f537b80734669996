"""`siyu worker`: runs jobs from the durable queue until SIGTERM/SIGINT.

One process = one fetcher (this thread) + `concurrency` executor threads:

* The fetcher leases due jobs in batches into a small local buffer (at most `concurrency` jobs
  beyond those running, so one busy worker does not sit on work another could do), and every
  second rescues expired leases and materialises recurring schedules. It also sends the
  heartbeat that extends the leases of every job this process holds.
* Each executor keeps its own database connection(s) and runs one job per transaction: the
  handler's writes and the fenced "done" mark commit together. A handler that wrote nothing has
  no transaction to join; its "done" goes to the completer thread, which writes such marks in
  batches.
* On SIGTERM/SIGINT the fetcher stops leasing, gives back the buffered jobs no handler has
  started, and waits for running jobs to finish (up to the lease length). A second signal stops
  at once: the running transactions roll back and their jobs run again after their leases.

Logs name jobs by id, name and attempt, never their payloads."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from siyu import metrics
from siyu.db import WriteTurn, make_engine, utcnow, write_turn
from siyu.jobs import registry, service
from siyu.jobs.registry import DeadlinePassed, JobContext, PermanentFailure, RetryLater
from siyu.jobs.service import LeasedJob

log = logging.getLogger(__name__)

MAINTENANCE_SECONDS = 1.0
MAX_BATCH = 100  # jobs of one name run together by a batch handler


class UnknownJob(Exception):  # noqa: N818
    """No handler is registered under the job's name in this worker (it is retried with backoff:
    a newer worker may know it)."""


class JobSession(Session):
    """The session a handler gets. Committing is the worker's business: a handler that committed
    would split its writes from the job's completion and break exactly-once."""

    _worker_commit = False

    def commit(self) -> None:
        if not self._worker_commit:
            raise RuntimeError("a job handler must not commit; the worker commits its work with the job's completion")
        super().commit()


@dataclass
class WorkerStats:
    done: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0  # completions refused because the lease had passed to another worker
    released: int = 0
    rescued: int = 0
    scheduled: int = 0
    expired: int = 0  # jobs recorded expired (their deadline passed before they could start)


def make_worker_id() -> str:
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


class _Connections:
    """One thread's database connections, opened lazily and replaced after an error.

    `tx` carries transactions. On PostgreSQL `single` is a second connection in autocommit mode
    for work that is one statement anyway (leasing a batch, the heartbeat, completing a job whose
    handler did not touch the database): it saves the BEGIN and COMMIT round trips. On SQLite
    both are the same connection (no network; every transaction takes the write lock anyway)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._tx: Connection | None = None
        self._single: Connection | None = None

    def tx(self) -> Connection:
        if self._tx is None or self._tx.closed or self._tx.invalidated:
            self._tx = self.engine.connect()
        return self._tx

    def single(self) -> Connection:
        if not self.postgres:
            return self.tx()
        if self._single is None or self._single.closed or self._single.invalidated:
            self._single = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._single

    def close(self) -> None:
        for conn in (self._tx, self._single):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self._tx = self._single = None


class _Completer:
    """Marks done, in batches, the jobs whose handlers did not touch the database.

    Such a job has no transaction of its own to carry its "done"; committing the mark alone would
    cost a transaction per job (on PostgreSQL a round trip and a WAL flush, on SQLite a turn at
    the write lock). Marks that arrive while one batch is being written go together into the
    next transaction (River's batch completer does the same). A crash before a batch is written
    runs its jobs again after their leases, as a crash just before a single completion would."""

    MAX_BATCH = 500

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._pending: list[tuple[LeasedJob, dt.datetime]] = []
        self._cv = threading.Condition()
        self._stopped = False
        self._conns = _Connections(worker.engine)
        self._thread = threading.Thread(target=self._run, name="siyu-job-completer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, job: LeasedJob, started: dt.datetime) -> None:
        with self._cv:
            self._pending.append((job, started))
            self._cv.notify()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join(timeout)
        self._conns.close()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stopped:
                    self._cv.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
            self._flush(batch)

    def _flush(self, batch: list[tuple[LeasedJob, dt.datetime]]) -> None:
        worker = self.worker
        try:
            with Session(bind=self._conns.single()) as session:
                done = service.complete_many(session, jobs=batch, worker_id=worker.worker_id)
                session.commit()
        except Exception as exc:
            # Their leases run out and they are rescued and run again.
            log.warning("worker %s: could not mark %d jobs done: %s", worker.worker_id, len(batch),
                        service.redact(f"{type(exc).__name__}: {exc}")[:300])
            self._conns.close()
            return
        worker._bump("done", len(done))
        lost = [job.id for job, _started in batch if job.id not in done]
        if lost:
            worker._bump("lost", len(lost))
            log.warning("worker %s: jobs %s had lost their leases before completion", worker.worker_id, lost)


class Worker:
    def __init__(
        self,
        *,
        engine: Engine,
        concurrency: int,
        queues: Sequence[str] | None,
        poll_seconds: float,
        batch_size: int,
        lease_seconds: float,
        stop_event: threading.Event,
        shutdown_timeout: float | None = None,
        worker_id: str | None = None,
        sqlite_lock: WriteTurn | None = None,
        heartbeat_seconds: float = 2.0,
        dead_after_seconds: float = 6.0,
        batches: bool = True,
    ) -> None:
        self.engine = engine
        self._sqlite_lock = sqlite_lock
        self.concurrency = concurrency
        self.queues = list(queues) if queues else None
        self.poll_seconds = poll_seconds
        self.batch_size = max(1, batch_size)
        self.lease_seconds = lease_seconds
        self.stop_event = stop_event
        self.shutdown_timeout = lease_seconds if shutdown_timeout is None else shutdown_timeout
        self.worker_id = worker_id or make_worker_id()
        self.stats = WorkerStats()
        self.heartbeat_seconds = heartbeat_seconds
        self.dead_after_seconds = dead_after_seconds
        # Adaptive-LIFO queues in backlog now (re-read with the maintenance, about every second).
        self._lifo: list[str] = []
        # Queues whose work has a deadline (the adaptive-LIFO ones, e.g. welcomes within WeCom's
        # 20 s): fetched as soon as one slot is free, not only when a batch's worth is, so a
        # backlog of other work never holds them back.
        self._urgent = [q for q in registry.lifo_policies() if not self.queues or q in self.queues]

        # Jobs leased and not yet finished: buffered (not started) + running. With batch handlers a
        # deeper buffer lets jobs of one name gather into batches under a backlog.
        self.batches = batches
        self._capacity = concurrency + min(self.batch_size, concurrency * (4 if batches else 1))
        # Fetch only when this many slots are free, so batches stay worth a round trip.
        self._fetch_threshold = max(1, min(self.batch_size, self._capacity // 2))
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._buffer: collections.deque[LeasedJob] = collections.deque()
        self._held: dict[int, LeasedJob] = {}
        # Lease deadlines as the heartbeat last set them (monotonic clock), per job id.
        self._lease_until: dict[int, float] = {}
        self._missing: set[int] = set()  # held jobs the last heartbeat did not find leased
        self._stopping = False
        self._wake = threading.Event()
        self._alive_stop = threading.Event()
        self._alive_thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._conns = _Connections(engine)  # the fetcher's
        self._completer = _Completer(self)

    def _bump(self, counter: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats, counter, getattr(self.stats, counter) + n)
        metrics.count_jobs(counter, n)

    # --- the fetcher ---------------------------------------------------------------------------

    def run(self) -> WorkerStats:
        try:
            self._step(self._startup)
            self._alive_thread = threading.Thread(target=self._liveness, name="siyu-worker-alive", daemon=True)
            self._alive_thread.start()
            self._completer.start()
            for i in range(self.concurrency):
                t = threading.Thread(target=self._executor, name=f"siyu-job-{i}", daemon=True)
                t.start()
                self._threads.append(t)
            log.info(
                "worker %s started: concurrency=%d queues=%s handlers=%d",
                self.worker_id, self.concurrency, ",".join(self.queues or ["*"]), len(registry.handler_names()),
            )
            self._loop()
            self._shutdown()
        finally:
            self._alive_stop.set()
            self._conns.close()
        return self.stats

    def _loop(self) -> None:
        next_maintenance = 0.0
        next_heartbeat = time.monotonic() + self.lease_seconds / 3
        while not self.stop_event.is_set():
            self._wake.clear()
            now = time.monotonic()
            if now >= next_maintenance:
                self._step(self._maintenance)
                next_maintenance = now + MAINTENANCE_SECONDS
            if now >= next_heartbeat:
                self._step(self._heartbeat)
                next_heartbeat = now + self.lease_seconds / 3
            with self._lock:
                free = self._capacity - len(self._held)
            if free >= self._fetch_threshold:
                want = min(free, self.batch_size)
                got = self._step(lambda want=want: self._fetch(want)) or 0
                if got == want:
                    continue  # probably more due: fetch again as soon as there is room
                self.stop_event.wait(self.poll_seconds)
            elif free > 0 and self._urgent:
                got = self._step(lambda free=free: self._fetch(free, queues=self._urgent)) or 0
                if got == free:
                    continue
                self._wake.wait(self.poll_seconds)
            else:
                # Full: an executor finishing a job wakes us (or the poll interval passes, to
                # keep heartbeats and maintenance on time).
                self._wake.wait(self.poll_seconds)

    def _step(self, fn):
        """Runs one fetcher step; a database error is logged, the connections are replaced and
        the worker carries on (after a pause, so a database that is down is not hammered)."""
        try:
            return fn()
        except Exception as exc:
            log.warning("worker %s: %s", self.worker_id, service.redact(f"{type(exc).__name__}: {exc}")[:500])
            self._conns.close()
            self.stop_event.wait(1.0)
            return None

    def _startup(self) -> None:
        with Session(bind=self._conns.tx()) as session:
            self._register(session)
            service.ensure_builtin_schedules(session)
            session.commit()

    def _register(self, session: Session) -> None:
        service.register_worker(session, worker_id=self.worker_id, hostname=socket.gethostname(), pid=os.getpid(),
                                queues=self.queues, concurrency=self.concurrency)

    def _liveness(self) -> None:
        """The liveness heartbeat on a thread and connection of its own, so that a fetch or a
        maintenance step waiting on a busy database never makes a live worker look dead."""
        conns = _Connections(self.engine)
        try:
            while not self._alive_stop.wait(self.heartbeat_seconds):
                try:
                    self._alive(conns)
                except Exception as exc:
                    log.warning("worker %s: liveness: %s", self.worker_id,
                                service.redact(f"{type(exc).__name__}: {exc}")[:300])
                    conns.close()
        finally:
            conns.close()

    def _alive(self, conns: _Connections) -> None:
        """The liveness heartbeat (job_worker.last_seen_at): other workers hand this one's jobs on
        within seconds once it stops."""
        with Session(bind=conns.single()) as session:
            if not service.worker_heartbeat(session, worker_id=self.worker_id):
                # Taken for dead (a pause longer than dead_after): its jobs were handed on, and
                # their completions here will be refused by the fence. Alive again from now.
                log.warning("worker %s was taken for dead by another worker; registering again", self.worker_id)
                self._register(session)
            session.commit()

    def _fetch(self, want: int, *, queues: Sequence[str] | None = None) -> int:
        with Session(bind=self._conns.single()) as session:
            jobs = service.fetch_due(
                session, worker_id=self.worker_id, limit=want, lease_seconds=self.lease_seconds,
                queues=queues or self.queues, lifo=self._lifo,
            )
            session.commit()
        if jobs:
            deadline = time.monotonic() + self.lease_seconds
            with self._work:
                for job in jobs:
                    self._held[job.id] = job
                    self._lease_until[job.id] = deadline
                self._buffer.extend(jobs)
                self._work.notify(len(jobs))
        return len(jobs)

    def _maintenance(self) -> None:
        with Session(bind=self._conns.tx()) as session:
            rescued = service.rescue_expired(session)
            rescued += service.rescue_dead_workers(session, dead_after=self.dead_after_seconds)
            expired = service.sweep_expired(session)
            made = service.materialise_schedules(session)
            lifo = service.lifo_queues_now(session, queues=self.queues)
            session.commit()
        if lifo != self._lifo:
            log.info("worker %s: %s", self.worker_id,
                     f"serving newest first (backlog): {','.join(lifo)}" if lifo else "serving oldest first again")
            self._lifo = lifo
        self._bump("rescued", rescued)
        self._bump("expired", expired)
        self._bump("scheduled", len(made))

    def _heartbeat(self) -> None:
        with self._lock:
            ids = list(self._held)
        if not ids:
            return
        deadline = time.monotonic() + self.lease_seconds
        with Session(bind=self._conns.single()) as session:
            kept = service.extend_leases(
                session, job_ids=ids, worker_id=self.worker_id, lease_seconds=self.lease_seconds
            )
            session.commit()
        with self._lock:
            for job_id in kept:
                if job_id in self._lease_until:
                    self._lease_until[job_id] = deadline
            # A job that was just completing is missing from `kept` too; one still held at the
            # next heartbeat really lost its lease (its completion will be refused).
            missing = {job_id for job_id in ids if job_id not in kept and job_id in self._held}
            lost = sorted(missing & self._missing)
            self._missing = missing
        if lost:
            log.warning("worker %s lost the leases of jobs %s", self.worker_id, lost)

    def _shutdown(self) -> None:
        with self._work:
            self._stopping = True
            unstarted = list(self._buffer)
            self._buffer.clear()
            self._work.notify_all()
        if unstarted:

            def give_back() -> None:
                with Session(bind=self._conns.tx()) as session:
                    self._bump("released", service.release(session, jobs=unstarted, worker_id=self.worker_id))
                    session.commit()

            self._step(give_back)
            with self._lock:
                for job in unstarted:
                    self._held.pop(job.id, None)
                    self._lease_until.pop(job.id, None)
        # Wait for the running jobs, heartbeating on: a job that is finishing must keep its lease.
        deadline = time.monotonic() + self.shutdown_timeout
        next_heartbeat = time.monotonic() + self.lease_seconds / 3
        while any(t.is_alive() for t in self._threads) and time.monotonic() < deadline:
            for t in self._threads:
                t.join(min(0.1, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= next_heartbeat:
                self._step(self._heartbeat)
                next_heartbeat = time.monotonic() + self.lease_seconds / 3
        self._completer.stop()

        def unregister() -> None:
            with Session(bind=self._conns.tx()) as session:
                service.unregister_worker(session, worker_id=self.worker_id)
                session.commit()

        # No heartbeat after the row is gone (it would register the worker again).
        self._alive_stop.set()
        if self._alive_thread is not None:
            self._alive_thread.join(self.heartbeat_seconds + 5)
        self._step(unregister)
        still = [t.name for t in self._threads if t.is_alive()]
        if still:
            log.warning("worker %s: %d jobs still running at shutdown; they run again after their leases",
                        self.worker_id, len(still))
        log.info("worker %s stopped: %s", self.worker_id, self.stats)

    # --- the executors -------------------------------------------------------------------------

    def _executor(self) -> None:
        conns = _Connections(self.engine)
        try:
            while True:
                with self._work:
                    while not self._buffer and not self._stopping:
                        self._work.wait()
                    if self._stopping:
                        return
                    # The most urgent buffered job first (a welcome fetched after a batch of
                    # profile reads goes before them): lowest priority value, then oldest.
                    job = min(self._buffer, key=lambda j: (j.priority, j.run_at, j.id))
                    self._buffer.remove(job)
                    batch = [job]
                    spec = registry.get_handler(job.name)
                    if self.batches and spec is not None and spec.many is not None:
                        # The buffered jobs of the same name go with it, in one transaction.
                        for other in [j for j in self._buffer if j.name == job.name][: MAX_BATCH - 1]:
                            self._buffer.remove(other)
                            batch.append(other)
                try:
                    if len(batch) == 1:
                        self._run_one(conns, job)
                    else:
                        self._run_batch(conns, batch, spec)
                except Exception:
                    # A bug here, not in a handler: the job's lease runs out and it is rescued.
                    log.exception("worker %s: job %d (%s) could not be run", self.worker_id, job.id, job.name)
                    conns.close()
                finally:
                    with self._lock:
                        for done in batch:
                            self._held.pop(done.id, None)
                            self._lease_until.pop(done.id, None)
                        room = self._capacity - len(self._held) >= self._fetch_threshold
                    if room:
                        self._wake.set()
        finally:
            conns.close()

    def _extend_one(self, job: LeasedJob):
        def extend(seconds: float | None) -> bool:
            seconds = seconds or self.lease_seconds
            if self._sqlite_lock is not None and self._sqlite_lock.held:
                # This thread's handler transaction holds SQLite's write lock: no other worker
                # can rescue the job before it commits, and a second connection would wait on
                # that very lock.
                return True
            with self.engine.connect() as c, Session(bind=c) as session:
                kept = service.extend_leases(session, job_ids=[job.id], worker_id=self.worker_id, lease_seconds=seconds)
                session.commit()
            if job.id in kept:
                with self._lock:
                    if job.id in self._lease_until:
                        self._lease_until[job.id] = time.monotonic() + seconds
            return job.id in kept

        return extend

    def _run_batch(self, conns: _Connections, batch: list[LeasedJob], spec: registry.HandlerSpec) -> None:
        """Jobs of one name through its batch handler in one transaction that marks them all done;
        on any trouble (the handler raised, a lease was lost) rolled back and run one by one."""
        started = utcnow()
        now_m = time.monotonic()
        live: list[LeasedJob] = []
        for job in batch:
            with self._lock:
                lease_until = self._lease_until.get(job.id, 0.0)
            if now_m >= lease_until or job.past_deadline(started):
                self._run_one(conns, job)  # lost or expired: handled (and counted) as a single
            else:
                live.append(job)
        if len(live) <= 1:
            for job in live:
                self._run_one(conns, job)
            return
        ctxs = [JobContext(
            id=job.id, name=job.name, attempt=job.attempts_used, max_attempts=job.max_attempts, queue=job.queue,
            corp_id=job.corp_id, run_at=job.run_at, enqueued_at=job.enqueued_at, worker_id=self.worker_id,
            deadline_at=job.deadline_at, _extend=self._extend_one(job)) for job in live]
        session = JobSession(bind=conns.tx(), expire_on_commit=False)
        ok = False
        try:
            spec.many(session, [job.payload for job in live], ctxs)
            # All marked done in one statement, fenced per job; one lease lost fails the batch.
            done = service.complete_many(session, jobs=[(job, started) for job in live], worker_id=self.worker_id)
            ok = len(done) == len(live)
            if ok:
                session._worker_commit = True
                session.commit()
        except Exception as exc:
            log.info("worker %s: a batch of %d %s jobs failed (%s); running them one by one", self.worker_id,
                     len(live), live[0].name, service.redact(f"{type(exc).__name__}: {exc}")[:200])
            ok = False
        finally:
            if not ok:
                with contextlib.suppress(Exception):
                    session.rollback()
            session.close()
        if ok:
            self._bump("done", len(live))
            return
        for job in live:
            self._run_one(conns, job)

    def _run_one(self, conns: _Connections, job: LeasedJob) -> None:
        with self._lock:
            lease_until = self._lease_until.get(job.id, 0.0)
        if time.monotonic() >= lease_until:
            # Waited in the buffer past its lease (the heartbeat could not reach the database):
            # another worker may own it now, so do not start it here.
            self._bump("lost", 1)
            return
        started = utcnow()
        if job.past_deadline(started):
            # Waited past its deadline (in the buffer, or leased just before it): not started.
            with Session(bind=conns.single()) as s:
                expired = service.expire_leased(s, job=job, worker_id=self.worker_id, now=started)
                s.commit()
            self._bump("expired" if expired else "lost", 1)
            return
        spec = registry.get_handler(job.name)
        ctx = JobContext(
            id=job.id, name=job.name, attempt=job.attempts_used, max_attempts=job.max_attempts, queue=job.queue,
            corp_id=job.corp_id, run_at=job.run_at, enqueued_at=job.enqueued_at, worker_id=self.worker_id,
            deadline_at=job.deadline_at, _extend=self._extend_one(job),
        )
        t0 = time.perf_counter()
        session = JobSession(bind=conns.tx(), expire_on_commit=False)
        try:
            if spec is None:
                raise UnknownJob(f"no handler is registered for {job.name!r} in this worker")
            spec.fn(session, job.payload, ctx)
            untouched = not session.in_transaction() and not (session.new or session.dirty or session.deleted)
            if untouched:
                # The handler wrote nothing: its "done" has no transaction to join; batch it.
                self._completer.add(job, started)
                return
            ok = service.complete(session, job=job, worker_id=self.worker_id, started_at=started)
            if ok:
                session._worker_commit = True
                session.commit()
            else:
                session.rollback()
            if not ok:
                self._bump("lost", 1)
                log.warning("job %d (%s) attempt %d: lease lost before completion; its work was rolled back",
                            job.id, job.name, job.attempt)
                return
            self._bump("done", 1)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("job %d (%s) done in %.1f ms", job.id, job.name, (time.perf_counter() - t0) * 1000)
        except RetryLater as exc:
            self._failed(conns, session, job, exc, started, retry_in=exc.delay)
        except PermanentFailure as exc:
            self._failed(conns, session, job, exc, started, permanent=True)
        except DeadlinePassed as exc:
            self._failed(conns, session, job, exc, started, expire=True)
        except Exception as exc:
            self._failed(conns, session, job, exc, started)
        finally:
            session.close()

    def _failed(
        self,
        conns: _Connections,
        session: Session,
        job: LeasedJob,
        exc: BaseException,
        started,
        *,
        retry_in: float | None = None,
        permanent: bool = False,
        expire: bool = False,
    ) -> None:
        message = service.describe_error(exc)
        try:
            session.rollback()
            with Session(bind=conns.tx()) as s:
                state = service.record_failure(
                    s, job=job, worker_id=self.worker_id, error=message, started_at=started,
                    retry_in=retry_in, permanent=permanent, expire=expire,
                )
                s.commit()
        except Exception as db_exc:
            # The database itself failed; the lease expires and the job is rescued.
            log.warning("job %d (%s): could not record its failure: %s", job.id, job.name,
                        service.redact(f"{type(db_exc).__name__}: {db_exc}")[:300])
            conns.close()
            return
        first_line = message.splitlines()[0][:300]
        if state == "expired":
            self._bump("expired", 1)
            log.warning("job %d (%s) attempt %d failed and its retry would pass its deadline, now expired: %s",
                        job.id, job.name, job.attempts_used, first_line)
        elif state == "dead":
            self._bump("dead", 1)
            log.error("job %d (%s) attempt %d/%d failed, now dead: %s", job.id, job.name, job.attempts_used,
                      job.max_attempts, first_line)
        elif state == "failed":
            self._bump("failed", 1)
            log.warning("job %d (%s) attempt %d/%d failed, will retry: %s", job.id, job.name, job.attempts_used,
                        job.max_attempts, first_line)
        else:
            self._bump("lost", 1)


def serialise_sqlite_writes(engine: Engine) -> WriteTurn | None:
    """The SQLite write turn of `engine`'s database (see `siyu.db.WriteTurn`, installed on every
    SQLite engine; its `held` says whether the calling thread holds it), or None on other databases.

    A handler's transaction holds the turn until it commits, as it holds SQLite's lock: keep them
    short. The heartbeat asks `held` so as not to wait on a lock its own thread holds."""
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    return write_turn(engine.url.database)


def run_worker(
    concurrency: int | None = None,
    queues: Sequence[str] | None = None,
    stop_event: threading.Event | None = None,
    *,
    database_url: str | None = None,
    engine: Engine | None = None,
    poll_seconds: float | None = None,
    batch_size: int | None = None,
    lease_seconds: float | None = None,
    shutdown_timeout: float | None = None,
    extra_modules: Iterable[str] = (),
    worker_id: str | None = None,
) -> WorkerStats:
    """Runs a worker until `stop_event` is set or (in the main thread) SIGTERM/SIGINT arrives.

    Handlers: every domain's `siyu.<domain>.jobs`, the modules in SIYU_EXTRA_JOB_MODULES
    (comma-separated) and `extra_modules`."""
    from siyu.config import get_settings

    settings = get_settings()
    concurrency = concurrency or settings.worker_concurrency
    stop_event = stop_event or threading.Event()
    registry.load_handlers(extra_modules)
    own_engine = engine is None
    sqlite_lock = None
    if engine is None:
        engine = make_engine(database_url or settings.resolved_database_url(),
                             pool_size=concurrency + 3, max_overflow=concurrency + 3)
        sqlite_lock = serialise_sqlite_writes(engine)
    worker = Worker(
        engine=engine,
        concurrency=concurrency,
        queues=queues,
        poll_seconds=settings.job_poll_seconds if poll_seconds is None else poll_seconds,
        batch_size=batch_size or settings.job_batch_size,
        lease_seconds=lease_seconds or settings.job_lease_seconds,
        stop_event=stop_event,
        shutdown_timeout=shutdown_timeout,
        worker_id=worker_id,
        sqlite_lock=sqlite_lock,
        heartbeat_seconds=settings.worker_heartbeat_seconds,
        dead_after_seconds=settings.worker_dead_after_seconds,
        batches=settings.job_batch_handlers,
    )

    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        signals_seen = 0

        def on_signal(signum, _frame):
            nonlocal signals_seen
            signals_seen += 1
            if signals_seen > 1:
                log.warning("worker %s: second signal, stopping now", worker.worker_id)
                raise SystemExit(128 + signum)
            log.info("worker %s: %s received, finishing running jobs", worker.worker_id, signal.Signals(signum).name)
            stop_event.set()
            worker._wake.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        return worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if own_engine:
            engine.dispose()
