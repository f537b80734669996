"""The callback spool: verified WeCom events the database could not take, kept on local disk
until it can.

WeCom retries an unacknowledged callback only a few times within seconds, so a database outage
longer than that would lose events if the endpoint answered with an error. Instead, when storing
fails because the database is unavailable, the endpoint appends the verified, decrypted event to
this spool, fsyncs it, and only then acknowledges. A drainer thread in every serve process moves
spooled events into the inbox once the database answers again, through the same insert-or-skip on
the natural key as the endpoint (`inbox.store_event`), so an event WeCom also redelivered directly
is stored and dispatched once.

Layout of the spool directory (mode 0700, files 0600; they hold customer events):

* `<owner>.lock`: held (flock) by the serve process `<owner>` (host, pid, random) for its life,
  and by whichever process drains that owner's files after it died. The kernel releases it when
  its holder dies, so a free lock means a dead owner; two processes never drain one file.
* `<owner>.<n>.spool`: segments of JSON lines, one event a line, appended only by their owner.
  The owner starts a new segment whenever the drainer takes the current one.
* `<owner>.<n>.spool.done`: the byte offset up to which a segment is committed to the inbox,
  replaced atomically after each committed batch. A crash between a commit and this checkpoint
  makes the next drain store those events again, which the natural key turns into repeats
  (nothing stored or dispatched twice).
* `<owner>.<n>.spool.rejected`: lines the drainer could not store for a reason other than the
  database being unavailable (a bug, a corp deleted meanwhile): kept for an operator, never
  dropped silently.

A line torn by a crash during the write was never acknowledged (the answer goes out after fsync),
so WeCom retries it; the drainer skips it. The size limit is for the whole directory: past it the
endpoint answers 503 (WeCom retries) rather than acknowledging an event it could not keep."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import io
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.errors import DatabaseBusy

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".spool"
DONE_SUFFIX = ".done"
REJECTED_SUFFIX = ".rejected"
LOCK_SUFFIX = ".lock"
DRAIN_BATCH = 200
# The segment being appended to is drained as it grows and closed past this size (or at stop).
ROTATE_BYTES = 8 * 1024 * 1024
SIZE_CHECK_SECONDS = 1.0


class SpoolFull(Exception):  # noqa: N818
    """The spool directory holds its maximum; the event was not kept (answer non-2xx)."""


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot take work now (down, unreachable, its connections
    dropped, its pool exhausted, SQLite's write lock not obtained in time), as opposed to a bug
    or bad data, which must stay visible."""
    if isinstance(exc, DatabaseBusy | sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError
                  | sa_exc.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, ConnectionError)


@dataclass(frozen=True)
class SpooledEvent:
    corp_id: int
    plaintext: str
    received_at: dt.datetime


