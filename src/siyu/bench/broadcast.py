"""`siyu bench broadcast`: the plan preview of a broadcast to a segment of a million customers on
SQLite — every exclusion by reason (not a friend, no advisor, opted out, the global control group,
the broadcast's holdout, unsuitable for an R3 product, the day / 7-day / 30-day caps and WeCom's
allowance) and the quiet hours — with `siyu.delivery.plan.build_plan`, the function the console calls.

A fresh installation gets one corp with `--advisors` advisors and `--customers` customers, bulk-
inserted with executemany (not ORM objects): one follow each (3% lost, 1% followed only by someone
who is not staff in Siyu), 2% opted out of marketing, 60% with a risk assessment (10% of them
expired), and a history of about 0.4 marketing sends per customer over the last 40 days in the
delivery ledger. The segment is every customer at the stages new, activated, invested or
reinvested (about 85%). The plan is timed `--reps` times (seconds: the median wall time; cpu_seconds: the median CPU
time of this process, in which SQLite runs — the honest figure on a busy machine), after one warm-up.

Baseline, same run, same data, same warm-up: the segment alone counted the same way (a count over
the same audience subquery joined to the customer table) — what the preview costs at the least.
`peak_rss_mb` is the process's peak resident size (the load included)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import sqlite3
import statistics
import time
import uuid
from typing import Any

from siyu.bench.common import Installation, workdir

STAGES = (("new", 35), ("activated", 20), ("invested", 20), ("reinvested", 10), ("dormant", 10), ("lost", 5))
SEGMENT = ("new", "activated", "invested", "reinvested")
KINDS = ("broadcast", "sop_step", "keyword_marketing", "moment")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench broadcast", description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--advisors", type=int, default=50)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--keep", default=None, help="keep the installation in this directory")
    return p.parse_args(argv)


def _stamp(at: dt.datetime) -> str:
    return at.isoformat(" ", "microseconds")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(session, advisors: int) -> dict[str, Any]:
    from siyu.compliance import suitability
    from siyu.delivery import service as delivery
    from siyu.tenancy import service as tenancy

    corp = tenancy.create_corp(session, slug="bench", name="压测银行")
    staff = [tenancy.create_staff(session, corp_id=corp.id, login=f"advisor{i:02d}", name=f"顾问{i:02d}",
                                  wecom_userid=f"advisor{i:02d}") for i in range(advisors)]
    suitability.create_product(session, corp_id=corp.id, actor="bench", code="FUND-R3", name="平衡混合基金",
                               product_type="fund", risk_level="R3")
    delivery.policy_for(session, corp_id=corp.id)  # the defaults: 1/3/8, 21:00–08:00, 5% control group
    session.flush()
    return {"corp_id": corp.id, "advisors": [(s.id, s.wecom_userid) for s in staff]}


def _load(db, *, corp_id: int, advisors, n: int, batch: int, rng: random.Random, now: dt.datetime) -> dict:
    naive = now.astimezone(dt.UTC).replace(tzinfo=None)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA foreign_keys=OFF")
    stages = [s for s, _w in STAGES]
    weights = [w for _s, w in STAGES]
    first = conn.execute("SELECT coalesce(max(id), 0) FROM customer").fetchone()[0] + 1
    counts = {"lost": 0, "stranger": 0, "opted_out": 0, "assessed": 0, "ledger": 0}
    levels = ("C1", "C2", "C3", "C4", "C5")
    for start in range(0, n, batch):
        customers, follows, consents, assessments, ledger = [], [], [], [], []
        for i in range(start, min(n, start + batch)):
            cid = first + i
            ext = f"wm{uuid.UUID(int=rng.getrandbits(128)).hex[:30]}"
            stage = rng.choices(stages, weights)[0]
            added = naive - dt.timedelta(days=rng.randrange(1, 900))
            customers.append((cid, corp_id, ext, 0, stage, _stamp(added), 0, _stamp(added), _stamp(added)))
            roll = rng.random()
            status = "lost" if roll < 0.03 else "active"
            counts["lost"] += status == "lost"
            if 0.03 <= roll < 0.04:
                staff_id, userid = None, "someone-else"
                counts["stranger"] += 1
            else:
                staff_id, userid = advisors[cid % len(advisors)]
            follows.append((corp_id, cid, staff_id, userid, _stamp(added), status, stage, 0, _stamp(added),
                            _stamp(added)))
            if rng.random() < 0.02:
                consents.append((corp_id, ext, "marketing", 0, "advisor", "", "", "bench", _stamp(added)))
                counts["opted_out"] += 1
            if rng.random() < 0.6:
                assessed = naive - dt.timedelta(days=rng.randrange(1, 400))
                expires = assessed + dt.timedelta(days=365)
                assessments.append((corp_id, ext, rng.choice(levels), "questionnaire", _stamp(assessed),
                                    _stamp(expires), "", "bench", _stamp(assessed)))
                counts["assessed"] += 1
            for k in range(rng.choices((0, 1, 2, 3, 5, 9), (65, 20, 7, 4, 3, 1))[0]):
                at = naive - dt.timedelta(minutes=rng.randrange(0, 40 * 24 * 60))
                ledger.append((corp_id, cid, rng.choice(KINDS), f"bench:{k}", rng.choice(("sent", "sent", "planned",
                                                                                         "failed", "aborted")),
                               "", _stamp(at)))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO customer (id, corp_id, external_userid, gender, stage, first_added_at, "
                         "search_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", customers)
        conn.executemany("INSERT INTO customer_follow (corp_id, customer_id, staff_id, wecom_userid, add_time, status, "
                         "stage, shared, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", follows)
        conn.executemany("INSERT INTO consent_record (corp_id, external_userid, purpose, granted, source, note, "
                         "staff_userid, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", consents)
        conn.executemany("INSERT INTO customer_risk_assessment (corp_id, customer_ref, level, source, assessed_at, "
                         "expires_at, reference, recorded_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         assessments)
        conn.executemany("INSERT INTO delivery_ledger (corp_id, customer_id, kind, source, state, reason, at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", ledger)
        conn.execute("COMMIT")
        counts["ledger"] += len(ledger)
    conn.execute("ANALYZE")
    conn.close()
    return counts


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with workdir(args.keep) as root:
        inst = Installation(root)
        inst.activate()
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from siyu.customers.models import Customer
        from siyu.db import make_engine
        from siyu.delivery import plan as delivery_plan
        from siyu.delivery import service as delivery

        engine = make_engine(inst.database_url)
        try:
            with Session(engine) as s, s.begin():
                setup = _setup(s, args.advisors)
            now = dt.datetime.now(dt.UTC)
            t0 = time.perf_counter()
            counts = _load(root / "siyu.db", corp_id=setup["corp_id"], advisors=setup["advisors"], n=args.customers,
                           batch=args.batch, rng=rng, now=now)
            load_s = time.perf_counter() - t0
            engine.dispose()
            corp_id = setup["corp_id"]
            audience = select(Customer.id).where(Customer.corp_id == corp_id, Customer.stage.in_(SEGMENT))
            mult, add = delivery.broadcast_key(rng.getrandbits(62))
            holdout = (mult, add, 1000)  # this broadcast holds out 10%

            def the_plan(session):
                return delivery_plan.build_plan(session, corp_id=corp_id, audience=audience, at=now,
                                                product_codes=["FUND-R3"], holdout=holdout)

            def the_segment(session):
                aud = audience.subquery("aud")
                return session.scalar(select(func.count()).select_from(aud).join(
                    Customer, (Customer.id == list(aud.c)[0]) & (Customer.corp_id == corp_id)))

            timings, baseline, cpu, cpu_baseline = [], [], [], []
            with Session(engine) as session:
                result = the_plan(session)  # warm-up
                segment = the_segment(session)
                for _ in range(args.reps):
                    t, c = time.perf_counter(), time.process_time()
                    result = the_plan(session)
                    timings.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                    t, c = time.perf_counter(), time.process_time()
                    segment = the_segment(session)
                    baseline.append(time.perf_counter() - t)
                    cpu_baseline.append(time.process_time() - c)
        finally:
            engine.dispose()
    return {
        "scenario": "broadcast",
        "database": "sqlite",
        "customers": args.customers,
        "segment": segment,
        "seconds": round(statistics.median(timings), 2),
        "cpu_seconds": round(statistics.median(cpu), 2),  # SQLite runs in this process: its CPU time
        "target_seconds": 20,
        "peak_rss_mb": round(_maxrss_mb()),
        "target_peak_rss_mb": 1536,
        "recipients": result.recipients,
        "held_for_quiet_hours": result.held,
        "excluded": result.excluded,
        "reasons_add_up": result.recipients + sum(result.excluded.values()) == segment,
        "baseline_segment_count_seconds": round(statistics.median(baseline), 2),
        "baseline_segment_count_cpu_seconds": round(statistics.median(cpu_baseline), 2),
        "load_average": round(os.getloadavg()[0], 1),  # other work on the machine while it ran
        "load": {**counts, "load_s": round(load_s, 1)},
        "reps": args.reps,
        "total_s": round(time.perf_counter() - started, 1),
    }
