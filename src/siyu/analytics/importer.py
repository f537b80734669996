"""`siyu analytics import FILE.jsonl`: events exported by another system, one JSON object a line.

A line: `customer_id` (string or integer, kept as the customer's key), `type` (one of
siyu.analytics.events.EVENT_TYPES), `ts` (ISO-8601 with a UTC offset or Z — a time without one is
refused rather than guessed), and optionally `amount_fen` (a whole number of fen, 0 or more; a
float, a negative, a boolean or a string is refused) and the dimensions (siyu.analytics.events.
DIMENSIONS: channel, join_way, campaign, advisor, persona, variant, product, group_key; strings of at
most 64 characters, an empty string or null meaning none). Any other field is refused, so that a
misspelt field is not lost silently. Blank lines are skipped.

Every bad line is reported by number and field (`line 17: ts: not an ISO-8601 time`), and nothing
is loaded from a file with a bad line unless `skip_bad` (then the good lines are). The whole file
is loaded in one transaction, in batches of executemany. Each event's `source_key` is a hash of its
content: importing the same lines again (or a line twice) loads it once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from siyu.analytics.events import DIMENSIONS, EVENT_TYPES

KEY_MAX = 64
_CONTROL = re.compile(r"[\x00-\x1f]")
AMOUNT_MAX = 10**15  # fen: ten trillion yuan, far above any single order
FIELDS = frozenset(("customer_id", "type", "ts", "amount_fen", *DIMENSIONS))
_TYPES = frozenset(EVENT_TYPES)
BATCH = 5000
MAX_REPORTED = 1000


class LineError(ValueError):
    """One bad line: `field` is the field at fault (None for the line as a whole)."""

    def __init__(self, field_name: str | None, message: str) -> None:
        super().__init__(f"{field_name}: {message}" if field_name else message)
        self.field = field_name


@dataclass(frozen=True)
class ImportedEvent:
    customer_key: str
    type: str
    ts: dt.datetime  # aware, UTC
    amount_fen: int | None
    dims: tuple[str | None, ...]  # in the order of DIMENSIONS

    @property
    def source_key(self) -> str:
        # fields joined by a control character, which no field may contain (NUL: none): unambiguous
        canonical = "\x1f".join((self.customer_key, self.type, self.ts.isoformat(),
                                  "\x00" if self.amount_fen is None else str(self.amount_fen),
                                  *("\x00" if d is None else d for d in self.dims)))
        return "import:" + hashlib.sha256(canonical.encode()).hexdigest()[:48]


def _key(value: Any, name: str, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise LineError(name, "missing")
        return None
    if isinstance(value, bool):
        raise LineError(name, "a string is expected, not true/false")
    if name == "customer_id" and isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise LineError(name, "a string is expected" + (" or a whole number" if name == "customer_id" else ""))
    if len(value) > KEY_MAX:
        raise LineError(name, f"longer than {KEY_MAX} characters")
    if _CONTROL.search(value):
        raise LineError(name, "contains control characters")
    return value


def parse_time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise LineError("ts", "not an ISO-8601 time (a string is expected)")
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise LineError("ts", "not an ISO-8601 time") from None
    if "T" not in value and " " not in value:
        raise LineError("ts", "a time of day is needed, not only a date")
    if at.tzinfo is None or at.utcoffset() is None:
        raise LineError("ts", "no UTC offset (write Z or +08:00): a time without one is ambiguous")
    try:
        return at.astimezone(dt.UTC)
    except OverflowError:
        raise LineError("ts", "out of range") from None


def parse_line(line: str) -> ImportedEvent | None:
    """One line of the file: an event, None for a blank line, or LineError."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        raise LineError(None, "not valid JSON") from None
    if not isinstance(obj, dict):
        raise LineError(None, "not a JSON object")
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        raise LineError(unknown[0], "unknown field")
    customer_key = _key(obj.get("customer_id"), "customer_id", required=True)
    kind = obj.get("type")
    if kind is None:
        raise LineError("type", "missing")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise LineError("type", "not an event type (one of " + ", ".join(EVENT_TYPES) + ")")
    if "ts" not in obj:
        raise LineError("ts", "missing")
    ts = parse_time(obj["ts"])
    amount = obj.get("amount_fen")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise LineError("amount_fen", "a whole number of fen is expected (no decimals, no quotes)")
        if amount < 0:
            raise LineError("amount_fen", "negative")
        if amount > AMOUNT_MAX:
            raise LineError("amount_fen", "too large")
    dims = tuple(_key(obj[name], name, required=False) if name in obj else None for name in DIMENSIONS)
    return ImportedEvent(customer_key, kind, ts, amount, dims)  # type: ignore[arg-type]


