"""Keyword replies at the service layer and in the console: matching (exact / contains after
normalisation, priority, advisor scope), the per-customer cooldown, compliance review on save and
before each send, the advisor's one-click task, and the chat event the archive publishes."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from siyu.acquisition import keywords
from siyu.acquisition.models import KeywordHit, KeywordTask
from siyu.compliance import archive
from siyu.compliance import dictionary as wording
from siyu.db import utcnow
from siyu.errors import InvalidInput, NotFound
from siyu.jobs.models import Job
from siyu.tenancy.models import Role
from siyu.wecom.models import WecomOutbound
from tenancy.factories import console_user, fast_argon2, make_corp, make_staff  # noqa: F401

EVENT_JOB = "event:chat.customer_message:acquisition.keyword_reply"


@pytest.fixture
def corp(session):
    corp = make_corp(session, name="关键词测试银行")
    for userid in ("zhangsan", "lisi"):
        make_staff(session, corp, roles=(Role.ADVISOR,), name=userid, wecom_userid=userid)
    return corp


def rule(session, corp, **kw):
    data = {"name": "加群" + uuid.uuid4().hex[:4], "keyword": "加群", "reply_text": "欢迎加入理财学习群",
            "enabled": True, **kw}
    return keywords.save_rule(session, corp_id=corp.id, actor="test", data=keywords.RuleInput(**data))


def say(session, corp, text, *, customer="wmCustomer0001", advisor="zhangsan", roomid="", sender=None,
        at=None, source="feed"):
    """A message in the archive (as the feed poll stores it); returns its msgid."""
    msgid = "m" + uuid.uuid4().hex
    record = archive.ArchiveRecord(
        msgid=msgid, sender=sender or customer, tolist=(advisor if (sender or customer) == customer else customer,),
        roomid=roomid, msgtype="text", sent_at=at or utcnow(), text=text)
    archive.ingest_records(session, corp_id=corp.id, records=[record], source=source)
    return msgid


def decide(session, corp, msgid, *, customer="wmCustomer0001", advisor="zhangsan", now=None):
    return keywords.decide(session, corp_id=corp.id, msgid=msgid, advisor_userid=advisor, customer_userid=customer,
                           sent_at=utcnow(), now=now)


# --- matching -----------------------------------------------------------------------------------------

def test_exact_and_contains_after_normalisation(session, corp):
    exact = rule(session, corp, keyword="ＶＩＰ", match_mode="exact", reply_text="贵宾服务请回复姓名")
    contains = rule(session, corp, keyword="開戶", match_mode="contains", reply_text="开户指南见链接")
    rules = [exact, contains]
    assert keywords.match_rule(rules, text="vip", advisor_userid="zhangsan") == exact
    assert keywords.match_rule(rules, text=" V I P！", advisor_userid="zhangsan") == exact
    assert keywords.match_rule(rules, text="我想了解vip", advisor_userid="zhangsan") is None  # exact: the whole text
    assert keywords.match_rule(rules, text="请问怎么开户呢", advisor_userid="zhangsan") == contains  # 開戶 → 开户
    assert keywords.match_rule(rules, text="开 户", advisor_userid="zhangsan") == contains
    assert keywords.match_rule(rules, text="账户", advisor_userid="zhangsan") is None


def test_priority_then_exact_then_longer_keyword(session, corp):
    low = rule(session, corp, keyword="理财", priority=0, reply_text="理财产品清单")
    longer = rule(session, corp, keyword="理财课", priority=0, reply_text="理财课报名")
    assert keywords.match_rule([low, longer], text="我想上理财课", advisor_userid="zhangsan") == longer
    high = rule(session, corp, keyword="理财", priority=5, reply_text="新客理财礼包")
    assert keywords.match_rule([low, longer, high], text="我想上理财课", advisor_userid="zhangsan") == high
    exact = rule(session, corp, keyword="理财课", match_mode="exact", priority=5, reply_text="课程表")
    assert keywords.match_rule([low, longer, high, exact], text="理财课", advisor_userid="zhangsan") == exact


def test_advisor_scope_and_disabled_rules(session, corp):
    only_lisi = rule(session, corp, advisors=("lisi",))
    off = rule(session, corp, keyword="加群", enabled=False)
    assert keywords.match_rule([only_lisi, off], text="加群", advisor_userid="zhangsan") is None
    assert keywords.match_rule([only_lisi, off], text="加群", advisor_userid="lisi") == only_lisi
    with pytest.raises(InvalidInput) as exc:
        rule(session, corp, advisors=("nobody",))
    assert exc.value.field == "advisors"


@pytest.mark.parametrize(("field", "kw"), [
    ("keyword", {"keyword": "！！😊"}), ("keyword", {"keyword": ""}), ("match_mode", {"match_mode": "regex"}),
    ("action", {"action": "call"}), ("reply_text", {"reply_text": ""}), ("cooldown_hours", {"cooldown_hours": "-1"}),
    ("priority", {"priority": "high"}), ("link_url", {"link_url": "ftp://x"}), ("name", {"name": "x" * 61}),
    ("reply_text", {"reply_text": "a\x00b"}),
])
def test_bad_fields_are_refused_naming_the_field(session, corp, field, kw):
    with pytest.raises(InvalidInput) as exc:
        rule(session, corp, **kw)
    assert exc.value.field == field
    assert keywords.list_rules(session, corp_id=corp.id) == []


# --- review -----------------------------------------------------------------------------------------------

def test_review_blocks_a_rule_on_save_with_its_findings(session, corp):
    with pytest.raises(InvalidInput) as exc:
        rule(session, corp, reply_text="这款产品保本保息，稳赚不赔")
    assert exc.value.field == "reply_text" and "保本" in exc.value.message % exc.value.params
    assert keywords.list_rules(session, corp_id=corp.id) == []


def test_review_before_each_send_holds_a_reply_the_dictionary_now_blocks(session, corp):
    rule(session, corp, reply_text="新客专享加群福利")
    wording.add_entry(session, corp_id=corp.id, actor="test", category="promise", phrase="专享加群",
                      severity="block", rule="test")
    msgid = say(session, corp, "怎么加群")
    assert decide(session, corp, msgid).outcome == "blocked"
    out = session.scalar(select(WecomOutbound).where(WecomOutbound.effect_key == keywords.effect_key(corp.id, msgid)))
    assert out.state == "blocked"


# --- cooldown, redelivery, tasks ----------------------------------------------------------------------------

def test_cooldown_per_customer_and_rule(session, corp):
    r = rule(session, corp, cooldown_hours=24)
    first = decide(session, corp, say(session, corp, "加群"))
    assert first.outcome == "sending" and first.claim.outbound_id is not None
    assert first.text == "欢迎加入理财学习群"
    assert decide(session, corp, say(session, corp, "加群!")).outcome == "cooldown"
    other = decide(session, corp, say(session, corp, "加群", customer="wmCustomer0002"), customer="wmCustomer0002")
    assert other.outcome == "sending"
    later = utcnow() + dt.timedelta(hours=25)
    msgid = say(session, corp, "加群")
    assert keywords.decide(session, corp_id=corp.id, msgid=msgid, advisor_userid="zhangsan",
                           customer_userid="wmCustomer0001", sent_at=later, now=later).outcome == "sending"
    counts = keywords.rule_counts(session, corp_id=corp.id)[r.id]
    assert (counts.matched, counts.cooldown) == (4, 1)


def test_a_message_is_decided_once_and_its_send_claimed_once(session, corp):
    rule(session, corp)
    msgid = say(session, corp, "加群")
    assert decide(session, corp, msgid).claim.outbound_id is not None
    again = decide(session, corp, msgid)  # the job ran again: the claim is not given twice
    assert again.outcome == "sending" and again.claim.outbound_id is None


def test_messages_that_get_no_answer(session, corp):
    rule(session, corp)
    assert decide(session, corp, say(session, corp, "你好")).outcome == "none"  # no keyword
    old = say(session, corp, "加群", at=utcnow() - dt.timedelta(hours=5))
    assert keywords.decide(session, corp_id=corp.id, msgid=old, advisor_userid="zhangsan",
                           customer_userid="wmCustomer0001", sent_at=utcnow() - dt.timedelta(hours=5)
                           ).outcome == "none"  # a backlog is not answered hours later
    assert session.scalars(select(KeywordHit).where(KeywordHit.corp_id == corp.id)).all() == []


def test_opted_out_customers_get_no_automated_reply(session, corp, monkeypatch):
    from siyu.privacy import service as privacy

    rule(session, corp)
    privacy.record_consent(session, corp_id=corp.id, actor="test", external_userid="wmCustomer0001",
                           purpose="marketing", granted=False, source="h5")
    assert decide(session, corp, say(session, corp, "加群")).outcome != "opted_out"  # a reply is service
    # Were compliance to count keyword replies as marketing, the guard would refuse this customer.
    monkeypatch.setattr(privacy, "SERVICE_KINDS", privacy.SERVICE_KINDS - {"keyword_reply"})
    assert decide(session, corp, say(session, corp, "加群吗")).outcome == "opted_out"


def test_task_rule_puts_a_one_click_reply_on_the_advisors_list(session, corp):
    rule(session, corp, action="task", reply_text="您好，学习群入口如下", image_url="https://h5.example/qr.png")
    msgid = say(session, corp, "加群")
    assert decide(session, corp, msgid).outcome == "task"
    (task,) = keywords.list_tasks(session, corp_id=corp.id, advisor_userid="zhangsan")
    assert (task.external_userid, task.state, task.attachments) == (
        "wmCustomer0001", "open", [{"msgtype": "image", "image": {"pic_url": "https://h5.example/qr.png"}}])
    assert keywords.list_tasks(session, corp_id=corp.id, advisor_userid="lisi") == []
    with pytest.raises(NotFound):  # another advisor's task
        keywords.request_task_send(session, corp_id=corp.id, actor="lisi", task_id=task.id, advisor_userid="lisi")


# --- the chat event ----------------------------------------------------------------------------------------

def test_archive_publishes_one_event_per_new_one_to_one_customer_message(session, corp):
    def jobs():
        return session.scalars(select(Job).where(Job.corp_id == corp.id, Job.name == EVENT_JOB)).all()

    msgid = say(session, corp, "加群")
    say(session, corp, "我是顾问", sender="zhangsan")  # staff's own message
    say(session, corp, "群里问一下", roomid="wrRoom1")  # a group chat
    say(session, corp, "导入的历史消息", source="file")  # an import is history
    (job,) = jobs()
    assert job.payload["msgid"] == msgid and job.payload["customer_userid"] == "wmCustomer0001"
    assert "加群" not in str(job.payload), "the text stays in the archive, encrypted"
    record = archive.ArchiveRecord(msgid=msgid, sender="wmCustomer0001", tolist=("zhangsan",), roomid="",
                                   msgtype="text", sent_at=utcnow(), text="加群")
    archive.ingest_records(session, corp_id=corp.id, records=[record], source="feed")  # read again
    assert len(jobs()) == 1


# --- console ----------------------------------------------------------------------------------------------

def test_console_rule_form_and_task_one_click(session, corp):
    ops = console_user(session, corp, roles=(Role.OPERATIONS,))
    refused = ops.post("/acquisition/keywords", {"name": "保本", "keyword": "收益", "reply_text": "保本保息"})
    assert refused.status_code == 422 and 'data-field="reply_text"' in refused.text
    assert keywords.list_rules(session, corp_id=corp.id) == []
    made = ops.post("/acquisition/keywords", {"name": "加群", "keyword": "加群", "match_mode": "contains",
                                              "action": "task", "reply_text": "学习群入口如下", "cooldown_hours": "12",
                                              "priority": "3", "enabled": "on"}, follow_redirects=False)
    assert made.status_code == 303
    (r,) = keywords.list_rules(session, corp_id=corp.id)
    assert (r.cooldown_minutes, r.priority, r.action, r.enabled) == (720, 3, "task", True)
    page = ops.get("/acquisition/keywords")
    assert "加群" in page.text and 'data-testid="keyword-rule-row"' in page.text
    edited = ops.post(f"/acquisition/keywords/{r.id}", {**keywords.rule_form(r), "advisors": ["lisi"],
                                                        "enabled": "on", "priority": "4"}, follow_redirects=False)
    assert edited.status_code == 303
    session.refresh(r)
    assert (r.advisors, r.priority) == (["lisi"], 4)

    msgid = say(session, corp, "加群", advisor="lisi")
    assert decide(session, corp, msgid, advisor="lisi").outcome == "task"
    advisor = console_user(session, corp, roles=(Role.ADVISOR,), wecom_userid="lisi2")
    assert 'data-testid="keyword-task-row"' not in advisor.get("/acquisition/keywords").text  # not theirs
    (task,) = session.scalars(select(KeywordTask).where(KeywordTask.corp_id == corp.id)).all()
    assert advisor.post(f"/acquisition/keyword-tasks/{task.id}/send").status_code == 404
    sent = ops.post(f"/acquisition/keyword-tasks/{task.id}/send", follow_redirects=False)
    assert sent.status_code == 303
    session.refresh(task)
    assert task.state == "sending"
    (job,) = session.scalars(select(Job).where(Job.corp_id == corp.id, Job.name == "acquisition.keyword_task_send"))
    assert job.payload == {"task_id": task.id}
