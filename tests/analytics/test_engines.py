"""The engines: every report gives identical answers on DuckDB, in-process ClickHouse and the
database's SQL over the same varied data; the copies are appended incrementally; a Parquet snapshot
reads the same."""

from __future__ import annotations

import datetime as dt
import random

from analytics.reportdata import Events, at, open_test_engine
from siyu.analytics.engines import DuckDBEngine, EngineError, open_engine
from siyu.analytics.reports import Filters, run_report

CHANNELS = ("ad", "branch", "sms", None)
CAMPAIGNS = ("spring", "autumn", None)
CUSTOMER_TYPES = ("customer.verified", "group.joined", "message.received", "message.sent", "order.invested",
                  "order.matured", "order.redeemed", "coupon.redeemed", "campaign.reward_paid", "customer.lost")


def _varied(session, rnd: random.Random, customers: int = 120) -> None:
    events = []
    start = at("2026-02-23", "00:00:00")
    for c in range(customers):
        t = start + dt.timedelta(seconds=rnd.randrange(0, 60 * 86400))
        if rnd.random() < 0.9:  # some customers never added
            events.append((f"c{c}", "customer.added", t, None,
                           {"channel": rnd.choice(CHANNELS), "campaign": rnd.choice(CAMPAIGNS)}))
        for _ in range(rnd.randrange(0, 14)):
            kind = rnd.choice(CUSTOMER_TYPES)
            # many in the same second as another, some before the add
            t2 = t + dt.timedelta(seconds=rnd.choice((0, 1, 3600, 86400 * rnd.randrange(0, 40), -7200)))
            amount = rnd.randrange(0, 500_000) if kind.startswith(("order.", "coupon.", "campaign.")) else None
            dims = {"channel": rnd.choice(CHANNELS)} if kind in ("coupon.redeemed", "campaign.reward_paid") else {}
            events.append((f"c{c}", kind, t2, amount, {**dims, "advisor": rnd.choice(("u1", "u2"))}))
    unique = {(c, k, w, a, tuple(sorted(d.items()))): (c, k, w, a, d) for c, k, w, a, d in events}
    ev = Events(session)
    ev.many(list(unique.values()))
    ev.spend(12_345, "2026-02-20", "2026-03-15", channel="ad")
    ev.spend(999, "2026-03-01", "2026-03-01", campaign="spring")


PARAMS = [
    ("funnel", Filters(), {"steps": ["customer.added", "customer.verified", "order.invested"], "window_days": 14}),
    ("funnel", Filters(channel="ad"), {"steps": ["customer.added", "order.invested", "order.invested"],
                                       "window_days": 30}),
    ("funnel", Filters(date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 3, 20)),
     {"steps": ["message.received", "group.joined"], "window_days": 2}),
    ("retention", Filters(), {"by": "channel", "weeks": 6}),
    ("retention", Filters(campaign="spring"), {"by": None, "weeks": 3}),
    ("reinvestment", Filters(), {"days": 15}),
    ("reinvestment", Filters(date_from=dt.date(2026, 3, 10)), {"days": 30}),
    ("cac", Filters(), {"by": "channel"}),
    ("cac", Filters(date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 3, 31)), {"by": "campaign"}),
    ("roi", Filters(), {}),
    ("roi", Filters(date_to=dt.date(2026, 3, 15)), {}),
]


def test_every_report_is_the_same_on_every_engine(session, tmp_path):
    _varied(session, random.Random(15))
    answers = {}
    for name in ("sql", "duckdb", "clickhouse"):
        with open_test_engine(name, session, tmp_path) as engine:
            answers[name] = [run_report(report, engine, filters, **params) for report, filters, params in PARAMS]
    assert answers["duckdb"] == answers["sql"]
    assert answers["clickhouse"] == answers["sql"]
    # the data exercise the reports: nothing trivially empty
    funnel, _, _, retention, _, reinvest, _, cac, *_ = answers["sql"]
    assert funnel["steps"][0]["customers"] > funnel["steps"][2]["customers"] > 0
    assert reinvest["reinvested_customers"] > 0 and len(cac["rows"]) >= 4 and retention["rows"]


def _count(engine) -> int:
    return engine.rows("SELECT COUNT(*) FROM analytics_event")[0][0]


def test_the_copy_is_appended_with_new_events_only(session, tmp_path):
    ev = Events(session)
    ev.add("a", "customer.added", at("2026-03-02"), channel="ad")
    ev.add("b", "customer.added", at("2026-03-02"), channel="ad")
    for n, name in ((2, "duckdb"), (3, "clickhouse")):
        workdir = tmp_path / name
        with open_test_engine(name, session, workdir) as engine:
            assert run_report("cac", engine, by="channel")["rows"][0]["customers"] == n
            assert _count(engine) == n
        ev.add(f"c-{name}", "customer.added", at("2026-03-03"), channel="ad")
        with open_test_engine(name, session, workdir) as engine:
            copied = engine.sync()
            assert copied.copied == 1  # only the new one: the others were not copied again
            assert run_report("cac", engine, by="channel")["rows"][0]["customers"] == n + 1
            assert _count(engine) == n + 1
            assert engine.sync().copied == 0


def test_a_parquet_snapshot_gives_the_same_answers(session, tmp_path):
    _varied(session, random.Random(7), customers=40)
    with open_test_engine("duckdb", session, tmp_path) as engine:
        expected = [run_report(r, engine, f, **p) for r, f, p in PARAMS]
        counts = engine.snapshot(tmp_path / "snap")
    assert counts["analytics_event"] > 100 and counts["analytics_spend"] == 2
    with open_engine("duckdb", snapshot=tmp_path / "snap") as snap:
        assert [run_report(r, snap, f, **p) for r, f, p in PARAMS] == expected


def test_a_missing_snapshot_or_engine_is_named(tmp_path):
    import pytest

    with pytest.raises(EngineError, match="no analytics_event.parquet"):
        DuckDBEngine.from_snapshot(tmp_path)
    with pytest.raises(EngineError, match="unknown engine 'spark'"):
        open_engine("spark")


def test_an_unreachable_clickhouse_server_is_named_without_its_password():
    import socket

    import pytest

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineError) as caught:
        from siyu.analytics.engines import ClickHouseEngine

        ClickHouseEngine(f"http://siyu:s3cret@127.0.0.1:{port}/siyu")
    assert f"ClickHouse at http://127.0.0.1:{port}" in str(caught.value) and "s3cret" not in str(caught.value)


def test_another_process_holding_the_duckdb_file_is_waited_for_then_named(tmp_path):
    import subprocess
    import sys

    import pytest

    from siyu.analytics import engines

    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); "
                               "print('ready', flush=True); sys.stdin.readline()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(EngineError, match="in use by another process"):
            engines._connect_duckdb(str(path), wait_s=0.3)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with DuckDBEngine(path) as engine:  # free again
        assert engine.rows("SELECT COUNT(*) FROM analytics_event") == [(0,)]
