"""`siyu bench customers`: the console's customer list, filters, search and 360 page on SQLite with
a million customers in one corp.

A fresh installation (its own SQLite file and keys) gets one corp with `--advisors` advisors in three
branches, a team lead who sees a branch, and `--customers` customers as WeCom would have brought them:
follows with channel states (10 % followed by two advisors), names and remarks encrypted with their
lookup hashes, lifecycle stages, corp tags, timeline entries, a few notes. Rows are bulk-inserted
with executemany in large batches.

Then each query of the console is timed `--reps` times through the same service functions the pages
call, with varying parameters: the list's first page and a later one, every filter alone, a combined
filter, search by exact name (lookup hash), by part of a name (the blind index of name and remark
n-grams, siyu.customers.search) and by external id, an advisor's and a team lead's own
list, and a customer's 360 page. A list or filter timing is a whole page's service calls: the page of
rows and the per-stage counts (the chart and the total). Figures: p50/p95 per query and the p95 over
all of them (target < 150 ms).

Baseline, same run, data and indexes: the same questions asked the plain way (`_plain_queries`:
the customer table with EXISTS on follows and tag links, OFFSET paging, a GROUP BY for the counts),
without the listing's query shaping, with the same warm-up, `--baseline-reps` times each
(baseline_plain_p50_ms / _p95_ms per query, baseline_plain_p95_ms over all). The indexes are dropped
for the bulk load and built after it (load_s, index_build_s), before anything is timed."""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siyu.bench.common import Installation, percentile, workdir

TABLES = ("customer", "customer_follow", "customer_tag_link", "customer_event", "customer_note", "customer_search_gram")
STAGES = (("new", 35), ("activated", 20), ("invested", 20), ("reinvested", 10), ("dormant", 10), ("lost", 5))
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
            "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
         "超", "秀英", "霞", "平", "刚", "桂英", "建华", "建国", "晓梅", "志强", "海燕", "雪", "婷", "浩",
         "宇", "欣怡", "子涵", "梓萱", "一诺", "俊杰", "思远", "雨桐", "佳琪", "文博")
CHANNELS = [f"ad-douyin-2026q{q}" for q in range(1, 5)] + [f"branch-{b}-lobby" for b in (
    "xuhui", "pudong", "jingan", "minhang", "baoshan", "putuo", "changning", "yangpu")] + [
    f"sms-reinvest-{m:02d}" for m in range(1, 13)] + [f"mp-menu-{x}" for x in ("benefits", "course", "lottery")] + [
    f"call-list-{i}" for i in range(1, 9)] + ["mini-program-home", "app-banner", "h5-poster", "wechat-article"]
TAG_GROUPS = {"风险等级": ["C1", "C2", "C3", "C4", "C5"], "意向": ["基金", "理财", "存款", "保险", "贵金属"],
              "资产": ["5万以下", "5-50万", "50-300万", "300万以上"], "来源": ["代发", "信用卡", "房贷", "存量客户"],
              "活动": ["新手课程", "抽奖", "打卡", "沙龙", "直播", "问卷"]}
HISTORY_DAYS = 3 * 365


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench customers", description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1_000_000, help="customers in the corp")
    p.add_argument("--advisors", type=int, default=30, help="advisors the customers are spread over")
    p.add_argument("--reps", type=int, default=30, help="timed runs of each query")
    p.add_argument("--baseline-reps", type=int, default=10, help="runs of each plain baseline query")
    p.add_argument("--batch", type=int, default=100_000, help="rows per executemany batch")
    p.add_argument("--seed", type=int, default=20260301)
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep the database to look at: "
                   f"SIYU_DATA_DIR=DIR SIYU_COOKIE_SECURE=false siyu serve, log in as ops / {KEPT_PASSWORD}")
    return p.parse_args(argv)


def _stamp(at: dt.datetime) -> str:
    """A UTC time as SQLAlchemy stores it in SQLite (`at` is naive UTC here: isoformat is fast)."""
    return at.isoformat(" ", "microseconds")


