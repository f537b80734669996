"""The engines that run the analytics reports, and the dialect layer that lets one report definition
run on all of them.

Three engines, one set of report definitions (siyu.analytics.reports):

- `duckdb` (default): DuckDB in-process over a file of its own (`SIYU_ANALYTICS_DUCKDB`, default
  `<data dir>/analytics.duckdb`). Before a report the file is brought up to date with the main
  database's `analytics_event` rows whose id is above the highest id it holds (appended in batches
  through Arrow; nothing is copied twice). `DuckDBEngine.from_snapshot(DIR)` reads a Parquet
  snapshot written by `siyu analytics snapshot` instead.
- `clickhouse`: ClickHouse for firms that outgrow one machine, a server at `SIYU_CLICKHOUSE_URL`
  (clickhouse-connect), or in-process (chdb, what the tests and CI run) when no URL is set or the
  URL is `chdb://PATH`. Synced the same way as DuckDB.
- `sql`: the report SQL run on the main database itself (SQLite or PostgreSQL) — the baseline.

Every engine exposes the same relations to the report SQL:

- `analytics_event`-shaped rows with `ts_s`, the event's time as whole seconds since 1970 UTC (a
  report compares times at the second: events in the same second are in order both ways);
- `analytics_spend`-shaped rows with `d_from`/`d_to`, days since 1970-01-01 (inclusive).

and a `Dialect` for what the SQL dialects spell differently: integer division, the calendar month
of a day number, quoting a literal. Calendar questions (the day, ISO week, month of an event) are
asked in Asia/Shanghai, which has kept UTC+8 without daylight saving since 1991: a day number is
`(ts_s + 28800) div 86400`, an ISO week number `(day + 3) div 7` (1970-01-01 was a Thursday), its
Monday `week * 7 - 3`. Engines return only integers and keys; shares, rates and medians are
computed in Python from them, so the engines agree to the digit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import Engine as SAEngine

SHANGHAI_OFFSET_S = 8 * 3600
DAY_S = 86400
SYNC_BATCH = 200_000
# PostgreSQL hands out ids before commit: a transaction may commit a lower id after a higher one was
# synced. A sync looks this many ids back and copies what it does not hold yet (SQLite commits in order).
PG_LOOKBACK_IDS = 50_000

EVENT_COLUMNS: tuple[str, ...] = ("id", "corp_id", "customer_key", "type", "ts_s", "channel", "join_way", "campaign",
                                  "advisor", "persona", "variant", "product", "group_key", "amount_fen")
SPEND_COLUMNS: tuple[str, ...] = ("id", "corp_id", "channel", "campaign", "d_from", "d_to", "amount_fen")
_INT_COLUMNS = {"id", "corp_id", "ts_s", "amount_fen", "d_from", "d_to"}


class EngineError(RuntimeError):
    """An engine cannot run (not configured, unreachable, a snapshot missing)."""


# --- dialects ---------------------------------------------------------------------------------------


class Dialect:
    """What differs between the engines' SQL. Reports use only these and ANSI SQL that all of
    SQLite, PostgreSQL, DuckDB and ClickHouse accept (CTEs, equi-joins, window ROW_NUMBER, CASE,
    COUNT(DISTINCT), UNION ALL; inequalities go in WHERE, never in JOIN ... ON)."""

    name = "ansi"

    def idiv(self, a: str, b: str | int) -> str:
        """Integer division of non-negative integers."""
        return f"(({a}) / ({b}))"

    def yyyymm(self, day: str) -> str:
        """The calendar month of a day number (days since 1970-01-01) as the integer YYYYMM."""
        raise NotImplementedError

    def lit(self, value: str | int | None) -> str:
        """A literal: integers as they are, strings quoted."""
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            raise TypeError("no booleans in report SQL")
        if isinstance(value, int):
            return str(int(value))
        return "'" + str(value).replace("'", "''") + "'"

    def day(self, ts_s: str) -> str:
        """The Asia/Shanghai calendar day (days since 1970-01-01) of a time in seconds."""
        return self.idiv(f"{ts_s} + {SHANGHAI_OFFSET_S}", DAY_S)

    def week(self, ts_s: str) -> str:
        """The ISO week (Monday to Sunday, Asia/Shanghai) of a time, numbered from 1970; its Monday is
        day `week * 7 - 3`."""
        return self.idiv(f"{self.day(ts_s)} + 3", 7)


class SQLiteDialect(Dialect):
    name = "sqlite"

    def yyyymm(self, day: str) -> str:
        return f"CAST(strftime('%Y%m', ({day}) * 86400, 'unixepoch') AS INTEGER)"

    def epoch(self, column: str) -> str:
        return f"CAST(strftime('%s', {column}) AS INTEGER)"

    def day_of_date(self, column: str) -> str:
        return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"


class PostgresDialect(Dialect):
    name = "postgresql"

    def yyyymm(self, day: str) -> str:
        return f"CAST(to_char(DATE '1970-01-01' + CAST({day} AS INTEGER), 'YYYYMM') AS INTEGER)"

    def epoch(self, column: str) -> str:
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"

    def day_of_date(self, column: str) -> str:
        return f"({column} - DATE '1970-01-01')"


class DuckDBDialect(Dialect):
    name = "duckdb"

    def idiv(self, a: str, b: str | int) -> str:
        return f"(({a}) // ({b}))"

    def yyyymm(self, day: str) -> str:
        return f"CAST(strftime(DATE '1970-01-01' + CAST({day} AS INTEGER), '%Y%m') AS INTEGER)"


class ClickHouseDialect(Dialect):
    name = "clickhouse"

    def idiv(self, a: str, b: str | int) -> str:
        return f"intDiv({a}, {b})"

    def yyyymm(self, day: str) -> str:
        return f"toInt64(toYYYYMM(addDays(toDate('1970-01-01'), toInt64({day}))))"

    def lit(self, value: str | int | None) -> str:
        if isinstance(value, str):
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return super().lit(value)


# --- engines ----------------------------------------------------------------------------------------


class AnalyticsEngine:
    """Runs report SQL. `events` and `spend` are the relations a report reads (a table or a
    parenthesised subquery), `dialect` spells the differences."""

    name: str
    dialect: Dialect
    events: str = "analytics_event"
    spend: str = "analytics_spend"

    _stale = False  # sync before the next query

    def rows(self, sql: str) -> list[tuple]:
        """The rows of a query, after bringing the engine's copy up to date if `prepare` asked for it."""
        if self._stale:
            self._stale = False
            self.sync()
        return self._query(sql)

    def _query(self, sql: str) -> list[tuple]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Bring the engine's copy of the events up to date at the first query (a no-op where there
        is no copy): a report checks its parameters before anything is copied."""

    def sync(self) -> SyncResult:
        return SyncResult(0, 0)

    def close(self) -> None:
        pass

    def __enter__(self) -> AnalyticsEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SQLEngine(AnalyticsEngine):
    """The main database (SQLite or PostgreSQL) answering the report SQL itself: the baseline."""

    name = "sql"

    def __init__(self, sa_engine: SAEngine | Connection) -> None:
        self.sa_engine = sa_engine
        self.dialect = PostgresDialect() if sa_engine.dialect.name == "postgresql" else SQLiteDialect()
        d = self.dialect
        self.events = (f"(SELECT id, corp_id, customer_key, type, {d.epoch('ts')} AS ts_s, channel, join_way, "
                       "campaign, advisor, persona, variant, product, group_key, amount_fen FROM analytics_event)")
        self.spend = (f"(SELECT id, corp_id, channel, campaign, {d.day_of_date('day_from')} AS d_from, "
                      f"{d.day_of_date('day_to')} AS d_to, amount_fen FROM analytics_spend)")

    def _query(self, sql: str) -> list[tuple]:
        with _connect(self.sa_engine) as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql.replace("%", "%%") if self.dialect.name == "postgresql"
                                                            else sql).fetchall()]


def _connect(bind: SAEngine | Connection) -> contextlib.AbstractContextManager[Connection]:
    """A connection of `bind`: a new one from an Engine, or the Connection itself (a test's
    transaction, which the engines then read inside)."""
    return contextlib.nullcontext(bind) if isinstance(bind, Connection) else bind.connect()


def _main_engine() -> SAEngine:
    from siyu import db

    return db.get_engine()


def _arrow_schema(columns: Sequence[str]):
    import pyarrow as pa

    return pa.schema([(c, pa.int64() if c in _INT_COLUMNS else pa.string()) for c in columns])


def _event_batches(sa_engine: SAEngine | Connection, *, above: int, known: set[int] | None = None,
                   batch: int = SYNC_BATCH) -> Iterator[Any]:
    """The main database's events with id > `above`, in id order, as Arrow tables of `batch` rows
    (ids in `known` left out)."""
    import pyarrow as pa

    d = PostgresDialect() if sa_engine.dialect.name == "postgresql" else SQLiteDialect()
    sql = (f"SELECT id, corp_id, customer_key, type, {d.epoch('ts')} AS ts_s, channel, join_way, campaign, advisor, "
           f"persona, variant, product, group_key, amount_fen FROM analytics_event WHERE id > {int(above)} ORDER BY id")
    schema = _arrow_schema(EVENT_COLUMNS)
    with _connect(sa_engine) as conn:
        result = conn.exec_driver_sql(sql, execution_options={"stream_results": True, "max_row_buffer": batch})
        while True:
            rows = result.fetchmany(batch)
            if not rows:
                return
            if known:
                rows = [r for r in rows if r[0] not in known]
                if not rows:
                    continue
            columns = list(zip(*rows, strict=True))
            yield pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)],
                                       schema=schema)


def _spend_table(sa_engine: SAEngine | Connection):
    import pyarrow as pa

    d = PostgresDialect() if sa_engine.dialect.name == "postgresql" else SQLiteDialect()
    sql = (f"SELECT id, corp_id, channel, campaign, {d.day_of_date('day_from')}, {d.day_of_date('day_to')}, amount_fen "
           "FROM analytics_spend ORDER BY id")
    with _connect(sa_engine) as conn:
        rows = conn.exec_driver_sql(sql).fetchall()
    schema = _arrow_schema(SPEND_COLUMNS)
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in SPEND_COLUMNS]
    return pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)],
                                schema=schema)


@dataclass
class SyncResult:
    copied: int
    last_id: int


class _CopyEngine(AnalyticsEngine):
    """An engine holding its own copy of the events, appended incrementally from the main database."""

    sa_engine: SAEngine | Connection | None = None

    def max_id(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM analytics_event")[0][0])

    def append_events(self, table: Any) -> None:
        raise NotImplementedError

    def replace_spend(self, table: Any) -> None:
        raise NotImplementedError

    def sync(self) -> SyncResult:
        """Copy the main database's new events (id above the highest held) and its spend entries."""
        if self.sa_engine is None:
            return SyncResult(0, self.max_id())
        last = self.max_id()
        above, known = last, None
        if self.sa_engine.dialect.name == "postgresql" and last:
            above = max(0, last - PG_LOOKBACK_IDS)
            known = {int(r[0]) for r in self._query(f"SELECT id FROM analytics_event WHERE id > {above}")}
        copied = 0
        for table in _event_batches(self.sa_engine, above=above, known=known):
            self.append_events(table)
            copied += table.num_rows
        self.replace_spend(_spend_table(self.sa_engine))
        return SyncResult(copied, self.max_id())

    def prepare(self) -> None:
        self._stale = True


