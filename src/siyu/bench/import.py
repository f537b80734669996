"""`siyu bench import`: importing a lead file of `--rows` rows (100,000 by default) through the
real service functions on SQLite: upload, parse and validate into staging rows (a chunk per
transaction, as the job does), the operator's commit, and the one-transaction commit into leads.

A fresh installation (its own SQLite file and keys) gets one corp with `--advisors` advisors; a CSV
lead file (UTF-8, Chinese header) is generated, and with `--xlsx` the same rows as a workbook,
which is imported too. Figures: rows/s over the whole import and per phase, and memory: the
growth of the process's peak resident size (ru_maxrss) during the import, which stays bounded
because rows are streamed and staged in chunks (target >= 5,000 rows/s).

A second file of `--bad-rows-file` rows, 2 % of them bad (in turn a malformed phone, an unknown
advisor, and the phone of an earlier row again), checks the all-or-nothing rule: after the parse no
lead of it exists and "import all" is refused; skipping imports exactly the good rows
(`bad_rows_check.duplicates` counts the rows refused as duplicates).

Baseline, same run and file: the csv module reading the file plus one plain executemany INSERT of
the same rows (no checks, no encryption) into a scratch table of the same database."""

from __future__ import annotations

import argparse
import csv
import random
import resource
import sqlite3
import time
from pathlib import Path
from typing import Any

from siyu.bench.common import Installation, workdir

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "秀英", "建华")
SEGMENTS = ("代发工资", "信用卡", "房贷", "存量理财", "社保卡", "")
HEADER = ["姓名", "手机号", "客群", "顾问"]


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench import", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000, help="rows of the lead file")
    p.add_argument("--advisors", type=int, default=30)
    p.add_argument("--xlsx", action="store_true", help="also import the same rows as an .xlsx workbook")
    p.add_argument("--bad-rows-file", type=int, default=10_000, help="rows of the file with bad rows (0: skip)")
    p.add_argument("--tracemalloc", action="store_true",
                   help="also trace Python allocations of the CSV import (slower; reports their peak)")
    p.add_argument("--seed", type=int, default=20260501)
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep the files and database")
    return p.parse_args(argv)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rows(n: int, rng: random.Random, advisors: list[str], *, first_phone: int, bad_every: int = 0,
          block: int = 1000):
    """Unique phones from `first_phone` on, shuffled within blocks of `block` (a file is not sorted by
    phone), real-looking names. With `bad_every`, one row in that many is bad, in turn: a malformed
    phone, an unknown advisor, and a duplicate: the phone of a row a little earlier in the file."""
    phones: list[str] = []
    bad = 0
    for start in range(0, n, block):
        chunk = [str(first_phone + i) for i in range(start, min(n, start + block))]
        rng.shuffle(chunk)
        for i, phone in enumerate(chunk, start):
            row = [rng.choice(SURNAMES) + rng.choice(GIVEN), phone, rng.choice(SEGMENTS), advisors[i % len(advisors)]]
            if bad_every and i % bad_every == bad_every - 1:
                kind = bad % 3
                bad += 1
                if kind == 0:
                    row[1] = "12345"
                elif kind == 1:
                    row[3] = "nobody"
                else:
                    row[1] = phones[rng.randrange(max(0, len(phones) - 500), len(phones))]
            phones.append(row[1])
            yield row


def _write_csv(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)


def _write_xlsx(path: Path, rows) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("leads")
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    wb.save(path)


def _import(path: Path, *, corp_id: int, name: str, skip_bad: bool, trace: bool = False) -> dict[str, Any]:
    """One file through upload, parse (job function), commit request and commit, timed."""
    import tracemalloc

    if trace:
        tracemalloc.start()
    try:
        out = _import_timed(path, corp_id=corp_id, name=name, skip_bad=skip_bad)
        if trace:
            out["traced_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        return out
    finally:
        if trace:
            tracemalloc.stop()


def _import_timed(path: Path, *, corp_id: int, name: str, skip_bad: bool) -> dict[str, Any]:
    from siyu.acquisition import leads
    from siyu.db import session_scope

    rss0 = _maxrss_mb()
    t0 = time.perf_counter()
    with session_scope() as s, path.open("rb") as f:
        list_id = leads.create_list(s, corp_id=corp_id, actor="bench", name=name, file_name=path.name, stream=f,
                                    enqueue_parse=False).id
    leads.parse_list(session_scope, corp_id=corp_id, list_id=list_id)
    t1 = time.perf_counter()
    with session_scope() as s:
        lead_list = leads.get_list(s, corp_id=corp_id, list_id=list_id)
        parsed = {"status": lead_list.status, "rows": lead_list.rows_parsed, "good": lead_list.good_rows,
                  "bad": lead_list.bad_rows, "detail": lead_list.detail}
    if parsed["status"] != "parsed":
        raise RuntimeError(f"the list was not parsed: {parsed}")
    out = {"list_id": list_id, **parsed}
    if parsed["bad"] and not skip_bad:
        return out
    with session_scope() as s:
        leads.request_commit(s, corp_id=corp_id, actor="bench", list_id=list_id, skip_bad=skip_bad,
                             enqueue_commit=False)
    t2 = time.perf_counter()
    with session_scope() as s:
        imported = leads.commit_list(s, corp_id=corp_id, list_id=list_id)
    t3 = time.perf_counter()
    rows = parsed["rows"]
    out.update(imported=imported, seconds=round(t3 - t0, 3), parse_seconds=round(t1 - t0, 3),
               commit_seconds=round(t3 - t2, 3), rows_per_s=round(rows / (t3 - t0)),
               parse_rows_per_s=round(rows / (t1 - t0)), peak_rss_growth_mb=round(_maxrss_mb() - rss0, 1),
               peak_rss_mb=round(_maxrss_mb(), 1))
    return out


def _duplicate_rows(corp_id: int, list_id: int) -> int:
    """Staged rows of the list refused for repeating an earlier row's phone."""
    from sqlalchemy import select

    from siyu.acquisition.models import LeadStagingRow
    from siyu.db import session_scope

    with session_scope() as s:
        rows = s.scalars(select(LeadStagingRow.errors).where(LeadStagingRow.list_id == list_id)).all()
    return sum(1 for errors in rows if any("same phone" in str(e.get("reason", "")) for e in errors or []))


def _count_leads(corp_id: int, list_id: int) -> int:
    from sqlalchemy import func, select

    from siyu.acquisition.models import Lead
    from siyu.db import session_scope

    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Lead).where(Lead.corp_id == corp_id,
                                                                     Lead.list_id == list_id)) or 0


