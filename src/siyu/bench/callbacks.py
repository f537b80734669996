"""`siyu bench callbacks`: signed WeCom callbacks ingested per second by one `siyu serve`, with
nothing lost, next to the same server answering an empty route mounted exactly like the callback.

A fresh installation on SQLite runs `siyu serve` (one process), a `siyu worker` working off the
jobs the events enqueue (as in production: the endpoint shares the machine and the database with
it) and `siyu emulator` for the worker's WeCom calls. This process sends `--events` distinct add
events, encrypted and signed as WeCom does, plus `--duplicates` (10 % by default) repeat
deliveries of earlier events, each encrypted afresh, over `--connections` keep-alive connections.
Then it checks the database: every event stored once, every delivery counted, nothing lost.

The baseline is the cheapest route doing the same HTTP work: `POST /wecom/bench-empty/{slug}`, a
plain async route mounted right after the callback's (the server is started with
`SIYU_BENCH_ROUTES=1`; production never mounts it), sent the same bodies over the same
connections. `GET /healthz` (a hot route: no database) and `GET /api/v1/me` with an API key (an
ordinary route: key check, database session, the whole middleware stack) are measured too, next to
the empty one.

Acknowledged is stored when callbacks are acknowledged after the commit (`SIYU_CALLBACK_ACK=
database`); when they are journaled (the default on SQLite) the spool's drainer stores them just
after, so the check waits until every acknowledged delivery is counted in the database (at most
`--drain-timeout`): stored_after_s is that wait after the last answer, stored_per_s the
deliveries over answer time plus that wait.

Figures: callbacks_per_s (all deliveries / wall time), events_per_s, ack_p50_ms / ack_p99_ms,
empty_route_per_s and ratio_to_empty_route (callbacks_per_s / empty_route_per_s), healthz_per_s,
ordinary_route_per_s and ratio_ordinary_to_empty, ordinary_route_p99_ms,
lost, stored_twice, jobs_done (jobs the worker finished during the run)."""

from __future__ import annotations

import argparse
import asyncio
import json
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
    p.add_argument("--ack", choices=["auto", "journal", "database"], default="auto",
                   help="when the server acknowledges (SIYU_CALLBACK_ACK; auto: journal on SQLite)")
    p.add_argument("--seed", type=int, default=20261129)
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="seconds to wait after the last answer for every acknowledged delivery to be stored")
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep it, logs and database, to look at")
    return p.parse_args(argv)


def _setup(inst: Installation, emulator_url: str) -> tuple[str, Any, Path, str]:
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
                                     secret="bench-secret", token=token, aes_key=aes_key,
                                     base_url=emulator_url + "/cgi-bin/")
        # The ordinary route's caller: an integration's key, as the firm's systems call the API.
        api_key, _key = tenancy.create_api_key(s, corp_id=corp.id, name="bench", scopes=["customers:read"],
                                               actor="bench")
    engine.dispose()
    seed = [{"corp_id": wecom_id, "name": "压测银行", "secret": "bench-secret",
             "staff": [{"userid": f"advisor{i:02d}", "name": f"advisor{i:02d}"} for i in range(20)]}]
    seed_file = inst.root / "emulator-seed.json"
    seed_file.write_text(json.dumps(seed, ensure_ascii=False), encoding="utf-8")
    return wecom_id, WXBizMsgCrypt(token, aes_key, wecom_id), seed_file, api_key


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


def _ordinary(port: int, api_key: str, n: int) -> list[bytes]:
    """A cheap authenticated API read (`GET /api/v1/me`): the API key checked, a database session,
    the route gate, the middleware stack and a JSON answer: what every ordinary request goes through."""
    return [f"GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {api_key}\r\n\r\n"
            .encode()] * n


