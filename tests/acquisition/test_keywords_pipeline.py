"""Keyword replies end to end over the emulated WeCom: a customer writes to their advisor, the
message reaches Siyu through the chat-archive feed (the poll job, run by a real worker), the rule's
reply goes to that one customer through add_msg_template from that advisor — once, however often
the feed delivers the message again; a second ask within the cooldown gets nothing; a task rule's
reply is sent when the advisor clicks."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from compliance.gate import approve_all
from siyu.acquisition import keyword_jobs, keywords
from siyu.acquisition.models import KeywordHit, KeywordTask
from siyu.compliance import archive
from siyu.db import session_scope, utcnow
from siyu.jobs.models import Job
from siyu.jobs.registry import JobContext
from siyu.jobs.service import enqueue
from siyu.tenancy import service as tenancy
from siyu.wecom import service as wecom
from siyu.wecom.crypto import generate_aes_key
from siyu.wecom.models import WecomOutbound
from wecom.conftest import emulator  # noqa: F401  (the emulator server fixture)
from wecom.test_pipeline import wait_for, worker  # noqa: F401  (the worker fixture)

pytestmark = pytest.mark.slow

REPLY = "欢迎加入理财学习群，每天分享理财小知识。"
TASK_REPLY = "您好，开户流程请看这份指南。"


@pytest.fixture
def wired(emulator, worker):  # noqa: F811
    wecom_id = "ww" + uuid.uuid4().hex[:16]
    secret = "secret-" + uuid.uuid4().hex
    emulator.post("/corps", {"corp_id": wecom_id, "name": "关键词管道银行", "secret": secret,
                             "staff": [{"userid": "zhangsan", "name": "张三"}]}, expect=201)
    customer = emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": "zhangsan", "name": "陈女士"})
    # Keyword replies read the chat archive, which holds only customers who agreed to archiving.
    emulator.post(f"/corps/{wecom_id}/archive/consent", {"external_userid": customer["external_userid"],
                                                         "agree": True})
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="kw-" + uuid.uuid4().hex[:8], name="关键词管道银行")
        tenancy.create_staff(s, corp_id=corp.id, login=f"zhangsan.{corp.slug}", name="张三", roles=["advisor"],
                             password=None, wecom_userid="zhangsan")
        wecom.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id=wecom_id, secret=secret,
                                   token="tok" + uuid.uuid4().hex[:8], aes_key=generate_aes_key(),
                                   base_url=emulator.api_url)
        keywords.save_rule(s, corp_id=corp.id, actor="test", data=keywords.RuleInput(
            name="加群", keyword="加群", reply_text=REPLY, link_url="https://h5.example/group",
            link_title="理财学习群", enabled=True))
        keywords.save_rule(s, corp_id=corp.id, actor="test", data=keywords.RuleInput(
            name="开户", keyword="开户", action="task", reply_text=TASK_REPLY, enabled=True))
        approve_all(s, corp.id)  # compliance approves both replies
        corp_id = corp.id
    return corp_id, wecom_id, customer["external_userid"]


def _say(emulator, wecom_id, customer, text):  # noqa: F811
    emulator.post(f"/corps/{wecom_id}/messages", {"from": customer, "to": ["zhangsan"], "text": text}, expect=201)


def _poll(corp_id):
    with session_scope() as s:
        enqueue(s, name="compliance.archive_poll", payload={}, corp_id=corp_id,
                idempotency_key=f"test-poll:{corp_id}:{uuid.uuid4().hex}")


def _hits(corp_id):
    with session_scope() as s:
        return [(h.msgid, h.outcome) for h in s.scalars(select(KeywordHit).where(KeywordHit.corp_id == corp_id)
                                                         .order_by(KeywordHit.id))]


def test_a_customers_keyword_gets_one_reply_through_the_archive_feed(emulator, wired):  # noqa: F811
    corp_id, wecom_id, customer = wired

    # 1. The customer asks; the feed poll job brings the message in and the reply goes out once.
    _say(emulator, wecom_id, customer, "请问怎么 加群？")
    _poll(corp_id)
    (sent,) = wait_for(lambda: emulator.get(f"/corps/{wecom_id}/mass_messages"), timeout=30)
    assert (sent["chat_type"], sent["sender"], sent["text"]) == ("single", "zhangsan", REPLY)
    assert [r["external_userid"] for r in sent["results"]] == [customer]
    assert sent["attachments"] == [{"msgtype": "link", "link": {"title": "理财学习群",
                                                                "url": "https://h5.example/group"}}]
    ((msgid, outcome),) = wait_for(lambda: (h := _hits(corp_id)) and h[0][1] == "sent" and h, timeout=10)

    # 2. The feed delivers the same message again (cursor rewound), and the event's job runs again:
    #    nothing more is sent.
    with session_scope() as s:
        archive.get_cursor(s, corp_id=corp_id).seq = 0
    _poll(corp_id)
    wait_for(lambda: _cursor(corp_id) >= 1, timeout=20)
    with session_scope() as s:
        (job,) = s.scalars(select(Job).where(Job.corp_id == corp_id,
                                             Job.name == "event:chat.customer_message:acquisition.keyword_reply"))
        payload = dict(job.payload)
    ctx = JobContext(id=0, name="rerun", attempt=2, max_attempts=20, queue="wecom", corp_id=corp_id, run_at=utcnow(),
                     enqueued_at=utcnow(), worker_id="test")
    with session_scope() as s:
        keyword_jobs.keyword_reply(s, payload, ctx)
    assert len(emulator.get(f"/corps/{wecom_id}/mass_messages")) == 1

    # 3. Asking again within the cooldown gets no second reply.
    _say(emulator, wecom_id, customer, "加群")
    _poll(corp_id)
    wait_for(lambda: len(_hits(corp_id)) == 2, timeout=20)
    assert _hits(corp_id)[1][1] == "cooldown"

    # 4. A task rule: the advisor's one click sends the prepared reply.
    _say(emulator, wecom_id, customer, "想开户")
    _poll(corp_id)

    def task():
        with session_scope() as s:
            row = s.scalar(select(KeywordTask).where(KeywordTask.corp_id == corp_id))
            if row is not None:
                s.expunge(row)
            return row
    opened = wait_for(task, timeout=20)
    assert (opened.state, opened.external_userid) == ("open", customer)
    assert len(emulator.get(f"/corps/{wecom_id}/mass_messages")) == 1  # nothing sent before the click
    with session_scope() as s:
        keywords.request_task_send(s, corp_id=corp_id, actor="zhangsan", task_id=opened.id,
                                   advisor_userid="zhangsan")
    wait_for(lambda: task().state == "sent", timeout=20)
    messages = emulator.get(f"/corps/{wecom_id}/mass_messages")
    assert [m["text"] for m in messages] == [REPLY, TASK_REPLY]
    with session_scope() as s:
        outs = sorted(o.effect_key for o in s.scalars(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id)))
    assert outs == sorted([keywords.effect_key(corp_id, msgid), keywords.task_effect_key(corp_id, opened.id)])


def _cursor(corp_id):
    with session_scope() as s:
        return archive.get_cursor(s, corp_id=corp_id).seq


def test_a_reply_wecom_names_in_fail_list_is_recorded_as_failed(emulator, wired):  # noqa: F811
    corp_id, wecom_id, customer = wired
    _say(emulator, wecom_id, customer, "加群")
    # The customer deletes the advisor before the reply goes out: add_msg_template answers errcode 0
    # with the customer in fail_list, and no task is made.
    emulator.post(f"/corps/{wecom_id}/delete_follow", {"userid": "zhangsan", "external_userid": customer,
                                                       "by": "customer"})
    _poll(corp_id)
    ((_msgid, outcome),) = wait_for(lambda: (h := _hits(corp_id)) and h[0][1] != "sending" and h, timeout=30)
    assert outcome == "failed"
    with session_scope() as s:
        (out,) = s.scalars(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id))
        assert out.state == "failed" and "fail_list" in out.detail
        assert sum(c.failed for c in keywords.rule_counts(s, corp_id=corp_id).values()) == 1  # shown per rule