def _baseline(db: Path, path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE bench_baseline (name TEXT, phone TEXT, segment TEXT, advisor TEXT)")
    t0 = time.perf_counter()
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO bench_baseline VALUES (?, ?, ?, ?)", reader)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    n = conn.execute("SELECT count(*) FROM bench_baseline").fetchone()[0]
    conn.execute("DROP TABLE bench_baseline")
    conn.close()
    return {"what": "csv module + one executemany INSERT, no checks or encryption", "rows": n,
            "seconds": round(seconds, 3), "rows_per_s": round(n / seconds)}


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    rng = random.Random(args.seed)
    with workdir(args.keep) as root:
        inst = Installation(root)
        inst.activate()
        from siyu.db import configure, session_scope
        from siyu.tenancy import service as tenancy

        configure(inst.database_url)
        with session_scope() as s:
            corp = tenancy.create_corp(s, slug="bench", name="压测银行")
            advisors = []
            for i in range(args.advisors):
                staff = tenancy.create_staff(s, corp_id=corp.id, login=f"advisor{i:02d}", name=f"顾问{i:02d}",
                                             wecom_userid=f"advisor{i:02d}")
                advisors.append(staff.wecom_userid)
            corp_id = corp.id
        csv_path = root / "leads.csv"
        _write_csv(csv_path, _rows(args.rows, rng, advisors, first_phone=13_000_000_000))
        result: dict[str, Any] = {"scenario": "import", "rows": args.rows,
                                  "file_mb": round(csv_path.stat().st_size / 2**20, 1),
                                  "csv": _import(csv_path, corp_id=corp_id, name="CSV", skip_bad=False)}
        if args.tracemalloc:
            traced = root / "traced.csv"
            _write_csv(traced, _rows(args.rows, rng, advisors, first_phone=16_000_000_000))
            result["csv_traced"] = _import(traced, corp_id=corp_id, name="CSV traced", skip_bad=False, trace=True)
        if args.xlsx:
            xlsx_path = root / "leads.xlsx"
            _write_xlsx(xlsx_path, _rows(args.rows, rng, advisors, first_phone=15_000_000_000))
            result["xlsx"] = _import(xlsx_path, corp_id=corp_id, name="XLSX", skip_bad=False)
        if args.bad_rows_file:
            bad_path = root / "bad.csv"
            _write_csv(bad_path, _rows(args.bad_rows_file, rng, advisors, first_phone=18_000_000_000, bad_every=50))
            staged = _import(bad_path, corp_id=corp_id, name="BAD", skip_bad=False)
            duplicates = _duplicate_rows(corp_id, staged["list_id"])  # (staging rows go once committed)
            before = _count_leads(corp_id, staged["list_id"])
            from siyu.acquisition import leads
            from siyu.errors import InvalidInput

            try:
                with session_scope() as s:
                    leads.request_commit(s, corp_id=corp_id, actor="bench", list_id=staged["list_id"],
                                         skip_bad=False, enqueue_commit=False)
                refused = False
            except InvalidInput:
                refused = True
            with session_scope() as s:
                leads.request_commit(s, corp_id=corp_id, actor="bench", list_id=staged["list_id"], skip_bad=True,
                                     enqueue_commit=False)
            with session_scope() as s:
                imported = leads.commit_list(s, corp_id=corp_id, list_id=staged["list_id"])
            expected_bad = args.bad_rows_file // 50
            result["bad_rows_check"] = {"rows": staged["rows"], "bad": staged["bad"], "expected_bad": expected_bad,
                                        "duplicates": duplicates, "leads_before_skip": before,
                                        "import_all_refused": refused, "imported_after_skip": imported,
                                        "ok": before == 0 and refused and imported == staged["good"]
                                        and staged["bad"] == expected_bad and duplicates == expected_bad // 3}
        result["baseline"] = _baseline(root / "siyu.db", csv_path)
        result["target_rows_per_s"] = 5000
        result["meets_target"] = result["csv"]["rows_per_s"] >= 5000
        from siyu.db import get_engine

        get_engine().dispose()
    return result
