"""Engine and sessions: SQLite in WAL mode by default, PostgreSQL (psycopg 3) in production."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import Depends
from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from siyu.errors import DatabaseBusy

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Siyu stores aware UTC times only")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime()}


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WriteTurn:
    """Hands SQLite's write lock from one transaction to the next at once, across threads and
    processes.

    Every SQLite transaction here starts with BEGIN IMMEDIATE, i.e. takes the database's write
    lock. A transaction that finds it taken is put to sleep by SQLite's busy handler for 1, 2, 5,
    10 ... 100 ms at a time, so under load (a callback burst while workers run) lock waits grow
    to hundreds of milliseconds while the lock itself is free most of that time. This turn is
    taken just before BEGIN and given back right after COMMIT or ROLLBACK: a thread lock among
    this process's threads, and an exclusive `flock` on `<database>-writelock` among processes,
    tried every 0.2–2 ms. SQLite's own lock stays the guarantee; the turn only makes the waiting
    efficient.

    The turn belongs to the database connection whose transaction took it, not to a thread: a
    request's transaction may begin in one worker thread and commit in another."""

    def __init__(self, database: str) -> None:
        self.path = database + "-writelock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._lock = threading.Lock()  # released by whichever thread ends the transaction
        self._owner: object | None = None  # the DBAPI connection holding the turn
        self._owner_thread: int | None = None

    @property
    def held(self) -> bool:
        """Whether the calling thread began the transaction that holds the turn."""
        return self._owner is not None and self._owner_thread == threading.get_ident()

    def acquire(self, connection: object, timeout: float = 30.0) -> None:
        connection = _raw(connection)
        if self._owner is connection:
            return
        if not self._lock.acquire(timeout=timeout):
            raise DatabaseBusy(f"no write turn on the database within {timeout:g} s")
        try:
            self._flock(time.monotonic() + timeout)
        except BaseException:
            self._lock.release()
            raise
        self._owner, self._owner_thread = connection, threading.get_ident()

    def _flock(self, deadline: float) -> None:
        # Polled rather than blocking so that it can give up like SQLite's busy timeout would;
        # at most 2 ms between tries, against SQLite's up to 100 ms.
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DatabaseBusy("no write turn on the database: another process holds it") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def release(self, connection: object) -> None:
        if self._owner is None or self._owner is not _raw(connection):
            return
        self._owner = self._owner_thread = None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def install(self, engine: Engine, *, timeout: float = 30.0) -> None:
        """Take the turn before each BEGIN of `engine` (waiting at most `timeout` seconds) and give it
        back after COMMIT/ROLLBACK."""
        event.listen(engine, "begin", lambda conn: self.acquire(conn.connection, timeout))
        dialect = engine.dialect
        do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

        def commit(dbapi_connection) -> None:
            try:
                do_commit(dbapi_connection)
            finally:
                self.release(dbapi_connection)

        def rollback(dbapi_connection) -> None:
            try:
                do_rollback(dbapi_connection)
            finally:
                self.release(dbapi_connection)

        # No event fires after COMMIT has completed, so the engine's own dialect instance gets
        # wrapped commit and rollback (each engine has its own dialect instance).
        dialect.do_commit = commit  # type: ignore[method-assign]
        dialect.do_rollback = rollback  # type: ignore[method-assign]


def _raw(connection: object) -> object:
    """The DBAPI connection under SQLAlchemy's pool proxy (the same object for begin and commit)."""
    return getattr(connection, "dbapi_connection", connection)


_turns: dict[str, WriteTurn] = {}
_turns_lock = threading.Lock()


def write_turn(database: str) -> WriteTurn:
    """The process's one write turn for a SQLite database file (shared by all its engines)."""
    key = os.path.realpath(database)
    with _turns_lock:
        turn = _turns.get(key)
        if turn is None:
            turn = _turns[key] = WriteTurn(key)
        return turn