_DUCKDB_DDL = (
    "CREATE TABLE IF NOT EXISTS analytics_event (id BIGINT PRIMARY KEY, corp_id BIGINT, customer_key VARCHAR NOT NULL, "
    "type VARCHAR NOT NULL, ts_s BIGINT NOT NULL, channel VARCHAR, join_way VARCHAR, campaign VARCHAR, "
    "advisor VARCHAR, persona VARCHAR, variant VARCHAR, product VARCHAR, group_key VARCHAR, amount_fen BIGINT)",
    "CREATE TABLE IF NOT EXISTS analytics_spend (id BIGINT, corp_id BIGINT, channel VARCHAR, campaign VARCHAR, "
    "d_from BIGINT, d_to BIGINT, amount_fen BIGINT)",
)


def duckdb_path() -> Path:
    from siyu.config import get_settings

    configured = os.environ.get("SIYU_ANALYTICS_DUCKDB")
    return Path(configured) if configured else get_settings().data_dir / "analytics.duckdb"


DUCKDB_LOCK_WAIT_S = 30.0


def _connect_duckdb(path: str, wait_s: float | None = None):
    """A connection to the DuckDB file. One process at a time may hold it (a report holds it for
    its duration): another process waits for it, up to DUCKDB_LOCK_WAIT_S."""
    import time

    import duckdb

    deadline = time.monotonic() + (DUCKDB_LOCK_WAIT_S if wait_s is None else wait_s)
    pause = 0.02
    while True:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise EngineError(f"the analytics DuckDB file {path}: {str(exc).splitlines()[0]}") from None
            if time.monotonic() > deadline:
                raise EngineError(f"the analytics DuckDB file {path} is in use by another process") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


