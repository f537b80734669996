"""Every outbound path to a customer sends only the approved version in force of its content
(compliance's content gate): an edit that is not approved yet never reaches the customer — the
version approved before goes out meanwhile, and with none approved nothing goes out and the send is
recorded as held —; and every path goes through compliance's guard at send time
(`siyu.compliance.service.prepare_outbound`): a principal-protection promise planted in the approved
content after it was approved (a direct database update, as if the dictionary had changed since)
never reaches the customer and the send is recorded as blocked with the findings; a product
message reaches the customer with its risk disclosure appended. One test per path, over the real
WeCom emulator where the path talks to WeCom, through the job handler or service function that
sends. And the list of paths is checked against the source: a new call of a WeCom sending method
or of the SMS provider fails `test_every_outbound_call_site_is_a_known_path` until it is listed
here, with its test."""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from compliance.gate import approve_all_committed
from siyu.acquisition import jobs as acquisition_jobs
from siyu.acquisition import keyword_jobs, keywords, welcome
from siyu.acquisition import models as acquisition_models
from siyu.acquisition import service as acquisition
from siyu.acquisition import verification as v
from siyu.acquisition.models import KeywordHit, KeywordTask, SmsOutbox, WelcomeSend
from siyu.compliance import archive
from siyu.compliance.disclosure import DEFAULT_DISCLOSURES, SEPARATOR
from siyu.compliance.models import ContentItem, ContentVersion
from siyu.customers import contacts
from siyu.db import session_scope, utcnow
from siyu.errors import Unavailable
from siyu.handover import jobs as handover_jobs
from siyu.handover import service as handovers
from siyu.jobs.models import Job
from siyu.jobs.registry import JobContext
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import AuditEntry
from siyu.wecom import service as wecom
from siyu.wecom.crypto import generate_aes_key
from siyu.wecom.models import WecomOutbound
from tenancy.factories import make_corp
from wecom.conftest import emulator  # noqa: F401  (the emulator server fixture)

pytestmark = pytest.mark.slow

PROMISE = "保本保息，稳赚不赔"
FUND = DEFAULT_DISCLOSURES["fund"]
SRC = Path(__file__).resolve().parents[2] / "src"


def with_fund_disclosure(text: str) -> str:
    return text + SEPARATOR + FUND


# --- wiring: a Siyu corp connected to an emulated WeCom corp --------------------------------------------

@dataclass
class Wired:
    corp_id: int
    wecom_id: str
    customers: list[str]  # zhangsan's customers, known to both sides


@pytest.fixture
def wired(emulator, database_url):  # noqa: F811
    wecom_id, secret = "ww" + uuid.uuid4().hex[:16], "secret-" + uuid.uuid4().hex
    exts = [f"wm{uuid.uuid4().hex[:24]}" for _ in range(3)]
    staff = (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五"))
    emulator.post("/corps", {"corp_id": wecom_id, "name": "外发测试银行", "secret": secret,
                             "staff": [{"userid": u, "name": n} for u, n in staff],
                             "customers": [{"external_userid": e, "follow": ["zhangsan"]} for e in exts]},
                  expect=201)
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="out-" + uuid.uuid4().hex[:8], name="外发测试银行")
        for userid, name in staff:
            tenancy.create_staff(s, corp_id=corp.id, login=f"{userid}.{corp.slug}", name=name, roles=["advisor"],
                                 password=None, wecom_userid=userid)
        wecom.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id=wecom_id, secret=secret,
                                   token="tok" + uuid.uuid4().hex[:8], aes_key=generate_aes_key(),
                                   base_url=emulator.api_url)
        for ext in exts:
            contacts.record_add(s, corp_id=corp.id, external_userid=ext, wecom_userid="zhangsan", at=utcnow())
        corp_id = corp.id
    yield Wired(corp_id=corp_id, wecom_id=wecom_id, customers=exts)
    with session_scope() as s:  # no other module's worker picks up what these tests queued
        s.execute(delete(Job).where(Job.corp_id == corp_id))


def _ctx(corp_id: int, name: str) -> JobContext:
    return JobContext(id=0, name=name, attempt=1, max_attempts=20, queue="wecom", corp_id=corp_id, run_at=utcnow(),
                      enqueued_at=utcnow(), worker_id="test")


def _customer_side(emulator, wecom_id: str) -> str:  # noqa: F811
    """Everything the emulated WeCom delivered to customers of the corp, as one string."""
    return json.dumps([emulator.get(f"/corps/{wecom_id}/{what}") for what in ("welcomes", "mass_messages",
                                                                                "transfers", "moments")],
                      ensure_ascii=False)


def _calls(emulator, wecom_id: str, endpoint: str) -> int:  # noqa: F811
    return sum(1 for c in emulator.get(f"/corps/{wecom_id}/calls") if c["endpoint"].endswith(endpoint))


def _outbound(corp_id: int, effect_key: str) -> WecomOutbound:
    with session_scope() as s:
        row = s.scalar(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id,
                                                   WecomOutbound.effect_key == effect_key))
        assert row is not None, f"no outbound record {effect_key}"
        s.expunge(row)
        return row