def _empty(requests: list[bytes]) -> list[bytes]:
    """The same deliveries, bodies and all, to the empty route mounted like the callback."""
    return [r.replace(b"POST /wecom/callback/bench?", b"POST /wecom/bench-empty/bench?", 1) for r in requests]


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
        done = s.scalar(select(func.count()).select_from(Job).where(Job.state == "done"))
    engine.dispose()
    return {"rows": rows, "deliveries": int(deliveries), "distinct_keys": keys, "jobs": jobs, "jobs_done": done}


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    rng = random.Random(args.seed)
    with workdir(args.keep) as root:
        inst = Installation(Path(root))
        inst.activate()
        port, emulator_port = free_port(), free_port()
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        wecom_id, crypto, seed_file, api_key = _setup(inst, emulator_url)
        requests = _requests(crypto, wecom_id, port, args.events, args.duplicates, rng)
        empty = _empty(requests)
        try:
            inst.spawn("emulator", "emulator", "--port", str(emulator_port), "--seed-file", str(seed_file))
            inst.spawn("serve", "serve", "--port", str(port), "--workers", str(args.serve_workers),
                       env={"SIYU_BENCH_ROUTES": "1", "SIYU_CALLBACK_ACK": args.ack})
            inst.spawn("worker", "worker")
            inst.wait_http(emulator_url + "/_emulator/health")
            inst.wait_http(f"http://127.0.0.1:{port}/healthz")
            # Warm up the server (imports, caches, connections) on every route before measuring.
            for warm in (_healthz(port, 500), empty[:500], _ordinary(port, api_key, 500)):
                asyncio.run(_drive(port, warm, args.connections))
            empty_s, empty_lat, empty_status = asyncio.run(_drive(port, empty, args.connections))
            health_s, _health_lat, health_status = asyncio.run(_drive(port, _healthz(port, len(requests)),
                                                                       args.connections))
            ordinary = _ordinary(port, api_key, max(1000, len(requests) // 4))
            ordinary_s, ordinary_lat, ordinary_status = asyncio.run(_drive(port, ordinary, args.connections))
            took_s, latencies, statuses = asyncio.run(_drive(port, requests, args.connections))
            # Acknowledged is not yet stored when callbacks are journaled: wait for the spool's
            # drainer (every delivery counted), and say how long that took after the last answer.
            acked = time.perf_counter()
            db = _check(inst, wecom_id)
            while db["deliveries"] < statuses.get(200, 0) and time.perf_counter() - acked < args.drain_timeout:
                time.sleep(0.1)
                db = _check(inst, wecom_id)
            stored_after_s = time.perf_counter() - acked
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise BenchError(f"{type(exc).__name__}: {exc}\n{inst.log_tail('serve')}") from None
        finally:
            inst.stop()
    deliveries = len(requests)
    refused = deliveries - statuses.get(200, 0)
    callbacks_per_s = deliveries / took_s
    empty_per_s = len(empty) / empty_s
    return {
        "callbacks_per_s": round(callbacks_per_s, 1),
        "events_per_s": round(args.events / took_s, 1),
        "empty_route_per_s": round(empty_per_s, 1),
        "healthz_per_s": round(len(requests) / health_s, 1),
        "ratio_to_empty_route": round(callbacks_per_s / empty_per_s, 3),
        "ordinary_route_per_s": round(len(ordinary) / ordinary_s, 1),
        "ratio_ordinary_to_empty": round(len(ordinary) / ordinary_s / empty_per_s, 3),
        "ordinary_route_p99_ms": round(percentile(ordinary_lat, 0.99), 2),
        "stored_after_s": round(stored_after_s, 2),
        "stored_per_s": round(deliveries / (took_s + stored_after_s), 1),
        "lost": args.events - db["rows"],
        "events": args.events,
        "deliveries": deliveries,
        "duplicate_deliveries": deliveries - args.events,
        "refused": refused,
        "stored_twice": db["rows"] - db["distinct_keys"],
        "deliveries_counted": db["deliveries"],
        "jobs_enqueued": db["jobs"],
        "jobs_done": db["jobs_done"],
        "ack_p50_ms": round(percentile(latencies, 0.50), 2),
        "ack_p99_ms": round(percentile(latencies, 0.99), 2),
        "empty_route_p99_ms": round(percentile(empty_lat, 0.99), 2),
        "baseline_refused": (len(empty) - empty_status.get(200, 0)) + (len(requests) - health_status.get(200, 0))
                            + (len(ordinary) - ordinary_status.get(200, 0)),
        "connections": args.connections,
        "serve_workers": args.serve_workers,
        "worker": True,
        "ack": "database" if args.ack == "database" else "journal",
        "database": "sqlite",
    }