def _owner_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _owner_of(name: str) -> str:
    """`<owner>.lock` / `<owner>.<n>.spool[.done|.rejected]` -> owner (owners contain no dots)."""
    return name.split(".", 1)[0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def encode(*, corp_id: int, plaintext: str, received_at: dt.datetime) -> bytes:
    """One event as a spool line."""
    return (json.dumps({"v": 1, "corp_id": corp_id, "received_at": received_at.isoformat(), "plaintext": plaintext},
                       ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class CallbackSpool:
    """One serve process's spool in `directory` (the writer side, plus what the drainer needs)."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.owner = _owner_id()
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the segment being appended to
        self._segment: Path | None = None
        self._written = 0  # bytes of the open segment that are complete appends
        self._seq = 0
        self._size: tuple[float, int] | None = None  # (when, bytes): the directory's size, estimated

    # --- writing (the callback endpoint) -------------------------------------------------------

    def append(self, *, corp_id: int, plaintext: str, received_at: dt.datetime) -> None:
        """Append one event and fsync it; returns once it is on disk. Raises `SpoolFull`, or
        OSError when the disk refuses."""
        self.append_lines([encode(corp_id=corp_id, plaintext=plaintext, received_at=received_at)])

    def append_lines(self, lines: list[bytes], *, sync: bool = True) -> None:
        """Append encoded events (`encode`) in one write and one fsync, all or none: returns once
        they are on disk. Raises `SpoolFull` when they do not all fit, or OSError when the disk
        refuses (then a torn tail may be left: never acknowledged, skipped by the drainer).
        `sync=False`: written to the kernel (kept if the process dies), not fsync'd."""
        data = b"".join(lines)
        with self._lock:
            size = self._estimated_bytes()
            if size + len(data) > self.max_bytes:
                raise SpoolFull(f"the callback spool holds {self.max_bytes} bytes or more")
            if self._fd is None:
                self._open_segment(sync=sync)
            assert self._fd is not None
            self._size = (self._size[0] if self._size else 0.0, size + len(data))  # grown, until measured again
            _write_all(self._fd, data)
            if sync:
                os.fsync(self._fd)
            self._written += len(data)

    def _estimated_bytes(self) -> int:
        """The directory's size, measured at most every SIZE_CHECK_SECONDS and grown by every append
        in between (draining only shrinks it: the estimate never lets the limit be passed)."""
        now = time.monotonic()
        if self._size is None or now - self._size[0] > SIZE_CHECK_SECONDS:
            self._size = (now, self.total_bytes())
        return self._size[1]

    def retire(self, segment: Path, end: int) -> bool:
        """Close `segment` if it is the one being appended to and holds nothing past `end` (the
        drainer stored all of it): True when closed, and the drainer may remove it."""
        with self._lock:
            if self._segment != segment or self._written != end or self._fd is None:
                return False
            os.close(self._fd)
            self._fd = self._segment = None
            return True

    def live(self) -> tuple[Path, int] | None:
        """The segment being appended to and how many of its bytes are complete appends."""
        with self._lock:
            return (self._segment, self._written) if self._segment is not None else None

    def _open_segment(self, *, sync: bool = True) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.directory, 0o700)
        if self._lock_fd is None:
            # Locked under a name no drainer looks at, then put in place: a drainer never finds
            # this owner's lock file free while the owner is alive.
            final = self.directory / f"{self.owner}{LOCK_SUFFIX}"
            tmp = final.with_name(final.name + ".new")
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # new and ours alone: never waits
            os.rename(tmp, final)
            self._lock_fd = fd
        self._seq += 1
        path = self.directory / f"{self.owner}.{self._seq:06d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._segment = path
        self._written = 0
        if sync:
            _fsync_dir(self.directory)  # the new name survives a power cut too

    def rotate(self, min_bytes: int = 0) -> None:
        """Close the segment being appended to if it holds more than `min_bytes` (and anything):
        the drainer may take it whole."""
        with self._lock:
            if self._fd is not None and os.fstat(self._fd).st_size > min_bytes:
                os.close(self._fd)
                self._fd = self._segment = None

    def own_closed_segments(self) -> list[Path]:
        with self._lock:
            current = self._segment
        return sorted(p for p in self.directory.glob(f"{self.owner}.*{SEGMENT_SUFFIX}") if p != current)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = self._segment = None
            if self._lock_fd is not None:
                if not any(self.directory.glob(f"{self.owner}.*{SEGMENT_SUFFIX}")):
                    with contextlib.suppress(FileNotFoundError):  # nothing left to hand on
                        (self.directory / f"{self.owner}{LOCK_SUFFIX}").unlink()
                os.close(self._lock_fd)  # releases the flock: another process may drain what is left
                self._lock_fd = None

    # --- figures (the metrics endpoint, operations) --------------------------------------------

    def total_bytes(self) -> int:
        return spool_status(self.directory)["bytes"]


class GroupAppender:
    """Appends events to a spool from many threads with one write and one fsync per group
    (group commit): a thread takes whatever was submitted meanwhile, appends it all and fsyncs
    once, then completes each submitter's future. "Done" means written (`sync`: and fsync'd):
    the callback endpoint acknowledges only then. A group that does not fit (`SpoolFull`) or
    that the disk refuses fails for each of its submitters."""

    def __init__(self, spool: CallbackSpool, *, sync: bool = True, max_group: int = 256,
                 name: str = "siyu-callback-spool-appender") -> None:
        import queue

        self.spool = spool
        self.sync = sync
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._max_group = max_group
        self._name = name
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, *, corp_id: int, plaintext: str, received_at: dt.datetime):
        """Queue one event; returns a `concurrent.futures.Future` done once it is on disk."""
        from concurrent.futures import Future

        future: Future = Future()
        line = encode(corp_id=corp_id, plaintext=plaintext, received_at=received_at)
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()
        self._queue.put((line, future))
        return future

    def _run(self) -> None:
        import queue

        while True:
            group = [self._queue.get()]
            while len(group) < self._max_group:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            group = [(line, future) for line, future in group if future.set_running_or_notify_cancel()]
            if not group:
                continue
            try:
                self.spool.append_lines([line for line, _future in group], sync=self.sync)
            except Exception as exc:
                for _line, future in group:
                    future.set_exception(exc)
            else:
                for _line, future in group:
                    future.set_result(None)


def _segments(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX))
    except FileNotFoundError:
        return []