@dataclass
class ImportResult:
    lines: int = 0
    events: int = 0  # good lines
    loaded: int = 0  # new events stored
    duplicates: int = 0  # good lines already stored (or repeated in the file)
    bad: int = 0
    errors: list[str] = field(default_factory=list)  # the first MAX_REPORTED, "line N: field: message"
    committed: bool = False


def parse_lines(lines: Iterable[str], result: ImportResult) -> Iterator[ImportedEvent]:
    for number, line in enumerate(lines, start=1):
        result.lines = number
        try:
            event = parse_line(line)
        except LineError as exc:
            result.bad += 1
            if len(result.errors) < MAX_REPORTED:
                result.errors.append(f"line {number}: {exc}")
            continue
        if event is not None:
            result.events += 1
            yield event


_INSERT = text(
    "INSERT INTO analytics_event (corp_id, customer_id, customer_key, type, ts, channel, join_way, campaign, advisor, "
    "persona, variant, product, group_key, amount_fen, source_key, recorded_at) VALUES (:corp_id, NULL, "
    ":customer_key, :type, :ts, :channel, :join_way, :campaign, :advisor, :persona, :variant, :product, "
    ":group_key, :amount_fen, :source_key, :recorded_at)")


def _stamp(at: dt.datetime, dialect: str) -> Any:
    """A UTC time as the column stores it (see siyu.db.UTCDateTime): naive on SQLite."""
    return at.replace(tzinfo=None).isoformat(" ", "microseconds") if dialect == "sqlite" else at


def _existing(session: Session, corp_id: int | None, keys: list[str]) -> set[str]:
    corp = "corp_id IS NULL" if corp_id is None else "corp_id = :corp"
    found: set[str] = set()
    for i in range(0, len(keys), 900):
        chunk = keys[i:i + 900]
        names = ", ".join(f":k{j}" for j in range(len(chunk)))
        params: dict[str, Any] = {f"k{j}": k for j, k in enumerate(chunk)}
        if corp_id is not None:
            params["corp"] = corp_id
        found.update(r[0] for r in session.execute(
            text(f"SELECT source_key FROM analytics_event WHERE {corp} AND source_key IN ({names})"), params))
    return found


def load_events(session: Session, events: Iterable[ImportedEvent], *, corp_id: int | None,
                result: ImportResult, batch: int = BATCH) -> None:
    """Insert `events` not stored yet (by source_key) into the session's transaction."""
    dialect = session.get_bind().dialect.name
    recorded = _stamp(dt.datetime.now(dt.UTC), dialect)
    pending: dict[str, ImportedEvent] = {}

    def flush() -> None:
        if not pending:
            return
        stored = _existing(session, corp_id, list(pending))
        rows = []
        for key, ev in pending.items():
            if key in stored:
                result.duplicates += 1
                continue
            row = dict(zip(DIMENSIONS, ev.dims, strict=True))
            row.update(corp_id=corp_id, customer_key=ev.customer_key, type=ev.type, ts=_stamp(ev.ts, dialect),
                       amount_fen=ev.amount_fen, source_key=key, recorded_at=recorded)
            rows.append(row)
        if rows:
            session.execute(_INSERT, rows)
            result.loaded += len(rows)
        pending.clear()

    for ev in events:
        key = ev.source_key
        if key in pending:
            result.duplicates += 1
            continue
        pending[key] = ev
        if len(pending) >= batch:
            flush()
    flush()


def import_file(session: Session, source: str | Path | IO[str], *, corp_id: int | None = None,
                skip_bad: bool = False, batch: int = BATCH) -> ImportResult:
    """Import a JSON-lines file in one transaction: committed when every line is good or
    `skip_bad`, rolled back (nothing loaded) otherwise. The caller reads `result.errors`."""
    result = ImportResult()
    handle = open(source, encoding="utf-8", errors="strict") if isinstance(source, (str, Path)) else source  # noqa: SIM115
    try:
        try:
            load_events(session, parse_lines(handle, result), corp_id=corp_id, result=result, batch=batch)
        except UnicodeDecodeError as exc:
            session.rollback()
            result.bad += 1
            result.errors.append(f"line {result.lines + 1}: not UTF-8 text ({exc.reason})")
            return result
    finally:
        if handle is not source:
            handle.close()
    if result.bad and not skip_bad:
        session.rollback()
        result.loaded = 0
        return result
    session.commit()
    result.committed = True
    return result