def _plant(corp_id: int, kind: str, text: str, **values) -> None:
    """Change the approved version in force of the corp's content of `kind` behind the gate's back."""
    with session_scope() as s:
        for item in s.scalars(select(ContentItem).where(ContentItem.corp_id == corp_id, ContentItem.kind == kind,
                                                        ContentItem.approved_version.is_not(None))):
            s.execute(update(ContentVersion).where(ContentVersion.item_id == item.id,
                                                   ContentVersion.number == item.approved_version)
                      .values(text=text, **values))


def _assert_held(row: WecomOutbound) -> None:
    assert row.state == "held" and row.detail.startswith("approval: ")


def _assert_blocked(row: WecomOutbound) -> None:
    assert row.state == "blocked"
    assert "block" in row.detail and "保本保息" in row.detail and "稳赚不赔" in row.detail  # the findings


# --- 1 and 2: the welcome (corp default, channel code's flow) -------------------------------------------

def _add_and_welcome(emulator, w: Wired, *, state: str | None = None) -> tuple[dict, int]:  # noqa: F811
    """A customer adds zhangsan at WeCom; the acquisition.welcome subscriber's handler runs."""
    added = emulator.post(f"/corps/{w.wecom_id}/add_contact", {"userid": "zhangsan", "name": "陈女士"})
    event_id = random.randrange(1, 2**62)
    payload = {"welcome_code": added["welcome_code"], "inbox_event_id": event_id, "userid": "zhangsan",
               "external_userid": added["external_userid"], "state": state, "received_at": utcnow().isoformat()}
    with session_scope() as s:
        acquisition_jobs.send_welcome(s, payload, _ctx(w.corp_id, "event:customer.added:acquisition.welcome"))
    return added, event_id


def _welcome_to(emulator, w: Wired, external_userid: str) -> list[str]:  # noqa: F811
    return [x["text"] for x in emulator.get(f"/corps/{w.wecom_id}/welcomes") if x["external_userid"] == external_userid]


def test_default_welcome_carries_its_disclosure_and_never_a_planted_promise(emulator, wired):  # noqa: F811
    text = "您好，欢迎关注！基金定投入门课每周开讲。"
    with session_scope() as s:
        wecom.set_default_welcome(s, corp_id=wired.corp_id, actor="test", text=text, enabled=True)
    approve_all_committed(wired.corp_id)
    added, _ = _add_and_welcome(emulator, wired)
    assert _welcome_to(emulator, wired, added["external_userid"]) == [with_fund_disclosure(text)]

    _plant(wired.corp_id, "welcome", f"您好，我们的产品{PROMISE}。")  # after the approval
    sends = _calls(emulator, wired.wecom_id, "send_welcome_msg")
    added, event_id = _add_and_welcome(emulator, wired)
    assert _welcome_to(emulator, wired, added["external_userid"]) == []
    assert _calls(emulator, wired.wecom_id, "send_welcome_msg") == sends, "WeCom never saw it"
    assert "保本" not in _customer_side(emulator, wired.wecom_id)
    _assert_blocked(_outbound(wired.corp_id, f"welcome:{event_id}"))


def test_channel_welcome_variant_carries_its_disclosure_and_never_a_planted_promise(emulator, wired):  # noqa: F811
    with session_scope() as s:
        code = acquisition.create_channel_code(s, corp_id=wired.corp_id, actor="test", name="春季投放", channel="ad",
                                               advisors=[acquisition.AdvisorSpec("zhangsan")])
        welcome.add_variant(s, corp_id=wired.corp_id, actor="test", code_id=code.id,
                            text="{客户称呼}您好，我是{顾问名}，基金定投的资料已为您备好。")
        welcome.save_flow(s, corp_id=wired.corp_id, actor="test", code_id=code.id, enabled=True)
        state, code_id = code.state, code.id
    approve_all_committed(wired.corp_id)
    added, _ = _add_and_welcome(emulator, wired, state=state)
    assert _welcome_to(emulator, wired, added["external_userid"]) == [
        with_fund_disclosure("陈女士您好，我是张三，基金定投的资料已为您备好。")]

    _plant(wired.corp_id, "welcome", "{客户称呼}您好，" + PROMISE)
    added, event_id = _add_and_welcome(emulator, wired, state=state)
    assert _welcome_to(emulator, wired, added["external_userid"]) == []
    assert "保本" not in _customer_side(emulator, wired.wecom_id)
    _assert_blocked(_outbound(wired.corp_id, f"welcome:{event_id}"))
    with session_scope() as s:
        send = s.scalar(select(WelcomeSend).where(WelcomeSend.corp_id == wired.corp_id,
                                                  WelcomeSend.inbox_event_id == event_id))
        assert (send.code_id, send.state) == (code_id, "blocked")


# --- 3: keyword replies, automatic and the advisor's one click ---------------------------------------------

