"""`siyu bench adds`: how many customer adds a second the whole pipeline absorbs, and what one costs.

For each database (a fresh SQLite file; PostgreSQL too when SIYU_BENCH_POSTGRES_URL is set) with
the WeCom emulator (a real HTTP server in this process) and `siyu worker` processes:

* trace: one add through the callback's database work (store in the inbox, publish
  `customer.added`) and every job it causes, run to the end by a worker in this process: the jobs
  it made (`jobs_per_add`, by name) and the SQL statements of the callback and its jobs
  (`statements_per_add`, counted on every engine of the process);
* load (twice: every job in its own transaction, then with batch handlers): adds made at the
  emulator at `--rate` a second for `--seconds` (its customers, profiles and
  welcome codes are real), each stored and published as the callback endpoint does (the adds of
  each 100 ms in one transaction, as its group committer does), while the workers run every
  queue. Sampled each second: the jobs due and waiting. Figures: `absorbed_adds_per_s` (adds /
  time until every job they caused had finished), `backlog_growth_per_s` (slope of the waiting
  jobs over the load: > 0 means the pipeline does not keep up with `--rate`), `backlog_max`,
  `drain_s` (after the last add), welcomes sent and expired, `worker_cpu_ms_per_add` (CPU time of
  the worker processes over the run, per add: steadier than the rates on a shared machine);
* baseline: the same adds' welcomes sent directly by this process with the codes the adds
  returned (no database, no queue), at the same rate: the emulator and HTTP floor
  (`baseline_welcomes_per_s`)."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event, func, select, text

from siyu.bench.common import LOCAL_NETWORKS, BenchError, approve_submitted_content, stop_processes

WELCOME = "您好，我是您的专属顾问，很高兴为您服务。市场有风险，投资需谨慎。"


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench adds", description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=50.0, help="adds per second offered")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the load")
    p.add_argument("--advisors", type=int, default=20)
    p.add_argument("--workers", type=int, default=1, help="`siyu worker` processes")
    p.add_argument("--worker-concurrency", type=int, default=4)
    p.add_argument("--drain-timeout", type=float, default=180.0)
    p.add_argument("--sqlite-only", action="store_true")
    p.add_argument("--batches", choices=("both", "on", "off"), default="both",
                   help="load with batch handlers on, off, or both one after the other (default)")
    return p.parse_args(argv)


class _Counter:
    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def __call__(self, *_a: Any, **_k: Any) -> None:
        with self._lock:
            self.n += 1


def _activate(root: Path, database_url: str) -> None:
    from siyu.config import get_settings
    from siyu.db import configure
    from siyu.migrate import upgrade

    os.environ.update(SIYU_DATA_DIR=str(root), SIYU_DATABASE_URL=database_url,
                      SIYU_PII_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
                      SIYU_SECRET_KEY=secrets.token_urlsafe(32),
                      # The emulator listens on loopback: an address Siyu calls only when allowed.
                      SIYU_OUTBOUND_LOCAL_NETWORKS=LOCAL_NETWORKS)
    get_settings.cache_clear()
    upgrade("head", database_url)
    configure(database_url)


def _fresh_postgres(url: str) -> str:
    """A fresh schema in the scratch PostgreSQL database; its URL."""
    from sqlalchemy.engine import make_url

    from siyu.db import make_engine

    schema = "bench_adds_" + uuid.uuid4().hex[:8]
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def _setup(emulator_api: str, advisors: list[str], admin: httpx.Client) -> tuple[int, str]:
    from siyu.db import session_scope
    from siyu.tenancy import service as tenancy
    from siyu.wecom import service
    from siyu.wecom.crypto import generate_aes_key

    wecom_id = "wwadds" + uuid.uuid4().hex[:10]
    secret = "bench-" + uuid.uuid4().hex
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="bench-" + uuid.uuid4().hex[:6], name="压测银行")
        service.configure_connection(s, corp_id=corp.id, actor="bench", wecom_corp_id=wecom_id, secret=secret,
                                     token="bench" + uuid.uuid4().hex[:10], aes_key=generate_aes_key(),
                                     base_url=emulator_api)
        service.set_default_welcome(s, corp_id=corp.id, actor="bench", text=WELCOME, enabled=True)
        approve_submitted_content(s, corp_id=corp.id)
        corp_id = corp.id
    response = admin.post("/corps", json={"corp_id": wecom_id, "name": "压测银行", "secret": secret,
                                          "staff": [{"userid": u, "name": u} for u in advisors]})
    if response.status_code != 201:
        raise BenchError(f"emulator refused the corp: {response.text}")
    return corp_id, wecom_id


def _add_xml(wecom_id: str, added: dict[str, Any], create_time: int) -> str:
    return ("<xml><ToUserName><![CDATA[{c}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            "<CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_external_contact]]></Event>"
            "<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[{u}]]></UserID>"
            "<ExternalUserID><![CDATA[{e}]]></ExternalUserID><WelcomeCode><![CDATA[{w}]]></WelcomeCode></xml>"
            ).format(c=wecom_id, t=create_time, u=added["userid"], e=added["external_userid"],
                     w=added["welcome_code"])


def _store(corp_id: int, xmls: list[str]) -> None:
    """The callback endpoint's database work for a group of events: one transaction."""
    from siyu.db import session_scope
    from siyu.wecom import service
    from siyu.wecom.events import parse_event
    from siyu.wecom.inbox import store_event

    with session_scope() as s:
        for xml in xmls:
            ev = parse_event(xml)
            received = store_event(s, event=ev, plaintext=xml)
            if received.created:
                service.dispatch_event(s, corp_id=corp_id, event_id=received.id, natural_key=received.natural_key,
                                       received_at=received.received_at, event=ev)