class DuckDBEngine(_CopyEngine):
    """DuckDB in-process over its own file, appended from the main database before each report."""

    name = "duckdb"
    dialect = DuckDBDialect()
    _lock = threading.Lock()

    def __init__(self, path: str | Path | None = None, *, sa_engine: SAEngine | Connection | None = None,
                 threads: int | None = None) -> None:
        self.path = Path(path) if path is not None else duckdb_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sa_engine = sa_engine
        self.con = _connect_duckdb(str(self.path))
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        for ddl in _DUCKDB_DDL:
            self.con.execute(ddl)

    @classmethod
    def from_snapshot(cls, directory: str | Path) -> DuckDBEngine:
        """An in-memory DuckDB reading a Parquet snapshot (`siyu analytics snapshot --out DIR`)."""
        import duckdb

        directory = Path(directory)
        for name in ("analytics_event.parquet", "analytics_spend.parquet"):
            if not (directory / name).is_file():
                raise EngineError(f"{directory}: no {name} (write one with `siyu analytics snapshot --out DIR`)")
        self = cls.__new__(cls)
        self.path, self.sa_engine = directory, None
        self.con = duckdb.connect()
        for name in ("analytics_event", "analytics_spend"):
            path = str((directory / f"{name}.parquet").resolve()).replace("'", "''")
            self.con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        return self

    def _query(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def append_events(self, table: Any) -> None:
        self.con.register("_batch", table)
        try:
            self.con.execute("INSERT INTO analytics_event SELECT * FROM _batch")
        finally:
            self.con.unregister("_batch")

    def replace_spend(self, table: Any) -> None:
        self.con.register("_spend", table)
        try:
            self.con.execute("BEGIN")
            self.con.execute("DELETE FROM analytics_spend")
            self.con.execute("INSERT INTO analytics_spend SELECT * FROM _spend")
            self.con.execute("COMMIT")
        finally:
            self.con.unregister("_spend")

    def sync(self) -> SyncResult:
        with self._lock:
            return super().sync()

    def snapshot(self, out: str | Path) -> dict[str, int]:
        """Write the events and spend as Parquet files into `out` (after a sync)."""
        self.sync()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        counts = {}
        for name in ("analytics_event", "analytics_spend"):
            path = str((out / f"{name}.parquet").resolve()).replace("'", "''")
            self.con.execute(f"COPY (SELECT * FROM {name} ORDER BY id) TO '{path}' (FORMAT PARQUET)")
            counts[name] = int(self.con.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])
        return counts

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.close()