def _customer_says(w: Wired, text: str, customer: str) -> str:
    msgid = "m" + uuid.uuid4().hex
    with session_scope() as s:
        archive.ingest_records(s, corp_id=w.corp_id, source="feed", records=[archive.ArchiveRecord(
            msgid=msgid, sender=customer, tolist=("zhangsan",), roomid="", msgtype="text", sent_at=utcnow(),
            text=text)])
    payload = {"msgid": msgid, "staff_userid": "zhangsan", "customer_userid": customer,
               "sent_at": utcnow().isoformat()}
    with session_scope() as s:
        keyword_jobs.keyword_reply(s, payload, _ctx(w.corp_id, "event:chat.customer_message:acquisition.keyword_reply"))
    return msgid


def _hit(corp_id: int, msgid: str) -> str:
    with session_scope() as s:
        return s.scalar(select(KeywordHit.outcome).where(KeywordHit.corp_id == corp_id, KeywordHit.msgid == msgid))


def _mass_texts(emulator, w: Wired) -> list[str]:  # noqa: F811
    return [m["text"] for m in emulator.get(f"/corps/{w.wecom_id}/mass_messages")]


def test_keyword_reply_carries_its_disclosure_and_never_a_planted_promise(emulator, wired):  # noqa: F811
    reply = "基金定投的入门资料请看链接。"
    with session_scope() as s:
        rule_id = keywords.save_rule(s, corp_id=wired.corp_id, actor="test", data=keywords.RuleInput(
            name="定投", keyword="定投", reply_text=reply, link_url="https://h5.example/fund",
            link_title="定投指南", cooldown_hours=0, enabled=True)).id
    approve_all_committed(wired.corp_id)
    msgid = _customer_says(wired, "定投怎么开始？", wired.customers[0])
    assert _mass_texts(emulator, wired) == [with_fund_disclosure(reply)]
    assert _hit(wired.corp_id, msgid) == "sent"

    assert rule_id
    _plant(wired.corp_id, "keyword_reply", PROMISE)
    msgid = _customer_says(wired, "定投", wired.customers[1])
    assert len(_mass_texts(emulator, wired)) == 1 and _calls(emulator, wired.wecom_id, "add_msg_template") == 1
    assert "保本" not in _customer_side(emulator, wired.wecom_id)
    assert _hit(wired.corp_id, msgid) == "blocked"
    _assert_blocked(_outbound(wired.corp_id, keywords.effect_key(wired.corp_id, msgid)))


def _task_for(w: Wired, msgid: str) -> int:
    with session_scope() as s:
        return s.scalar(select(KeywordTask.id).where(KeywordTask.corp_id == w.corp_id, KeywordTask.msgid == msgid))


def _click(w: Wired, task_id: int) -> KeywordTask:
    with session_scope() as s:
        keywords.request_task_send(s, corp_id=w.corp_id, actor="zhangsan", task_id=task_id,
                                   advisor_userid="zhangsan")
    with session_scope() as s:
        keyword_jobs.keyword_task_send(s, {"task_id": task_id}, _ctx(w.corp_id, "acquisition.keyword_task_send"))
    with session_scope() as s:
        task = s.get(KeywordTask, task_id)
        s.expunge(task)
        return task


def test_keyword_task_click_carries_its_disclosure_and_never_a_planted_promise(emulator, wired):  # noqa: F811
    reply = "您好，基金定投开户流程请看这份指南。"
    with session_scope() as s:
        keywords.save_rule(s, corp_id=wired.corp_id, actor="test", data=keywords.RuleInput(
            name="开户", keyword="开户", action="task", reply_text=reply, cooldown_hours=0, enabled=True))
    approve_all_committed(wired.corp_id)
    first = _task_for(wired, _customer_says(wired, "想开户", wired.customers[0]))
    second = _task_for(wired, _customer_says(wired, "开户", wired.customers[1]))
    assert _mass_texts(emulator, wired) == [], "nothing is sent before the click"

    assert _click(wired, first).state == "sent"
    assert _mass_texts(emulator, wired) == [with_fund_disclosure(reply)]

    _plant(wired.corp_id, "keyword_reply", PROMISE)  # the approved reply was changed after the task was made
    task = _click(wired, second)
    assert task.state == "blocked" and "稳赚不赔" in task.detail
    assert len(_mass_texts(emulator, wired)) == 1 and _calls(emulator, wired.wecom_id, "add_msg_template") == 1
    assert "保本" not in _customer_side(emulator, wired.wecom_id)
    _assert_blocked(_outbound(wired.corp_id, keywords.task_effect_key(wired.corp_id, second)))


# --- 4: the in-service handover message ----------------------------------------------------------------------

def _hand_over(w: Wired, customer: str, message: str, *, plant: str | None = None) -> int:
    with session_scope() as s:
        handover_id = handovers.create_handover(s, corp_id=w.corp_id, actor="test", kind="in_service",
                                                handover_userid="zhangsan", takeover_userids=["wangwu"],
                                                external_userids=[customer], message=message).id
    if plant is not None:
        _plant(w.corp_id, "handover", plant)
    with session_scope() as s:
        handover_jobs.run(s, {"handover_id": handover_id}, _ctx(w.corp_id, handover_jobs.RUN))
    return handover_id