# --- the corp and its staff -------------------------------------------------------------------------


KEPT_PASSWORD = "siyu-bench-2026"  # of the login `ops` in a database kept with --keep


def _setup_corp(session, advisors: int, *, ops_password: str | None = None) -> dict[str, Any]:
    from siyu.tenancy import service as tenancy
    from siyu.tenancy.principal import Principal

    corp = tenancy.create_corp(session, slug="bench", name="压测银行")
    retail = tenancy.create_department(session, corp_id=corp.id, name="零售部")
    branches = [tenancy.create_department(session, corp_id=corp.id, name=f"支行{i + 1}", parent_id=retail.id)
                for i in range(3)]
    staff = []
    for i in range(advisors):
        staff.append(tenancy.create_staff(session, corp_id=corp.id, login=f"advisor{i:02d}", name=f"顾问{i:02d}",
                                          wecom_userid=f"advisor{i:02d}", department_id=branches[i % 3].id))
    lead = tenancy.create_staff(session, corp_id=corp.id, login="lead", name="主管", wecom_userid="lead",
                                department_id=branches[0].id, sees_department=True)
    ops = tenancy.create_staff(session, corp_id=corp.id, login="ops", name="运营", roles=["operations"],
                               password=ops_password)
    session.flush()

    def principal(s) -> Principal:
        return Principal(corp_id=corp.id, kind="staff", label=s.login, staff_id=s.id, department_id=s.department_id,
                         roles=frozenset(s.role_names), sees_department=s.sees_department)

    return {"corp_id": corp.id, "advisors": [(s.id, s.wecom_userid) for s in staff],
            "ops": principal(ops), "lead": principal(lead), "advisor_principals": [principal(s) for s in staff]}


# --- the load --------------------------------------------------------------------------------------------


def _indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    marks = ",".join("?" * len(TABLES))
    return conn.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                        f"AND tbl_name IN ({marks}) ORDER BY name", TABLES).fetchall()


