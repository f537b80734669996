"""The welcome under faults, over real HTTP: the emulator pushes signed callbacks to Siyu's endpoint
(a real server), real workers (threads, and `siyu worker` processes for the crash) run the welcome
queue against the emulator.

- A backlog of welcomes whose codes are dead is written off without a single WeCom call.
- A worker SIGKILLed in the middle of a welcome hands it on within seconds (its heartbeat stops),
  not after its 60 s lease, and the customer is welcomed once.
- 41096 (another application is sending a welcome now) is retried within the 20 s; 41051 (the
  customer already started chatting) records the welcome as not needed.
- After a 45009 storm the welcomes resume as soon as the corp's window passes."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, func, select

from compliance.gate import approve_all
from siyu.app import create_app
from siyu.config import get_settings
from siyu.db import session_scope, utcnow
from siyu.jobs import events
from siyu.jobs.models import Job, JobSchedule, JobWorker
from siyu.jobs.worker import run_worker
from siyu.wecom import service
from siyu.wecom.emulator.server import ServerThread
from siyu.wecom.models import WecomOutbound
from waiting import wait_for
from wecom.conftest import wire_siyu_corp

pytestmark = pytest.mark.slow

WELCOME = "您好，我是您的专属顾问小王，很高兴为您服务。"
SEND_WELCOME = "externalcontact/send_welcome_msg"
WELCOME_JOB = "event:customer.added:acquisition.welcome"


@pytest.fixture(scope="module")
def siyu_server(database_url):
    server = ServerThread(create_app(get_settings())).start()
    yield server
    server.stop()


@pytest.fixture
def wired(emulator, siyu_server):
    """A Siyu corp and an emulated WeCom corp connected both ways, with a default welcome on; its
    jobs, and the workers' rows and schedules, are removed afterwards."""
    corp = wire_siyu_corp(emulator, callback_base_url=siyu_server.base_url, name="可靠性测试银行",
                          slug_prefix="rel")
    with session_scope() as s:
        service.set_default_welcome(s, corp_id=corp.corp_id, actor="test", text=WELCOME, enabled=True)
        approve_all(s, corp.corp_id)  # compliance approves the welcome (only approved text is sent)
    yield corp
    with session_scope() as s:
        s.execute(delete(Job).where(Job.corp_id == corp.corp_id))
        s.execute(delete(Job).where(Job.name.in_(select(JobSchedule.name))))
        s.execute(delete(JobSchedule))
        s.execute(delete(JobWorker))


@contextlib.contextmanager
def welcome_worker(**kwargs) -> Iterator[None]:
    """A worker thread on the welcome queue only (the other subscribers' jobs wait)."""
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, kwargs={"concurrency": 4, "queues": ["welcome"], "stop_event": stop,
                                                         "poll_seconds": 0.02, "shutdown_timeout": 5, **kwargs},
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(20)
        assert not thread.is_alive()


def welcome_jobs(corp_id: int) -> list[Job]:
    with session_scope() as s:
        return list(s.scalars(select(Job).where(Job.corp_id == corp_id, Job.name == WELCOME_JOB).order_by(Job.id)))


def outbound(corp_id: int) -> list[WecomOutbound]:
    with session_scope() as s:
        return list(s.scalars(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id)
                              .order_by(WecomOutbound.id)))


def welcome_calls(emulator, wecom_id: str) -> list[dict]:
    return [c for c in emulator.get(f"/corps/{wecom_id}/calls") if c["endpoint"] == SEND_WELCOME]


def add(emulator, wecom_id: str, userid: str = "zhangsan") -> str:
    return emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": userid})["external_userid"]


def test_a_backlog_of_dead_welcome_codes_is_written_off_without_calling_wecom(emulator, wired):
    """Workers were down for 25 s while 200 adds arrived: their codes are dead. The workers come
    back; the backlog is expired in bulk, not run oldest first into refusals, and the next add is
    welcomed at once."""
    corp_id, wecom_id = wired.corp_id, wired.wecom_id
    arrived = utcnow() - dt.timedelta(seconds=25)
    with session_scope() as s:
        for i in range(200):
            events.publish(s, "customer.added", {
                "userid": "zhangsan", "external_userid": f"wmSTALE{i:04d}", "welcome_code": f"stale-{i}",
                "create_time": int(arrived.timestamp()), "received_at": arrived.isoformat(),
                "inbox_event_id": 10_000_000 + i, "change_type": "add_external_contact",
            }, corp_id=corp_id)
    with welcome_worker():
        fresh = add(emulator, wecom_id)
        wait_for(lambda: emulator.get(f"/corps/{wecom_id}/welcomes"), 20, "the fresh add's welcome")
        wait_for(lambda: all(j.state in ("expired", "done") for j in welcome_jobs(corp_id)), 20,
                 "the backlog to be written off")
    jobs = welcome_jobs(corp_id)
    states = Counter(j.state for j in jobs)
    assert states == {"expired": 200, "done": 1}
    assert all(j.attempt == 0 for j in jobs if j.state == "expired"), "no expired job was ever started"
    assert [w["external_userid"] for w in emulator.get(f"/corps/{wecom_id}/welcomes")] == [fresh]
    assert len(welcome_calls(emulator, wecom_id)) == 1, "the dead codes cost WeCom not one call"
    assert [o.state for o in outbound(corp_id)] == ["sent"]


def worker_process(database_url: str, log_path, *, concurrency: int = 1) -> subprocess.Popen:
    env = dict(os.environ, SIYU_DATABASE_URL=database_url, SIYU_JOB_POLL_SECONDS="0.02", SIYU_LOG_LEVEL="INFO")
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "siyu.cli", "worker", "--queues", "welcome", "--concurrency", str(concurrency)],
            env=env, stdout=log, stderr=subprocess.STDOUT)


