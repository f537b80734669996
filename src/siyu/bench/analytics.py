"""`siyu bench analytics`: the funnel, retention, reinvestment and CAC reports over `--events` events
(10,000,000 for the real run) on DuckDB, against the same report definitions run as SQL on SQLite.

A fresh installation (its own SQLite file) gets `--events` events of `--events / 10` customers of
the imported data set, generated with numpy (no Python loop per event): adds spread over a year
and over 16 channels (weighted) and 6 campaigns, verifications, group joins, investments of
typical amounts, maturities and redemptions after 30–180 days, reinvestments after some of them
(within days, some late), lottery rewards, coupons, customers lost, and messages both ways filling
up to the exact count; plus monthly ad spend per channel. Events are written in time order into
`analytics_event` with executemany in batches (`load_s`, the store's own indexes kept), then copied
to DuckDB through Siyu's incremental sync (`duckdb_sync_s`).

Each report is run once to warm up and then `--reps` times on each engine, the best run counted:
on DuckDB through `open_engine`'s path (the incremental check for new events included), on SQLite
as the `sql` engine (siyu.analytics.engines.SQLEngine) — the same SQL, the baseline. The answers of
the two engines are compared (`same_answers`). Figures in seconds; `speedup` = SQLite / DuckDB."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import time
from typing import Any

import numpy as np

from siyu.bench.common import Installation, workdir

CHANNELS = ["ad-feed", "ad-search", "ad-video", "branch-lobby-a", "branch-lobby-b", "branch-lobby-c",
            "call-list-1", "call-list-2", "sms-benefits", "mp-menu", "mp-article", "app-banner", "mini-program",
            "h5-poster", "lottery", "referral"]
CHANNEL_WEIGHTS = np.array([12, 8, 10, 6, 5, 4, 9, 7, 6, 5, 4, 6, 5, 4, 6, 3], dtype=float)
CAMPAIGNS = ["spring-lottery", "novice-course", "reinvest-sms", "new-fund", "anniversary", "referral-bonus"]
TYPES = ["customer.added", "customer.verified", "customer.lost", "group.joined", "group.left", "message.received",
         "message.sent", "campaign.reward_paid", "coupon.redeemed", "order.invested", "order.redeemed",
         "order.matured"]
T = {name: i for i, name in enumerate(TYPES)}
START = int(dt.datetime(2025, 12, 1, tzinfo=dt.UTC).timestamp()) - 8 * 3600  # 2025-12-01 00:00 in Shanghai
DAY = 86400
REPORTS = {
    "funnel": {"steps": ["customer.added", "customer.verified", "group.joined", "order.invested"], "window_days": 30},
    "retention": {"by": "channel", "weeks": 12},
    "reinvestment": {"days": 30},
    "cac": {"by": "channel"},
}


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench analytics", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--reps", type=int, default=3, help="timed runs of each report on each engine (best counted)")
    p.add_argument("--batch", type=int, default=200_000, help="rows per executemany batch")
    p.add_argument("--seed", type=int, default=20260315)
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep the databases")
    return p.parse_args(argv)


def generate(n_events: int, seed: int) -> dict[str, np.ndarray]:
    """Exactly `n_events` events as columns (customer, type, ts, amount (-1: none), channel, campaign,
    advisor (-1: none)), sorted by time."""
    rng = np.random.default_rng(seed)
    n_cust = max(10, n_events // 10)
    add_t = START + rng.integers(0, 365 * DAY, n_cust)
    channel = rng.choice(len(CHANNELS), n_cust, p=CHANNEL_WEIGHTS / CHANNEL_WEIGHTS.sum())
    campaign = np.where(rng.random(n_cust) < 0.55, rng.integers(0, len(CAMPAIGNS), n_cust), -1)
    advisor = rng.integers(0, 60, n_cust)
    parts: list[tuple[np.ndarray, ...]] = []
    everyone = np.arange(n_cust)

    def part(who: np.ndarray, kind: str, ts: np.ndarray, amount: np.ndarray | None = None,
             own_dims: bool = False) -> None:
        m = len(who)
        parts.append((who, np.full(m, T[kind], dtype=np.int8), ts.astype(np.int64),
                      amount if amount is not None else np.full(m, -1, dtype=np.int64),
                      channel[who] if own_dims else np.full(m, -1), campaign[who] if own_dims else np.full(m, -1),
                      advisor[who] if own_dims or kind.startswith("message") else np.full(m, -1)))

    def delay(m: int, mean_days: float) -> np.ndarray:
        return (rng.exponential(mean_days * DAY, m)).astype(np.int64)

    part(everyone, "customer.added", add_t, own_dims=True)
    who = everyone[rng.random(n_cust) < 0.65]
    part(who, "customer.verified", add_t[who] + delay(len(who), 1.5))
    who = everyone[rng.random(n_cust) < 0.45]
    part(who, "group.joined", add_t[who] + delay(len(who), 3))
    left = who[rng.random(len(who)) < 0.2]
    part(left, "group.left", add_t[left] + delay(len(left), 40))
    who = everyone[rng.random(n_cust) < 0.05]
    part(who, "customer.lost", add_t[who] + delay(len(who), 60))
    who = everyone[rng.random(n_cust) < 0.2]
    part(who, "campaign.reward_paid", add_t[who] + delay(len(who), 5), rng.choice([500, 800, 1000], len(who)))
    who = everyone[rng.random(n_cust) < 0.15]
    part(who, "coupon.redeemed", add_t[who] + delay(len(who), 10), rng.choice([1000, 2000, 5000], len(who)))
    # investments: a first one for 35 %, a second for some; each matures or is redeemed, and is often reinvested
    amounts = np.array([100_000, 400_000, 1_600_000, 2_800_000, 5_000_000, 10_000_000])
    who = everyone[rng.random(n_cust) < 0.35]
    inv_t = add_t[who] + delay(len(who), 7)
    for _round in range(2):
        part(who, "order.invested", inv_t, rng.choice(amounts, len(who)))
        term = rng.choice([30, 90, 180], len(who)) * DAY
        matures = rng.random(len(who)) < 0.75
        end_t = inv_t + np.where(matures, term, (rng.random(len(who)) * term).astype(np.int64))
        part(who[matures], "order.matured", end_t[matures], rng.choice(amounts, int(matures.sum())))
        part(who[~matures], "order.redeemed", end_t[~matures], rng.choice(amounts, int((~matures).sum())))
        again = rng.random(len(who)) < 0.55
        who, inv_t = who[again], end_t[again] + delay(int(again.sum()), 8)
    structural = sum(len(p[0]) for p in parts)
    n_messages = n_events - structural
    if n_messages < 0:
        raise ValueError("--events too small for the generated structure")
    who = rng.integers(0, n_cust, n_messages)
    kinds = np.where(rng.random(n_messages) < 0.6, T["message.received"], T["message.sent"]).astype(np.int8)
    parts.append((who, kinds, add_t[who] + delay(n_messages, 25), np.full(n_messages, -1, dtype=np.int64),
                  np.full(n_messages, -1), np.full(n_messages, -1), advisor[who]))
    cols = [np.concatenate([p[i] for p in parts]) for i in range(7)]
    order = np.argsort(cols[2], kind="stable")
    names = ("customer", "type", "ts", "amount", "channel", "campaign", "advisor")
    return {name: col[order] for name, col in zip(names, cols, strict=True)}


def _load(db_path: str, events: dict[str, np.ndarray], batch: int) -> float:
    """Writes the events and spend; the store's secondary indexes are dropped for the load and built
    after it (returns the seconds of the index build)."""
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA synchronous = NORMAL")
    indexes = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'analytics_event' "
                          "AND sql IS NOT NULL").fetchall()
    for name, _sql in indexes:
        con.execute(f'DROP INDEX "{name}"')
    types = np.array(TYPES, dtype=object)
    channels = np.array([*CHANNELS, None], dtype=object)  # index -1: None
    campaigns = np.array([*CAMPAIGNS, None], dtype=object)
    advisors = np.array([*(f"adv{i:02d}" for i in range(60)), None], dtype=object)
    recorded = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    sql = ("INSERT INTO analytics_event (corp_id, customer_id, customer_key, type, ts, channel, campaign, advisor, "
           "amount_fen, source_key, recorded_at) VALUES (NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    n = len(events["ts"])
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        ts = np.char.replace(np.datetime_as_string(events["ts"][lo:hi].astype("datetime64[s]"), unit="s"), "T", " ")
        amount = events["amount"][lo:hi].astype(object)
        amount[events["amount"][lo:hi] < 0] = None
        rows = zip(
            events["customer"][lo:hi].astype(str).tolist(), types[events["type"][lo:hi]].tolist(),
            np.char.add(ts, ".000000").tolist(), channels[events["channel"][lo:hi]].tolist(),
            campaigns[events["campaign"][lo:hi]].tolist(), advisors[events["advisor"][lo:hi]].tolist(),
            amount.tolist(), [f"bench:{i:010d}" for i in range(lo, hi)], [recorded] * (hi - lo), strict=True)
        with con:
            con.executemany(sql, rows)
    months = [(dt.date(2025 + (11 + m) // 12, (11 + m) % 12 + 1, 1)) for m in range(13)]
    rng = np.random.default_rng(1)
    with con:
        for ch in CHANNELS:
            for a, b in zip(months, months[1:], strict=False):
                con.execute("INSERT INTO analytics_spend (corp_id, channel, campaign, day_from, day_to, amount_fen, "
                            "note, created_at) VALUES (NULL, ?, NULL, ?, ?, ?, '', ?)",
                            (ch, a.isoformat(), (b - dt.timedelta(days=1)).isoformat(),
                             int(rng.integers(100_000, 5_000_000)), recorded))
    t0 = time.perf_counter()
    with con:
        for _name, sql_ in indexes:
            con.execute(sql_)
    con.execute("ANALYZE")
    con.close()
    return time.perf_counter() - t0


def _best(fn, reps: int) -> tuple[float, Any]:
    result = fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return round(best, 4), result


def main(argv: list[str]) -> dict:
    args = _parse(argv)
    from siyu import db
    from siyu.analytics.engines import DuckDBEngine, SQLEngine
    from siyu.analytics.reports import Filters, run_report

    with workdir(args.keep) as root:
        inst = Installation(root)
        inst.activate()
        t0 = time.perf_counter()
        events = generate(args.events, args.seed)
        generate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index_s = _load(str(root / "siyu.db"), events, args.batch)
        load_s = time.perf_counter() - t0
        customers = int(events["customer"].max()) + 1
        del events
        sa_engine = db.make_engine(inst.database_url)
        try:
            duck_path = root / "analytics.duckdb"
            t0 = time.perf_counter()
            with DuckDBEngine(duck_path, sa_engine=sa_engine) as duck:
                copied = duck.sync().copied
            sync_s = time.perf_counter() - t0
            filters = Filters()
            duck_s, sql_s, answers = {}, {}, {}
            with DuckDBEngine(duck_path, sa_engine=sa_engine) as duck:
                for name, params in REPORTS.items():
                    def on_duckdb(name=name, params=params):
                        duck.prepare()  # the incremental check a report makes
                        return run_report(name, duck, filters, **params)

                    duck_s[name], answers[name] = _best(on_duckdb, args.reps)
            sqlite_engine = SQLEngine(sa_engine)
            same = True
            for name, params in REPORTS.items():
                sql_s[name], answer = _best(lambda name=name, params=params: run_report(name, sqlite_engine, filters,
                                                                                       **params), args.reps)
                same = same and answer == answers[name]
        finally:
            sa_engine.dispose()
        sizes = {"sqlite_mb": round(os.path.getsize(root / "siyu.db") / 2**20, 1),
                 "duckdb_mb": round(os.path.getsize(duck_path) / 2**20, 1)}
    funnel = answers["funnel"]["steps"]
    return {"events": args.events, "customers": customers, "load_s": round(load_s, 2),
            "index_build_s": round(index_s, 2),
            "generate_s": round(generate_s, 2), "duckdb_sync_s": round(sync_s, 2), "copied": copied,
            "duckdb_s": duck_s, "sqlite_s": sql_s,
            "speedup": {k: round(sql_s[k] / duck_s[k], 1) if duck_s[k] else None for k in REPORTS},
            "same_answers": same, "reps": args.reps, **sizes,
            "funnel": [s["customers"] for s in funnel],
            "reinvestment_rate": answers["reinvestment"]["rate"],
            "cac_rows": len(answers["cac"]["rows"]), "cpus": os.cpu_count()}