def _load(db: Path, *, corp_id: int, advisors: list[tuple[int, str]], n: int, batch: int, rng: random.Random,
          now: dt.datetime) -> dict[str, Any]:
    """Bulk-insert the customers with everything that hangs off them; returns samples to query with."""
    from siyu import pii
    from siyu.customers import search
    from siyu.customers.contacts import name_hash, remark_hash

    now = now.astimezone(dt.UTC).replace(tzinfo=None)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-400000")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("BEGIN")
    group_ids, tag_ids = [], []
    for order, (group, tags) in enumerate(TAG_GROUPS.items()):
        gid = conn.execute("INSERT INTO customer_tag_group (corp_id, wecom_group_id, name, sort_order, created_at) "
                           "VALUES (?, ?, ?, ?, ?)", (corp_id, f"etg{order}", group, order, _stamp(now))).lastrowid
        group_ids.append(gid)
        for i, tag in enumerate(tags):
            tag_ids.append(conn.execute(
                "INSERT INTO customer_tag (corp_id, group_id, wecom_tag_id, name, sort_order, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (corp_id, gid, f"et{order}-{i}", tag, i, _stamp(now))).lastrowid)
    conn.execute("COMMIT")

    stage_names = [s for s, _w in STAGES]
    stage_weights = list(itertools.accumulate(w for _s, w in STAGES))
    # Advisors are not equally busy: a few senior ones hold far more customers.
    advisor_weights = list(itertools.accumulate(1.0 / (1 + i * 0.08) for i in range(len(advisors))))
    tag_weights = list(itertools.accumulate(1.0 / (1 + i * 0.15) for i in range(len(tag_ids))))
    start = now - dt.timedelta(days=HISTORY_DAYS)
    step = dt.timedelta(days=HISTORY_DAYS) / n
    samples: dict[str, Any] = {"names": [], "external_ids": [], "states": CHANNELS, "tag_ids": tag_ids}
    counts = {"customers": 0, "follows": 0, "tag_links": 0, "events": 0, "notes": 0, "search_grams": 0}
    sql = {
        "customer": "INSERT INTO customer (id, corp_id, external_userid, name, name_hash, gender, unionid, stage, "
                    "firm_customer_id, first_added_at, lost_at, profile_synced_at, search_version, updated_at, "
                    "created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "follow": "INSERT INTO customer_follow (corp_id, customer_id, staff_id, wecom_userid, remark, remark_hash, "
                  "description, add_time, add_way, state, status, ended_at, stage, shared, updated_at, created_at) "
                  "VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "tag": "INSERT INTO customer_tag_link (customer_id, tag_id, corp_id, stage, created_at) VALUES (?, ?, ?, ?, ?)",
        "event": "INSERT INTO customer_event (corp_id, customer_id, kind, at, actor, actor_staff_id, detail, "
                 "source_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        "note": "INSERT INTO customer_note (corp_id, customer_id, author_staff_id, text, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
        "gram": "INSERT OR IGNORE INTO customer_search_gram (corp_id, gram, customer_id) VALUES (?, ?, ?)",
    }
    next_id = 1
    while next_id <= n:
        rows: dict[str, list] = {k: [] for k in sql}
        for cid in range(next_id, min(n, next_id + batch - 1) + 1):
            added = start + step * cid + dt.timedelta(seconds=rng.random() * 60)
            added_s = _stamp(added)
            name = rng.choice(SURNAMES) + rng.choice(GIVEN)
            ext = "wm" + rng.getrandbits(120).to_bytes(15, "big").hex()[:30]
            stage = rng.choices(stage_names, cum_weights=stage_weights)[0]
            lost = stage == "lost"
            rows["customer"].append((
                cid, corp_id, ext, pii.encrypt(name, context="customer.name"), name_hash(name), rng.randint(0, 2),
                None, stage, f"F{cid:09d}" if rng.random() < 0.3 else None, added_s,
                _stamp(added + dt.timedelta(days=30)) if lost else None, added_s, search.VERSION, added_s, added_s))
            searchable = [name]
            if cid % 997 == 0:
                samples["names"].append(name)
                samples["external_ids"].append(ext)
            follows = 2 if rng.random() < 0.1 else 1
            chosen = list(dict.fromkeys(rng.choices(range(len(advisors)), cum_weights=advisor_weights, k=follows)))
            for k, a in enumerate(chosen):
                staff_id, userid = advisors[a]
                at = added + dt.timedelta(days=20 * k)
                state = rng.choice(CHANNELS) if rng.random() < 0.85 else None
                remark = name[0] + ("先生" if rng.random() < 0.5 else "女士") if rng.random() < 0.4 else None
                searchable.append(remark)
                status = "lost" if lost else "active"
                rows["follow"].append((
                    corp_id, cid, staff_id, userid,
                    pii.encrypt(remark, context="customer_follow.remark") if remark else None,
                    remark_hash(remark) if remark else None, _stamp(at), 1, state, status,
                    _stamp(added + dt.timedelta(days=30)) if lost else None, stage, len(chosen) > 1, _stamp(at),
                    _stamp(at)))
                rows["event"].append((corp_id, cid, "added", _stamp(at), f"wecom:{userid}", staff_id,
                                      # ASCII ids and channel codes: the JSON is written directly
                                      f'{{"wecom_userid": "{userid}", "staff_id": {staff_id}, '
                                      f'"state": {json.dumps(state)}}}',
                                      f"bench:{cid}:{k}"))
            rows["gram"].extend((r["corp_id"], r["gram"], r["customer_id"])
                                for r in search.index_rows(corp_id, cid, searchable))
            if stage != "new":
                rows["event"].append((corp_id, cid, "stage_changed", _stamp(added + dt.timedelta(days=7)), "firm",
                                      None, f'{{"from": "new", "to": "{stage}"}}', None))
            for tag_id in set(rng.choices(tag_ids, cum_weights=tag_weights, k=rng.choice((0, 1, 1, 2, 2, 3, 4)))):
                rows["tag"].append((cid, tag_id, corp_id, stage, added_s))
            if rng.random() < 0.05:
                note = pii.encrypt("客户关注稳健型产品，下周回访。", context="customer_note.text")
                rows["note"].append((corp_id, cid, advisors[chosen[0]][0], note, added_s))
        rows["gram"].sort()  # the index's own order: appended pages rather than scattered ones
        conn.execute("BEGIN")
        for key, statement in sql.items():
            conn.executemany(statement, rows[key])
        conn.execute("COMMIT")
        counts["customers"] += len(rows["customer"])
        counts["follows"] += len(rows["follow"])
        counts["tag_links"] += len(rows["tag"])
        counts["events"] += len(rows["event"])
        counts["notes"] += len(rows["note"])
        counts["search_grams"] += len(rows["gram"])
        next_id += batch
    conn.close()
    samples["counts"] = counts
    return samples


# --- the queries ------------------------------------------------------------------------------------------------


def _queries(session, setup: dict[str, Any], samples: dict[str, Any], rng: random.Random
             ) -> dict[str, Callable[[], object]]:
    """Each query the console runs, as a function drawing fresh parameters on every call."""
    from siyu.customers import service

    ops, lead = setup["ops"], setup["lead"]
    advisors = setup["advisor_principals"]
    today = dt.date.today()
    customer_ids = [rng.randint(1, samples["counts"]["customers"]) for _ in range(200)]
    part_of_name = _part_of_name(samples, rng)

    def page(principal, **filters):
        f = service.make_filters(**filters)
        rows = service.list_customers(session, principal=principal, filters=f)
        service.stage_counts(session, principal=principal, filters=f)
        return rows

    def later_page():
        first = service.list_customers(session, principal=ops, limit=50)
        return service.list_customers(session, principal=ops, after=first.next_after)

    def window() -> dict[str, dt.date]:
        start = today - dt.timedelta(days=rng.randint(30, HISTORY_DAYS))
        return {"added_from": start, "added_to": start + dt.timedelta(days=30)}

    return {
        "list_first_page": lambda: page(ops),
        "list_next_page": later_page,
        "filter_stage": lambda: page(ops, stage=rng.choice([s for s, _w in STAGES])),
        "filter_advisor": lambda: page(ops, staff_id=rng.choice(setup["advisors"])[0]),
        "filter_tag": lambda: page(ops, tag_id=rng.choice(samples["tag_ids"])),
        "filter_state_prefix": lambda: page(ops, state=rng.choice(["ad-douyin", "branch-pudong", "sms-reinvest-0",
                                                                    "call-list-", "mp-menu-course"])),
        "filter_added_range": lambda: page(ops, **window()),
        "filter_combined": lambda: page(ops, stage=rng.choice(["invested", "reinvested", "activated"]),
                                        staff_id=rng.choice(setup["advisors"])[0],
                                        tag_id=rng.choice(samples["tag_ids"][:10]), **window()),
        "search_name": lambda: page(ops, q=rng.choice(samples["names"])),
        "search_part_of_name": lambda: page(ops, q=part_of_name()),
        "search_external_id": lambda: page(ops, q=rng.choice(samples["external_ids"])),
        "advisor_own_list": lambda: page(rng.choice(advisors)),
        "lead_department_list": lambda: page(lead),
        "customer_360": lambda: service.customer_detail(session, principal=ops, customer_id=rng.choice(customer_ids)),
    }


def _part_of_name(samples: dict[str, Any], rng: random.Random) -> Callable[[], str]:
    """What staff type to find someone by part of a name: the given name (one or two characters),
    or the surname with the first character of the given name."""
    def draw() -> str:
        name = rng.choice(samples["names"])
        return name[1:] if rng.random() < 0.5 else name[:2]

    return draw


def _plain_queries(session, setup: dict[str, Any], samples: dict[str, Any], rng: random.Random
                   ) -> dict[str, Callable[[], object]]:
    """The baseline: the same questions asked the straightforward way, on the same indexes, without
    the listing's shaping (no stage copied onto follows, no `shared` shortcut, no keyset paging, no
    per-principal plans): the customer table filtered with EXISTS on follows and tag links, ordered by
    add time, OFFSET paging, and a GROUP BY for the per-stage counts; the 360 page as one query per
    part. Same parameters as `_queries`, same warm-up and repetitions."""
    from sqlalchemy import and_, exists, func, select

    from siyu.customers import search
    from siyu.customers.contacts import name_hash
    from siyu.customers.models import (
        Customer,
        CustomerEvent,
        CustomerFollow,
        CustomerNote,
        CustomerSearchGram,
        CustomerTagLink,
    )
    from siyu.tenancy.models import Staff

    corp_id = setup["corp_id"]
    today = dt.date.today()
    customer_ids = [rng.randint(1, samples["counts"]["customers"]) for _ in range(200)]
    lead = setup["lead"]
    part_of_name = _part_of_name(samples, rng)

    def containing(q: str):
        # the same blind index, asked plainly: every token of the query present
        wanted = search.tokens(corp_id, search.query_grams(q))
        return Customer.id.in_(select(CustomerSearchGram.customer_id).where(
            CustomerSearchGram.corp_id == corp_id, CustomerSearchGram.gram.in_(wanted))
            .group_by(CustomerSearchGram.customer_id).having(func.count() == len(wanted)))

    def follow_where(*conds):
        return exists().where(CustomerFollow.customer_id == Customer.id, CustomerFollow.status == "active", *conds)

    def page(*conds, offset: int = 0):
        where = and_(Customer.corp_id == corp_id, *conds)
        rows = session.execute(select(Customer.id, Customer.external_userid, Customer.name, Customer.stage,
                                      Customer.first_added_at).where(where)
                               .order_by(Customer.first_added_at.desc(), Customer.id.desc())
                               .offset(offset).limit(50)).all()
        session.execute(select(Customer.stage, func.count()).where(where).group_by(Customer.stage)).all()
        return rows

    def window():
        start = today - dt.timedelta(days=rng.randint(30, HISTORY_DAYS))
        return (Customer.first_added_at >= dt.datetime.combine(start, dt.time(), dt.UTC),
                Customer.first_added_at < dt.datetime.combine(start + dt.timedelta(days=31), dt.time(), dt.UTC))

    def staff_of(principal):
        return follow_where(CustomerFollow.staff_id == principal.staff_id)

    def department_list():
        members = select(Staff.id).where(Staff.department_id == lead.department_id)
        return page(follow_where(CustomerFollow.staff_id.in_(members)))

    def detail():
        cid = rng.choice(customer_ids)
        session.get(Customer, cid)
        session.execute(select(CustomerFollow).where(CustomerFollow.customer_id == cid)).all()
        session.execute(select(CustomerTagLink).where(CustomerTagLink.customer_id == cid)).all()
        session.execute(select(CustomerEvent).where(CustomerEvent.customer_id == cid)
                        .order_by(CustomerEvent.at.desc()).limit(50)).all()
        session.execute(select(CustomerNote).where(CustomerNote.customer_id == cid)).all()

    return {
        "list_first_page": lambda: page(),
        "list_next_page": lambda: page(offset=50),
        "filter_stage": lambda: page(Customer.stage == rng.choice([s for s, _w in STAGES])),
        "filter_advisor": lambda: page(follow_where(CustomerFollow.staff_id == rng.choice(setup["advisors"])[0])),
        "filter_tag": lambda: page(exists().where(CustomerTagLink.customer_id == Customer.id,
                                                  CustomerTagLink.tag_id == rng.choice(samples["tag_ids"]))),
        "filter_state_prefix": lambda: page(follow_where(CustomerFollow.state.like(rng.choice(
            ["ad-douyin", "branch-pudong", "sms-reinvest-0", "call-list-", "mp-menu-course"]) + "%"))),
        "filter_added_range": lambda: page(*window()),
        "filter_combined": lambda: page(Customer.stage == rng.choice(["invested", "reinvested", "activated"]),
                                        follow_where(CustomerFollow.staff_id == rng.choice(setup["advisors"])[0]),
                                        exists().where(CustomerTagLink.customer_id == Customer.id,
                                                       CustomerTagLink.tag_id == rng.choice(samples["tag_ids"][:10])),
                                        *window()),
        "search_name": lambda: page(Customer.name_hash == name_hash(rng.choice(samples["names"]))),
        "search_part_of_name": lambda: page(containing(part_of_name())),
        "search_external_id": lambda: page(Customer.external_userid == rng.choice(samples["external_ids"])),
        "advisor_own_list": lambda: page(staff_of(rng.choice(setup["advisor_principals"]))),
        "lead_department_list": department_list,
        "customer_360": detail,
    }


def _time(fn: Callable[[], object], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with workdir(args.keep) as root:
        inst = Installation(root)
        inst.activate()
        if args.keep:  # the keys too, so that `SIYU_DATA_DIR=DIR siyu serve` shows the kept million
            for name, variable in (("pii.key", "SIYU_PII_KEY"), ("secret.key", "SIYU_SECRET_KEY")):
                (root / name).write_text(os.environ[variable])
                (root / name).chmod(0o600)
        from sqlalchemy.orm import Session

        from siyu.db import make_engine

        engine = make_engine(inst.database_url)
        try:
            with Session(engine) as s, s.begin():
                setup = _setup_corp(s, args.advisors, ops_password=KEPT_PASSWORD if args.keep else None)
            db = root / "siyu.db"
            with sqlite3.connect(db) as conn:
                indexes = _indexes(conn)
                for name, _sql in indexes:
                    conn.execute(f"DROP INDEX {name}")
            now = dt.datetime.now(dt.UTC)
            load_started = time.perf_counter()
            samples = _load(db, corp_id=setup["corp_id"], advisors=setup["advisors"], n=args.customers,
                            batch=args.batch, rng=rng, now=now)
            load_s = time.perf_counter() - load_started

            index_started = time.perf_counter()
            with sqlite3.connect(db) as conn:
                for _name, sql in indexes:
                    conn.execute(sql)
            index_s = time.perf_counter() - index_started
            engine.dispose()

            timings: dict[str, list[float]] = {}
            baseline: dict[str, list[float]] = {}
            with Session(engine) as session:
                queries = _queries(session, setup, samples, rng)
                plain = _plain_queries(session, setup, samples, rng)
                for key, fn in queries.items():
                    for measured, f, reps in ((timings, fn, args.reps), (baseline, plain[key], args.baseline_reps)):
                        if reps <= 0:
                            continue
                        f()  # the same warm-up for both: one run first (page cache)
                        measured[key] = _time(f, reps)
                        session.rollback()
        finally:
            engine.dispose()
        size_mb = (root / "siyu.db").stat().st_size / 1e6
    every = [t for ts in timings.values() for t in ts]
    result: dict[str, Any] = {
        "scenario": "customers",
        "database": "sqlite",
        **samples["counts"],
        "advisors": args.advisors,
        "reps": args.reps,
        "load_s": round(load_s, 1),
        "index_build_s": round(index_s, 1),
        "database_mb": round(size_mb),
        "p95_ms": round(percentile(every, 0.95), 1),
        "target_p95_ms": 150,
        "queries": {k: {"p50_ms": round(percentile(v, 0.5), 1), "p95_ms": round(percentile(v, 0.95), 1),
                        **({"baseline_plain_p50_ms": round(percentile(baseline[k], 0.5), 1),
                            "baseline_plain_p95_ms": round(percentile(baseline[k], 0.95), 1)} if k in baseline else {})}
                    for k, v in timings.items()},
        "baseline_plain_p95_ms": round(percentile([t for ts in baseline.values() for t in ts], 0.95), 1)
        if baseline else None,
        "total_s": round(time.perf_counter() - started, 1),
    }
    return result
