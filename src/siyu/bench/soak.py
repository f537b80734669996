"""`siyu bench soak`: Siyu's core loop (add → callback → inbox → welcome within WeCom's 20 s) under
steady load and the faults production sees, over real processes, as an operator would run it.

One command starts everything on loopback addresses: a throw-away PostgreSQL (stopped and started
by the bench itself), `siyu serve --workers 2`, two `siyu worker`, and `siyu emulator`. Customers
add advisors at `--rate` per second for `--minutes`. The first sixth of the run is a clean
baseline; then the faults, scaled to the rest of the run:

* throughout: 20 % of callbacks delivered twice, 10 % of acknowledgements dropped (WeCom retries);
* a `siyu worker` SIGKILLed every 60 s (restarted at once, as a process manager would);
* at 15 % of the fault phase an 8 s burst of HTTP 503 on send_welcome_msg;
* at 35 % one `siyu serve` process SIGKILLed (its supervisor starts another);
* at 55 % an 8 s 45009 storm on every WeCom API;
* at 75 % PostgreSQL stopped and started again 3 s later.

After the load the bench waits (at most 2 minutes) for the queues to drain, then reads what
happened from the emulator (its own clock, the same as this machine's) and the database. One
JSON line: adds, welcomed_once, missed, sent_twice (customers welcomed more than once), late
(welcomes accepted more than 20 s after the add), events_lost (add events never stored in the
inbox), effects_unknown (sends whose outcome Siyu could not know), jobs_left (due, running or
retrying after the drain), p50/p99 welcome latency per phase, and recovery_s per fault: seconds
from the end of the fault until the p99 over adds of a 5 s window (a missed welcome counting as
infinitely late) is under 2 s again (null: not within the run), and recovery_to_baseline_p99_s
the same until it is back within the baseline phase's p99 (+10 %; what a fault cost on a machine
too slow for 2 s even without faults). The baseline phase's figures are the same-run baseline.
`--check` exits 1 when sent_twice or events_lost is not 0.

Every process is stopped at the end, also on failure or Ctrl-C."""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from siyu.bench.common import BenchError, Installation, approve_submitted_content, free_port, percentile, workdir
from siyu.bench.postgres import TempPostgres

WELCOME = "您好，我是您的专属顾问，很高兴为您服务。市场有风险，投资需谨慎。"
WINDOW_S = 20.0  # WeCom accepts a welcome code this long after the add
GOOD_P99_S = 2.0
RECOVERY_WINDOW_S = 5.0
DRAIN_WAIT_S = 120.0
WELCOME_ENDPOINT = "externalcontact/send_welcome_msg"


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=12.0, help="length of the load (baseline + faults)")
    p.add_argument("--rate", type=float, default=50.0, help="adds per second")
    p.add_argument("--advisors", type=int, default=20, help="advisors the adds are spread over")
    p.add_argument("--check", action="store_true", help="exit 1 when sent_twice or events_lost is not 0")
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep it, logs included")
    return p.parse_args(argv)


class PgInstallation(Installation):
    """An installation on the bench's own PostgreSQL server."""

    def __init__(self, root: Path, url: str) -> None:
        super().__init__(root)
        self._url = url

    @property
    def database_url(self) -> str:  # type: ignore[override]
        return self._url


