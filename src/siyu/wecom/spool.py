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
import json
import logging
import os
import secrets
import socket
import threading
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
        self._seq = 0

    # --- writing (the callback endpoint) -------------------------------------------------------

    def append(self, *, corp_id: int, plaintext: str, received_at: dt.datetime) -> None:
        """Append one event and fsync it; returns once it is on disk. Raises `SpoolFull`, or
        OSError when the disk refuses."""
        line = (json.dumps({"v": 1, "corp_id": corp_id, "received_at": received_at.isoformat(),
                            "plaintext": plaintext}, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self.total_bytes() + len(line) > self.max_bytes:
                raise SpoolFull(f"the callback spool holds {self.max_bytes} bytes or more")
            if self._fd is None:
                self._open_segment()
            assert self._fd is not None
            _write_all(self._fd, line)
            os.fsync(self._fd)

    def _open_segment(self) -> None:
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
        _fsync_dir(self.directory)  # the new name survives a crash too

    def rotate(self) -> None:
        """Close the segment being appended to (if it has anything): the drainer may take it."""
        with self._lock:
            if self._fd is not None and os.fstat(self._fd).st_size > 0:
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


def _read_lines(segment: Path, offset: int) -> Iterator[tuple[int, bytes]]:
    """Complete lines after `offset`, each with the offset just past it. A last line without its
    newline (torn by a crash mid-write, never acknowledged) is left out."""
    with open(segment, "rb") as fh:
        fh.seek(offset)
        position = offset
        for line in fh:
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


@dataclass
class DrainResult:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    segments_done: int = 0


class SpoolDrainer:
    """Moves spooled events into the inbox: this process's closed segments, and the segments of
    owners that died (their lock is free). `store(session, event)` stores one event in the given
    transaction. Runs as a daemon thread (`start`) or step by step (`drain_once`, tests)."""

    def __init__(self, spool: CallbackSpool, *, sessions: Callable[[], Session], store: Store,
                 interval: float = 1.0, on_result: Callable[[DrainResult], None] | None = None) -> None:
        self.spool = spool
        self.sessions = sessions
        self.store = store
        self.interval = interval
        self.on_result = on_result
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

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
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once()
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
        result = DrainResult()
        if not self.pending():
            self._claim_orphans(result)  # lock files of dead owners with nothing left: tidy up
            return result
        self.spool.rotate()
        for segment in self.spool.own_closed_segments():
            self._drain_segment(segment, result)
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

    def _drain_segment(self, segment: Path, result: DrainResult) -> None:
        offset = _done_offset(segment)
        batch: list[tuple[int, bytes]] = []
        for end, line in _read_lines(segment, offset):
            batch.append((end, line))
            if len(batch) >= DRAIN_BATCH:
                offset = self._commit(segment, batch, result)
                batch = []
        if batch:
            self._commit(segment, batch, result)
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