_CLICKHOUSE_DDL = (
    "CREATE TABLE IF NOT EXISTS analytics_event (id Int64, corp_id Nullable(Int64), customer_key String, type String, "
    "ts_s Int64, channel Nullable(String), join_way Nullable(String), campaign Nullable(String), "
    "advisor Nullable(String), persona Nullable(String), variant Nullable(String), product Nullable(String), "
    "group_key Nullable(String), amount_fen Nullable(Int64)) ENGINE = MergeTree ORDER BY (customer_key, ts_s, id)",
    "CREATE TABLE IF NOT EXISTS analytics_spend (id Int64, corp_id Nullable(Int64), channel Nullable(String), "
    "campaign Nullable(String), d_from Int64, d_to Int64, amount_fen Int64) ENGINE = MergeTree ORDER BY id",
)
# LEFT JOIN gives NULL, not the type's default, where nothing matched (as in SQL); 64-bit integers
# come back as numbers.
CLICKHOUSE_SETTINGS = {"join_use_nulls": 1, "output_format_json_quote_64bit_integers": 0}


class ClickHouseEngine(_CopyEngine):
    """ClickHouse: a server through clickhouse-connect (`url` http(s)://…), or in-process chdb
    (`url` None or chdb://PATH; PATH empty for an in-memory one). The same SQL on both."""

    name = "clickhouse"
    dialect = ClickHouseDialect()

    def __init__(self, url: str | None = None, *, sa_engine: SAEngine | Connection | None = None) -> None:
        self.sa_engine = sa_engine
        url = url if url is not None else os.environ.get("SIYU_CLICKHOUSE_URL") or ""
        if not url or url.startswith("chdb://"):
            from chdb import session as chdb_session

            path = url[len("chdb://"):] if url else str(_default_chdb_path())
            if path:
                Path(path).mkdir(parents=True, exist_ok=True)
            self._chdb = chdb_session.Session(path) if path else chdb_session.Session()
            self._client = None
        else:
            import clickhouse_connect

            self._server = _redact(url)
            try:
                self._client = clickhouse_connect.get_client(dsn=url, settings={"join_use_nulls": 1})
            except Exception as exc:  # noqa: BLE001 - connection errors of every kind name the server
                raise EngineError(f"ClickHouse at {_redact(url)}: {exc.__class__.__name__}") from None
            self._chdb = None
        for ddl in _CLICKHOUSE_DDL:
            self.execute(ddl)

    def execute(self, sql: str) -> None:
        if self._client is not None:
            self._client.command(sql)
        else:
            self._chdb.query(sql)

    def _query(self, sql: str) -> list[tuple]:
        if self._client is not None:
            try:
                return [tuple(r) for r in self._client.query(sql, settings={"join_use_nulls": 1}).result_rows]
            except Exception as exc:  # noqa: BLE001 - the driver's errors name the server; its URL has the password
                raise EngineError(f"ClickHouse at {self._server}: {exc.__class__.__name__}: "
                                  f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
        import json

        settings = ", ".join(f"{k} = {v}" for k, v in CLICKHOUSE_SETTINGS.items())
        out = self._chdb.query(f"{sql}\nSETTINGS {settings}", "JSONCompact")
        body = out.bytes() if hasattr(out, "bytes") else bytes(out)
        if not body.strip():
            return []
        return [tuple(r) for r in json.loads(body)["data"]]

    def _insert(self, name: str, table: Any) -> None:
        if table.num_rows == 0:
            return
        if self._client is not None:
            self._client.insert_arrow(name, table)
            return
        import tempfile

        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(prefix="siyu-ch-") as tmp:
            path = os.path.join(tmp, "batch.parquet")
            pq.write_table(table, path)
            self._chdb.query(f"INSERT INTO {name} SELECT * FROM file('{path}', Parquet)")

    def append_events(self, table: Any) -> None:
        self._insert("analytics_event", table)

    def replace_spend(self, table: Any) -> None:
        self.execute("TRUNCATE TABLE analytics_spend")
        self._insert("analytics_spend", table)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._client is not None:
                self._client.close()
            elif self._chdb is not None:
                self._chdb.close()


def _default_chdb_path() -> Path:
    from siyu.config import get_settings

    return get_settings().data_dir / "analytics-chdb"


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"


ENGINES = ("duckdb", "clickhouse", "sql")


def open_engine(name: str = "duckdb", *, sa_engine: SAEngine | Connection | None = None,
                snapshot: str | Path | None = None, prepare: bool = True) -> AnalyticsEngine:
    """The named engine over the main database (`sa_engine`, default Siyu's), synced and ready.

        with open_engine("duckdb") as engine:
            result = reports.funnel(engine, Filters(corp_id=None), steps=[...], window_days=7)
    """
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r} (one of {', '.join(ENGINES)})")
    if snapshot is not None:
        if name != "duckdb":
            raise EngineError("a Parquet snapshot is read by the duckdb engine")
        return DuckDBEngine.from_snapshot(snapshot)
    sa_engine = sa_engine if sa_engine is not None else _main_engine()
    engine: AnalyticsEngine
    if name == "sql":
        engine = SQLEngine(sa_engine)
    elif name == "duckdb":
        engine = DuckDBEngine(sa_engine=sa_engine)
    else:
        engine = ClickHouseEngine(sa_engine=sa_engine)
    if prepare:
        try:
            engine.prepare()
        except BaseException:
            engine.close()
            raise
    return engine
