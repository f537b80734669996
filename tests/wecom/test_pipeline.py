"""The whole path of an add, over real HTTP: the emulator pushes a signed callback to Siyu's
endpoint (a real server), a real worker turns it into `customer.added` and sends the corp's
default welcome back through the emulator's send_welcome_msg, within WeCom's 20 s.

With duplicate callbacks, dropped acknowledgements, 5xx bursts and 45009 storms injected, no event
is lost or processed twice, and no customer gets two welcomes."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import delete, func, select

from compliance.gate import approve_all
from siyu.app import create_app
from siyu.config import get_settings
from siyu.customers import contacts
from siyu.db import session_scope
from siyu.jobs.models import Job, JobSchedule
from siyu.jobs.worker import run_worker
from siyu.wecom import service
from siyu.wecom.emulator.server import ServerThread
from siyu.wecom.models import WecomInboxEvent, WecomOutbound
from waiting import wait_for
from wecom.conftest import wire_siyu_corp

pytestmark = pytest.mark.slow

WELCOME = "您好，我是您的专属顾问小王，很高兴为您服务。"
SEND_WELCOME = "externalcontact/send_welcome_msg"


@pytest.fixture(scope="module")
def siyu_server(database_url):
    server = ServerThread(create_app(get_settings())).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(database_url):
    # Earlier tests leave jobs in the shared test database (for corps whose WeCom was never there:
    # archive polls, webhook deliveries, profile reads). A real worker would spend the test's time
    # retrying them, so the pipeline starts from an empty queue.
    with session_scope() as s:
        s.execute(delete(Job).where(Job.state.in_(("queued", "failed"))))
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, kwargs={"concurrency": 4, "stop_event": stop,
                                                         "poll_seconds": 0.05, "shutdown_timeout": 5},
                              daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(15)
    assert not thread.is_alive()
    # The worker installed the built-in recurring schedules in the shared test database; other
    # tests count schedules and their jobs, so take them out again.
    with session_scope() as s:
        s.execute(delete(Job).where(Job.name.in_(select(JobSchedule.name))))
        s.execute(delete(JobSchedule))


@pytest.fixture
def wired(emulator, siyu_server, worker):
    """A Siyu corp and an emulated WeCom corp connected both ways, with a default welcome on."""
    corp = wire_siyu_corp(emulator, callback_base_url=siyu_server.base_url, name="管道测试银行", slug_prefix="pipe")
    with session_scope() as s:
        service.set_default_welcome(s, corp_id=corp.corp_id, actor="test", text=WELCOME, enabled=True)
        approve_all(s, corp.corp_id)  # compliance approves the welcome
    return corp.corp_id, corp.wecom_id


def settled(emulator, corp_id: int, wecom_id: str, adds: int):
    """True once every add was welcomed or given up on, and the emulator has no delivery pending."""
    with session_scope() as s:
        finished = s.scalar(select(func.count()).select_from(WecomOutbound).where(
            WecomOutbound.corp_id == corp_id, WecomOutbound.state.in_(("sent", "unknown", "blocked"))))
    return finished >= adds and emulator.post(f"/corps/{wecom_id}/callbacks/wait?timeout=0.5")["idle"]


def test_an_add_gets_the_default_welcome_once_within_the_window(emulator, wired):
    corp_id, wecom_id = wired
    started = time.monotonic()
    added = emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": "zhangsan", "name": "李女士"})
    welcomes = wait_for(lambda: emulator.get(f"/corps/{wecom_id}/welcomes"), timeout=20)
    elapsed = time.monotonic() - started
    assert elapsed < 20
    assert [(w["external_userid"], w["text"]) for w in welcomes] == [(added["external_userid"], WELCOME)]
    wait_for(lambda: settled(emulator, corp_id, wecom_id, 1))
    with session_scope() as s:
        (event,) = s.scalars(select(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == wecom_id)).all()
        assert event.processed_at is not None and event.change_type == "add_external_contact"
        (out,) = s.scalars(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id)).all()
        assert (out.state, out.endpoint, out.attempts) == ("sent", "send_welcome_msg", 1)


PERIODIC_PER_CORP = ("compliance.archive_poll", "compliance.quality_daily", "compliance.quality_timeouts",
                     "compliance.retention_purge", "communities.corp_health", "communities.sync_corp",
                     "customers.sync_corp_tags", "audiences.count_corp")


def test_an_add_costs_three_jobs(emulator, wired):
    """What one add costs the queue, counted so that a regression fails: one job records the
    customer (and attributes the add to its channel, and fans it out to webhooks when the corp has
    any: the event's database subscribers run together), one reads the profile from WeCom, one
    sends the welcome. At 50 adds a second every job more is 50 more leases, completions and
    commits a second (docs/operations.md, capacity)."""
    corp_id, wecom_id = wired
    added = emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": "zhangsan", "name": "王先生"})

    def profile_read():
        with session_scope() as s:
            customer = contacts.get_by_external_id(s, corp_id=corp_id, external_userid=added["external_userid"])
            return customer is not None and customer.name == "王先生"

    wait_for(profile_read)
    wait_for(lambda: settled(emulator, corp_id, wecom_id, 1))

    def all_finished():
        with session_scope() as s:
            return not s.scalar(select(func.count()).select_from(Job).where(
                Job.corp_id == corp_id, Job.state.in_(("queued", "running", "failed"))))

    wait_for(all_finished)
    with session_scope() as s:
        # (a periodic per-corp job that a built-in schedule fans out meanwhile is no cost of the add)
        jobs = Counter(s.execute(select(Job.name, Job.state).where(
            Job.corp_id == corp_id, Job.name.not_in(PERIODIC_PER_CORP))).all())
    assert jobs == {("event:customer.added:together:default", "done"): 1,
                    ("customers.fetch_profile", "done"): 1,
                    ("event:customer.added:acquisition.welcome", "done"): 1}


def test_faults_lose_nothing_and_repeat_nothing(emulator, wired):
    corp_id, wecom_id = wired
    adds = 24
    emulator.post(f"/corps/{wecom_id}/faults", {
        "duplicate_callback_rate": 0.3, "drop_ack_rate": 0.2,  # WeCom delivers some events 2-4 times
        "error_5xx_next": 3, "rate_limit_next": 6, "system_busy_next": 2,  # the first welcomes meet trouble
        "endpoints": [SEND_WELCOME],
    })
    customers = [emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": ("zhangsan", "lisi")[i % 2]})
                 ["external_userid"] for i in range(adds)]
    wait_for(lambda: settled(emulator, corp_id, wecom_id, adds), timeout=60)

    welcomed = Counter(w["external_userid"] for w in emulator.get(f"/corps/{wecom_id}/welcomes"))
    assert set(welcomed) == set(customers), "every customer is welcomed"
    assert max(welcomed.values()) == 1, "nobody is welcomed twice"
    deliveries = emulator.get(f"/corps/{wecom_id}/callbacks")
    assert sum(len(d.get("attempts", [])) for d in deliveries) > adds, "the faults did cause repeat deliveries"
    with session_scope() as s:
        events = s.scalars(select(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == wecom_id)).all()
        assert len(events) == adds and all(e.processed_at is not None for e in events)
        assert sum(e.deliveries for e in events) > adds
        jobs = Counter(s.scalars(select(Job.name).where(Job.corp_id == corp_id)).all())
        assert jobs["event:customer.added:acquisition.welcome"] == adds, "each event dispatched once"
        outs = s.scalars(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id)).all()
        assert len(outs) == adds and {o.state for o in outs} == {"sent"}
        assert sum(o.attempts for o in outs) > adds, "the 5xx and busy answers were retried through the queue"