def _children(pid: int) -> list[int]:
    """The uvicorn worker processes of a `siyu serve` (spawned children running spawn_main)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(found)


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class Soak:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.pg = TempPostgres()
        self.inst: PgInstallation | None = None
        self.faults: list[dict[str, Any]] = []  # {"fault", "start", "end"}
        self.adds: list[tuple[str, float]] = []  # (external_userid, local time of the add call)
        self.add_errors = 0
        self._adds_lock = threading.Lock()
        self._workers: dict[str, Any] = {}
        self.advisors = [f"advisor{i:02d}" for i in range(args.advisors)]
        self.cpu: dict[tuple, tuple[str, float]] = {}
        self.load: list[float] = []

    # --- set-up ------------------------------------------------------------------------------

    def setup(self) -> None:
        self.pg.start()
        inst = self.inst = PgInstallation(self.root, self.pg.url)
        inst.activate()
        self.serve_port, self.emulator_port = free_port(), free_port()
        self.serve_url = f"http://127.0.0.1:{self.serve_port}"
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.wecom_id = "wwsoak" + uuid.uuid4().hex[:10]
        seed_file = self._seed()
        # WeCom delivers callbacks over many connections at once; the emulator's default of 4 in
        # flight would itself become the bottleneck at 50 adds/s plus duplicates and retries.
        inst.spawn("emulator", "emulator", "--port", str(self.emulator_port), "--seed-file", str(seed_file),
                   "--seed", "17", "--callback-workers", "32")
        self.serve = inst.spawn("serve", "serve", "--port", str(self.serve_port), "--workers", "2")
        for i in range(2):
            self._workers[f"worker-{i}"] = inst.spawn(f"worker-{i}", "worker")
        inst.wait_http(self.emulator_url + "/_emulator/health")
        inst.wait_http(self.serve_url + "/healthz")
        deadline = time.monotonic() + 60
        while len(_children(self.serve.pid)) < 2:
            if time.monotonic() > deadline:
                raise BenchError("siyu serve did not start its 2 processes")
            time.sleep(0.2)
        self.admin = httpx.Client(base_url=f"{self.emulator_url}/_emulator/corps/{self.wecom_id}", timeout=30)
        # Warm up (first token, connections), then measure from a clean slate.
        self.admin.post("/add_contact", json={"userid": self.advisors[0]}).raise_for_status()
        deadline = time.monotonic() + 60
        while not self.admin.get("/welcomes").json():
            if time.monotonic() > deadline:
                raise BenchError("the warm-up add was not welcomed within 60 s")
            time.sleep(0.3)
        self.warm = {w["external_userid"] for w in self.admin.get("/welcomes").json()}

    def _seed(self) -> Path:
        from sqlalchemy.orm import Session

        from siyu.db import make_engine
        from siyu.tenancy import service as tenancy
        from siyu.wecom import service
        from siyu.wecom.crypto import generate_aes_key

        assert self.inst is not None
        secret, token, aes_key = "soak-" + uuid.uuid4().hex, "soak" + uuid.uuid4().hex[:12], generate_aes_key()
        engine = make_engine(self.inst.database_url)
        with Session(engine) as s, s.begin():
            corp = tenancy.create_corp(s, slug="soak", name="浸泡测试银行")
            service.configure_connection(s, corp_id=corp.id, actor="bench", wecom_corp_id=self.wecom_id,
                                         secret=secret, token=token, aes_key=aes_key,
                                         base_url=self.emulator_url + "/cgi-bin/")
            service.set_default_welcome(s, corp_id=corp.id, actor="bench", text=WELCOME, enabled=True)
            approve_submitted_content(s, corp_id=corp.id)
            self.corp_id = corp.id
        engine.dispose()
        seed = [{"corp_id": self.wecom_id, "name": "浸泡测试银行", "secret": secret,
                 "staff": [{"userid": u, "name": u} for u in self.advisors],
                 "callback": {"url": f"{self.serve_url}/wecom/callback/soak", "token": token,
                              "encoding_aes_key": aes_key}}]
        path = self.root / "emulator-seed.json"
        path.write_text(json.dumps(seed, ensure_ascii=False), encoding="utf-8")
        return path

    # --- load and faults ---------------------------------------------------------------------

    def _add(self, i: int) -> None:
        try:
            r = self.admin.post("/add_contact", json={"userid": self.advisors[i % len(self.advisors)]})
            r.raise_for_status()
            with self._adds_lock:
                self.adds.append((r.json()["external_userid"], time.time()))
        except httpx.HTTPError:
            with self._adds_lock:
                self.add_errors += 1

    def _drive(self, total_s: float, stop: threading.Event) -> None:
        n = int(total_s * self.args.rate)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="soak-add") as pool:
            for i in range(n):
                if stop.is_set():
                    break
                delay = started + i / self.args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._add, i)

    def _set_faults(self, **switches: Any) -> None:
        self.admin.post("/faults", json=switches).raise_for_status()

    def _kill_worker(self, name: str) -> None:
        assert self.inst is not None
        proc = self._workers[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.inst.procs = [(n, p) for n, p in self.inst.procs if p is not proc]
        # Restarted at once, as systemd's Restart=always would; its log goes on in a new file.
        self._workers[name] = self.inst.spawn(f"{name}-{len(self.faults)}", "worker")

    def run(self) -> None:
        total = self.args.minutes * 60
        baseline = total / 6
        phase = total - baseline
        stop = threading.Event()
        t0 = time.time()
        self.t_start, self.t_faults, self.t_end = t0, t0 + baseline, t0 + total
        driver = threading.Thread(target=self._drive, args=(total, stop), name="soak-driver", daemon=True)
        driver.start()
        schedule: list[tuple[float, str]] = [(0.0, "noise")]
        at = 25.0
        while at < phase - 5:
            schedule.append((at, "worker_kill"))
            at += 60.0
        schedule += [(0.15 * phase, "welcome_5xx"), (0.35 * phase, "serve_kill"), (0.55 * phase, "rate_limit_storm"),
                     (0.75 * phase, "postgres_down")]
        schedule.sort()
        try:
            for offset, fault in schedule:
                self._sleep_until(self.t_faults + offset)
                self._inject(fault)
            self._sleep_until(self.t_end)
            self._cpu()
        finally:
            stop.set()
            driver.join(60)
            with contextlib.suppress(httpx.HTTPError):
                self.admin.delete("/faults")

    def _sleep_until(self, at: float) -> None:
        while (left := at - time.time()) > 0:
            time.sleep(min(left, 0.5))

    def _cpu(self) -> None:
        """CPU seconds each role used so far (the figures mean little without knowing what the
        processes got on a shared machine), and the machine's load."""
        assert self.inst is not None
        tick = os.sysconf("SC_CLK_TCK")

        def used(pid: int) -> float:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                # utime + stime, and cutime + cstime of children it reaped (postgres backends,
                # a serve process that was killed and replaced)
                return sum(int(f) for f in fields[11:15]) / tick
            except (OSError, IndexError, ValueError):
                return 0.0

        for name, proc in self.inst.procs:
            role = name.split("-")[0]
            pids = [proc.pid] + (_children(proc.pid) if role == "serve" else [])
            self.cpu[(name, tuple(pids))] = (role, sum(used(p) for p in pids))
        postmaster = self.pg.pid()
        if postmaster:
            pids = [postmaster] + [int(e) for e in os.listdir("/proc") if e.isdigit() and _ppid(int(e)) == postmaster]
            self.cpu[("postgres", tuple(pids))] = ("postgres", sum(used(p) for p in pids))
        self.load.append(os.getloadavg()[0])

    def _inject(self, fault: str) -> None:
        self._cpu()
        start = time.time()
        if fault == "noise":
            self._set_faults(duplicate_callback_rate=0.2, drop_ack_rate=0.1)
            return
        if fault == "worker_kill":
            kills = sum(1 for f in self.faults if f["fault"] == "worker_kill")
            self._kill_worker(f"worker-{kills % 2}")
        elif fault == "welcome_5xx":
            self._set_faults(error_5xx_rate=1.0, endpoints=[WELCOME_ENDPOINT])
            time.sleep(8)
            self._set_faults(error_5xx_rate=0.0, endpoints=[])
        elif fault == "serve_kill":
            children = _children(self.serve.pid)
            if not children:
                raise BenchError("no siyu serve process to kill")
            os.kill(children[0], signal.SIGKILL)
        elif fault == "rate_limit_storm":
            self._set_faults(endpoints=[], rate_limit_seconds=8)
            time.sleep(8)
        elif fault == "postgres_down":
            self.pg.stop("fast")
            down = time.time()
            time.sleep(3)
            self.pg.start()
            self.faults.append({"fault": fault, "start": start, "end": time.time(), "down_s": time.time() - down})
            return
        self.faults.append({"fault": fault, "start": start, "end": time.time()})

    # --- the drain and the figures ---------------------------------------------------------------

    def drain(self) -> float:
        """Wait until callbacks are delivered and no job is due, running or retrying (at most 2
        minutes); returns how long it took."""
        started = time.monotonic()
        with contextlib.suppress(httpx.HTTPError):
            self.admin.post("/callbacks/wait", params={"timeout": 60}, timeout=90)
        while time.monotonic() - started < DRAIN_WAIT_S:
            if self.jobs_left() == 0:
                break
            time.sleep(1)
        return time.monotonic() - started

    def jobs_left(self) -> int:
        import datetime as dt

        from sqlalchemy import func, select

        from siyu.db import utcnow
        from siyu.jobs.models import Job, JobState

        # Work that is due (or retrying soon), not the installation's schedules for later.
        with self._session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(
                Job.state.in_((JobState.QUEUED.value, JobState.RUNNING.value, JobState.FAILED.value)),
                Job.run_at <= utcnow() + dt.timedelta(seconds=60))) or 0

    @contextlib.contextmanager
    def _session(self):
        from sqlalchemy.orm import Session

        from siyu.db import make_engine

        assert self.inst is not None
        if not hasattr(self, "_engine"):
            self._engine = make_engine(self.inst.database_url, pool_size=2)
        with Session(self._engine) as s:
            yield s

    def figures(self, drain_s: float) -> dict[str, Any]:
        from sqlalchemy import func, select

        from siyu.wecom.events import parse_event
        from siyu.wecom.models import WecomInboxEvent, WecomOutbound

        callbacks = self.admin.get("/callbacks", timeout=120).json()
        welcomes = self.admin.get("/welcomes", timeout=120).json()
        customers = {ext for ext, _t in self.adds}
        added_at: dict[str, float] = {}
        keys: dict[str, str] = {}
        given_up = pending = 0
        lag: list[float] = []  # add event → first delivery attempt answered (the emulator's side)
        acks: list[float] = []
        acked_keys: set[str] = set()  # events WeCom saw acknowledged at least once
        for rec in callbacks:
            pending += rec["status"] == "pending"
            if rec["change_type"] == "add_external_contact" and any(a["acknowledged"] or a["status_code"] == 200
                                                                    for a in rec["attempts"]):
                acked_keys.add(parse_event(rec["plaintext"]).natural_key)
            if rec["attempts"]:
                lag.append((rec["attempts"][0]["at"] - rec["created"]) * 1000)
            acks += [a["duration_ms"] for a in rec["attempts"] if a.get("duration_ms") is not None]
            if rec["change_type"] != "add_external_contact" or rec.get("duplicate"):
                continue
            event = parse_event(rec["plaintext"])
            ext = event.payload().get("external_userid")
            if ext in customers:
                added_at.setdefault(ext, rec["created"])
                keys[ext] = event.natural_key
                given_up += rec["status"] == "failed"
        sent: dict[str, list[float]] = {}
        for w in welcomes:
            if w["external_userid"] in customers:
                sent.setdefault(w["external_userid"], []).append(w["sent_at"])
        with self._session() as s:
            stored = set(s.scalars(select(WecomInboxEvent.natural_key).where(
                WecomInboxEvent.wecom_corp_id == self.wecom_id)))
            unknown = s.scalar(select(func.count()).select_from(WecomOutbound).where(
                WecomOutbound.corp_id == self.corp_id, WecomOutbound.state == "unknown")) or 0
            duplicates_stored = s.scalar(select(func.count() - func.count(func.distinct(WecomInboxEvent.natural_key)))
                                         .where(WecomInboxEvent.wecom_corp_id == self.wecom_id)) or 0
        jobs_left = self.jobs_left()

        latency: dict[str, float] = {}  # seconds, welcomed adds only
        for ext, at in added_at.items():
            if ext in sent:
                latency[ext] = min(sent[ext]) - at
        late = sum(1 for ext, times in sent.items() if ext in added_at and max(times) - added_at[ext] > WINDOW_S)

        def phase(lo: float, hi: float) -> dict[str, Any]:
            adds = [ext for ext, at in added_at.items() if lo <= at < hi]
            lat = [latency[e] * 1000 for e in adds if e in latency]
            return {"adds": len(adds), "welcomed_once": sum(1 for e in adds if len(sent.get(e, ())) == 1),
                    "missed": sum(1 for e in adds if e not in sent),
                    "p50_ms": _r(percentile(lat, 0.50)), "p99_ms": _r(percentile(lat, 0.99))}

        # On a machine too slow for the rate even without faults, "back under 2 s" never comes;
        # "back to the baseline phase's p99" then still says what each fault cost.
        base_lat = [latency[e] for e, at in added_at.items() if self.t_start <= at < self.t_faults and e in latency]
        base_missed = any(e not in latency for e, at in added_at.items() if self.t_start <= at < self.t_faults)
        base_p99 = math.inf if base_missed and not base_lat else percentile(base_lat, 0.99)
        recovery: dict[str, Any] = {}
        to_baseline: dict[str, Any] = {}
        for f in self.faults:
            for target, bound in ((recovery, GOOD_P99_S), (to_baseline, max(GOOD_P99_S, base_p99 * 1.1))):
                seconds = self._recovery(f["end"], added_at, latency, bound)
                if f["fault"] == "worker_kill":
                    target.setdefault("worker_kill", []).append(seconds)
                else:
                    target[f["fault"]] = seconds
        adds = len(self.adds)
        return {
            "adds": adds,
            "welcomed_once": sum(1 for ext in customers if len(sent.get(ext, ())) == 1),
            "missed": sum(1 for ext in customers if ext not in sent),
            "sent_twice": sum(1 for times in sent.values() if len(times) > 1),
            "late": late,
            "events_lost": sum(1 for ext in customers if ext not in keys or keys[ext] not in stored),
            # Of those, the ones Siyu answered 200 at least once (the rest WeCom had not yet
            # delivered, or delivered only to errors, when the run ended).
            "events_lost_after_ack": sum(1 for ext in customers if ext in keys and keys[ext] in acked_keys
                                         and keys[ext] not in stored),
            "events_stored_twice": duplicates_stored,
            "effects_unknown": unknown,
            "jobs_left": jobs_left,
            "drain_s": round(drain_s, 1),
            "callbacks_given_up_by_wecom": given_up,
            "callbacks_pending_at_end": pending,
            "callback_delivery_p50_ms": _r(percentile(lag, 0.50)),
            "callback_delivery_p99_ms": _r(percentile(lag, 0.99)),
            "callback_ack_p99_ms": _r(percentile(acks, 0.99)),
            "add_errors": self.add_errors,
            "p50_ms": _r(percentile(list(v * 1000 for v in latency.values()), 0.50)),
            "p99_ms": _r(percentile(list(v * 1000 for v in latency.values()), 0.99)),
            "phases": {"baseline": phase(self.t_start, self.t_faults), "faults": phase(self.t_faults, self.t_end + 60)},
            "recovery_s": recovery,
            "recovery_to_baseline_p99_s": to_baseline if math.isfinite(base_p99) else None,
            "faults": [{"fault": f["fault"], "at_s": round(f["start"] - self.t_start, 1),
                        "lasted_s": round(f["end"] - f["start"], 1)} for f in self.faults],
            "baseline": phase(self.t_start, self.t_faults),
            "cpu_s_by_role": self._cpu_by_role(),
            "machine_load_avg_1m": {"min": round(min(self.load), 1), "max": round(max(self.load), 1)}
            if self.load else None,
            "machine_cpus": os.cpu_count(),
            "rate_per_s": self.args.rate,
            "achieved_rate_per_s": round(adds / max(1.0, self.t_end - self.t_start), 1),
            "minutes": self.args.minutes,
            "database": "postgresql",
            "serve_processes": 2,
            "workers": 2,
        }

    def _cpu_by_role(self) -> dict[str, float]:
        by_role: dict[str, float] = {"bench": round(sum(os.times()[:2]), 1)}
        for role, seconds in self.cpu.values():
            by_role[role] = round(by_role.get(role, 0.0) + seconds, 1)
        return by_role

    def _recovery(self, end: float, added_at: dict[str, float], latency: dict[str, float],
                  bound: float = GOOD_P99_S) -> float | None:
        """Seconds from `end` until the p99 over the adds of a 5 s window is under `bound` s."""
        ordered = sorted((at, latency.get(ext, math.inf)) for ext, at in added_at.items() if at >= end)
        times = [at for at, _lat in ordered]
        t = end
        while t + RECOVERY_WINDOW_S <= self.t_end:
            lo, hi = bisect.bisect_left(times, t), bisect.bisect_left(times, t + RECOVERY_WINDOW_S)
            window = [lat for _at, lat in ordered[lo:hi]]
            if window and percentile(window, 0.99) < bound:
                return round(t - end, 1)
            t += 0.5
        return None

    def stop(self) -> None:
        if hasattr(self, "admin"):
            self.admin.close()
        if hasattr(self, "_engine"):
            self._engine.dispose()
        if self.inst is not None:
            self.inst.stop()
        self.pg.destroy()


def _r(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 1)


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    if args.minutes <= 0 or args.rate <= 0:
        raise BenchError("--minutes and --rate must be positive")
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop everything on SIGTERM too
    try:
        with workdir(args.keep) as root:
            soak = Soak(args, root)
            try:
                soak.setup()
                soak.run()
                drain_s = soak.drain()
                result = soak.figures(drain_s)
            except BenchError as exc:
                inst = soak.inst
                tails = "" if inst is None else "\n".join(
                    f"--- {n}\n{inst.log_tail(n)}" for n in ("serve", "worker-0", "emulator"))
                raise BenchError(f"{exc}\n{tails}") from None
            finally:
                soak.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.check and (result["sent_twice"] or result["events_lost"]):
        print(json.dumps(result, ensure_ascii=False))
        print(f"soak check failed: sent_twice={result['sent_twice']} events_lost={result['events_lost']}",
              file=sys.stderr)
        raise SystemExit(1)
    return result