def _transfers_of(emulator, w: Wired, customer: str) -> list[dict]:  # noqa: F811
    return [t for t in emulator.get(f"/corps/{w.wecom_id}/transfers") if t["external_userid"] == customer]


def test_handover_message_carries_its_disclosure_and_never_a_planted_promise(emulator, wired):  # noqa: F811
    message = "您好，我的同事王五将继续为您服务，基金定投的问题可随时问他。"
    first, second = wired.customers[:2]
    _hand_over(wired, first, message)
    (transfer,) = _transfers_of(emulator, wired, first)
    assert transfer["success_msg"] == with_fund_disclosure(message)

    handover_id = _hand_over(wired, second, "您好，我的同事王五将继续为您服务。", plant=PROMISE)
    (transfer,) = _transfers_of(emulator, wired, second)  # the customer is still handed over …
    assert transfer["success_msg"] is None  # … with WeCom's own notice, not the planted text
    assert "保本" not in _customer_side(emulator, wired.wecom_id)
    _assert_blocked(_outbound(wired.corp_id, f"handover:{handover_id}:message"))


def test_handover_message_too_long_with_its_disclosure_is_refused_when_saved(session):
    corp = make_corp(session)
    long_product = "您好，基金定投" + "。" * 150
    with pytest.raises(Exception, match="risk disclosure"):
        handovers.check_message(session, corp_id=corp.id, message=long_product)
    assert handovers.check_message(session, corp_id=corp.id, message="您好，王五将继续为您服务。")


# --- 5: the verification SMS ------------------------------------------------------------------------------

class Outbox:
    """An SMS provider that keeps what it was handed."""

    name = "test"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))


def _ask_code(session, corp, outbox: Outbox, phone: str):
    community = v.save_community(session, corp_id=corp.id, actor="test", name="财富会员群" + uuid.uuid4().hex[:4],
                                 verify_by="sms", join_url="https://h5.example/join/1")
    _c, _visit, key = v.open_visit(session, token=v.link_token(community), ip="203.0.113.7")
    return v.request_code(session, token=v.link_token(community), key=key, phone=phone, ip="203.0.113.7",
                          provider=outbox, consent_version=0)


def test_verification_sms_carries_its_disclosure_and_never_a_planted_promise(session, monkeypatch):
    corp, outbox = make_corp(session), Outbox()
    monkeypatch.setattr(v, "CODE_TEXT", "验证码 {code}，5 分钟内有效。基金定投讲座报名成功。")
    _ask_code(session, corp, outbox, "13812345678")
    ((_phone, text),) = outbox.sent
    assert re.fullmatch(r"验证码 \d{6}，5 分钟内有效。基金定投讲座报名成功。", text.removesuffix(SEPARATOR + FUND))
    assert text.endswith(SEPARATOR + FUND)

    monkeypatch.setattr(v, "CODE_TEXT", "验证码 {code}。" + PROMISE)
    with pytest.raises(Unavailable):
        _ask_code(session, corp, outbox, "13912345678")
    assert len(outbox.sent) == 1 and "保本" not in json.dumps(outbox.sent, ensure_ascii=False)
    states = session.scalars(select(SmsOutbox.state).where(SmsOutbox.corp_id == corp.id).order_by(SmsOutbox.id))
    assert list(states) == ["sent", "blocked"]
    entry = session.scalar(select(AuditEntry).where(AuditEntry.chain_id == corp.id,
                                                    AuditEntry.action == "acquisition.sms_blocked"))
    assert {"保本保息", "稳赚不赔"} <= set(entry.detail["findings"])


def test_sidebar_recommendation_carries_its_disclosure_and_never_a_promise(session):
    """The advisor's chat sidebar (customers.sidebar.recommend): Siyu sends nothing itself — the page
    hands the final text to WeCom's JS-SDK sendChatMessage — so it is not in KNOWN_PATHS; the text
    the advisor gets has passed the guard: a promise is refused with its phrases, nothing recorded."""
    from customers.factories import make_customer
    from siyu.compliance import suitability
    from siyu.customers import sidebar
    from siyu.customers.models import ProductRecommendation
    from tenancy.factories import make_staff, principal_of

    corp = make_corp(session)
    advisor = make_staff(session, corp, wecom_userid="zhangsan")
    customer = make_customer(session, corp.id, userid="zhangsan")
    suitability.create_product(session, corp_id=corp.id, actor="test", code="FUND-1", name="货币基金 A",
                               product_type="fund", risk_level="R1")
    with pytest.raises(sidebar.Blocked) as blocked:
        sidebar.recommend(session, principal=principal_of(advisor), external_userid=customer.external_userid,
                          product_code="FUND-1", message="这款产品" + PROMISE)
    assert blocked.value.field == "message" and {"保本保息", "稳赚不赔"} <= set(blocked.value.phrases)
    assert session.scalar(select(ProductRecommendation.id).where(ProductRecommendation.corp_id == corp.id)) is None
    row = sidebar.recommend(session, principal=principal_of(advisor), external_userid=customer.external_userid,
                            product_code="FUND-1", message="货币基金，随存随取。")
    assert row.final_text.endswith(SEPARATOR + FUND) and "保本" not in row.final_text