def test_a_worker_killed_mid_welcome_hands_it_on_within_10_s_and_the_customer_is_welcomed_once(
        emulator, wired, database_url, tmp_path):
    corp_id, wecom_id = wired.corp_id, wired.wecom_id
    # WeCom takes 8 s to answer send_welcome_msg: a worker is killed while the call is in flight.
    emulator.post(f"/corps/{wecom_id}/faults", {"latency_ms": 8000, "endpoints": [SEND_WELCOME]})
    log = tmp_path / "workers.log"
    procs = [worker_process(database_url, log), worker_process(database_url, log)]
    try:
        wait_for(lambda: _workers() == 2, 60, "both workers to start")
        customer = add(emulator, wecom_id)
        wait_for(lambda: [o.state for o in outbound(corp_id)] == ["sending"], 20, "the welcome call to start")
        (held,) = welcome_jobs(corp_id)
        holder = next(p for p in procs if held.locked_by.split(":")[1] == str(p.pid))
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        holder.wait(10)
        emulator.post(f"/corps/{wecom_id}/faults", {"latency_ms": 0, "endpoints": []})  # WeCom quick again
        (job,) = wait_for(lambda: [j for j in welcome_jobs(corp_id) if j.state == "done"], 15,
                          "the welcome to be handed on")
        handed_on_in = time.monotonic() - killed
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        emulator.post(f"/corps/{wecom_id}/faults", {"latency_ms": 0, "endpoints": []})
    assert handed_on_in < 10, f"handed on after {handed_on_in:.1f} s"
    assert job.attempt == 2 and "WorkerDead" in (job.last_error or "")
    # The welcome code is single-use, so the new worker may repeat the call the dead one had in
    # flight (send-once's repeat-safe path): WeCom delivers the welcome once, whichever call
    # got through; had the first one arrived, the repeat would be refused and recorded unknown.
    (record,) = outbound(corp_id)
    assert record.attempts == 2 and record.state in ("sent", "unknown")
    time.sleep(8.5)  # the killed worker's slow call has finished at WeCom one way or the other
    assert [w["external_userid"] for w in emulator.get(f"/corps/{wecom_id}/welcomes")] == [customer]
    assert record.state == "sent" or [c["errcode"] for c in welcome_calls(emulator, wecom_id)][-1] == 41051


def _workers() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(JobWorker))


def test_41096_is_retried_within_the_window_and_41051_records_the_welcome_as_not_needed(emulator, wired):
    corp_id, wecom_id = wired.corp_id, wired.wecom_id
    emulator.post(f"/corps/{wecom_id}/faults", {"welcome_elsewhere_next": 2})
    # The customer writes to the advisor before any worker could welcome them.
    chatty = add(emulator, wecom_id, "lisi")
    emulator.post(f"/corps/{wecom_id}/messages", {"from": chatty, "to": ["lisi"], "text": "你好，我想咨询一下"})
    wait_for(lambda: len(welcome_jobs(corp_id)) == 1, 10, "the first add's job")
    with welcome_worker():
        wait_for(lambda: [o.state for o in outbound(corp_id)] == ["superseded"], 20, "41051")
        emulator.post(f"/corps/{wecom_id}/faults", {"welcome_elsewhere_next": 2})
        busy = add(emulator, wecom_id, "zhangsan")
        wait_for(lambda: emulator.get(f"/corps/{wecom_id}/welcomes"), 20, "the welcome after 41096")
        wait_for(lambda: all(j.state == "done" for j in welcome_jobs(corp_id)), 10, "both jobs to finish")
    superseded, sent = outbound(corp_id)
    assert (superseded.state, superseded.errcode) == ("superseded", 41051)
    assert (sent.state, sent.attempts) == ("sent", 3), "41096 twice, then sent"
    assert [w["external_userid"] for w in emulator.get(f"/corps/{wecom_id}/welcomes")] == [busy]
    answers = [c["errcode"] for c in welcome_calls(emulator, wecom_id)]
    assert answers == [41051, 41096, 41096, 0]


def test_after_a_45009_storm_welcomes_resume_when_the_window_passes(emulator, wired):
    corp_id, wecom_id = wired.corp_id, wired.wecom_id
    with welcome_worker():
        add(emulator, wecom_id)  # token and first welcome, before the storm
        wait_for(lambda: emulator.get(f"/corps/{wecom_id}/welcomes"), 20, "the first welcome")
        emulator.post(f"/corps/{wecom_id}/faults", {"rate_limit_seconds": 4, "endpoints": [SEND_WELCOME]})
        storm_ends = time.monotonic() + 4
        customers = [add(emulator, wecom_id, ("zhangsan", "lisi")[i % 2]) for i in range(20)]
        wait_for(lambda: len(emulator.get(f"/corps/{wecom_id}/welcomes")) == 21, 20, "every welcome")
        resumed_after = time.monotonic() - storm_ends
    welcomed = Counter(w["external_userid"] for w in emulator.get(f"/corps/{wecom_id}/welcomes"))
    assert set(customers) <= set(welcomed) and max(welcomed.values()) == 1
    # Calls resume with the first window after the storm (1 s windows), not after growing backoffs.
    assert resumed_after < 4, f"the last welcome came {resumed_after:.1f} s after the storm"
    refused = [c for c in welcome_calls(emulator, wecom_id) if c["errcode"] == 45009]
    # The closed window is shared: about one probe per window and worker thread, not one per job.
    assert len(refused) <= 4 * 6, f"{len(refused)} calls refused during a 4 s storm"
    assert {j.state for j in welcome_jobs(corp_id)} == {"done"}
