"""Group SOP over the emulator (strict: every mass message waits for its owner to confirm): a slot
time is planned into one send per owner, each handed to WeCom once — even when the send is killed
mid-call and run again — confirmed by the simulated owner, and read back from get_groupmsg_task and
get_groupmsg_send_result. Unapproved or edited-but-unapproved text never goes out."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from compliance.gate import approve_all
from siyu.communities.jobs import refresh_group
from siyu.communities.models import GroupChat
from siyu.communities.service import assign_groups, create_set
from siyu.db import session_scope, utcnow
from siyu.delivery import service as delivery
from siyu.sop import jobs as sop_jobs
from siyu.sop import service
from siyu.sop.models import SopRun, SopSend
from siyu.tenancy import service as tenancy
from siyu.tenancy.principal import Principal
from siyu.wecom.client import WeComClient
from wecom.conftest import emulator, wire_siyu_corp  # noqa: F401 - the emulator fixture

pytestmark = pytest.mark.slow


class Killed(BaseException):  # noqa: N818 - stands in for the process being killed
    pass


@pytest.fixture
def wired(emulator, database_url):  # noqa: F811
    corp = wire_siyu_corp(emulator, callback_base_url="http://127.0.0.1:9", name="SOP管道银行", slug_prefix="sop",
                          siyu_staff=("zhangsan", "lisi"))
    chats = {}
    for name, owner in (("稳健理财1群", "zhangsan"), ("稳健理财2群", "zhangsan"), ("稳健理财3群", "lisi")):
        chats[name] = emulator.post(f"/corps/{corp.wecom_id}/group_chats", {"owner": owner, "name": name},
                                    expect=201)["chat_id"]
    with session_scope() as s:
        admin = tenancy.create_staff(s, corp_id=corp.corp_id, login=f"ops.{corp.slug}", name="运营",
                                     roles=["operations"], password=None)
        principal = Principal(corp_id=corp.corp_id, kind="staff", label=admin.login, staff_id=admin.id,
                              roles=frozenset({"operations"}))
        set_id = create_set(s, principal=principal, name="稳健理财群组", positioning="product").id
        # These tests send at the current minute: no quiet hours, no control group (tests/delivery has them).
        policy = delivery.policy_for(s, corp_id=corp.corp_id)
        policy.quiet_start_minute = policy.quiet_end_minute = 0
        policy.holdout_basis_points = 0
    for chat_id in chats.values():  # the sync reads each group from WeCom
        with session_scope() as s:
            refresh_group(s, corp_id=corp.corp_id, chat_id=chat_id)
    with session_scope() as s:
        ids = list(s.scalars(select(GroupChat.id).where(GroupChat.corp_id == corp.corp_id)))
        assign_groups(s, principal=principal, set_id=set_id, group_ids=ids)
    yield corp, principal, set_id, chats


def _slot_now(principal, set_id, *, text, title="午间产品解读", approve=True):
    """A dated slot at the current minute (Asia/Shanghai), planned; returns the sends by owner."""
    now = utcnow()
    local = now.astimezone(service.CALENDAR_ZONE)
    with session_scope() as s:
        slots = service.add_slots(s, principal=principal, set_id=set_id, on_date=local.date().isoformat(),
                                  time=f"{local.hour:02d}:{local.minute:02d}", content_type="product", title=title,
                                  text=text)
        if approve:
            approve_all(s, principal.corp_id)
        service.plan(s, corp_id=principal.corp_id, start=now - dt.timedelta(minutes=2),
                     end=now + dt.timedelta(minutes=2), set_ids=[set_id], enqueue_jobs=False)
        runs = list(s.scalars(select(SopRun).where(SopRun.slot_id == slots[0].id)))
        assert len(runs) == 1
        return slots[0].id, runs[0].id, {x.owner_userid: x.id for x in s.scalars(
            select(SopSend).where(SopSend.run_id == runs[0].id))}


def _send(send_id):
    with session_scope() as s:
        row = s.get(SopSend, send_id)
        s.expunge(row)
        return row


def _messages(emulator, wecom_id, sender):  # noqa: F811
    return [m for m in emulator.get(f"/corps/{wecom_id}/mass_messages") if m["sender"] == sender]


def test_a_slot_killed_mid_send_goes_out_once_and_is_confirmed_by_its_owner(emulator, wired, monkeypatch):  # noqa: F811
    corp, principal, set_id, chats = wired
    _slot, run_id, sends = _slot_now(principal, set_id, text="本周稳健理财产品解读：风险等级R2，投资需谨慎。")
    assert set(sends) == {"zhangsan", "lisi"}, "one send per owner of the set's groups"

    original = WeComClient.add_msg_template

    def answered_then_killed(self, **kw):
        original(self, **kw)  # WeCom made the task ...
        raise Killed()  # ... and the process died before the answer was recorded

    monkeypatch.setattr(WeComClient, "add_msg_template", answered_then_killed)
    with pytest.raises(Killed):
        sop_jobs.send_one(sends["zhangsan"])
    assert _send(sends["zhangsan"]).state == "calling", "the intent was recorded before the call"

    def killed_before_call(self, **kw):
        raise Killed()

    monkeypatch.setattr(WeComClient, "add_msg_template", killed_before_call)
    with pytest.raises(Killed):
        sop_jobs.send_one(sends["lisi"])
    monkeypatch.setattr(WeComClient, "add_msg_template", original)

    # The jobs run again (the worker's lease expired): reconciled, not sent again.
    assert sop_jobs.send_one(sends["zhangsan"]) == "waiting"
    assert sop_jobs.send_one(sends["lisi"]) == "waiting"
    assert sop_jobs.send_one(sends["zhangsan"]) == "waiting", "a redelivered job changes nothing"
    made = _messages(emulator, corp.wecom_id, "zhangsan")
    assert len(made) == 1, "WeCom got exactly one mass message for zhangsan's groups"
    assert sorted(r["chat_id"] for r in made[0]["results"]) == sorted([chats["稳健理财1群"], chats["稳健理财2群"]])
    assert _send(sends["zhangsan"]).msgid == made[0]["msgid"], "the lost answer was found in get_groupmsg_list_v2"
    assert len(_messages(emulator, corp.wecom_id, "lisi")) == 1, "a call that never happened is made once"

    # Strict WeCom: nothing is sent until the owner confirms.
    assert sop_jobs.check_one(sends["zhangsan"])[0] == "waiting"
    pending = emulator.get(f"/corps/{corp.wecom_id}/mass_messages/pending?userid=zhangsan")
    assert [p["msgid"] for p in pending] == [made[0]["msgid"]]
    emulator.post(f"/corps/{corp.wecom_id}/mass_messages/{made[0]['msgid']}/confirm", {"userid": "zhangsan"})
    state, again = sop_jobs.check_one(sends["zhangsan"])
    assert (state, again) == ("sent", None)
    assert (_send(sends["zhangsan"]).sent_chats, _send(sends["zhangsan"]).total_chats) == (2, 2)

    # lisi never confirms: after the confirmation window the send is missed, the slot partly sent.
    later = utcnow() + dt.timedelta(hours=3)
    assert sop_jobs.check_one(sends["lisi"], now=later)[0] == "missed"
    with session_scope() as s:
        run = s.get(SopRun, run_id)
        assert service.refresh_run(s, run=run, now=later) == "partly"


def test_unapproved_and_edited_but_unapproved_text_never_goes_out(emulator, wired):  # noqa: F811
    corp, principal, set_id, _chats = wired
    _slot, run_id, sends = _slot_now(principal, set_id, text="周三互动：猜猜本周金价走势，答对有小礼品。",
                                     title="周三互动", approve=False)
    assert sop_jobs.send_one(sends["zhangsan"]) == "held"
    assert _messages(emulator, corp.wecom_id, "zhangsan") == [], "nothing unapproved reached WeCom"
    with session_scope() as s:
        assert s.get(SopRun, run_id).held_reason == "awaiting approval"

    slot_id, _run, sends = _slot_now(principal, set_id, text="周五活动：理财知识直播，晚8点不见不散。",
                                     title="周五活动")
    with session_scope() as s:
        service.edit_slot_text(s, principal=principal, slot_id=slot_id, text="周五活动：改为晚9点直播，名额有限。")
    assert sop_jobs.send_one(sends["zhangsan"]) == "waiting"
    made = _messages(emulator, corp.wecom_id, "zhangsan")
    assert [m["text"] for m in made] == ["周五活动：理财知识直播，晚8点不见不散。"], "the approved version in force"


def test_the_owner_is_reminded_by_an_application_message(emulator, wired):  # noqa: F811
    corp, principal, set_id, _chats = wired
    with session_scope() as s:
        service.update_settings(s, principal=principal, app_agent_id=1000002)
    _slot, _run, sends = _slot_now(principal, set_id, text="售后提醒：赎回到账时间为T+1个工作日。", title="售后提醒")
    from siyu.jobs.registry import JobContext

    job = JobContext(id=1, name=sop_jobs.NOTIFY, attempt=1, max_attempts=5, queue="sop", corp_id=corp.corp_id,
                     run_at=utcnow(), enqueued_at=utcnow(), worker_id="test")
    sop_jobs.notify_owner(None, {"send_id": sends["lisi"]}, job)
    got = [m for m in emulator.get(f"/corps/{corp.wecom_id}/app_messages") if m["touser"] == ["lisi"]]
    assert len(got) == 1 and "售后提醒" in got[0]["content"] and "1 个群" in got[0]["content"]
    assert _send(sends["lisi"]).notified_at is not None


def _job(corp_id, name):
    from siyu.jobs.registry import JobContext

    return JobContext(id=1, name=name, attempt=1, max_attempts=5, queue="sop", corp_id=corp_id, run_at=utcnow(),
                      enqueued_at=utcnow(), worker_id="test")


def test_a_new_customer_gets_the_day_0_step_from_their_advisor_and_day_1_is_planned(emulator, wired):  # noqa: F811
    from customers.factories import make_customer
    from siyu.sop.models import SopJourneySend

    corp, principal, _set_id, _chats = wired
    added = emulator.post(f"/corps/{corp.wecom_id}/add_contact", {"userid": "lisi", "name": "何女士"})
    ext = added["external_userid"]
    with session_scope() as s:
        journey = service.create_journey(s, principal=principal, name="新客关怀", event="added", filter_channel="ad-1")
        steps = ((0, "您好，欢迎！有问题随时问我。"), (1, "昨天的入门课听得怎么样？"),
                 (3, "理财小贴士：先做风险测评。"))
        for day, text in steps:
            service.add_step(s, principal=principal, journey_id=journey.id, day_offset=day, time="00:00",
                             title=f"第{day}天", text=text)
        approve_all(s, principal.corp_id)
        make_customer(s, principal.corp_id, userid="lisi", external_userid=ext, state="ad-1")
    with session_scope() as s:
        sop_jobs.enrol_added(s, {"external_userid": ext, "userid": "lisi", "state": "other-channel"},
                             _job(corp.corp_id, "sop.enrol_added"))
        assert s.scalar(select(SopJourneySend.id).where(SopJourneySend.corp_id == corp.corp_id)) is None, \
            "a customer from another channel does not match the filter"
        sop_jobs.enrol_added(s, {"external_userid": ext, "userid": "lisi", "state": "ad-1"},
                             _job(corp.corp_id, "sop.enrol_added"))
        # In due order (keys by UTC date would collide: day 0 is due now, day 1 at 00:00 Shanghai time).
        sends = [x.id for x in s.scalars(select(SopJourneySend).where(SopJourneySend.corp_id == corp.corp_id)
                                          .order_by(SopJourneySend.due_at, SopJourneySend.id))]
        assert len(sends) == 3
    first = sends[0]
    assert sop_jobs.step_send_one(first) == "waiting"
    assert sop_jobs.step_send_one(first) == "waiting", "run again: nothing sent twice"
    made = _messages(emulator, corp.wecom_id, "lisi")
    assert len(made) == 1 and made[0]["chat_type"] == "single"
    assert [r["external_userid"] for r in made[0]["results"]] == [ext], "one-to-one, the advisor as sender"
    emulator.post(f"/corps/{corp.wecom_id}/mass_messages/{made[0]['msgid']}/confirm", {"userid": "lisi"})
    assert sop_jobs.step_check_one(first) == "sent"


def test_a_moments_slot_posts_once_visible_by_tag(emulator, wired):  # noqa: F811
    corp, principal, set_id, _chats = wired
    now = utcnow()
    local = now.astimezone(service.CALENDAR_ZONE)
    with session_scope() as s:
        slot = service.add_slots(s, principal=principal, set_id=set_id, on_date=local.date().isoformat(),
                                 time=f"{local.hour:02d}:{local.minute:02d}", content_type="knowledge",
                                 title="朋友圈知识", text="每周知识：定投是一种纪律，不是择时。", channel="moments")[0]
        approve_all(s, principal.corp_id)
        service.plan(s, corp_id=principal.corp_id, start=now - dt.timedelta(minutes=2),
                     end=now + dt.timedelta(minutes=2), set_ids=[set_id], enqueue_jobs=False)
        sends = list(s.scalars(select(SopSend).join(SopRun, SopRun.id == SopSend.run_id)
                               .where(SopRun.slot_id == slot.id)))
        assert [(x.owner_userid, sorted(x.chat_ids)) for x in sends] == [("", ["lisi", "zhangsan"])]
        send_id = sends[0].id
    assert sop_jobs.send_one(send_id) == "waiting"
    assert sop_jobs.send_one(send_id) == "waiting"
    moments = emulator.get(f"/corps/{corp.wecom_id}/moments")
    assert len(moments) == 1 and sorted(moments[0]["senders"]) == ["lisi", "zhangsan"]
    assert sop_jobs.check_one(send_id)[0] == "sent"


def test_an_unapproved_customer_sop_step_never_goes_out(emulator, wired):  # noqa: F811
    from customers.factories import make_customer
    from siyu.sop.models import SopJourneySend

    corp, principal, _set_id, _chats = wired
    ext = emulator.post(f"/corps/{corp.wecom_id}/add_contact", {"userid": "lisi", "name": "钱先生"})["external_userid"]
    with session_scope() as s:
        journey = service.create_journey(s, principal=principal, name="新客关怀（待审）", event="added")
        service.add_step(s, principal=principal, journey_id=journey.id, day_offset=0, time="00:00", title="第0天",
                         text="您好，欢迎！本周新客专享活动请留意群公告。")  # submitted, not approved
        make_customer(s, principal.corp_id, userid="lisi", external_userid=ext)
    with session_scope() as s:
        sop_jobs.enrol_added(s, {"external_userid": ext, "userid": "lisi"}, _job(corp.corp_id, "sop.enrol_added"))
        send_id = s.scalar(select(SopJourneySend.id).where(SopJourneySend.corp_id == corp.corp_id))
    assert sop_jobs.step_send_one(send_id) == "held"
    assert _messages(emulator, corp.wecom_id, "lisi") == [], "nothing unapproved reached WeCom"


def test_an_unapproved_moments_slot_is_never_posted(emulator, wired):  # noqa: F811
    corp, principal, set_id, _chats = wired
    now = utcnow()
    local = now.astimezone(service.CALENDAR_ZONE)
    with session_scope() as s:
        slot = service.add_slots(s, principal=principal, set_id=set_id, on_date=local.date().isoformat(),
                                 time=f"{local.hour:02d}:{local.minute:02d}", content_type="knowledge",
                                 title="朋友圈待审", text="每周知识：分散投资降低单一资产波动。", channel="moments")[0]
        service.plan(s, corp_id=principal.corp_id, start=now - dt.timedelta(minutes=2),
                     end=now + dt.timedelta(minutes=2), set_ids=[set_id], enqueue_jobs=False)
        send_id = s.scalar(select(SopSend.id).join(SopRun, SopRun.id == SopSend.run_id)
                           .where(SopRun.slot_id == slot.id))
    assert sop_jobs.send_one(send_id) == "held"
    assert emulator.get(f"/corps/{corp.wecom_id}/moments") == [], "nothing unapproved was posted"


def test_a_capped_customer_is_not_sent_a_customer_sop_step(emulator, wired):  # noqa: F811
    """The delivery policy at the step's send: a customer who already had today's marketing send
    (a broadcast, say) is not sent the step; the abort is in the ledger with its cap."""
    from customers.factories import make_customer
    from siyu.delivery.models import DeliveryLedger
    from siyu.sop.models import SopJourneySend

    corp, principal, _set_id, _chats = wired
    ext = emulator.post(f"/corps/{corp.wecom_id}/add_contact", {"userid": "lisi", "name": "孙女士"})["external_userid"]
    with session_scope() as s:
        journey = service.create_journey(s, principal=principal, name="新客关怀（限频）", event="added")
        service.add_step(s, principal=principal, journey_id=journey.id, day_offset=0, time="00:00", title="第0天",
                         text="您好，欢迎！有问题随时问我。")
        approve_all(s, principal.corp_id)
        customer = make_customer(s, principal.corp_id, userid="lisi", external_userid=ext)
        s.add(DeliveryLedger(corp_id=corp.corp_id, customer_id=customer.id, kind="broadcast", source="broadcast:0",
                             state="sent", at=utcnow()))
    with session_scope() as s:
        sop_jobs.enrol_added(s, {"external_userid": ext, "userid": "lisi"}, _job(corp.corp_id, "sop.enrol_added"))
        send_id = s.scalar(select(SopJourneySend.id).where(SopJourneySend.corp_id == corp.corp_id))
    assert sop_jobs.step_send_one(send_id) == "held"
    assert _messages(emulator, corp.wecom_id, "lisi") == [], "nothing reached WeCom"
    with session_scope() as s:
        row = s.scalar(select(DeliveryLedger).where(DeliveryLedger.source == sop_jobs.delivery_source(send_id)))
        assert (row.state, row.reason) == ("aborted", "capped_day")
        assert "capped_day" in s.get(SopJourneySend, send_id).detail