# --- the gate: an edit that is not approved yet never reaches the customer, on every path ---------------------

OLD, NEW = "您好，欢迎关注，我是您的顾问。", "您好，新版欢迎语：本周有理财讲座。"


def test_default_welcome_edit_goes_out_only_once_approved(emulator, wired):  # noqa: F811
    with session_scope() as s:
        wecom.set_default_welcome(s, corp_id=wired.corp_id, actor="ops", text=OLD, enabled=True)
    added, event_id = _add_and_welcome(emulator, wired)  # nothing approved yet: held, with the reason
    assert _welcome_to(emulator, wired, added["external_userid"]) == []
    _assert_held(_outbound(wired.corp_id, f"welcome:{event_id}"))
    approve_all_committed(wired.corp_id)
    with session_scope() as s:
        wecom.set_default_welcome(s, corp_id=wired.corp_id, actor="ops", text=NEW, enabled=True)  # pending
    added, _ = _add_and_welcome(emulator, wired)
    assert _welcome_to(emulator, wired, added["external_userid"]) == [OLD]
    approve_all_committed(wired.corp_id)
    added, _ = _add_and_welcome(emulator, wired)
    assert _welcome_to(emulator, wired, added["external_userid"]) == [NEW]


def test_channel_welcome_variants_send_their_approved_versions_only(emulator, wired):  # noqa: F811
    with session_scope() as s:
        code = acquisition.create_channel_code(s, corp_id=wired.corp_id, actor="test", name="AB 投放", channel="ad",
                                               advisors=[acquisition.AdvisorSpec("zhangsan")])
        a = welcome.add_variant(s, corp_id=wired.corp_id, actor="ops", code_id=code.id, text="A：" + OLD)
        welcome.save_flow(s, corp_id=wired.corp_id, actor="ops", code_id=code.id, enabled=True)
        state, a_id, code_id = code.state, a.id, code.id
    added, event_id = _add_and_welcome(emulator, wired, state=state)
    assert _welcome_to(emulator, wired, added["external_userid"]) == []
    _assert_held(_outbound(wired.corp_id, f"welcome:{event_id}"))
    approve_all_committed(wired.corp_id)
    with session_scope() as s:  # a second variant, and an edit of the first: both pending
        welcome.add_variant(s, corp_id=wired.corp_id, actor="ops", code_id=code_id, text="B：" + NEW)
        welcome.edit_variant(s, corp_id=wired.corp_id, actor="ops", variant_id=a_id, text="A：" + NEW)
    got = set()
    for _ in range(6):
        added, _ = _add_and_welcome(emulator, wired, state=state)
        got |= set(_welcome_to(emulator, wired, added["external_userid"]))
    assert got == {"A：" + OLD}, "the pending edit and the pending variant never went out"
    approve_all_committed(wired.corp_id)
    got = set()
    for _ in range(12):
        added, _ = _add_and_welcome(emulator, wired, state=state)
        got |= set(_welcome_to(emulator, wired, added["external_userid"]))
    assert got == {"A：" + NEW, "B：" + NEW}


def test_keyword_reply_edit_goes_out_only_once_approved(emulator, wired):  # noqa: F811
    data = {"name": "讲座", "keyword": "讲座", "cooldown_hours": 0, "enabled": True}
    with session_scope() as s:
        rule_id = keywords.save_rule(s, corp_id=wired.corp_id, actor="ops",
                                     data=keywords.RuleInput(reply_text=OLD, **data)).id
    msgid = _customer_says(wired, "讲座", wired.customers[0])
    assert _mass_texts(emulator, wired) == [] and _hit(wired.corp_id, msgid) == "held"
    _assert_held(_outbound(wired.corp_id, keywords.effect_key(wired.corp_id, msgid)))
    approve_all_committed(wired.corp_id)
    with session_scope() as s:
        keywords.save_rule(s, corp_id=wired.corp_id, actor="ops", rule_id=rule_id,
                           data=keywords.RuleInput(reply_text=NEW, **data))
    _customer_says(wired, "讲座", wired.customers[1])
    assert _mass_texts(emulator, wired) == [OLD]
    approve_all_committed(wired.corp_id)
    _customer_says(wired, "讲座", wired.customers[2])
    assert _mass_texts(emulator, wired) == [OLD, NEW]


