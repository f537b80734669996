"""`siyu bench segment`: count a compound segment on a million customers and ten million events and
orders, on SQLite, through the same service the console and the REST API call.

A fresh installation (its own SQLite file, migrated to head) gets one corp with 30 advisors and
`--customers` customers, each with two corp tags (of 25), a follow, a lifecycle stage, a risk
assessment for 70 % of them (10 % with an older one before it), and `--events` rows of history split
80 / 20 between timeline events (`customer_event`) and the firm's orders (`firm_order`: investments
and redemptions of 20 products R1–R5), spread over three years. Rows are made by SQLite itself
(INSERT … SELECT over a recursive counter), with the indexes of those tables dropped for the load and
built after it (load_s, index_build_s), before anything is timed.

The segment: tags (any of two), stage (invested or reinvested), risk level C3–C5 (the assessment in
force), an event in a window (a product recommended in the last 90 days) and an order condition
(holds a product of R3 or above: investments minus redemptions > 0). `count_seconds` is the median
of `--reps` counts by `siyu.audiences.service.count_rule` (the rule checked, compiled and run).

Baselines, same run, data, indexes and warm-up (one run first), the median of `--reps` too, each on a
plain sqlite3 connection:
- `baseline_handwritten_seconds`: the same conditions written by hand as one SQL statement of the
  shape the compiler gives (what checking, compiling and SQLAlchemy cost on top);
- `baseline_all_exists_seconds`: one statement with every condition a correlated EXISTS (what the IN
  sets gain on SQLite);
- `baseline_one_by_one_seconds`: the segment's conditions one by one, each its own set of customer
  ids, intersected by the database (INTERSECT): the way segments are often evaluated.
All three counts must agree, or the run fails."""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

from siyu.bench.common import BenchError, Installation, workdir

TABLES = ("customer", "customer_follow", "customer_tag_link", "customer_event", "customer_risk_assessment",
          "firm_order")
TAGS = 25
ADVISORS = 30
PRODUCTS = 20  # product P{k:02d} has risk level R{k % 5 + 1}
HISTORY_DAYS = 3 * 365
# A multiplicative hash of the row number (modulo the prime 2^31 - 1) gives each column its own stable
# pseudo-random value in [0, P): the same data on every run.
P = 2147483647
H = "((({x}) * {m}) % 2147483647)"


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench segment", description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1_000_000, help="customers in the corp")
    p.add_argument("--events", type=int, default=10_000_000,
                   help="rows of history: 80 %% timeline events, 20 %% orders")
    p.add_argument("--reps", type=int, default=5, help="timed counts of the segment and of each baseline")
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep the database")
    return p.parse_args(argv)


def _h(x: str, m: int) -> str:
    return H.format(x=x, m=m * 1_000_003)


def _ts(seconds_expr: str, base: str) -> str:
    """SQL for a timestamp as SQLAlchemy stores it in SQLite ('YYYY-MM-DD HH:MM:SS.ffffff', UTC)."""
    return f"(strftime('%Y-%m-%d %H:%M:%S', '{base}', printf('%+d seconds', {seconds_expr})) || '.000000')"


def _setup(session) -> dict[str, Any]:
    from siyu.customers.models import CustomerTag, CustomerTagGroup
    from siyu.tenancy import service as tenancy

    corp = tenancy.create_corp(session, slug="bench", name="压测银行")
    staff = [tenancy.create_staff(session, corp_id=corp.id, login=f"advisor{i:02d}", name=f"顾问{i:02d}",
                                  wecom_userid=f"advisor{i:02d}") for i in range(ADVISORS)]
    group = CustomerTagGroup(corp_id=corp.id, name="意向")
    session.add(group)
    session.flush()
    tags = [CustomerTag(corp_id=corp.id, group_id=group.id, name=f"标签{i:02d}") for i in range(TAGS)]
    session.add_all(tags)
    session.flush()
    return {"corp_id": corp.id, "staff": [(s.id, s.wecom_userid) for s in staff], "tag_ids": [t.id for t in tags]}


