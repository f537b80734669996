"""Personal information: the consent ledger, the marketing opt-out on outbound review, the TD reply,
data-subject export and deletion through every registered domain, and the retention purge."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import func, select

from siyu.acquisition.models import WelcomeFollowUp, WelcomeSend
from siyu.compliance import archive, archive_jobs, suitability
from siyu.compliance.models import ArchiveMessage, CustomerRiskAssessment
from siyu.compliance.service import review_outbound
from siyu.customers import contacts
from siyu.customers.models import Customer, CustomerNote
from siyu.db import utcnow
from siyu.errors import Conflict, InvalidInput
from siyu.jobs.models import Job
from siyu.jobs.registry import JobContext
from siyu.privacy import jobs as privacy_jobs
from siyu.privacy import service as privacy
from siyu.privacy.models import ConsentRecord, PurgeRun
from siyu.tenancy.models import AuditEntry
from tenancy.factories import make_corp

MS = 1_767_225_600_000
WM = "wmCustomer0001"


def _ledger(session, corp, uid=WM, purpose="marketing", granted=True, source="h5", note=""):
    return privacy.record_consent(session, corp_id=corp.id, actor="test", external_userid=uid, purpose=purpose,
                                  granted=granted, source=source, note=note)


def _message(session, corp, text, *, sender=WM, to="zhangsan", source="file", when=MS):
    record = {"msgid": uuid.uuid4().hex, "from": sender, "tolist": [to], "msgtime": when, "msgtype": "text",
              "text": {"content": text}}
    archive.ingest_records(session, corp_id=corp.id, records=[archive.parse_record(record)], source=source)
    return session.scalar(select(ArchiveMessage).where(ArchiveMessage.corp_id == corp.id,
                                                       ArchiveMessage.msgid == record["msgid"]))


def _ctx(corp_id, name="x"):
    now = utcnow()
    return JobContext(id=1, name=name, attempt=1, max_attempts=3, queue="default", corp_id=corp_id, run_at=now,
                      enqueued_at=now, worker_id="test")


# --- ledger -----------------------------------------------------------------------------------------------


def test_ledger_state_is_the_latest_record_per_purpose(session, corp):
    assert privacy.consent_state(session, corp_id=corp.id, external_userid=WM)["marketing"] is None
    _ledger(session, corp, granted=True)
    _ledger(session, corp, purpose="profiling", granted=True)
    _ledger(session, corp, granted=False, source="advisor", note="客户电话里说不要再发")
    state = privacy.consent_state(session, corp_id=corp.id, external_userid=WM)
    assert state["marketing"].granted is False and state["marketing"].source == "advisor"
    assert state["profiling"].granted is True and state["data_sharing"] is None
    _ledger(session, corp, granted=True, source="h5")
    assert privacy.consent_state(session, corp_id=corp.id, external_userid=WM)["marketing"].granted is True
    # Append-only: every change is a row, newest first in the history, and audited.
    history = privacy.consent_history(session, corp_id=corp.id, external_userid=WM)
    assert [r.granted for r in history if r.purpose == "marketing"] == [True, False, True]
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.chain_id == corp.id, AuditEntry.action.like("consent.%"))) == 4
    # Another corp sees none of it.
    assert privacy.consent_state(session, corp_id=make_corp(session).id, external_userid=WM)["marketing"] is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"purpose": "newsletter"}, "purpose"),
    ({"source": "fax"}, "source"),
    ({"uid": "bad id with spaces"}, "external_userid"),
    ({"source": "advisor", "note": ""}, "note"),
    ({"note": "x" * 1001}, "note"),
])
def test_ledger_refuses_bad_input_and_stores_nothing(session, corp, kwargs, field):
    with pytest.raises(InvalidInput) as bad:
        _ledger(session, corp, **kwargs)
    assert bad.value.field == field
    assert session.scalar(select(func.count()).select_from(ConsentRecord).where(ConsentRecord.corp_id == corp.id)) == 0


def test_archive_consent_is_recorded_in_the_ledger(session, corp):
    first = archive.record_consent(session, corp_id=corp.id, external_userid=WM, staff_userid="zs")
    assert isinstance(first, ConsentRecord) and first.purpose == "chat_archiving" and first.granted
    assert privacy.consent_state(session, corp_id=corp.id, external_userid=WM)["chat_archiving"].id == first.id
    assert archive.consent_count(session, corp_id=corp.id) == 1
    _ledger(session, corp, purpose="chat_archiving", granted=False)  # the customer withdrew later
    assert archive.consents(session, corp_id=corp.id, external_userids=[WM]) == {}
    assert archive.consent_count(session, corp_id=corp.id) == 0


# --- marketing opt-out ----------------------------------------------------------------------------------------


def test_opt_out_refuses_marketing_but_not_service_messages(session, corp):
    _ledger(session, corp, uid="wmOut", granted=False)
    _ledger(session, corp, uid="wmIn", granted=True)
    text = "本周理财课堂开讲，欢迎参加"
    broadcast = review_outbound(session, corp_id=corp.id, text=text, kind="broadcast",
                                recipients=["wmOut", "wmIn", "wmNeverAsked"])
    assert broadcast.refused == {"wmOut"} and broadcast.verdict == "pass"
    only_out = review_outbound(session, corp_id=corp.id, text=text, kind="sop_slot", recipients=["wmOut"])
    assert only_out.blocked and only_out.refused == {"wmOut"}
    unknown_kind = review_outbound(session, corp_id=corp.id, text=text, kind="something_new", recipients=["wmOut"])
    assert unknown_kind.blocked  # a kind nobody classified is treated as marketing
    for kind in ("welcome", "handover", "keyword_reply"):
        service = review_outbound(session, corp_id=corp.id, text=text, kind=kind, recipients=["wmOut"])
        assert service.refused == frozenset() and not service.blocked
    # Without recipients the review is the text's alone, as before.
    assert review_outbound(session, corp_id=corp.id, text=text).verdict == "pass"
    # The dictionary still blocks what it blocks, whatever the consent.
    assert review_outbound(session, corp_id=corp.id, text="保本保息稳赚不赔", kind="welcome",
                           recipients=["wmIn"]).blocked


def test_td_reply_in_chat_withdraws_marketing(session, corp):
    message = _message(session, corp, " TD ", source="feed")
    events = session.scalars(select(Job).where(Job.corp_id == corp.id, Job.name.like(
        f"event:{archive.CUSTOMER_MESSAGE_EVENT}:compliance.unsubscribe_reply%"))).all()
    assert len(events) == 1  # the subscriber's job was enqueued by the archive feed
    payload = {"msgid": message.msgid, "staff_userid": "zhangsan", "customer_userid": WM, "msgtype": "text",
               "sent_at": message.sent_at.isoformat()}
    archive_jobs.unsubscribe_reply(session, payload, _ctx(corp.id))
    state = privacy.consent_state(session, corp_id=corp.id, external_userid=WM)["marketing"]
    assert state.granted is False and state.source == "chat" and state.staff_userid == "zhangsan"
    archive_jobs.unsubscribe_reply(session, payload, _ctx(corp.id))  # a redelivery records nothing new
    assert len([r for r in privacy.consent_history(session, corp_id=corp.id, external_userid=WM)]) == 1
    assert review_outbound(session, corp_id=corp.id, text="新品上线", kind="broadcast", recipients=[WM]).blocked


def test_other_replies_do_not_withdraw(session, corp):
    for text in ("好的谢谢", "TD是什么意思", "不要退订"):
        assert privacy.record_chat_reply(session, corp_id=corp.id, external_userid=WM, text=text) is None
    assert privacy.record_chat_reply(session, corp_id=corp.id, external_userid=WM, text="退订") is not None


# --- data-subject requests ----------------------------------------------------------------------------------------


def _customer_with_data(session, corp, uid, name):
    c = contacts.ensure_customer(session, corp_id=corp.id, external_userid=uid, added_at=utcnow())
    c.name = name
    session.add(CustomerNote(corp_id=corp.id, customer_id=c.id, text=f"{name}想了解稳健型理财"))
    session.add(WelcomeSend(corp_id=corp.id, inbox_event_id=abs(hash(uid)) % 10**9, external_userid=uid, state="sent"))
    session.add(WelcomeFollowUp(corp_id=corp.id, inbox_event_id=abs(hash(uid)) % 10**9 + 1, advisor_userid="zhangsan",
                                external_userid=uid))
    _message(session, corp, f"我是{name}，想买点理财", sender=uid)
    _ledger(session, corp, uid=uid, granted=True)
    session.flush()
    return c


def test_export_holds_the_customers_data_from_each_domain_and_nobody_elses(session, corp):
    _customer_with_data(session, corp, WM, "张三")
    _customer_with_data(session, corp, "wmOther", "李四")
    req = privacy.create_request(session, corp_id=corp.id, actor="合规", external_userid=WM, kind="export",
                                 verification_note="身份证核验，柜台办理")
    assert req.status == "requested"
    privacy.carry_out(session, corp_id=corp.id, actor="合规", request_id=req.id)
    assert req.status == "done" and req.bundle_expires_at is not None
    name, content = privacy.download_bundle(session, corp_id=corp.id, actor="合规", request_id=req.id)
    bundle = json.loads(content)
    assert name.endswith(".json") and bundle["customer"] == WM
    data = bundle["data"]
    assert {"customers", "acquisition", "compliance"} <= set(data)
    assert data["customers"]["profile"][0]["name"] == "张三"
    assert data["customers"]["notes"][0]["text"] == "张三想了解稳健型理财"
    assert len(data["acquisition"]["welcomes"]) == 1 and len(data["acquisition"]["follow_ups"]) == 1
    assert "我是张三" in data["compliance"]["chat_messages"][0]["text"]
    assert data["compliance"]["consents"][0]["purpose"] == "marketing"
    assert "李四" not in content and "wmOther" not in content
    # Downloaded once: then it is gone.
    assert req.bundle is None and req.downloaded_at is not None
    with pytest.raises(Conflict):
        privacy.download_bundle(session, corp_id=corp.id, actor="合规", request_id=req.id)
    actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == corp.id,
                                                                  AuditEntry.target_type == "data_subject_request")))
    assert actions == {"dsr.requested", "dsr.started", "dsr.done", "dsr.downloaded"}


def test_export_expires_and_csv(session, corp):
    _customer_with_data(session, corp, WM, "张三")
    req = privacy.create_request(session, corp_id=corp.id, actor="合规", external_userid=WM, kind="export",
                                 verification_note="视频核验")
    privacy.carry_out(session, corp_id=corp.id, actor="合规", request_id=req.id)
    csv_text = privacy.bundle_csv(req.bundle)
    assert csv_text.splitlines()[0] == "domain,record,row,field,value" and "张三" in csv_text
    assert privacy.expire_bundles(session, now=utcnow() + dt.timedelta(days=privacy.EXPORT_VALID_DAYS + 1)) == 1
    with pytest.raises(Conflict) as gone:
        privacy.download_bundle(session, corp_id=corp.id, actor="合规", request_id=req.id, fmt="csv")
    assert "expired" in gone.value.message


def test_delete_keeps_legal_hold_records_and_erases_the_rest(session, corp):
    c = _customer_with_data(session, corp, WM, "张三")
    _customer_with_data(session, corp, "wmOther", "李四")
    suitability.record_assessment(session, corp_id=corp.id, actor="kyc", customer_ref=WM, level="C3",
                                  source="firm_kyc_api")
    alerted = _message(session, corp, "这款保本保息", sender="zhangsan", to=WM)  # an alert: kept as evidence
    req = privacy.create_request(session, corp_id=corp.id, actor="合规", external_userid=WM, kind="delete",
                                 verification_note="本人到柜台，身份证核验")
    privacy.carry_out(session, corp_id=corp.id, actor="合规", request_id=req.id)
    assert req.status == "done"
    kept = {k["record"]: k for k in req.result["kept"]}
    assert kept["risk_assessments"]["count"] == 1 and "legal hold" in kept["risk_assessments"]["reason"]
    assert kept["chat_messages"]["count"] == 1
    assert session.scalar(select(func.count()).select_from(CustomerRiskAssessment).where(
        CustomerRiskAssessment.customer_ref == WM)) == 1
    session.refresh(c)
    assert c.name is None and c.external_userid == WM
    assert session.scalar(select(func.count()).select_from(CustomerNote).where(CustomerNote.customer_id == c.id)) == 0
    assert session.scalar(select(WelcomeSend.external_userid).where(
        WelcomeSend.corp_id == corp.id, WelcomeSend.external_userid != "wmOther")) == "erased"
    texts = {m.id: m.text for m in session.scalars(select(ArchiveMessage).where(ArchiveMessage.corp_id == corp.id))}
    assert texts[alerted.id] == "这款保本保息"
    assert not any("张三" in t for t in texts.values())
    assert any("李四" in t for t in texts.values())  # the other customer is untouched
    other = session.scalar(select(Customer).where(Customer.external_userid == "wmOther", Customer.corp_id == corp.id))
    assert other.name == "李四"
    erased = session.scalars(select(AuditEntry.detail).where(AuditEntry.chain_id == corp.id,
                                                             AuditEntry.action == "dsr.erased")).all()
    assert {d["domain"] for d in erased} >= {"customers", "acquisition", "compliance"}
    with pytest.raises(Conflict):
        privacy.carry_out(session, corp_id=corp.id, actor="合规", request_id=req.id)


def test_requests_refuse_bad_input_and_other_corps(session, corp):
    with pytest.raises(InvalidInput) as bad:
        privacy.create_request(session, corp_id=corp.id, actor="x", external_userid=WM, kind="export",
                               verification_note=" ")
    assert bad.value.field == "verification_note"
    with pytest.raises(InvalidInput) as bad:
        privacy.create_request(session, corp_id=corp.id, actor="x", external_userid=WM, kind="rectify",
                               verification_note="ok")
    assert bad.value.field == "kind"
    req = privacy.create_request(session, corp_id=corp.id, actor="x", external_userid=WM, kind="delete",
                                 verification_note="ok")
    with pytest.raises(InvalidInput):
        privacy.refuse_request(session, corp_id=corp.id, actor="x", request_id=req.id, reason="")
    privacy.refuse_request(session, corp_id=corp.id, actor="x", request_id=req.id, reason="无法核实身份")
    assert req.status == "refused"
    other = make_corp(session)
    from siyu.errors import NotFound
    with pytest.raises(NotFound):
        privacy.get_request(session, corp_id=other.id, request_id=req.id)


def test_every_registered_domain_has_both_functions():
    names = {d.name for d in privacy.subject_domains()}
    assert {"customers", "acquisition", "compliance"} <= names


# --- retention ------------------------------------------------------------------------------------------------------


def test_defaults_are_seeded_and_edits_are_audited(session, corp):
    policies = {p.record_class: p for p in privacy.policies(session, corp_id=corp.id)}
    assert set(policies) == set(privacy.RECORD_CLASSES)
    assert policies["order"].keep_days == 20 * 365 and policies["audit_log"].keep_days is None
    privacy.set_policy(session, corp_id=corp.id, actor="合规", record_class="archive_message", keep_days="30",
                       legal_basis="公司制度第5条")
    assert {p.record_class: p for p in privacy.policies(session, corp_id=corp.id)}["archive_message"].keep_days == 30
    for kwargs, field in (({"keep_days": "0"}, "keep_days"), ({"keep_days": "abc"}, "keep_days"),
                          ({"legal_basis": ""}, "legal_basis"), ({"record_class": "audit_log"}, "keep_days"),
                          ({"record_class": "nope"}, "record_class")):
        args = {"record_class": "archive_message", "keep_days": 10, "legal_basis": "x", **kwargs}
        with pytest.raises(InvalidInput) as bad:
            privacy.set_policy(session, corp_id=corp.id, actor="合规", **args)
        assert bad.value.field == field
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.chain_id == corp.id, AuditEntry.action == "retention.changed")) == 1


def test_purge_deletes_only_expired_rows_in_chunks_and_never_the_audit_log(session, corp):
    other = make_corp(session)
    now = utcnow()
    old_ms = int((now - dt.timedelta(days=40)).timestamp() * 1000)
    new_ms = int((now - dt.timedelta(days=5)).timestamp() * 1000)
    for _ in range(5):
        _message(session, corp, "你好", when=old_ms)
        _message(session, other, "你好", when=old_ms)
    _message(session, corp, "你好", when=new_ms)
    open_alert = _message(session, corp, "稳赚不赔", sender="zhangsan", when=old_ms)  # an open alert: kept
    privacy.set_policy(session, corp_id=corp.id, actor="合规", record_class="archive_message", keep_days=30,
                       legal_basis="测试")
    audit_before = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.chain_id == corp.id))
    run, more = privacy.purge_chunk(session, corp_id=corp.id, chunk=2)
    assert more and run.counts["archive_message"] == 2 and run.status == "running"
    chunks = 1
    while more:
        run, more = privacy.purge_chunk(session, corp_id=corp.id, run=run, chunk=2)
        chunks += 1
    assert run.status == "done" and run.counts["archive_message"] == 5 and run.chunks == chunks == 3
    left = session.scalars(select(ArchiveMessage.id).where(ArchiveMessage.corp_id == corp.id)).all()
    assert len(left) == 2 and open_alert.id in left
    assert session.scalar(select(func.count()).select_from(ArchiveMessage).where(
        ArchiveMessage.corp_id == other.id)) == 5
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.chain_id == corp.id)) == audit_before  # nothing of the audit log went
    with pytest.raises(ValueError):
        privacy.register_purger("audit_log", lambda session, **kw: 0)


def test_purge_job_continues_in_a_new_job_while_rows_remain(session, corp, monkeypatch):
    old_ms = int((utcnow() - dt.timedelta(days=4000)).timestamp() * 1000)
    for _ in range(3):
        _message(session, corp, "你好", when=old_ms)
    monkeypatch.setattr(privacy, "PURGE_CHUNK", 2)
    privacy_jobs.purge(session, {}, _ctx(corp.id, "compliance.retention_purge"))
    run = session.scalar(select(PurgeRun).where(PurgeRun.corp_id == corp.id))
    follow = session.scalar(select(Job).where(Job.corp_id == corp.id, Job.name == "compliance.retention_purge"))
    assert run.status == "running" and follow.payload == {"run_id": run.id}
    privacy_jobs.purge(session, follow.payload, _ctx(corp.id, "compliance.retention_purge"))
    assert run.status == "done" and run.counts["archive_message"] == 3
    assert session.scalar(select(AuditEntry.detail).where(AuditEntry.chain_id == corp.id,
                                                          AuditEntry.action == "retention.purged"))["counts"]