def make_engine(url: str, *, busy_timeout: float = 30.0, **kwargs) -> Engine:
    """An engine for `url`. On SQLite, `busy_timeout` (seconds) bounds the wait for the write lock;
    a transaction that waited longer fails with `siyu.errors.DatabaseBusy` (answered 503)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Let SQLAlchemy own transaction boundaries (see the "begin" hook below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.close()

        turn = write_turn(u.database) if u.database and u.database != ":memory:" else None
        if turn is not None:
            turn.install(engine, timeout=busy_timeout)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # IMMEDIATE takes the write lock up front, so a transaction that reads and then
            # writes waits on busy_timeout instead of failing with SQLITE_BUSY when another
            # process (serve, worker) committed in between. Transactions are kept short, so the
            # serialisation this brings costs little on one machine.
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                if turn is not None:
                    turn.release(conn.connection)  # no transaction began: no COMMIT/ROLLBACK will
                raise

        return engine
    if u.drivername in ("postgresql", "postgres"):
        url = u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, **kwargs)


_engine: Engine | None = None
_factory: sessionmaker[Session] | None = None


def configure(url: str | None = None) -> Engine:
    """(Re)configure the process-wide engine; tests and the CLI call this."""
    global _engine, _factory
    from siyu.config import get_settings

    if _engine is not None:
        _engine.dispose()
    _engine = make_engine(url or get_settings().resolved_database_url())
    _factory = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def get_engine() -> Engine:
    if _engine is None:
        configure()
    assert _engine is not None
    return _engine


def session_factory() -> sessionmaker[Session]:
    if _factory is None:
        configure()
    assert _factory is not None
    return _factory


class GroupCommitter:
    """Runs small units of work from many threads in shared transactions: one writer thread takes
    whatever has been submitted (up to `max_batch`), runs them in one transaction, commits once,
    and then completes each submitter's future (group commit).

    For endpoints that many callers hit at once with tiny writes (the WeCom callback): one BEGIN,
    one COMMIT and one turn at the write lock for a whole batch instead of one each, which is what
    bounds SQLite's write rate. A submitter learns its outcome only after the commit, so "done"
    still means durable. When anything in a batch fails, the batch is rolled back and each of its
    units runs again in a transaction of its own, so a bad unit fails alone. Units must therefore
    be safe to run twice after a rollback (database work only, no outside effects).

    `run_many(session, units) -> results`: how a batch's units run (by default each unit is a
    function of the session, called in turn); given, the units are plain values that it handles
    together, e.g. in one multi-row statement. It gets a one-unit list when a unit runs alone."""

    def __init__(self, *, max_batch: int = 100, name: str = "group-commit", run_many=None) -> None:
        import queue

        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._max_batch = max_batch
        self._name = name
        self._run_many = run_many or (lambda session, units: [work(session) for work in units])
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, work):
        """Queue `work(session)` (or the unit `work` for `run_many`); returns a
        `concurrent.futures.Future` of its result."""
        from concurrent.futures import Future

        future: Future = Future()
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()
        self._queue.put((work, future))
        return future

    def _run(self) -> None:
        import queue

        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run_batch(batch)

    def _run_batch(self, batch) -> None:
        batch = [(work, future) for work, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            with session_factory()() as session:
                results = self._run_many(session, [work for work, _future in batch])
                session.commit()
        except Exception:
            # Something in the batch failed: run each unit in its own transaction, so that one
            # bad unit fails alone (and a commit that failed for all fails for each in turn).
            for work, future in batch:
                self._run_alone(work, future)
            return
        for (_work, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _run_alone(self, work, future) -> None:
        try:
            with session_factory()() as session:
                result = self._run_many(session, [work])[0]
                session.commit()
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)


@contextlib.contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on error."""
    with session_factory()() as session:
        with session.begin():
            yield session


def request_session() -> Iterator[Session]:
    """The unit of work of one request: committed when the handler returns (also when it answers
    with an error page it rendered itself, e.g. a failed login's counter), rolled back if it raises.
    Routes and dependencies take `get_session`, never this one directly."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def get_session(session: Session = Depends(request_session, scope="function")) -> Session:
    """FastAPI dependency: the request's Session (one per request, shared by every dependency).

    Its transaction ends when the handler returns, before the response is sent, so a commit that
    fails (a uniqueness race, a locked database) is answered as an error instead of being lost
    after the client was told it succeeded. A yield dependency's teardown runs after the response
    unless it is function-scoped; wrapping it here keeps a plain `Depends(get_session)` right.
    Async because it only hands the session on: a sync dependency costs a threadpool hop."""
    return session


def is_postgres(session_or_engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"


def dialect_insert(session: Session):
    """The INSERT construct of the session's database, for ON CONFLICT (upsert / insert-or-skip)."""
    return postgresql.insert if is_postgres(session) else sqlite.insert