def _load(db: Path, *, corp_id: int, staff: list[tuple[int, str]], tag_ids: list[int], n: int, events: int,
          now: dt.datetime) -> dict[str, int]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA cache_size=-400000")
    conn.execute("PRAGMA temp_store=MEMORY")
    base = (now - dt.timedelta(days=HISTORY_DAYS)).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    span = HISTORY_DAYS * 86400
    first_staff = staff[0][0]
    tag0 = tag_ids[0]
    counter = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
    conn.execute("BEGIN")
    # customers: stage 35 % new, 20 % activated, 20 % invested, 10 % reinvested, 10 % dormant, 5 % lost
    added = _ts(f"{_h('i', 7919)} * {span} / 2147483647", base)
    stage = _h("i", 104729) + " % 100"
    conn.execute(counter.format(n=n) + f"""
        INSERT INTO customer (id, corp_id, external_userid, name, name_hash, gender, unionid, stage, firm_customer_id,
                              first_added_at, lost_at, profile_synced_at, search_version, updated_at, created_at)
        SELECT i, {corp_id}, printf('wmbench%012d', i), NULL, NULL, {_h('i', 31)} % 3, NULL,
               CASE WHEN {stage} < 35 THEN 'new' WHEN {stage} < 55 THEN 'activated' WHEN {stage} < 75 THEN 'invested'
                    WHEN {stage} < 85 THEN 'reinvested' WHEN {stage} < 95 THEN 'dormant' ELSE 'lost' END,
               CASE WHEN {_h('i', 613)} % 10 < 3 THEN printf('F%09d', i) END,
               {added}, NULL, {added}, 0, {added}, {added}
        FROM s""")
    conn.execute(f"""
        INSERT INTO customer_follow (corp_id, customer_id, staff_id, wecom_userid, remark, remark_hash, description,
                                     add_time, add_way, state, status, ended_at, stage, shared, updated_at, created_at)
        SELECT {corp_id}, id, {first_staff} + {_h('id', 211)} % {ADVISORS},
               printf('advisor%02d', {_h('id', 211)} % {ADVISORS}), NULL, NULL, NULL, first_added_at, 1, NULL,
               CASE WHEN stage = 'lost' THEN 'lost' ELSE 'active' END, NULL, stage, 0, first_added_at, first_added_at
        FROM customer WHERE corp_id = {corp_id}""")
    for k, m in ((0, 389), (1, 977)):
        # two different tags per customer: the second is the first shifted by 1..24
        tag = f"({_h('id', 389)} % {TAGS})" if k == 0 else \
            f"(({_h('id', 389)} % {TAGS}) + 1 + {_h('id', m)} % {TAGS - 1}) % {TAGS}"
        conn.execute(f"""
            INSERT INTO customer_tag_link (customer_id, tag_id, corp_id, stage, created_at)
            SELECT id, {tag0} + {tag}, {corp_id}, stage, first_added_at FROM customer WHERE corp_id = {corp_id}""")
    # risk assessments: 70 % assessed (level C1–C5), a tenth of them with an older assessment first
    level = f"'C' || (1 + {_h('id', 1283)} % 5)"
    assessed = f"{_h('id', 4001)} * {2 * 365 * 86400} / 2147483647 + {(HISTORY_DAYS - 2 * 365) * 86400}"
    conn.execute(f"""
        INSERT INTO customer_risk_assessment (corp_id, customer_ref, level, source, assessed_at, expires_at, reference,
                                              recorded_by, recorded_by_staff_id, created_at)
        SELECT {corp_id}, external_userid, {level}, 'firm_kyc_api', {_ts(assessed, base)},
               {_ts(f'{assessed} + 365 * 86400', base)}, '', 'bench', NULL, {_ts(assessed, base)}
        FROM customer WHERE corp_id = {corp_id} AND {_h('id', 2017)} % 10 < 7""")
    conn.execute(f"""
        INSERT INTO customer_risk_assessment (corp_id, customer_ref, level, source, assessed_at, expires_at, reference,
                                              recorded_by, recorded_by_staff_id, created_at)
        SELECT {corp_id}, external_userid, 'C' || (1 + {_h('id', 17)} % 5), 'questionnaire',
               {_ts(f'{assessed} - 400 * 86400', base)}, {_ts(f'{assessed} - 35 * 86400', base)}, '', 'bench', NULL,
               {_ts(f'{assessed} - 400 * 86400', base)}
        FROM customer WHERE corp_id = {corp_id} AND {_h('id', 2017)} % 10 = 0""")
    conn.execute("COMMIT")

    timeline, orders = events * 8 // 10, events - events * 8 // 10
    kinds = ("added", "stage_changed", "tags_changed", "note_added", "product_recommended", "invested",
             "redeemed", "firm_linked")
    kind_case = "CASE " + " ".join(f"WHEN {_h('i', 7)} % {len(kinds)} = {k} THEN '{name}'"
                                   for k, name in enumerate(kinds)) + " END"
    chunk = 2_000_000
    for start in range(0, timeline, chunk):
        size = min(chunk, timeline - start)
        conn.execute("BEGIN")
        conn.execute(counter.format(n=size) + f"""
            INSERT INTO customer_event (corp_id, customer_id, kind, at, actor, actor_staff_id, detail, source_key)
            SELECT {corp_id}, 1 + {_h(f'i + {start}', 6151)} % {n},
                   {kind_case.replace('(i)', f'(i + {start})')},
                   {_ts(f"{_h(f'i + {start}', 12289)} * {span} / 2147483647", base)}, 'bench', NULL, '{{}}', NULL
            FROM s""")
        conn.execute("COMMIT")
    product = f"{_h('i', 25013)} % {PRODUCTS}"
    for start in range(0, orders, chunk):
        size = min(chunk, orders - start)
        conn.execute("BEGIN")
        conn.execute(counter.format(n=size) + f"""
            INSERT INTO firm_order (corp_id, kind, firm_order_id, customer_id, firm_customer_id, amount_fen,
                                    product_code, product_risk_level, occurred_at, fields, created_at)
            SELECT {corp_id}, CASE WHEN {_h('i', 50021)} % 10 < 7 THEN 'investment' ELSE 'redemption' END,
                   printf('o%010d', i + {start}), 1 + {_h(f'i + {start}', 24593)} % {n}, 'F',
                   100000 * (1 + {_h('i', 97)} % 50), printf('P%02d', {product}), 'R' || (1 + ({product}) % 5),
                   {_ts(f"{_h(f'i + {start}', 49157)} * {span} / 2147483647", base)}, '{{}}',
                   {_ts(f"{_h(f'i + {start}', 49157)} * {span} / 2147483647", base)}
            FROM s""")
        conn.execute("COMMIT")
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    conn.close()
    return counts


