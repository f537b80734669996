"""Callbacks that survive the database: while it is unreachable the endpoint keeps verified events
in the local spool and acknowledges them; the drainer stores them once it is back, exactly once
however often WeCom delivered them meanwhile; a full spool answers 503; files of a killed serve
process are drained by another; /metrics shows the figures to the scraper it trusts only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from siyu.app import create_app
from siyu.bench.common import free_port
from siyu.config import get_settings
from siyu.db import configure, session_factory, session_scope
from siyu.jobs.models import Job
from siyu.wecom import callbacks, service
from siyu.wecom.models import WecomInboxEvent
from siyu.wecom.spool import CallbackSpool, SpoolDrainer, spool_status

from . import test_endpoint
from .test_endpoint import WELCOME_JOB, add_event, post

connected = test_endpoint.connected  # the fixture: a committed corp with its connection, and the app


@pytest.fixture
def spool_dir(tmp_path, monkeypatch):
    directory = tmp_path / "spool"
    monkeypatch.setenv("SIYU_CALLBACK_SPOOL_DIR", str(directory))
    get_settings.cache_clear()
    yield directory
    callbacks.stop_spool_drainer()
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def database_down(database_url):
    """Points this process at a database server that is not there (connection refused), as when
    the server is down; `back()` points it at the real one again."""

    class Outage:
        def start(self) -> None:
            configure(f"postgresql://siyu@127.0.0.1:{free_port()}/siyu")

        def back(self) -> None:
            configure(database_url)

    outage = Outage()
    yield outage
    outage.back()


def inbox(crypto) -> tuple[int, int, int]:
    """Stored events of the corp, their deliveries, and welcome jobs enqueued for them."""
    with session_scope() as s:
        events, deliveries = s.execute(
            select(func.count(), func.coalesce(func.sum(WecomInboxEvent.deliveries), 0))
            .where(WecomInboxEvent.wecom_corp_id == crypto.receive_id)).one()
        jobs = s.scalar(select(func.count()).select_from(Job)
                        .where(Job.name == WELCOME_JOB, Job.payload["welcome_code"].isnot(None),
                               Job.corp_id == _corp_of(s, crypto)))
    return events, deliveries, jobs


def _corp_of(s, crypto) -> int:
    from siyu.tenancy.models import Corp

    return s.scalar(select(Corp.id).where(Corp.wecom_corp_id == crypto.receive_id))


def drain() -> None:
    result = callbacks.spool_drainer().drain_once()
    assert result.rejected == 0


def test_a_callback_accepted_while_the_database_is_down_is_stored_once_when_it_is_back(
        connected, spool_dir, database_down):
    corp, crypto, client = connected
    warm = post(client, corp, crypto, add_event(crypto.receive_id, ext="wmWARM", code="W0"))
    assert warm.status_code == 200
    # The corp's keys were read a while ago: the cache has expired, and the database is gone.
    target = service.cached_callback_target(corp.slug)
    service._crypto_cache[corp.slug] = (0.0, target)
    database_down.start()

    first = add_event(crypto.receive_id, ext="wmDOWN1", code="C1")
    only_spooled = add_event(crypto.receive_id, ext="wmDOWN2", code="C2")
    for plaintext in (first, first, only_spooled):  # WeCom redelivers the first meanwhile
        response = post(client, corp, crypto, plaintext)
        assert (response.status_code, response.text) == (200, "success")
    assert spool_status(spool_dir)["bytes"] > 0
    with pytest.raises(Exception):  # noqa: B017 - still down: nothing can be drained
        callbacks.spool_drainer().drain_once()

    database_down.back()
    assert post(client, corp, crypto, first).status_code == 200  # and again, now stored directly
    drain()
    assert inbox(crypto) == (3, 5, 3)  # warm + two events; the first delivered 4 times in all
    assert spool_status(spool_dir) == {"bytes": 0, "files": 0, "oldest_age_seconds": None}
    assert not list(spool_dir.glob("*.spool"))
    for f in spool_dir.iterdir():
        assert f.stat().st_mode & 0o077 == 0, f  # customer events: the owner's eyes only


def test_a_full_spool_answers_503_so_wecom_retries(connected, spool_dir, database_down, monkeypatch):
    corp, crypto, client = connected
    assert post(client, corp, crypto, add_event(crypto.receive_id, ext="wmWARM", code="W0")).status_code == 200
    monkeypatch.setenv("SIYU_CALLBACK_SPOOL_MAX_BYTES", "4096")
    get_settings.cache_clear()
    database_down.start()
    answers = []
    for i in range(20):
        answers.append(post(client, corp, crypto, add_event(crypto.receive_id, ext=f"wmFULL{i}", code=f"F{i}")))
        if answers[-1].status_code != 200:
            break
    kept = [r for r in answers if r.status_code == 200]
    assert 2 <= len(kept) < 20
    assert answers[-1].status_code == 503
    assert spool_status(spool_dir)["bytes"] <= 4096

    database_down.back()
    drain()
    assert inbox(crypto)[0] == 1 + len(kept)  # every acknowledged event, none of the refused


_KILLED_WRITER = textwrap.dedent("""
    import datetime as dt, os, signal, sys, time
    from pathlib import Path
    from siyu.wecom.spool import CallbackSpool
    spool = CallbackSpool(Path(sys.argv[1]), max_bytes=1 << 20)
    corp_id, lines = int(sys.argv[2]), sys.stdin.read().split("\\0")
    for line in lines:
        spool.append(corp_id=corp_id, plaintext=line, received_at=dt.datetime.now(dt.UTC))
    if sys.argv[3] == "torn":  # killed in the middle of writing one more (never acknowledged)
        os.write(spool._fd, b'{"v":1,"corp_id":')
    print("ready", flush=True)
    if sys.argv[3] == "wait":
        time.sleep(60)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _writer(directory, corp_id: int, plaintexts: list[str], mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(directory), str(corp_id), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    proc.stdin.write("\0".join(plaintexts))
    proc.stdin.close()
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_the_drainer_takes_over_the_files_of_a_killed_serve_process(connected, spool_dir):
    corp, crypto, _client = connected
    events = [add_event(crypto.receive_id, ext=f"wmDEAD{i}", code=f"D{i}") for i in range(3)]
    dead = _writer(spool_dir, corp.id, events, "torn")
    assert dead.wait(10) == -9
    alive = _writer(spool_dir, corp.id, [add_event(crypto.receive_id, ext="wmALIVE", code="A1")], "wait")
    try:
        drain()  # the dead process's file only: the live one still holds its lock
        assert inbox(crypto) == (3, 3, 3)
        assert len(list(spool_dir.glob("*.spool"))) == 1
    finally:
        alive.kill()
        alive.wait(10)
    drain()
    assert inbox(crypto) == (4, 4, 4)
    assert not [p for p in spool_dir.iterdir() if p.suffix in (".spool", ".lock", ".done")]


def test_a_drain_interrupted_between_commit_and_checkpoint_stores_nothing_twice(connected, spool_dir, monkeypatch):
    corp, crypto, _client = connected
    import siyu.wecom.spool as spool_module

    monkeypatch.setattr(spool_module, "DRAIN_BATCH", 1)
    writer = CallbackSpool(spool_dir, max_bytes=1 << 20)
    from siyu.db import utcnow

    for i in range(2):
        writer.append(corp_id=corp.id, plaintext=add_event(crypto.receive_id, ext=f"wmCRASH{i}", code=f"K{i}"),
                      received_at=utcnow())
    writer.rotate()
    (segment,) = writer.own_closed_segments()
    calls = []

    def store_then_crash(session, event):
        calls.append(event)
        if len(calls) == 2:
            raise SystemExit("killed")  # the drainer's process dies mid-drain
        return callbacks.store_spooled(session, event)

    drainer = SpoolDrainer(writer, sessions=session_factory(), store=store_then_crash)
    with pytest.raises(SystemExit):
        drainer.drain_once()
    assert inbox(crypto) == (1, 1, 1)
    # The first batch committed, but say the process died before its checkpoint was written.
    (spool_dir / (segment.name + ".done")).unlink()
    SpoolDrainer(writer, sessions=session_factory(), store=callbacks.store_spooled).drain_once()
    events, deliveries, jobs = inbox(crypto)
    assert (events, jobs) == (2, 2)  # the first counted as a repeat delivery, not stored again
    writer.close()


def test_metrics_show_the_named_series_to_allowed_scrapers_only(connected, spool_dir, database_down, monkeypatch):
    corp, crypto, client = connected
    from siyu.wecom.errors import WeComError

    with session_scope() as s:
        wecom_client = service.client_for_corp(s, corp_id=corp.id)
    with pytest.raises(WeComError):  # its WeCom is unreachable: counted all the same
        wecom_client.access_token()
    assert post(client, corp, crypto, add_event(crypto.receive_id, ext="wmM1", code="M1")).status_code == 200
    assert post(client, corp, crypto, add_event(crypto.receive_id, ext="wmM1", code="M1")).status_code == 200
    database_down.start()
    assert post(client, corp, crypto, add_event(crypto.receive_id, ext="wmM2", code="M2")).status_code == 200
    spooled_scrape = TestClient(create_app(get_settings()), client=("127.0.0.1", 40000)).get("/metrics")
    database_down.back()

    assert spooled_scrape.status_code == 200
    text = spooled_scrape.text
    for series in ('siyu_callback_acks_total{outcome="stored"}', 'siyu_callback_acks_total{outcome="duplicate"}',
                   'siyu_callback_acks_total{outcome="spooled"}', "siyu_callback_spool_bytes",
                   "siyu_callback_spool_oldest_age_seconds", "siyu_database_up 0.0"):
        assert series in text, series
    assert _value(text, "siyu_callback_spool_bytes") > 0

    local = TestClient(create_app(get_settings()), client=("127.0.0.1", 40000))
    body = local.get("/metrics").text
    for series in ("siyu_database_up 1.0", 'siyu_queue_depth{queue="welcome"}',
                   'siyu_queue_oldest_ready_age_seconds{queue="welcome"}', "siyu_welcome_latency_seconds_bucket",
                   "siyu_wecom_calls_total", "siyu_job_outcomes_total"):
        assert series in body, series

    outsider = TestClient(create_app(get_settings()), client=("203.0.113.9", 40000))
    assert outsider.get("/metrics").status_code == 403
    token = "scrape-" + uuid.uuid4().hex
    monkeypatch.setenv("SIYU_METRICS_TOKEN", token)
    get_settings.cache_clear()
    assert outsider.get("/metrics").status_code == 401
    assert outsider.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert outsider.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the exposition")


@pytest.fixture
def held_inbox(database_url):
    """`hold()` takes the inbox's write lock (SQLite: the database's; PostgreSQL: the table's)
    until `release()`: a serve process then answers from its journal but cannot store anything."""
    from sqlalchemy import text

    from siyu.db import get_engine

    class Held:
        connection = transaction = None

        def hold(self) -> None:
            self.connection = get_engine().connect()
            self.transaction = self.connection.begin()  # on SQLite: BEGIN IMMEDIATE, the write lock
            if self.connection.dialect.name == "postgresql":
                self.connection.execute(text("LOCK TABLE wecom_inbox_event IN SHARE ROW EXCLUSIVE MODE"))

        def release(self) -> None:
            if self.transaction is not None and self.transaction.is_active:
                self.transaction.rollback()
            if self.connection is not None:
                self.connection.close()

    held = Held()
    yield held
    held.release()


def test_a_serve_process_killed_right_after_answering_loses_no_journaled_callback(
        connected, spool_dir, held_inbox, database_url):
    """Journal acknowledgement: `success` goes out once the event is in the spool, before the
    database has it. SIGKILL the serve process then: another process finds every answered event
    in the dead one's files and stores each once, repeats counted."""
    import httpx

    from waiting import wait_for

    corp, crypto, _client = connected
    if get_settings().callback_ack == "database":
        pytest.skip("journal acknowledgement only")
    port = free_port()
    env = dict(os.environ, SIYU_DATABASE_URL=database_url, SIYU_CALLBACK_ACK="journal", SIYU_LOG_LEVEL="WARNING")
    server = subprocess.Popen([sys.executable, "-m", "siyu.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            __import__("time").sleep(0.1)
        events = [add_event(crypto.receive_id, ext=f"wmKILL{i}", code=f"K{i}") for i in range(5)]
        with httpx.Client(base_url=base, timeout=10) as http:

            def deliver(plaintext: str) -> None:
                signed = crypto.encrypt_callback(plaintext)
                answer = http.post(f"/wecom/callback/{corp.slug}", params=signed.params, content=signed.body,
                                   headers={"content-type": "text/xml"})
                assert (answer.status_code, answer.text) == (200, "success")

            deliver(add_event(crypto.receive_id, ext="wmWARM", code="W0"))  # the server knows the corp's keys
            wait_for(lambda: inbox(crypto) == (1, 1, 1), timeout=30)  # and its drainer stored it
            held_inbox.hold()
            for plaintext in events + events[:2]:  # two of them delivered twice
                deliver(plaintext)
        # Answered, and not in the database (read in the lock's own transaction): only in the journal.
        stored = held_inbox.connection.execute(select(func.count(), func.sum(WecomInboxEvent.deliveries))
                                               .where(WecomInboxEvent.wecom_corp_id == crypto.receive_id)).one()
        assert tuple(stored) == (1, 1)
    finally:
        server.kill()  # SIGKILL: no shutdown hook runs
        server.wait(10)
    held_inbox.release()
    drain()  # this process takes over the dead one's files
    assert inbox(crypto) == (6, 8, 6)
    assert not list(spool_dir.glob("*.spool"))