def _done_offset(segment: Path) -> int:
    try:
        return int((segment.parent / (segment.name + DONE_SUFFIX)).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _set_done_offset(segment: Path, offset: int) -> None:
    path = segment.parent / (segment.name + DONE_SUFFIX)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, str(offset).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def spool_status(directory: Path) -> dict[str, float | int | None]:
    """Bytes not yet drained, segment files, and the age in seconds of the oldest undrained event
    (None when empty), over every process's files in `directory`."""
    total, files, oldest = 0, 0, None
    for segment in _segments(directory):
        try:
            size = segment.stat().st_size
        except FileNotFoundError:
            continue
        done = _done_offset(segment)
        if size <= done:
            continue
        files += 1
        total += size - done
        with contextlib.suppress(OSError, ValueError, KeyError), open(segment, "rb") as fh:
            fh.seek(done)
            first = json.loads(fh.readline())
            at = dt.datetime.fromisoformat(first["received_at"])
            oldest = at if oldest is None or at < oldest else oldest
    age = (utcnow() - oldest).total_seconds() if oldest is not None else None
    return {"bytes": total, "files": files, "oldest_age_seconds": age}


def _read_lines(segment: Path, offset: int, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Complete lines after `offset` (and before `end`), each with the offset just past it. A last
    line without its newline (torn by a crash mid-write, never acknowledged) is left out."""
    with open(segment, "rb") as fh:
        fh.seek(offset)
        position = offset
        for line in (fh if end is None else io.BytesIO(fh.read(max(0, end - offset)))):
            if not line.endswith(b"\n"):
                log.warning("callback spool %s: a torn last line (%d bytes) skipped; it was never acknowledged",
                            segment.name, len(line))
                return
            position += len(line)
            yield position, line


def _decode(line: bytes) -> SpooledEvent:
    record = json.loads(line)
    return SpooledEvent(corp_id=int(record["corp_id"]), plaintext=str(record["plaintext"]),
                        received_at=dt.datetime.fromisoformat(record["received_at"]))


Store = Callable[[Session, SpooledEvent], bool]  # True: stored now; False: it was stored before
StoreMany = Callable[[Session, list[SpooledEvent]], list[bool]]  # the same for many, in order


@dataclass
class DrainResult:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    segments_done: int = 0


class SpoolDrainer:
    """Moves spooled events into the inbox: this process's closed segments, and the segments of
    owners that died (their lock is free). `store(session, event)` stores one event in the given
    transaction; `store_many(session, events)`, when given, stores a whole batch at once (the
    batch falls back to `store` one by one when it fails for a reason other than the database).
    Runs as a daemon thread (`start`) or step by step (`drain_once`, tests)."""

    def __init__(self, spool: CallbackSpool, *, sessions: Callable[[], Session], store: Store,
                 store_many: StoreMany | None = None, interval: float = 1.0, pause: float = 0.05,
                 on_result: Callable[[DrainResult], None] | None = None) -> None:
        self.spool = spool
        self.sessions = sessions
        self.store = store
        self.store_many = store_many
        self.interval = interval
        self.pause = pause
        self.on_result = on_result
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._draining = threading.Lock()  # one pass at a time (the thread, a test, an operator)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="siyu-callback-spool-drainer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Drain now (the thread is started if it is not running)."""
        if self._thread is None or not self._thread.is_alive():
            self.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.drain_once()
                if result.stored or result.duplicates:
                    # Busy: let more arrive, so that each pass (a transaction, a checkpoint)
                    # carries many events, and the endpoint's threads keep the interpreter.
                    self._stop.wait(self.pause)
            except Exception as exc:  # the database went away again, or a bug: try again later
                if database_unavailable(exc):
                    log.info("callback spool: the database is still unavailable (%s)", type(exc).__name__)
                else:
                    log.exception("callback spool: draining failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def pending(self) -> bool:
        return any(True for _ in _segments(self.spool.directory))

    def drain_once(self) -> DrainResult:
        """One pass over everything drainable now. Raises when the database is unavailable (what
        was committed before stays committed and checkpointed)."""
        with self._draining:
            return self._drain_once()

    def _drain_once(self) -> DrainResult:
        result = DrainResult()
        if not self.pending():
            self._claim_orphans(result)  # lock files of dead owners with nothing left: tidy up
            return result
        self.spool.rotate(min_bytes=ROTATE_BYTES)
        for segment in self.spool.own_closed_segments():
            self._drain_segment(segment, result)
        live = self.spool.live()
        if live is not None:  # what is appended so far; the segment stays, and grows
            self._drain_segment(live[0], result, end=live[1])
        self._claim_orphans(result)
        if self.on_result is not None and (result.stored or result.duplicates or result.rejected):
            self.on_result(result)
        return result

    def _claim_orphans(self, result: DrainResult) -> None:
        directory = self.spool.directory
        try:
            names = [p.name for p in directory.iterdir()]
        except FileNotFoundError:
            return
        owners = {_owner_of(n) for n in names if n.endswith(SEGMENT_SUFFIX) or n.endswith(LOCK_SUFFIX)}
        owners.discard(self.spool.owner)
        for owner in sorted(owners):
            lock_path = directory / f"{owner}{LOCK_SUFFIX}"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its owner is alive, or another process is draining it
                segments = sorted(directory.glob(f"{owner}.*{SEGMENT_SUFFIX}"))
                if segments:
                    log.info("callback spool: draining %d file(s) left by %s", len(segments), owner)
                for segment in segments:
                    self._drain_segment(segment, result)
                # Everything of that owner is in the inbox: its lock goes last, while still held.
                with contextlib.suppress(FileNotFoundError):
                    lock_path.unlink()
            finally:
                os.close(fd)

    def _drain_segment(self, segment: Path, result: DrainResult, *, end: int | None = None) -> None:
        """Store a segment's events past its checkpoint and remove it; `end`: the segment is still
        appended to, so up to there, and it stays."""
        offset = _done_offset(segment)
        batch: list[tuple[int, bytes]] = []
        for line_end, line in _read_lines(segment, offset, end):
            batch.append((line_end, line))
            if len(batch) >= DRAIN_BATCH:
                offset = self._commit(segment, batch, result)
                batch = []
        if batch:
            self._commit(segment, batch, result)
        if end is not None and not self.spool.retire(segment, end):
            return  # still appended to: it stays
        # Fully in the inbox: the segment goes first, then its checkpoint (a crash in between
        # leaves a checkpoint without a segment, ignored and removed with the next segment).
        segment.unlink()
        with contextlib.suppress(FileNotFoundError):
            (segment.parent / (segment.name + DONE_SUFFIX)).unlink()
        _fsync_dir(segment.parent)
        result.segments_done += 1

    def _commit(self, segment: Path, batch: list[tuple[int, bytes]], result: DrainResult) -> int:
        events: list[tuple[bytes, SpooledEvent | None]] = []
        for _end, line in batch:
            try:
                events.append((line, _decode(line)))
            except (ValueError, KeyError, TypeError):
                events.append((line, None))
        try:
            with self.sessions() as session:
                if self.store_many is not None and all(ev is not None for _line, ev in events):
                    created = list(self.store_many(session, [ev for _line, ev in events]))
                else:
                    created = [self.store(session, ev) if ev is not None else None for _line, ev in events]
                session.commit()
        except Exception as exc:
            if database_unavailable(exc):
                raise
            created = self._one_by_one(segment, events)
        for outcome in created:
            if outcome is None:
                result.rejected += 1
            elif outcome:
                result.stored += 1
            else:
                result.duplicates += 1
        end = batch[-1][0]
        _set_done_offset(segment, end)
        return end

    def _one_by_one(self, segment: Path, events: list[tuple[bytes, SpooledEvent | None]]) -> list[bool | None]:
        """A batch failed for a reason other than the database: store each event alone, and keep
        the ones that fail in the segment's `.rejected` file for an operator."""
        outcomes: list[bool | None] = []
        for line, ev in events:
            if ev is None:
                self._reject(segment, line, "not a spooled event")
                outcomes.append(None)
                continue
            try:
                with self.sessions() as session:
                    outcome = self.store(session, ev)
                    session.commit()
            except Exception as exc:
                if database_unavailable(exc):
                    raise
                self._reject(segment, line, type(exc).__name__)
                outcomes.append(None)
            else:
                outcomes.append(outcome)
        return outcomes

    @staticmethod
    def _reject(segment: Path, line: bytes, reason: str) -> None:
        log.error("callback spool %s: an event could not be stored (%s); kept in %s%s", segment.name, reason,
                  segment.name, REJECTED_SUFFIX)
        fd = os.open(segment.parent / (segment.name + REJECTED_SUFFIX), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
