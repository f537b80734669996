"""`siyu bench callbacks`: signed WeCom callbacks ingested per second by one `siyu serve`, with
nothing lost, next to the same server answering an empty route in the same run.

A fresh installation on SQLite runs `siyu serve` (one process; no worker, so the figure is the
endpoint's own). This process sends `--events` distinct add events, encrypted and signed as WeCom
does, plus `--duplicates` (10 % by default) repeat deliveries of earlier events, each encrypted
afresh, over `--connections` keep-alive connections. Then it checks the database: every event
stored once, every delivery counted, one job enqueued per event, nothing lost.

Figures: callbacks_per_s (all deliveries / wall time), events_per_s (distinct events / wall time),
ack_p50_ms / ack_p99_ms (per request, under that load), lost, stored_twice, and the baseline
(baseline_requests_per_s: GET /healthz, an empty route, same connections and count) with
ratio_to_baseline."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from pathlib import Path
from typing import Any

from siyu.bench.common import BenchError, Installation, free_port, percentile, workdir


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench callbacks", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20000, help="distinct events")
    p.add_argument("--duplicates", type=float, default=0.10, help="repeat deliveries, as a share of --events")
    p.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    p.add_argument("--serve-workers", type=int, default=1, help="`siyu serve --workers` (HTTP processes)")
    p.add_argument("--seed", type=int, default=20261129)
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep it, logs and database, to look at")
    return p.parse_args(argv)


def _setup(inst: Installation) -> tuple[str, Any]:
    from sqlalchemy.orm import Session

    from siyu.db import make_engine
    from siyu.tenancy import service as tenancy
    from siyu.wecom import service
    from siyu.wecom.crypto import WXBizMsgCrypt, generate_aes_key

    wecom_id = "wwbench" + uuid.uuid4().hex[:10]
    token, aes_key = "bench" + uuid.uuid4().hex[:12], generate_aes_key()
    engine = make_engine(inst.database_url)
    with Session(engine) as s, s.begin():
        corp = tenancy.create_corp(s, slug="bench", name="压测银行")
        service.configure_connection(s, corp_id=corp.id, actor="bench", wecom_corp_id=wecom_id,
                                     secret="bench-secret", token=token, aes_key=aes_key)
    engine.dispose()
    return wecom_id, WXBizMsgCrypt(token, aes_key, wecom_id)


def _requests(crypto, wecom_id: str, port: int, n: int, dup_share: float, rng: random.Random) -> list[bytes]:
    """Every delivery as raw HTTP/1.1 bytes, duplicates placed a little after their originals."""
    from siyu.wecom.emulator.callbacks import event_xml

    def request(plaintext: str) -> bytes:
        signed = crypto.encrypt_callback(plaintext)
        body = signed.body.encode()
        query = "&".join(f"{k}={v}" for k, v in signed.params.items())
        return (f"POST /wecom/callback/bench?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    start = int(time.time())
    plaintexts = [event_xml(wecom_id, start + i // 50, "change_external_contact", "add_external_contact",
                            [("UserID", f"advisor{i % 20:02d}"), ("ExternalUserID", f"wmbench{i:010d}"),
                             ("State", "ch:bench"), ("WelcomeCode", f"code{i:010d}")]) for i in range(n)]
    out = [request(p) for p in plaintexts]
    for _ in range(round(n * dup_share)):
        original = rng.randrange(n)
        at = min(len(out), original + rng.randint(1, 200))
        out.insert(at, request(plaintexts[original]))
    return out


async def _drive(port: int, requests: list[bytes], connections: int) -> tuple[float, list[float], dict[int, int]]:
    """Send every request over `connections` keep-alive connections; returns (seconds, latencies
    in ms, count per status)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    raw = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return time.perf_counter() - started, latencies, statuses


def _healthz(port: int, n: int) -> list[bytes]:
    return [f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()] * n


def _check(inst: Installation, wecom_id: str) -> dict[str, int]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from siyu.db import make_engine
    from siyu.jobs.models import Job
    from siyu.wecom.models import WecomInboxEvent

    engine = make_engine(inst.database_url)
    with Session(engine) as s:
        rows, deliveries = s.execute(select(func.count(), func.coalesce(func.sum(WecomInboxEvent.deliveries), 0))
                                     .where(WecomInboxEvent.wecom_corp_id == wecom_id)).one()
        keys = s.scalar(select(func.count(func.distinct(WecomInboxEvent.natural_key)))
                        .where(WecomInboxEvent.wecom_corp_id == wecom_id))
        jobs = s.scalar(select(func.count()).select_from(Job))
    engine.dispose()
    return {"rows": rows, "deliveries": int(deliveries), "distinct_keys": keys, "jobs": jobs}


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    rng = random.Random(args.seed)
    with workdir(args.keep) as root:
        inst = Installation(Path(root))
        inst.activate()
        wecom_id, crypto = _setup(inst)
        port = free_port()
        requests = _requests(crypto, wecom_id, port, args.events, args.duplicates, rng)
        try:
            inst.spawn("serve", "serve", "--port", str(port), "--workers", str(args.serve_workers))
            inst.wait_http(f"http://127.0.0.1:{port}/healthz")
            # Warm up the server (imports, caches, connections) on both routes before measuring.
            asyncio.run(_drive(port, _healthz(port, 500), args.connections))
            base_s, base_lat, base_status = asyncio.run(_drive(port, _healthz(port, len(requests)), args.connections))
            took_s, latencies, statuses = asyncio.run(_drive(port, requests, args.connections))
            db = _check(inst, wecom_id)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise BenchError(f"{type(exc).__name__}: {exc}\n{inst.log_tail('serve')}") from None
        finally:
            inst.stop()
    deliveries = len(requests)
    refused = deliveries - statuses.get(200, 0)
    callbacks_per_s = deliveries / took_s
    baseline_per_s = len(requests) / base_s
    return {
        "callbacks_per_s": round(callbacks_per_s, 1),
        "events_per_s": round(args.events / took_s, 1),
        "events": args.events,
        "deliveries": deliveries,
        "duplicate_deliveries": deliveries - args.events,
        "refused": refused,
        "lost": args.events - db["rows"],
        "stored_twice": db["rows"] - db["distinct_keys"],
        "deliveries_counted": db["deliveries"],
        "jobs_enqueued": db["jobs"],
        "ack_p50_ms": round(percentile(latencies, 0.50), 2),
        "ack_p99_ms": round(percentile(latencies, 0.99), 2),
        "baseline_requests_per_s": round(baseline_per_s, 1),
        "baseline_p99_ms": round(percentile(base_lat, 0.99), 2),
        "baseline_refused": len(requests) - base_status.get(200, 0),
        "ratio_to_baseline": round(callbacks_per_s / baseline_per_s, 3),
        "connections": args.connections,
        "serve_workers": args.serve_workers,
        "database": "sqlite",
    }