def _rule(tag_ids: list[int]) -> dict:
    return {"all": [
        {"kind": "tags", "match": "any", "tag_ids": tag_ids[:2]},
        {"kind": "stage", "stages": ["invested", "reinvested"]},
        {"kind": "risk_level", "levels": ["C3", "C4", "C5"]},
        {"kind": "event", "event": "product_recommended", "within_days": 90},
        {"kind": "holds", "min_risk": "R3"},
    ]}


def _sqlite_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_RISK = """EXISTS (SELECT 1 FROM customer_risk_assessment a
                    WHERE a.corp_id = :corp AND a.customer_ref IN (c.external_userid, c.firm_customer_id)
                      AND a.level IN ('C3', 'C4', 'C5')
                      AND NOT EXISTS (SELECT 1 FROM customer_risk_assessment b
                                      WHERE b.corp_id = :corp
                                        AND b.customer_ref IN (c.external_userid, c.firm_customer_id)
                                        AND (b.assessed_at > a.assessed_at
                                             OR (b.assessed_at = a.assessed_at AND b.id > a.id))))"""
_HOLDS = """EXISTS (SELECT o.product_code FROM firm_order o WHERE o.customer_id = c.id GROUP BY o.product_code
                    HAVING sum(CASE WHEN o.kind = 'investment' THEN o.amount_fen ELSE -o.amount_fen END) > 0
                       AND max(o.product_risk_level) >= 'R3')"""