def _job_counts(corp_id: int) -> dict[str, int]:
    from siyu.db import session_scope
    from siyu.jobs.models import Job

    with session_scope() as s:
        return dict(s.execute(select(Job.state, func.count()).where(Job.corp_id == corp_id).group_by(Job.state)).all())


def _trace(corp_id: int, wecom_id: str, admin: httpx.Client) -> dict[str, Any]:
    """One add, end to end in this process: its jobs and statements."""
    from siyu.db import session_scope
    from siyu.jobs.models import Job
    from siyu.jobs.worker import run_worker

    counter = _Counter()
    event.listen(Engine, "before_cursor_execute", counter)
    try:
        added = admin.post(f"/corps/{wecom_id}/add_contact", json={"userid": "a0"}).json()
        _store(corp_id, [_add_xml(wecom_id, added, int(time.time()))])
        callback_statements = counter.n
        stop = threading.Event()
        worker = threading.Thread(target=run_worker, kwargs={"concurrency": 1, "stop_event": stop,
                                                             "poll_seconds": 0.01}, daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            c = _job_counts(corp_id)
            if c and not (c.get("queued", 0) + c.get("running", 0) + c.get("failed", 0)):
                break
            time.sleep(0.05)
        stop.set()
        worker.join(30)
        total = counter.n
    finally:
        event.remove(Engine, "before_cursor_execute", counter)
    with session_scope() as s:
        names = Counter(s.scalars(select(Job.name).where(Job.corp_id == corp_id)))
    # The worker's own polling (fetch, heartbeats, maintenance) is counted too: it is the cost of
    # running these jobs on an otherwise idle queue, an upper bound of the per-add share under load.
    return {"jobs_per_add": sum(names.values()), "jobs_by_name": dict(names),
            "callback_statements": callback_statements, "statements_per_add_max": total}


def _run_database(args: argparse.Namespace, database_url: str, root: Path) -> dict[str, Any]:
    from siyu.wecom.emulator import create_emulator_app
    from siyu.wecom.emulator.server import ServerThread
    from siyu.wecom.emulator.state import EmulatorState

    _activate(root, database_url)
    state = EmulatorState(seed=7)
    emulator = ServerThread(create_emulator_app(state)).start()
    admin = httpx.Client(base_url=emulator.base_url + "/_emulator", timeout=30)
    advisors = [f"a{i}" for i in range(args.advisors)]
    out: dict[str, Any] = {}
    try:
        corp_id, wecom_id = _setup(emulator.base_url + "/cgi-bin/", advisors, admin)
        out.update(_trace(corp_id, wecom_id, admin))
        # Before: every job in its own transaction; after: batch handlers (same code, same run).
        wanted = {"both": ("0", "1"), "on": ("1",), "off": ("0",)}[args.batches]
        for label, batches in (("one_job_per_transaction", "0"), ("batch_handlers", "1")):
            if batches not in wanted:
                continue
            corp_id, wecom_id = _setup(emulator.base_url + "/cgi-bin/", advisors, admin)
            out[label] = _load(args, root, state, emulator, admin, advisors, corp_id, wecom_id, batches)
    finally:
        admin.close()
        emulator.stop()
    return out


def _load(args, root, state, emulator, admin, advisors, corp_id, wecom_id, batches: str) -> dict[str, Any]:
    procs = []
    try:
        before = sum(_job_counts(corp_id).values())
        env = dict(os.environ, SIYU_LOG_LEVEL="WARNING", SIYU_JOB_BATCH_HANDLERS=batches)
        import subprocess
        import sys

        for i in range(args.workers):
            log = open(root / f"worker{i}.log", "w")  # noqa: SIM115 - the child keeps it
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "siyu.cli", "worker", "--concurrency", str(args.worker_concurrency)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            log.close()
        time.sleep(3)  # the workers start (imports) before the clock does

        n = int(args.rate * args.seconds)
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        tick = 0.1
        made = 0
        next_sample = started
        while made < n:
            due = min(n, int((time.monotonic() - started) * args.rate) + 1)
            xmls = []
            while made < due:
                added = admin.post(f"/corps/{wecom_id}/add_contact",
                                   json={"userid": advisors[made % len(advisors)]}).json()
                xmls.append(_add_xml(wecom_id, added, int(time.time())))
                made += 1
            if xmls:
                _store(corp_id, xmls)
            now = time.monotonic()
            if now >= next_sample:
                c = _job_counts(corp_id)
                samples.append((now - started, c.get("queued", 0) + c.get("failed", 0)))
                next_sample = now + 1.0
            time.sleep(max(0.0, tick - (time.monotonic() - now)))
        load_end = time.monotonic()
        while time.monotonic() - load_end < args.drain_timeout:
            c = _job_counts(corp_id)
            if not (c.get("queued", 0) + c.get("running", 0) + c.get("failed", 0)):
                break
            time.sleep(0.2)
        done_at = time.monotonic()
        drained = done_at - load_end < args.drain_timeout
        # CPU the workers spent (their whole life: start-up, the load and the drain), per add: on
        # a shared machine a steadier figure than the rates, which wait on everything else.
        worker_cpu_s = sum(_cpu_seconds(p.pid) for p in procs)
        counts = _job_counts(corp_id)
        welcomes = len(admin.get(f"/corps/{wecom_id}/welcomes").json())
        # Baseline: the welcomes alone, sent directly at the same rate with fresh codes.
        base_n = min(n, 500)
        codes = [admin.post(f"/corps/{wecom_id}/add_contact", json={"userid": advisors[i % len(advisors)]}).json()
                 ["welcome_code"] for i in range(base_n)]
        from siyu.wecom.client import WeComClient

        secret = state.corps[wecom_id].secrets
        with WeComClient(wecom_id, next(iter(secret)), base_url=emulator.base_url + "/cgi-bin/") as client:
            t0 = time.perf_counter()
            for code in codes:
                client.send_welcome_msg(welcome_code=code, text=WELCOME)
            baseline = base_n / (time.perf_counter() - t0)
    finally:
        stop_processes(procs)
    xs = [t for t, _ in samples]
    ys = [d for _, d in samples]
    slope = 0.0
    if len(xs) >= 2:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return {
        "adds": n,
        "offered_adds_per_s": args.rate,
        # Not drained within --drain-timeout: the rate is an upper bound, and jobs_left says how far.
        "drained": drained,
        "jobs_left": sum(counts.get(k, 0) for k in ("queued", "running", "failed")),
        "absorbed_adds_per_s": round(n / (done_at - started), 1),
        "backlog_growth_per_s": round(slope, 1),
        "backlog_max": max(ys) if ys else 0,
        "drain_s": round(done_at - load_end, 1),
        "jobs_made": sum(counts.values()) - before,
        "expired": counts.get("expired", 0),
        "dead": counts.get("dead", 0),
        "welcomed": welcomes,
        "worker_cpu_ms_per_add": round(1000 * worker_cpu_s / n, 2),
        "baseline_welcomes_per_s": round(baseline, 1),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    out: dict[str, Any] = {"scenario": "adds", "rate": args.rate, "seconds": args.seconds,
                           "workers": args.workers, "worker_concurrency": args.worker_concurrency,
                           "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="siyu-bench-adds-") as tmp:
        root = Path(tmp)
        out["sqlite"] = _run_database(args, f"sqlite:///{root / 'siyu.db'}", root)
        pg = os.environ.get("SIYU_BENCH_POSTGRES_URL")
        if pg and not args.sqlite_only:
            out["postgresql"] = _run_database(args, _fresh_postgres(pg), root)
    return out

