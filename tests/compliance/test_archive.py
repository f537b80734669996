"""Chat-archive monitoring: records read from the archive tool's shape, stored once and encrypted,
advisors' messages scanned into alerts, alerts worked, false positives fed back to the dictionary."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select, text

from siyu.compliance import archive, dictionary
from siyu.compliance.models import ArchiveAlert, ArchiveFalsePositive, ArchiveMessage
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy.models import AuditEntry
from tenancy.factories import make_corp, make_staff, principal_of

MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def rec(text: str = "您好", *, sender: str = "zhangsan", to: str = "wmCustomer0001", msgtype: str = "text",
        msgid: str | None = None, ms: int = MS, **content) -> dict:
    body = {"msgid": msgid or uuid.uuid4().hex, "action": "send", "from": sender, "tolist": [to], "roomid": "",
            "msgtime": ms, "msgtype": msgtype}
    if msgtype == "text":
        body["text"] = {"content": text}
    body.update(content)
    return body


def ingest(session, corp_id, *records, source="file"):
    return archive.ingest_records(session, corp_id=corp_id, records=[archive.parse_record(r) for r in records],
                                  source=source)


def alerts_of(session, corp_id):
    return session.scalars(select(ArchiveAlert).where(ArchiveAlert.corp_id == corp_id)
                           .order_by(ArchiveAlert.id)).all()


@pytest.fixture
def officer(session, corp):
    return principal_of(make_staff(session, corp, roles=("compliance",)))


def test_an_advisor_promising_principal_and_interest_raises_a_block_alert(session, corp):
    make_staff(session, corp, wecom_userid="zhangsan")
    result = ingest(session, corp.id, rec("这款产品保本保息，年化8%，放心买"))
    assert result.stored == 1 and result.alerts == 1
    (alert,) = alerts_of(session, corp.id)
    assert alert.severity == "block" and "promise" in alert.categories
    assert alert.staff_userid == "zhangsan" and alert.customer_userid == "wmCustomer0001"
    promise = next(f for f in alert.findings if f["phrase"] == "保本保息")
    message = session.get(ArchiveMessage, alert.message_id)
    assert message.text[promise["start"]:promise["end"]] == "保本保息"
    assert "保本保息" in alert.excerpt and alert.status == "open"
    # Encrypted at rest: the stored column is not the text.
    raw = session.execute(text("SELECT text FROM archive_message WHERE id = :id"), {"id": message.id}).scalar()
    assert "保本" not in raw
    raw_excerpt = session.execute(text("SELECT excerpt FROM archive_alert WHERE id = :id"), {"id": alert.id}).scalar()
    assert "保本" not in raw_excerpt


def test_a_customers_own_words_raise_nothing_but_a_red_packet_does(session, corp):
    make_staff(session, corp, wecom_userid="zhangsan")
    result = ingest(
        session, corp.id,
        rec("你们这个保本保息吗？加我微信 abc1234567", sender="wmCustomer0001", to="zhangsan"),
        rec(sender="wmCustomer0001", to="zhangsan", msgtype="redpacket",
            redpacket={"type": 1, "wish": "谢谢经理", "totalcnt": 1, "totalamount": 2000}),
        rec(msgtype="transfer", transfer={"amount": 50000, "memo": "返现"}),
        rec("好的，明天见"),
    )
    assert result.stored == 4 and result.alerts == 2
    alerts = alerts_of(session, corp.id)
    # The advisor's transfer memo is scanned too ("返现" is an incentive phrase); the customer's wish is not.
    assert [a.categories for a in alerts] == [["red_packet"], ["incentive", "red_packet"]]
    by_customer = session.get(ArchiveMessage, alerts[0].message_id)
    assert by_customer.sender == "wmCustomer0001" and not by_customer.sender_is_staff and by_customer.amount == 2000
    assert alerts[0].staff_userid == "zhangsan" and alerts[0].customer_userid == "wmCustomer0001"
    assert {a.severity for a in alerts} == {"review"}


def test_detectors_and_links_in_advisors_messages(session, corp):
    ingest(session, corp.id, rec("加我私人微信 lisi_8888 聊"),
           rec(msgtype="link", link={"title": "看看", "description": "", "link_url": "https://evil.example.cn/a"}),
           rec(msgtype="image", image={"md5sum": "x", "filesize": 1, "sdkfileid": "y"}))
    cats = [a.categories for a in alerts_of(session, corp.id)]
    assert "wechat_id" in cats[0] and cats[1] == ["external_link"] and cats[2] == ["qr_code"]


def test_each_message_is_stored_once(session, corp):
    r = rec("你好", msgid="dup-1")
    first = ingest(session, corp.id, r, r)
    again = ingest(session, corp.id, r)
    assert (first.stored, first.duplicates, again.stored, again.duplicates) == (1, 1, 0, 1)
    # The same msgid in another corp is another message.
    other = make_corp(session)
    assert ingest(session, other.id, r).stored == 1
    recall = dict(rec(msgid="r-1"), action="recall")
    assert ingest(session, corp.id, recall).skipped == 1


@pytest.mark.parametrize(("record", "field"), [
    ({"from": "a"}, "msgid"),
    ({**rec(), "msgtime": "yesterday"}, "msgtime"),
    ({**rec(), "msgtime": 1_700_000_000}, "msgtime"),  # seconds, not milliseconds
    ({**rec(), "tolist": "wm1"}, "tolist"),
    ({**rec(), "text": None}, "text"),
    ({**rec(), "text": {"content": 5}}, "text.content"),
    ({**rec(), "from": None}, "from"),
    (rec(msgtype="link", link={"title": "x"}), "link.link_url"),
    (rec(msgtype="redpacket", redpacket={"totalamount": "many"}), "redpacket.totalamount"),
    ([1, 2], "record"),
])
def test_bad_records_name_the_field(record, field):
    with pytest.raises(InvalidInput) as err:
        archive.parse_record(record)
    assert err.value.field == field


def test_import_file_reports_bad_lines_and_stores_the_rest(session, corp):
    lines = [
        json.dumps(rec("保本保息", msgid="f-1"), ensure_ascii=False),
        "{not json",
        json.dumps({"seq": 7, "msgid": "f-2", "publickey_ver": 1, "message": rec("你好", msgid="f-2")}),
        json.dumps({**rec(msgid="f-3"), "msgtime": "x"}),
        "",
        b"\xff\xfe",
        json.dumps(rec("保本保息", msgid="f-1"), ensure_ascii=False),
    ]
    result = archive.import_lines(session, corp_id=corp.id, lines=lines)
    assert result.stored == 2 and result.duplicates == 1 and result.alerts == 1
    assert [(e["line"], e["field"]) for e in result.errors] == [(2, None), (4, "msgtime"), (6, None)]
    stored = session.scalars(select(ArchiveMessage.msgid).where(ArchiveMessage.corp_id == corp.id)).all()
    assert sorted(stored) == ["f-1", "f-2"]
    assert session.scalar(select(ArchiveMessage.seq).where(ArchiveMessage.msgid == "f-2")) == 7


def test_working_an_alert(session, corp, officer):
    ingest(session, corp.id, rec("稳赚不赔"))
    (alert,) = alerts_of(session, corp.id)
    with pytest.raises(InvalidInput) as bad:
        archive.assign_alert(session, corp_id=corp.id, actor=officer,
                             alert_id=alert.id, assignee_staff_id=make_staff(session, corp).id)  # an advisor
    assert bad.value.field == "assignee"
    archive.assign_alert(session, corp_id=corp.id, actor=officer, alert_id=alert.id,
                         assignee_staff_id=officer.staff_id)
    with pytest.raises(InvalidInput) as no_note:
        archive.resolve_alert(session, corp_id=corp.id, actor=officer, alert_id=alert.id, note="  ")
    assert no_note.value.field == "note"
    done = archive.resolve_alert(session, corp_id=corp.id, actor=officer, alert_id=alert.id,
                                 note="已约谈客户经理并更正")
    assert done.status == "resolved" and done.closed_by == officer.label and done.closed_at
    with pytest.raises(Conflict):
        archive.mark_false_positive(session, corp_id=corp.id, actor=officer, alert_id=alert.id)
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == corp.id,
                                                              AuditEntry.action.like("archive_alert.%"))).all()
    assert actions == ["archive_alert.assigned", "archive_alert.resolved"]
    # Another corp's officer does not find it.
    other = make_corp(session)
    with pytest.raises(NotFound):
        archive.get_alert(session, corp_id=other.id, alert_id=alert.id)


def test_false_positives_count_against_the_entry_and_can_retire_it(session, corp, officer):
    own = dictionary.add_entry(session, corp_id=corp.id, actor=officer, category="firm", phrase="内部价",
                               severity="review", rule="本机构自定")
    ingest(session, corp.id, rec("这是内部价格表"), rec("内部价已更新"), rec("保本保息"))
    a1, a2, a3 = alerts_of(session, corp.id)
    assert a1.findings[0]["entry_id"] == own.id
    archive.mark_false_positive(session, corp_id=corp.id, actor=officer, alert_id=a1.id, note="正常业务用语")
    archive.mark_false_positive(session, corp_id=corp.id, actor=officer, alert_id=a2.id)
    archive.mark_false_positive(session, corp_id=corp.id, actor=officer, alert_id=a3.id)
    counts = {c.phrase: c for c in archive.false_positive_counts(session, corp_id=corp.id)}
    assert counts["内部价"].count == 2 and counts["内部价"].own_entry and counts["内部价"].in_force
    assert counts["保本保息"].count == 1 and not counts["保本保息"].own_entry
    assert session.scalar(select(ArchiveFalsePositive.entry_id).where(ArchiveFalsePositive.alert_id == a1.id)) \
        == own.id

    # The corp's own entry is deactivated; an installation phrase is allowed for this corp only.
    archive.retire_phrase(session, corp_id=corp.id, actor=officer, phrase="内部价")
    session.refresh(own)
    assert own.is_active is False
    archive.retire_phrase(session, corp_id=corp.id, actor=officer, phrase="保本保息")
    counts = {c.phrase: c for c in archive.false_positive_counts(session, corp_id=corp.id)}
    assert not counts["内部价"].in_force and not counts["保本保息"].in_force
    with pytest.raises(Conflict):
        archive.retire_phrase(session, corp_id=corp.id, actor=officer, phrase="内部价")
    with pytest.raises(NotFound):
        archive.retire_phrase(session, corp_id=corp.id, actor=officer, phrase="从未误报")
    assert ingest(session, corp.id, rec("内部价，保本保息")).alerts == 0
    # Other corps keep the installation's phrase.
    other = make_corp(session)
    assert ingest(session, other.id, rec("保本保息")).alerts == 1
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == corp.id)).all()
    assert actions.count("archive_alert.phrase_retired") == 2 and "wording_entry.deactivated" in actions


def test_filters_and_counts(session, corp):
    make_staff(session, corp, wecom_userid="lisi")
    ingest(session, corp.id, rec("保本保息"), rec("稳赚不赔", sender="lisi", ms=MS + 86_400_000),
           rec("加我微信 abc1234567", ms=MS + 2 * 86_400_000))
    all_alerts = archive.list_alerts(session, corp_id=corp.id)
    assert len(all_alerts) == 3
    f = archive.check_filter(advisor="lisi")
    assert [a.staff_userid for a in archive.list_alerts(session, corp_id=corp.id, filters=f)] == ["lisi"]
    import datetime as dt

    day = dt.date(2026, 1, 2)  # China time: MS + 1 day is 2026-01-02 08:00
    assert len(archive.list_alerts(session, corp_id=corp.id, filters=archive.check_filter(since=day, until=day))) == 1
    counts = archive.counts_by_category(session, corp_id=corp.id)
    assert counts["promise"] == 2 and counts["off_platform"] == 1
    with pytest.raises(InvalidInput) as bad:
        archive.check_filter(status="closed")
    assert bad.value.field == "status"


def test_consent_is_recorded_once(session, corp):
    first = archive.record_consent(session, corp_id=corp.id, external_userid="wmCustomer0001", staff_userid="zs")
    again = archive.record_consent(session, corp_id=corp.id, external_userid="wmCustomer0001", staff_userid="zs")
    assert first.id == again.id
    assert set(archive.consents(session, corp_id=corp.id, external_userids=["wmCustomer0001", "wmX"])) == \
        {"wmCustomer0001"}
    assert archive.consents(session, corp_id=make_corp(session).id, external_userids=["wmCustomer0001"]) == {}