def _handwritten(corp_id: int, tags: list[int], since: dt.datetime, *, sets: bool) -> tuple[str, dict]:
    """The segment as one hand-written SQL statement: with `sets`, the shape the compiler gives on
    SQLite (tags and the event window as IN sets); without, every condition a correlated EXISTS."""
    if sets:
        tag = ("c.id IN (SELECT l.customer_id FROM customer_tag_link l WHERE l.tag_id IN (:t0, :t1) "
               "AND l.stage IN ('invested', 'reinvested'))")
        event = ("c.id IN (SELECT e.customer_id FROM customer_event e WHERE e.corp_id = :corp "
                 "AND e.kind = 'product_recommended' AND e.at >= :since)")
    else:
        tag = "EXISTS (SELECT 1 FROM customer_tag_link l WHERE l.customer_id = c.id AND l.tag_id IN (:t0, :t1))"
        # by the customer's id alone (it implies the corp), so that SQLite probes ix_customer_event_customer_at
        event = ("EXISTS (SELECT 1 FROM customer_event e WHERE e.customer_id = c.id "
                 "AND e.kind = 'product_recommended' AND e.at >= :since)")
    sql = (f"SELECT count(*) FROM customer c WHERE c.corp_id = :corp AND c.stage IN ('invested', 'reinvested') "
           f"AND {tag} AND {event} AND {_RISK} AND {_HOLDS}")
    return sql, {"corp": corp_id, "t0": tags[0], "t1": tags[1], "since": _sqlite_time(since)}


def _one_by_one(corp_id: int, tags: list[int], since: dt.datetime) -> tuple[str, tuple]:
    """Each condition its own set of customer ids, intersected (the first set is the corp's customers,
    so the set of holdings needs no corp filter of its own). The assessment in force is the latest
    by external_userid (every assessment of the bench is made by it; SQLite's bare column of max())."""
    sql = """
        SELECT count(*) FROM (
            SELECT id FROM customer WHERE corp_id = ? AND stage IN ('invested', 'reinvested')
            INTERSECT
            SELECT customer_id FROM customer_tag_link WHERE corp_id = ? AND tag_id IN (?, ?)
            INTERSECT
            SELECT c.id FROM customer c JOIN (
                SELECT customer_ref, level, max(assessed_at) FROM customer_risk_assessment WHERE corp_id = ?
                GROUP BY customer_ref) a ON a.customer_ref = c.external_userid
            WHERE c.corp_id = ? AND a.level IN ('C3', 'C4', 'C5')
            INTERSECT
            SELECT customer_id FROM customer_event WHERE corp_id = ? AND kind = 'product_recommended' AND at >= ?
            INTERSECT
            SELECT customer_id FROM firm_order GROUP BY customer_id, product_code
            HAVING sum(CASE WHEN kind = 'investment' THEN amount_fen ELSE -amount_fen END) > 0
               AND max(product_risk_level) >= 'R3'
        )"""
    return sql, (corp_id, corp_id, tags[0], tags[1], corp_id, corp_id, corp_id, _sqlite_time(since))