def test_keyword_task_click_sends_the_version_approved_at_the_click(emulator, wired):  # noqa: F811
    data = {"name": "开户", "keyword": "开户", "action": "task", "cooldown_hours": 0, "enabled": True}
    with session_scope() as s:
        rule_id = keywords.save_rule(s, corp_id=wired.corp_id, actor="ops",
                                     data=keywords.RuleInput(reply_text=OLD, **data)).id
    approve_all_committed(wired.corp_id)
    first = _task_for(wired, _customer_says(wired, "开户", wired.customers[0]))
    with session_scope() as s:  # edited after the task was made: pending
        keywords.save_rule(s, corp_id=wired.corp_id, actor="ops", rule_id=rule_id,
                           data=keywords.RuleInput(reply_text=NEW, **data))
    assert _click(wired, first).state == "sent"
    assert _mass_texts(emulator, wired) == [OLD]
    second = _task_for(wired, _customer_says(wired, "开户", wired.customers[1]))
    approve_all_committed(wired.corp_id)
    assert _click(wired, second).state == "sent"
    assert _mass_texts(emulator, wired) == [OLD, NEW]


def test_handover_message_requiring_approval_is_held_until_approved(emulator, wired):  # noqa: F811
    from siyu.compliance import content

    with session_scope() as s:  # this corp requires approval for handover messages too
        content.set_requirements(s, corp_id=wired.corp_id, actor="officer", required=content.KINDS)
    first, second = wired.customers[:2]
    handover_id = _hand_over(wired, first, "您好，我的同事王五将继续为您服务。")
    (transfer,) = _transfers_of(emulator, wired, first)
    assert transfer["success_msg"] is None  # transferred with WeCom's own notice; the message waits
    _assert_held(_outbound(wired.corp_id, f"handover:{handover_id}:message"))
    with session_scope() as s:
        content.set_requirements(s, corp_id=wired.corp_id, actor="officer", required=[])
    _hand_over(wired, second, "您好，我的同事王五将继续为您服务。")  # not required: in force at once
    (transfer,) = _transfers_of(emulator, wired, second)
    assert transfer["success_msg"] == "您好，我的同事王五将继续为您服务。"


def _code_customer(emulator, w: Wired, *, invitation: str) -> tuple[int, str]:  # noqa: F811
    """A channel code whose flow invites to the group on "1", and a customer who came through it."""
    with session_scope() as s:
        code = acquisition.create_channel_code(s, corp_id=w.corp_id, actor="ops", name="入群活码", channel="ad",
                                               advisors=[acquisition.AdvisorSpec("zhangsan")])
        welcome.add_variant(s, corp_id=w.corp_id, actor="ops", code_id=code.id, text="您好，欢迎关注。")
        flow = welcome.save_flow(s, corp_id=w.corp_id, actor="ops", code_id=code.id, enabled=True, group_keyword="1",
                                 group_invitation=invitation)
        acquisition.attribute_add(s, corp_id=w.corp_id, state=code.state, userid="zhangsan",
                                  external_userid=w.customers[0], inbox_event_id=random.randrange(1, 2**62),
                                  at=utcnow())
        return flow.id, w.customers[0]


def _answers(w: Wired, text: str, customer: str) -> str:
    msgid = "m" + uuid.uuid4().hex
    with session_scope() as s:
        archive.ingest_records(s, corp_id=w.corp_id, source="feed", records=[archive.ArchiveRecord(
            msgid=msgid, sender=customer, tolist=("zhangsan",), roomid="", msgtype="text", sent_at=utcnow(),
            text=text)])
    payload = {"msgid": msgid, "staff_userid": "zhangsan", "customer_userid": customer,
               "sent_at": utcnow().isoformat()}
    with session_scope() as s:
        keyword_jobs.group_invitation(s, payload, _ctx(w.corp_id, "event:chat.customer_message:"
                                                                  "acquisition.group_invitation"))
    return msgid


def test_group_invitation_goes_out_only_in_its_approved_version(emulator, wired):  # noqa: F811
    flow_id, customer = _code_customer(emulator, wired, invitation="回复 1 已收到，学习群链接稍后发您。")
    msgid = _answers(wired, "1", customer)  # nothing approved yet: held, with the reason
    assert _mass_texts(emulator, wired) == []
    _assert_held(_outbound(wired.corp_id, welcome.invitation_effect_key(wired.corp_id, msgid)))
    approve_all_committed(wired.corp_id)
    _answers(wired, "１", customer)  # full-width: the keyword is matched normalised
    assert _mass_texts(emulator, wired) == ["回复 1 已收到，学习群链接稍后发您。"]
    with session_scope() as s:  # edited: pending, the approved one still goes out
        flow = s.get(acquisition_models.WelcomeFlow, flow_id)
        welcome.save_flow(s, corp_id=wired.corp_id, actor="ops", code_id=flow.code_id, enabled=True,
                          group_keyword="1", group_invitation="学习群二维码请看下一条消息。")
    _answers(wired, "1", customer)
    _answers(wired, "你好", customer)  # not the keyword: nothing
    assert _mass_texts(emulator, wired)[1:] == ["回复 1 已收到，学习群链接稍后发您。"]
    approve_all_committed(wired.corp_id)
    _answers(wired, "1", customer)
    assert _mass_texts(emulator, wired)[2:] == ["学习群二维码请看下一条消息。"]

    _plant(wired.corp_id, "group_invitation", PROMISE)  # after the approval
    msgid = _answers(wired, "1", customer)
    assert len(_mass_texts(emulator, wired)) == 3 and "保本" not in _customer_side(emulator, wired.wecom_id)
    _assert_blocked(_outbound(wired.corp_id, welcome.invitation_effect_key(wired.corp_id, msgid)))


