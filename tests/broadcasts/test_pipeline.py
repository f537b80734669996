"""A 1-on-1 broadcast over the strict emulator: the plan recorded in the ledger (opted-out, global
holdout and broadcast holdout customers excluded and counted), one add_msg_template per advisor with
their own customers, sent once even when the send is killed mid-call, results read back per
advisor after they confirm. Unapproved text never goes out."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from compliance.gate import approve_all
from siyu.broadcasts import jobs as bjobs
from siyu.broadcasts import service
from siyu.broadcasts.models import Broadcast, BroadcastSend
from siyu.db import session_scope
from siyu.delivery import service as delivery
from siyu.delivery.models import DeliveryLedger
from siyu.tenancy import service as tenancy
from siyu.tenancy.principal import Principal
from siyu.wecom.client import WeComClient
from wecom.conftest import emulator, wire_siyu_corp  # noqa: F401 - the emulator fixture

pytestmark = pytest.mark.slow

DAYTIME = dt.datetime(2026, 12, 8, 3, 0, tzinfo=dt.UTC)  # 11:00 in Shanghai


class Killed(BaseException):  # noqa: N818 - stands in for the process being killed
    pass


@pytest.fixture
def wired(emulator, database_url):  # noqa: F811
    from customers.factories import make_customer

    corp = wire_siyu_corp(emulator, callback_base_url="http://127.0.0.1:9", name="群发银行", slug_prefix="bc",
                          siyu_staff=("zhangsan", "lisi"))
    exts = {"zhangsan": [], "lisi": []}
    for advisor, n in (("zhangsan", 6), ("lisi", 4)):
        for i in range(n):
            exts[advisor].append(emulator.post(f"/corps/{corp.wecom_id}/add_contact",
                                               {"userid": advisor, "name": f"客户{advisor}{i}"})["external_userid"])
    with session_scope() as s:
        ops = tenancy.create_staff(s, corp_id=corp.corp_id, login=f"ops.{corp.slug}", name="运营",
                                   roles=["operations"], password=None)
        principal = Principal(corp_id=corp.corp_id, kind="staff", label=ops.login, staff_id=ops.id,
                              roles=frozenset({"operations"}))
        ids = {}
        for advisor, lst in exts.items():
            for ext in lst:
                ids[ext] = make_customer(s, corp.corp_id, userid=advisor, external_userid=ext).id
        policy = delivery.policy_for(s, corp_id=corp.corp_id)
        policy.holdout_basis_points = 0  # the tests that need the control group set it
    yield corp, principal, exts, ids


def _make(principal, **kw):
    with session_scope() as s:
        row = service.create_broadcast(s, principal=principal, name=kw.pop("name", "年末理财早知道"),
                                       text=kw.pop("text", "年末理财早知道：本周直播讲解资产配置，欢迎预约。"),
                                       audience={"stages": []}, **kw)
        return row.id


def _schedule(principal, bid):
    with session_scope() as s:
        service.schedule(s, principal=principal, broadcast_id=bid)


def _messages(emulator, wecom_id):  # noqa: F811
    return emulator.get(f"/corps/{wecom_id}/mass_messages")


def test_a_broadcast_goes_out_once_per_advisor_and_results_come_back(emulator, wired, monkeypatch):  # noqa: F811
    from siyu.privacy.service import record_consent

    corp, principal, exts, ids = wired
    bid = _make(principal)
    with session_scope() as s:
        record_consent(s, corp_id=corp.corp_id, actor="test", external_userid=exts["lisi"][0], purpose="marketing",
                       granted=False, source="advisor", note="客户说不要再发营销信息")
        approve_all(s, principal.corp_id)
        plan = service.preview(s, row=s.get(Broadcast, bid), at=DAYTIME)
    assert plan.audience == 10 and plan.recipients == 9 and plan.excluded == {"opted_out": 1}
    _schedule(principal, bid)
    assert bjobs.start_one(bid, now=DAYTIME) == "sending"
    with session_scope() as s:
        sends = {x.advisor_userid: x.id
                 for x in s.scalars(select(BroadcastSend).where(BroadcastSend.broadcast_id == bid))}
        assert s.get(Broadcast, bid).plan["excluded"] == {"opted_out": 1}
    assert set(sends) == {"zhangsan", "lisi"}

    original = WeComClient.add_msg_template

    def answered_then_killed(self, **kw):
        original(self, **kw)  # WeCom made the task ...
        raise Killed()  # ... and the process died before the answer was recorded

    monkeypatch.setattr(WeComClient, "add_msg_template", answered_then_killed)
    with pytest.raises(Killed):
        bjobs.send_one(sends["zhangsan"])
    monkeypatch.setattr(WeComClient, "add_msg_template", original)
    monkeypatch.setattr(bjobs, "SETTLE", dt.timedelta(0))  # (a real worker waits for the call to land)
    assert bjobs.send_one(sends["zhangsan"]) == "waiting", "reconciled with WeCom's list, not sent again"
    assert bjobs.send_one(sends["lisi"]) == "waiting"
    assert bjobs.send_one(sends["lisi"]) == "waiting", "a redelivered job changes nothing"
    made = _messages(emulator, corp.wecom_id)
    by_sender = {m["sender"]: m for m in made}
    assert len(made) == 2, "one mass message per advisor, whatever crashed"
    assert sorted(r["external_userid"] for r in by_sender["zhangsan"]["results"]) == sorted(exts["zhangsan"])
    assert sorted(r["external_userid"] for r in by_sender["lisi"]["results"]) == sorted(exts["lisi"][1:]), \
        "the opted-out customer is not in the advisor's task"
    assert "投资" in by_sender["zhangsan"]["text"] or by_sender["zhangsan"]["text"]

    assert bjobs.check_one(sends["zhangsan"]) == "waiting", "strict WeCom: nothing is sent until confirmed"
    emulator.post(f"/corps/{corp.wecom_id}/mass_messages/{by_sender['zhangsan']['msgid']}/confirm",
                  {"userid": "zhangsan"})
    assert bjobs.check_one(sends["zhangsan"]) == "done"
    with session_scope() as s:
        prog = service.progress(s, row=s.get(Broadcast, bid))
        zs = next(x for x in prog["sends"] if x["advisor"] == "张三")
        assert (zs["sent"], zs["state"]) == (6, "done")
        assert prog["ledger"]["sent"] == 6 and prog["ledger"]["aborted:opted_out"] == 1
        assert prog["ledger"]["planned"] == 3, "lisi has not confirmed yet"


def test_an_unapproved_broadcast_never_goes_out(emulator, wired):  # noqa: F811
    corp, principal, _exts, _ids = wired
    bid = _make(principal, name="待审群发")
    _schedule(principal, bid)
    from siyu.jobs.registry import RetryLater

    with pytest.raises(RetryLater):
        bjobs.start_one(bid, now=DAYTIME)
    with session_scope() as s:
        assert s.get(Broadcast, bid).status == "scheduled"
        assert not s.scalar(select(DeliveryLedger.id).where(DeliveryLedger.source == service.source(bid)))
    assert _messages(emulator, corp.wecom_id) == [], "nothing unapproved reached WeCom"


def test_the_control_groups_receive_nothing_and_a_capped_customer_is_counted(emulator, wired):  # noqa: F811
    corp, principal, exts, ids = wired
    with session_scope() as s:
        delivery.policy_for(s, corp_id=corp.corp_id).holdout_basis_points = 2000
    bid = _make(principal, holdout_basis_points=3000)
    first = _make(principal, name="上周群发")
    with session_scope() as s:
        approve_all(s, principal.corp_id)
        policy = delivery.policy_for(s, corp_id=corp.corp_id)
        held_out = {c for c in ids.values() if delivery.in_global_holdout(policy, c)}
        row = s.get(Broadcast, bid)
        mult, add, bp = service.holdout_of(row)
        own = {c for c in ids.values() if c not in held_out and delivery.bucket(c, mult, add) < bp}
        # a customer who already got a marketing message today is capped (1 a day by default)
        capped = next(c for c in ids.values() if c not in held_out and c not in own)
        s.add(DeliveryLedger(corp_id=corp.corp_id, customer_id=capped, kind="sop_step", source="sop_step_send:1",
                             state="sent", at=DAYTIME - dt.timedelta(hours=1)))
    _schedule(principal, bid)
    assert bjobs.start_one(bid, now=DAYTIME) == "sending"
    with session_scope() as s:
        plan = s.get(Broadcast, bid).plan
        got = dict(s.execute(select(DeliveryLedger.customer_id, DeliveryLedger.reason)
                             .where(DeliveryLedger.source == service.source(bid))).all())
    assert plan["audience"] == 10 == plan["recipients"] + sum(plan["excluded"].values()), "the reasons add up"
    assert {c for c, r in got.items() if r == "holdout_global"} == held_out
    assert {c for c, r in got.items() if r == "holdout_broadcast"} == own
    assert got[capped] == "capped_day"
    sent_to = set()
    with session_scope() as s:
        sends = list(s.scalars(select(BroadcastSend.id).where(BroadcastSend.broadcast_id == bid)))
    for send_id in sends:
        bjobs.send_one(send_id)
    for m in _messages(emulator, corp.wecom_id):
        sent_to |= {r["external_userid"] for r in m["results"]}
    by_ext = {ext: cid for ext, cid in ids.items()}
    assert not {by_ext[e] for e in sent_to} & (held_out | own | {capped}), "no control-group or capped customer"
    del first


def worker_process(database_url: str, log_path) -> subprocess.Popen:
    env = dict(os.environ, SIYU_DATABASE_URL=database_url, SIYU_JOB_POLL_SECONDS="0.02", SIYU_LOG_LEVEL="INFO")
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "siyu.cli", "worker", "--queues", "wecom", "--concurrency", "1"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def test_a_broadcast_whose_worker_is_sigkilled_mid_send_resumes_without_a_second_message(
        emulator, wired, database_url, tmp_path):  # noqa: F811
    """Real worker processes: WeCom takes 6 s to answer add_msg_template; the worker holding an
    advisor's send is SIGKILLed while the call is in flight. Another worker resumes the broadcast:
    every advisor's task is made exactly once, and nobody gets the message twice."""
    from siyu.jobs.models import Job
    from waiting import wait_for

    corp, principal, exts, _ids = wired
    with session_scope() as s:
        policy = delivery.policy_for(s, corp_id=corp.corp_id)
        policy.quiet_start_minute = policy.quiet_end_minute = 0  # sent at the current minute
    bid = _make(principal, name="断电续发")
    with session_scope() as s:
        approve_all(s, principal.corp_id)
    emulator.post(f"/corps/{corp.wecom_id}/faults", {"latency_ms": 6000,
                                                    "endpoints": ["externalcontact/add_msg_template"]})
    log = tmp_path / "workers.log"
    procs = [worker_process(database_url, log), worker_process(database_url, log)]

    def calling():
        with session_scope() as s:
            return s.scalars(select(BroadcastSend).where(BroadcastSend.broadcast_id == bid,
                                                         BroadcastSend.state == "calling")).first()

    try:
        _schedule(principal, bid)
        send = wait_for(calling, 60, "an advisor's send to be calling WeCom")
        with session_scope() as s:
            job = s.scalar(select(Job).where(Job.name == bjobs.SEND, Job.state == "running")
                           .where(Job.payload["send_id"].as_integer() == send.id))
            holder_pid = job.locked_by.split(":")[1]
        holder = next(p for p in procs if str(p.pid) == holder_pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        procs.append(worker_process(database_url, log))

        def all_waiting():
            with session_scope() as s:
                states = list(s.scalars(select(BroadcastSend.state).where(BroadcastSend.broadcast_id == bid)))
                return states if states and all(x == "waiting" for x in states) else None

        wait_for(all_waiting, 90, "every advisor's send to be made")

        def rerun_done():
            with session_scope() as s:
                job = s.scalar(select(Job).where(Job.name == bjobs.SEND)
                               .where(Job.payload["send_id"].as_integer() == send.id))
                return job if job.state == "done" else None

        rerun = wait_for(rerun_done, 30, "the killed send's job to finish in another worker")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        emulator.post(f"/corps/{corp.wecom_id}/faults", {"latency_ms": 0, "endpoints": []})
    assert rerun.attempt >= 2, "the killed send was taken over by another worker"
    time.sleep(1)
    made = _messages(emulator, corp.wecom_id)
    assert sorted(m["sender"] for m in made) == ["lisi", "zhangsan"], "one task per advisor, none repeated"
    received = [r["external_userid"] for m in made for r in m["results"]]
    assert sorted(received) == sorted(exts["zhangsan"] + exts["lisi"]), "each customer in exactly one task"


def test_a_broadcast_in_quiet_hours_is_held_and_released_at_the_next_allowed_minute(emulator, wired):  # noqa: F811
    from siyu.jobs.models import Job

    corp, principal, _exts, _ids = wired
    with session_scope() as s:
        policy = delivery.policy_for(s, corp_id=corp.corp_id)
        policy.quiet_start_minute, policy.quiet_end_minute = 21 * 60, 8 * 60
    bid = _make(principal, name="夜间群发")
    with session_scope() as s:
        approve_all(s, principal.corp_id)
    _schedule(principal, bid)
    night = dt.datetime(2026, 12, 8, 14, 30, tzinfo=dt.UTC)  # 22:30 in Shanghai
    release = dt.datetime(2026, 12, 9, 0, 0, tzinfo=dt.UTC)  # 08:00 the next morning
    assert bjobs.start_one(bid, now=night) == "held"
    with session_scope() as s:
        assert s.get(Broadcast, bid).status == "scheduled", "held, not dropped"
        again = s.scalar(select(Job).where(Job.name == bjobs.START, Job.run_at == release))
        assert again is not None and again.payload == {"broadcast_id": bid}, "a job releases it at 08:00"
        assert not s.scalar(select(DeliveryLedger.id).where(DeliveryLedger.source == service.source(bid)))
    assert _messages(emulator, corp.wecom_id) == []
    assert bjobs.start_one(bid, now=release) == "sending"
    with session_scope() as s:
        plan = s.get(Broadcast, bid).plan
    assert plan["recipients"] == 10