def _median_seconds(fn, reps: int) -> tuple[float, Any]:
    value = fn()  # the same warm-up for every way: one run first
    times = []
    for _ in range(max(1, reps)):
        started = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - started)
        if got != value:
            raise BenchError(f"a count changed between runs: {value} then {got}")
    return statistics.median(times), value


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    if args.customers < 10 or args.events < 10:
        raise BenchError("--customers and --events are at least 10")
    started = time.perf_counter()
    with workdir(args.keep) as root:
        inst = Installation(root)
        inst.activate()
        from sqlalchemy.orm import Session

        from siyu.audiences import service
        from siyu.db import make_engine

        engine = make_engine(inst.database_url)
        try:
            with Session(engine) as s, s.begin():
                setup = _setup(s)
            db = root / "siyu.db"
            with sqlite3.connect(db) as conn:
                marks = ",".join("?" * len(TABLES))
                indexes = conn.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                                       f"AND tbl_name IN ({marks})", TABLES).fetchall()
                for name, _sql in indexes:
                    conn.execute(f"DROP INDEX {name}")
            now = dt.datetime.now(dt.UTC)
            load_started = time.perf_counter()
            counts = _load(db, corp_id=setup["corp_id"], staff=setup["staff"], tag_ids=setup["tag_ids"],
                           n=args.customers, events=args.events, now=now)
            load_s = time.perf_counter() - load_started
            index_started = time.perf_counter()
            with sqlite3.connect(db) as conn:
                for _name, sql in indexes:
                    conn.execute(sql)
            index_s = time.perf_counter() - index_started
            engine.dispose()

            corp_id, tags = setup["corp_id"], setup["tag_ids"]
            rule = _rule(tags)
            since = service.day_start(service.shanghai_today(now) - dt.timedelta(days=89))
            with Session(engine) as session:
                count_s, count = _median_seconds(
                    lambda: service.count_rule(session, corp_id=corp_id, rule=rule, now=now), args.reps)
                compile_started = time.perf_counter()
                service.rule_customer_ids(session, corp_id=corp_id, rule=rule, now=now)
                compile_s = time.perf_counter() - compile_started
                session.rollback()
            raw = sqlite3.connect(db)
            try:
                timed = {}
                for key, (sql, params) in {
                    "handwritten": _handwritten(corp_id, tags, since, sets=True),
                    "all_exists": _handwritten(corp_id, tags, since, sets=False),
                    "one_by_one": _one_by_one(corp_id, tags, since),
                }.items():
                    timed[key] = _median_seconds(lambda sql=sql, params=params: raw.execute(sql, params).fetchone()[0],
                                                 args.reps)
            finally:
                raw.close()
            if any(v != count for _s, v in timed.values()):
                raise BenchError(f"the counts disagree: segment {count}, "
                                 + ", ".join(f"{k} {v}" for k, (_s, v) in timed.items()))
        finally:
            engine.dispose()
        size_mb = (root / "siyu.db").stat().st_size / 1e6
    return {
        "scenario": "segment",
        "database": "sqlite",
        "customers": counts["customer"],
        "timeline_events": counts["customer_event"],
        "orders": counts["firm_order"],
        "tag_links": counts["customer_tag_link"],
        "risk_assessments": counts["customer_risk_assessment"],
        "segment": "tags any of 2 of 25, stage invested|reinvested, risk C3-C5 (in force), "
                   "product_recommended in the last 90 days, holds R3+",
        "count": count,
        "count_seconds": round(count_s, 3),
        "compile_seconds": round(compile_s, 4),
        "target_count_seconds": 1.0,
        "baseline_handwritten_seconds": round(timed["handwritten"][0], 3),
        "baseline_all_exists_seconds": round(timed["all_exists"][0], 3),
        "baseline_one_by_one_seconds": round(timed["one_by_one"][0], 3),
        "baseline": "the same conditions on a plain sqlite3 connection: handwritten = one statement of the compiler's "
                    "shape; all_exists = one statement, every condition a correlated EXISTS; one_by_one = each "
                    "condition's set of customer ids, intersected; medians of the same reps after one warm-up",
        "reps": args.reps,
        "load_s": round(load_s, 1),
        "index_build_s": round(index_s, 1),
        "database_mb": round(size_mb),
        "total_s": round(time.perf_counter() - started, 1),
    }