def test_the_group_keyword_is_answered_with_the_codes_join_way(emulator, wired):  # noqa: F811
    """The welcome flow's invitation went out with the welcome; the customer's "1" gets the join way
    (群活码) the channel code hands out — its QR code — once, and only with the invitation approved."""
    from siyu.communities.joinway_models import GroupJoinWay
    from siyu.communities.models import GroupSet

    flow_id, customer = _code_customer(emulator, wired, invitation="回复 1 加入稳健理财学习群")
    with session_scope() as s:
        code_id = s.get(acquisition_models.WelcomeFlow, flow_id).code_id
        group_set = GroupSet(corp_id=wired.corp_id, name="稳健理财学习群组")
        s.add(group_set)
        s.flush()
        s.add(GroupJoinWay(corp_id=wired.corp_id, group_set_id=group_set.id, channel_code_id=code_id,
                           state="jw-test", config_id="cfg-test", qr_code="https://wework.qpic.cn/wwpic/join/cfg/0",
                           chat_ids=["wrtest"], status="active", rotations=0))
    _answers(wired, "1", customer)  # the invitation is not approved yet: nothing
    assert emulator.get(f"/corps/{wired.wecom_id}/mass_messages") == []
    approve_all_committed(wired.corp_id)
    msgid = _answers(wired, "1", customer)
    (sent,) = emulator.get(f"/corps/{wired.wecom_id}/mass_messages")
    assert (sent["chat_type"], sent["sender"], sent["text"]) == ("single", "zhangsan", None)
    assert sent["attachments"] == [{"msgtype": "image",
                                    "image": {"pic_url": "https://wework.qpic.cn/wwpic/join/cfg/0"}}]
    assert [r["external_userid"] for r in sent["results"]] == [customer]
    assert _outbound(wired.corp_id, welcome.invitation_effect_key(wired.corp_id, msgid)).state == "sent"


def _set_group(emulator, w: Wired, name: str) -> int:  # noqa: F811
    """A group zhangsan owns at WeCom, read into Siyu; its id."""
    from siyu.communities import sync

    chat = emulator.post(f"/corps/{w.wecom_id}/group_chats", {"owner": "zhangsan", "name": name,
                                                              "members": [w.customers[0]]}, expect=201)
    with session_scope() as s:
        client = wecom.client_for_corp(s, corp_id=w.corp_id)
    detail = client.get_group_chat(chat["chat_id"])  # the call holds no transaction
    with session_scope() as s:
        group, _ = sync.apply_group_chat(s, corp_id=w.corp_id, detail=detail)
        return group.id


def _group_rules(w: Wired, group_id: int, set_id: int) -> None:
    from siyu.communities import group_welcome, joinway_jobs

    with session_scope() as s:
        joinway_jobs.group_joined_set(s, {"group_id": group_id, "group_set_id": set_id},
                                      _ctx(w.corp_id, group_welcome.NEW_GROUP_JOB))


def test_group_rules_go_out_only_in_their_approved_version_and_never_a_planted_promise(emulator, wired):  # noqa: F811
    from siyu.communities import group_welcome
    from siyu.communities import service as communities
    from siyu.tenancy.principal import Principal

    ops = Principal(corp_id=wired.corp_id, kind="system", label="ops")
    first, second = _set_group(emulator, wired, "稳健理财1群"), _set_group(emulator, wired, "稳健理财2群")
    with session_scope() as s:
        set_id = communities.create_set(s, principal=ops, name="稳健理财群组").id
        group_welcome.save_texts(s, principal=ops, set_id=set_id, rules_text="群规：禁止广告，文明交流。")
        communities.assign_groups(s, principal=ops, set_id=set_id, group_ids=[first, second])
    _group_rules(wired, first, set_id)  # nothing approved yet: nothing posted
    assert _mass_texts(emulator, wired) == []
    approve_all_committed(wired.corp_id)
    _group_rules(wired, first, set_id)
    _group_rules(wired, first, set_id)  # the job again: posted once
    (posted,) = emulator.get(f"/corps/{wired.wecom_id}/mass_messages")
    assert (posted["chat_type"], posted["sender"]) == ("group", "zhangsan")
    assert posted["text"] == "群规：禁止广告，文明交流。"
    with session_scope() as s:  # edited: pending; the approved rules are what a new group gets
        group_welcome.save_texts(s, principal=ops, set_id=set_id, rules_text="群规：请勿私加群友。")
    _plant(wired.corp_id, "group_welcome", PROMISE)  # after the approval
    _group_rules(wired, second, set_id)
    assert len(_mass_texts(emulator, wired)) == 1 and "保本" not in _customer_side(emulator, wired.wecom_id)
    _assert_blocked(_outbound(wired.corp_id, group_welcome.rules_effect_key(second, set_id)))


