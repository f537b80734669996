"""Helpers of the analytics tests: events written into the test's transaction, and the three engines
reading inside it (nothing is committed; each test's DuckDB file and ClickHouse directory are its own)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.analytics.engines import AnalyticsEngine, ClickHouseEngine, DuckDBEngine, SQLEngine
from siyu.analytics.events import DIMENSIONS
from siyu.analytics.importer import ImportedEvent, ImportResult, load_events
from siyu.analytics.models import AnalyticsSpend
from siyu.analytics.reports import Filters, run_report

SH = ZoneInfo("Asia/Shanghai")
ENGINE_NAMES = ("sql", "duckdb", "clickhouse")


def at(day: str, time: str = "10:00:00") -> dt.datetime:
    """A time in Asia/Shanghai: at("2026-03-02", "10:00")."""
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=SH)


class Events:
    """Writes events of the imported data set (corp NULL, or `corp_id`) into the session's transaction."""

    def __init__(self, session: Session, corp_id: int | None = None) -> None:
        self.session, self.corp_id = session, corp_id

    def add(self, customer: str | int, kind: str, when: dt.datetime, *, amount_fen: int | None = None,
            **dims: str) -> None:
        self.many([(customer, kind, when, amount_fen, dims)])

    def many(self, events: list[tuple]) -> None:
        rows = [ImportedEvent(str(c), kind, when.astimezone(dt.UTC), amount,
                              tuple(dims.get(n) for n in DIMENSIONS)) for c, kind, when, amount, dims in events]
        result = ImportResult()
        load_events(self.session, rows, corp_id=self.corp_id, result=result)
        assert result.loaded == len(rows), "a test's events must differ from each other"

    def spend(self, amount_fen: int, day_from: str, day_to: str, *, channel: str | None = None,
              campaign: str | None = None) -> None:
        self.session.add(AnalyticsSpend(corp_id=self.corp_id, channel=channel, campaign=campaign,
                                        day_from=dt.date.fromisoformat(day_from), day_to=dt.date.fromisoformat(day_to),
                                        amount_fen=amount_fen, note=""))
        self.session.flush()


def open_test_engine(name: str, session: Session, workdir: Path) -> AnalyticsEngine:
    session.flush()
    conn = session.connection()
    if name == "sql":
        return SQLEngine(conn)
    engine: AnalyticsEngine
    if name == "duckdb":
        engine = DuckDBEngine(workdir / "analytics.duckdb", sa_engine=conn)
    else:
        engine = ClickHouseEngine(f"chdb://{workdir / 'clickhouse'}", sa_engine=conn)
    engine.prepare()
    return engine


def report(name: str, engine_name: str, session: Session, workdir: Path, filters: Filters | None = None,
           **params) -> dict:
    with open_test_engine(engine_name, session, workdir) as engine:
        return run_report(name, engine, filters or Filters(), **params)
