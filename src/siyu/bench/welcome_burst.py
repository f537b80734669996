"""`siyu bench welcome-burst`: adds arriving at a steady rate, each welcomed through WeCom's
send_welcome_msg within its 20 s window, end to end over real processes.

A fresh installation on SQLite runs `siyu serve` (the callback endpoint), `siyu worker` and
`siyu emulator`. The emulator's customers add advisors at `--rate` per second, `--adds` in all;
each add is a signed callback to Siyu, stored, turned into `customer.added`, and answered with
the corp's default welcome. Figures (from the emulator's own records, one clock):

* adds, welcomed (distinct customers welcomed), missed (adds without a welcome: code expired or
  never sent), duplicates (welcomes beyond one per customer);
* p50_ms / p99_ms / max_ms: from the add event to the emulator accepting its welcome;
* ack_p99_ms: how long Siyu took to answer the callbacks;
* baseline: the same emulator, adds at the same rate on a corp without a callback URL, each
  welcomed by this process directly with the code the add returned (no queue, no Siyu): the floor
  that HTTP and the emulator set (baseline_p50_ms, baseline_p99_ms), timed like the measured path
  on the emulator's clock, from the add event's creation to the welcome."""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from siyu.bench.common import BenchError, Installation, approve_submitted_content, free_port, percentile, workdir

WELCOME = "您好，我是您的专属顾问，很高兴为您服务。市场有风险，投资需谨慎。"
_EXT_RE = re.compile(r"<ExternalUserID><!\[CDATA\[([^\]]+)\]\]></ExternalUserID>")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench welcome-burst", description=__doc__.splitlines()[0])
    p.add_argument("--adds", type=int, default=5000, help="add events in the run")
    p.add_argument("--rate", type=float, default=100.0, help="adds per second")
    p.add_argument("--advisors", type=int, default=20, help="advisors the adds are spread over")
    p.add_argument("--baseline-adds", type=int, default=300, help="adds in the direct baseline")
    p.add_argument("--workers", type=int, default=1, help="`siyu worker` processes")
    p.add_argument("--worker-concurrency", type=int, default=4, help="executor threads per worker process")
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep it, logs and database, to look at")
    return p.parse_args(argv)


def _paced(n: int, rate: float, fn) -> None:
    started = time.perf_counter()
    for i in range(n):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        fn(i)


def _setup(inst: Installation, *, emulator_url: str, serve_url: str, advisors: list[str]) -> tuple[str, Path]:
    from sqlalchemy.orm import Session

    from siyu.db import make_engine
    from siyu.tenancy import service as tenancy
    from siyu.wecom import service
    from siyu.wecom.crypto import generate_aes_key

    wecom_id = "wwbench" + uuid.uuid4().hex[:10]
    secret, token, aes_key = "bench-" + uuid.uuid4().hex, "bench" + uuid.uuid4().hex[:12], generate_aes_key()
    engine = make_engine(inst.database_url)
    with Session(engine) as s, s.begin():
        corp = tenancy.create_corp(s, slug="bench", name="压测银行")
        service.configure_connection(s, corp_id=corp.id, actor="bench", wecom_corp_id=wecom_id, secret=secret,
                                     token=token, aes_key=aes_key, base_url=emulator_url + "/cgi-bin/")
        service.set_default_welcome(s, corp_id=corp.id, actor="bench", text=WELCOME, enabled=True)
        approve_submitted_content(s, corp_id=corp.id)
    engine.dispose()
    staff = [{"userid": u, "name": u} for u in advisors]
    seed = [
        {"corp_id": wecom_id, "name": "压测银行", "secret": secret, "staff": staff,
         "callback": {"url": f"{serve_url}/wecom/callback/bench", "token": token, "encoding_aes_key": aes_key}},
        {"corp_id": wecom_id + "b", "name": "基线", "secret": secret, "staff": staff},
    ]
    seed_file = inst.root / "emulator-seed.json"
    seed_file.write_text(json.dumps(seed, ensure_ascii=False), encoding="utf-8")
    return wecom_id, seed_file