# --- the list of paths ---------------------------------------------------------------------------------------

# Every place in src/ that calls a WeCom method sending to customers, or the SMS provider, and the
# tests above that cover it. A new call site fails the test below until it is put on the guard and listed.
SENDING = re.compile(r"\.(send_welcome_msg|add_msg_template|transfer_customer|add_moment_task)\b|"
                     r"\b(sms_provider)\(\)|\bprovider\.(send)\(")
KNOWN_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("siyu/acquisition/jobs.py", "send_welcome_msg"): (
        "test_default_welcome_carries_its_disclosure_and_never_a_planted_promise",
        "test_channel_welcome_variant_carries_its_disclosure_and_never_a_planted_promise",
        "test_default_welcome_edit_goes_out_only_once_approved",
        "test_channel_welcome_variants_send_their_approved_versions_only"),
    ("siyu/acquisition/keyword_jobs.py", "add_msg_template"): (
        "test_keyword_reply_carries_its_disclosure_and_never_a_planted_promise",
        "test_keyword_task_click_carries_its_disclosure_and_never_a_planted_promise",
        "test_keyword_reply_edit_goes_out_only_once_approved",
        "test_keyword_task_click_sends_the_version_approved_at_the_click",
        "test_group_invitation_goes_out_only_in_its_approved_version",
        "test_the_group_keyword_is_answered_with_the_codes_join_way"),
    ("siyu/communities/joinway_jobs.py", "add_msg_template"): (
        "test_group_rules_go_out_only_in_their_approved_version_and_never_a_planted_promise",),
    ("siyu/sop/jobs.py", "add_msg_template"): (  # group SOP slots and customer SOP steps (tests/sop)
        "test_unapproved_and_edited_but_unapproved_text_never_goes_out",
        "test_an_unapproved_customer_sop_step_never_goes_out"),
    ("siyu/sop/jobs.py", "add_moment_task"): ("test_an_unapproved_moments_slot_is_never_posted",),
    ("siyu/broadcasts/jobs.py", "add_msg_template"): (  # 1-on-1 broadcasts (tests/broadcasts)
        "test_an_unapproved_broadcast_never_goes_out",
        "test_a_broadcast_goes_out_once_per_advisor_and_results_come_back"),
    ("siyu/handover/jobs.py", "transfer_customer"): (
        "test_handover_message_carries_its_disclosure_and_never_a_planted_promise",
        "test_handover_message_requiring_approval_is_held_until_approved"),
    ("siyu/acquisition/verification.py", "sms_provider"): (
        "test_verification_sms_carries_its_disclosure_and_never_a_planted_promise",),
    ("siyu/acquisition/verification.py", "send"): (
        "test_verification_sms_carries_its_disclosure_and_never_a_planted_promise",),
}
# Paths whose text is fixed in code, not saved content (no content item, so no approval to gate on).
FIXED_TEXT_PATHS = {("siyu/acquisition/verification.py", "sms_provider"), ("siyu/acquisition/verification.py", "send")}
# Not customer paths: the fixed benchmark text sent to the emulator only.
NOT_CUSTOMER_PATHS = {("siyu/bench/welcome_burst.py", "send_welcome_msg"), ("siyu/bench/adds.py", "send_welcome_msg"),
                      ("siyu/bench/sop.py", "add_msg_template")}


def _test_exists(name: str) -> bool:
    """A test of this module, or of the domain's own tests (tests/<domain>/test_*.py)."""
    if callable(globals().get(name)):
        return True
    return any(f"def {name}(" in path.read_text(encoding="utf-8")
               for path in Path(__file__).resolve().parents[1].rglob("test_*.py"))


def _call_sites() -> set[tuple[str, str]]:
    found = set()
    for path in (SRC / "siyu").rglob("*.py"):
        rel = str(path.relative_to(SRC))
        if "emulator" in path.parts or rel == "siyu/wecom/client.py":  # WeCom itself and its client
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            code = line.split("#", 1)[0]
            if code.lstrip().startswith("def "):
                continue
            for m in SENDING.finditer(code):
                found.add((rel, next(g for g in m.groups() if g)))
    return found


def test_every_outbound_call_site_is_a_known_path():
    found = _call_sites()
    unknown = found - set(KNOWN_PATHS) - NOT_CUSTOMER_PATHS
    assert not unknown, f"new outbound call sites: put them on prepare_outbound and list them here: {unknown}"
    assert set(KNOWN_PATHS) <= found, f"listed paths no longer found: {set(KNOWN_PATHS) - found}"
    for tests in KNOWN_PATHS.values():
        assert all(_test_exists(name) for name in tests), tests
    # Every path that sends saved content has a gate test too: an unapproved edit never reaches the customer.
    for path, tests in KNOWN_PATHS.items():
        if path not in FIXED_TEXT_PATHS:
            assert any("approv" in name for name in tests), f"{path}: add a test that an unapproved edit is not sent"