def _baseline(emulator_url: str, corp_id: str, secret: str, advisors: list[str], n: int, rate: float
              ) -> list[float]:
    """Adds on a corp without callbacks, each welcomed at once by this process: the floor. Timed
    on the emulator's clock from the add event's creation to the welcome, exactly as the measured
    path is (the admin call that makes the add is outside both)."""
    from siyu.wecom.client import WeComClient

    with httpx.Client(base_url=f"{emulator_url}/_emulator/corps/{corp_id}", timeout=10) as admin, \
            WeComClient(corp_id, secret, base_url=emulator_url + "/cgi-bin/") as client:
        def one(i: int) -> None:
            added = admin.post("/add_contact", json={"userid": advisors[i % len(advisors)]}).json()
            client.send_welcome_msg(welcome_code=added["welcome_code"], text=WELCOME)

        _paced(n, rate, one)
        records = admin.get("/callbacks").json()
        welcomes = admin.get("/welcomes").json()
    added_at = {}
    for rec in records:
        match = _EXT_RE.search(rec["plaintext"]) if rec["change_type"] == "add_external_contact" else None
        if match:
            added_at.setdefault(match.group(1), rec["created"])
    return [(w["sent_at"] - added_at[w["external_userid"]]) * 1000
            for w in welcomes if w["external_userid"] in added_at]


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    advisors = [f"advisor{i:02d}" for i in range(args.advisors)]
    with workdir(args.keep) as root:
        inst = Installation(root)
        inst.activate()
        serve_port, emulator_port = free_port(), free_port()
        serve_url, emulator_url = f"http://127.0.0.1:{serve_port}", f"http://127.0.0.1:{emulator_port}"
        wecom_id, seed_file = _setup(inst, emulator_url=emulator_url, serve_url=serve_url, advisors=advisors)
        try:
            inst.spawn("emulator", "emulator", "--port", str(emulator_port), "--seed-file", str(seed_file))
            inst.spawn("serve", "serve", "--port", str(serve_port))
            for i in range(args.workers):
                inst.spawn(f"worker-{i}", "worker", "--concurrency", str(args.worker_concurrency))
            inst.wait_http(emulator_url + "/_emulator/health")
            inst.wait_http(serve_url + "/login")
            corp_admin = httpx.Client(base_url=f"{emulator_url}/_emulator/corps/{wecom_id}", timeout=30)

            # Warm up (first token, first connections), then measure from a clean slate.
            corp_admin.post("/add_contact", json={"userid": advisors[0]})
            _wait(lambda: len(corp_admin.get("/welcomes").json()) >= 1, 30, inst)
            warm = {w["external_userid"] for w in corp_admin.get("/welcomes").json()}
            skip_callbacks = len(corp_admin.get("/callbacks").json())

            customers: list[str] = []

            def add(i: int) -> None:
                r = corp_admin.post("/add_contact", json={"userid": advisors[i % len(advisors)]})
                if r.status_code >= 400:
                    raise BenchError(f"emulator refused an add: {r.text}")
                customers.append(r.json()["external_userid"])

            started = time.perf_counter()
            _paced(args.adds, args.rate, add)
            drive_s = time.perf_counter() - started

            # Wait until every add was welcomed, or until nothing moved for longer than the window.
            last, last_change = -1, time.monotonic()
            while True:
                n = len(corp_admin.get("/welcomes").json()) - len(warm)
                if n != last:
                    last, last_change = n, time.monotonic()
                if n >= args.adds or time.monotonic() - last_change > 25:
                    break
                time.sleep(0.5)
            corp_admin.post("/callbacks/wait", params={"timeout": 30})
            welcomes = [w for w in corp_admin.get("/welcomes").json() if w["external_userid"] not in warm]
            records = corp_admin.get("/callbacks").json()[skip_callbacks:]
            corp_admin.close()

            baseline = _baseline(emulator_url, wecom_id + "b", _secret_of(seed_file), advisors,
                                 args.baseline_adds, args.rate)
        except BenchError as exc:
            raise BenchError(f"{exc}\n{inst.log_tail('serve')}\n{inst.log_tail('worker-0')}") from None
        finally:
            inst.stop()

    added_at: dict[str, float] = {}
    acks: list[float] = []
    for rec in records:
        if rec["change_type"] == "add_external_contact" and not rec.get("duplicate"):
            match = _EXT_RE.search(rec["plaintext"])
            if match:
                added_at.setdefault(match.group(1), rec["created"])
        acks += [a["duration_ms"] for a in rec["attempts"] if a.get("duration_ms") is not None]
    first_welcome: dict[str, float] = {}
    for w in welcomes:
        first_welcome.setdefault(w["external_userid"], w["sent_at"])
    latencies = [(first_welcome[c] - added_at[c]) * 1000 for c in customers if c in first_welcome and c in added_at]
    welcomed = sum(1 for c in customers if c in first_welcome)
    return {
        "adds": args.adds,
        "welcomed": welcomed,
        "missed": args.adds - welcomed,
        "duplicates": len(welcomes) - len(first_welcome),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "ack_p99_ms": round(percentile(acks, 0.99), 1),
        "baseline_p50_ms": round(percentile(baseline, 0.50), 1),
        "baseline_p99_ms": round(percentile(baseline, 0.99), 1),
        "rate_per_s": args.rate,
        "achieved_rate_per_s": round(args.adds / drive_s, 1),
        "callback_deliveries": sum(len(r["attempts"]) for r in records),
        "database": "sqlite",
        "workers": args.workers,
        "worker_concurrency": args.worker_concurrency,
    }


def _secret_of(seed_file: Path) -> str:
    return json.loads(seed_file.read_text(encoding="utf-8"))[0]["secret"]


def _wait(predicate, timeout: float, inst: Installation) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise BenchError(f"timed out\n{inst.log_tail('serve')}\n{inst.log_tail('worker-0')}\n{inst.log_tail('emulator')}")
