"""Red-line moderation in groups: members' messages from the chat archive are scanned with the corp's
red-line list through the compliance matcher and its detectors; one hit per message (msgid), with the
evidence and the suggested action; repeat offenders across groups; the list edited, imported and
exported; who sees and handles a hit."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from sqlalchemy import func, select

from communities.factories import T0, chat_id, wecom_chat
from customers.factories import external_id, make_customer
from siyu.communities import moderation, sync
from siyu.communities.models import ModerationHit, ModerationTerm
from siyu.compliance import archive
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.jobs.events import subscribe
from siyu.jobs.models import Job
from tenancy.factories import make_corp, make_staff, principal_of


@subscribe("group.red_line", name="tests.communities.red_line")
def _red_line(session, payload, job):  # so that publishing enqueues a job the test can read
    pass


@pytest.fixture
def org(session):
    corp = make_corp(session)
    staff = {
        "zhang": make_staff(session, corp, name="张顾问", wecom_userid="zhang"),
        "li": make_staff(session, corp, name="李顾问", wecom_userid="li"),
        "ops": make_staff(session, corp, name="运营", roles=["operations"]),
        "compliance": make_staff(session, corp, name="合规", roles=["compliance"]),
        "auditor": make_staff(session, corp, name="稽核", roles=["auditor"]),
    }
    return corp, staff


def _group_with_outsider(session, corp, *, owner="zhang", name="稳健理财福利群", outsider=None, joined=None):
    he = make_customer(session, corp.id, userid=owner, name="何静")
    outsider = outsider or external_id()  # nobody's contact: came in through the group QR
    cid = chat_id()
    members = [{"userid": owner, "type": 1, "join_scene": 1},
               {"userid": he.external_userid, "join_scene": 2, "invitor": owner},
               {"userid": outsider, "name": "推广小王", "join_scene": 3, "join_time": joined or T0}]
    group, _ = sync.apply_group_chat(session, corp_id=corp.id, at=T0,
                                     detail=wecom_chat(cid, name=name, owner=owner, members=members))
    return group, he.external_userid, outsider


def _say(group, sender, text, *, at=None, msgtype="text", msgid=None):
    return archive.ArchiveRecord(msgid=msgid or uuid.uuid4().hex, sender=sender, tolist=(), roomid=group.chat_id,
                                 msgtype=msgtype, sent_at=at or T0 + dt.timedelta(hours=2), text=text)


def _ingest_and_moderate(session, corp_id, records):
    """What the worker does: the archive stores, publishes the range; the subscriber moderates it."""
    result = archive.ingest_records(session, corp_id=corp_id, records=records, source="feed")
    jobs = list(session.scalars(select(Job).where(
        Job.corp_id == corp_id, Job.name == "event:chat.group_messages:communities.moderate_group_messages",
        Job.state == "queued")))
    hits = []
    for job in jobs:
        hits += moderation.moderate_range(session, corp_id=corp_id, **job.payload)
        job.state = "done"
    session.flush()
    return result, hits


def test_an_outsiders_ad_with_a_phone_number_is_a_serious_hit_for_the_owner(session, org):
    corp, staff = org
    group, customer, outsider = _group_with_outsider(session, corp)
    ad = "各位老板好，内部渠道高收益理财，私聊我，电话 138 0013 8000，名额有限"
    _, hits = _ingest_and_moderate(session, corp.id, [
        _say(group, outsider, ad, msgid="m-ad"),
        _say(group, customer, "请问周五活动几点开始？"),
        _say(group, "zhang", "各位好，我的电话 13900139000，有问题随时联系"),  # staff: wording review's job
    ])
    assert len(hits) == 1
    hit = hits[0]
    assert (hit.msgid, hit.member_id, hit.group_id, hit.owner_staff_id) == ("m-ad", outsider, group.id,
                                                                           staff["zhang"].id)
    assert {"outsider_ad", "phone"} <= set(hit.categories)
    assert hit.severity == "block" and hit.suggested_action == "remove", "a contact with an ad: an outsider's ad"
    phone = next(f for f in hit.findings if f["category"] == "phone")
    assert ad[phone["start"]:phone["end"]] == "138 0013 8000"
    assert "138 0013 8000" in hit.excerpt

    rows = moderation.list_hits(session, principal=principal_of(staff["zhang"]))
    assert [(r.group_name, r.member_name, r.severity) for r in rows] == [("稳健理财福利群", "推***", "block")]
    assert rows[0].may_handle
    assert moderation.list_hits(session, principal=principal_of(staff["li"])) == [], "not li's group"
    assert moderation.open_count_for_owner(session, principal=principal_of(staff["zhang"])) == 1
    (event,) = session.scalars(select(Job).where(Job.corp_id == corp.id,
                                                 Job.name == "event:group.red_line:tests.communities.red_line"))
    assert event.payload["hit_id"] == hit.id and event.payload["suggested_action"] == "remove"
    assert "text" not in event.payload and "excerpt" not in event.payload


def test_a_redelivered_message_changes_nothing(session, org):
    corp, _ = org
    group, _, outsider = _group_with_outsider(session, corp)
    record = _say(group, outsider, "兼职日结，加微信 abc_12345 了解", msgid="m-dup")
    _, first = _ingest_and_moderate(session, corp.id, [record])
    assert len(first) == 1
    result, again = _ingest_and_moderate(session, corp.id, [record, record])
    assert (result.stored, result.duplicates, again) == (0, 2, [])
    assert moderation.moderate_messages(session, corp_id=corp.id, messages=archive.group_messages(
        session, corp_id=corp.id, first_id=1, last_id=2**62)) == [], "a re-run job judges nothing twice"
    assert session.scalar(select(func.count()).select_from(ModerationHit).where(
        ModerationHit.corp_id == corp.id)) == 1


def test_warnings_links_cards_and_images(session, org):
    corp, staff = org
    later = T0 + dt.timedelta(days=10)
    group, customer, outsider = _group_with_outsider(session, corp, joined=later - dt.timedelta(hours=1))
    moderation.add_term(session, principal=principal_of(staff["compliance"]), category="allowed_link",
                        phrase="https://www.bank.example.cn/")
    texts = {
        "neg": _say(group, customer, "提醒大家谨防刷单诈骗，不要相信高息揽储", at=later),
        "own": _say(group, customer, "行里的活动页 https://www.bank.example.cn/act 大家看看", at=later),
        "out": _say(group, customer, "这个不错 https://t.cn/xyz123", at=later),
        "card": _say(group, outsider, "[名片] 某某投资 wangzong", msgtype="card", at=later),
        "img_new": _say(group, outsider, "[图片]", msgtype="image", at=later),
        "img_old": _say(group, customer, "[图片]", msgtype="image", at=later),
    }
    _, hits = _ingest_and_moderate(session, corp.id, list(texts.values()))
    by = {h.msgid: h for h in hits}
    assert texts["neg"].msgid not in by, "a negated phrase is a warning to others, not a red line"
    assert texts["own"].msgid not in by, "the firm's own domain is allowed"
    assert (by[texts["out"].msgid].categories, by[texts["out"].msgid].suggested_action) == (["external_link"], "warn")
    assert by[texts["card"].msgid].categories == ["contact_card"]
    assert by[texts["img_new"].msgid].categories == ["qr_code"], "an image from a member who just joined"
    assert texts["img_old"].msgid not in by, "an image from a member of long standing"
    assert by[texts["img_new"].msgid].suggested_action == "remove", "the outsider's second hit in this group"


def test_a_repeat_offender_is_flagged_across_groups(session, org):
    corp, staff = org
    outsider = external_id()
    g1, _, _ = _group_with_outsider(session, corp, outsider=outsider, name="新手课堂1期")
    g2, _, _ = _group_with_outsider(session, corp, outsider=outsider, name="新手课堂2期", owner="li")
    _, h1 = _ingest_and_moderate(session, corp.id, [_say(g1, outsider, "免费领取资料，私聊我")])
    _, h2 = _ingest_and_moderate(session, corp.id, [_say(g2, outsider, "免费领取资料，私聊我")])
    assert (h1[0].offender_groups, h1[0].suggested_action) == (1, "warn")
    assert (h2[0].offender_groups, h2[0].suggested_action) == (2, "remove")
    offenders = moderation.repeat_offenders(session, principal=principal_of(staff["ops"]))
    assert [(o.hits, sorted(n for _, n in o.groups)) for o in offenders] == [(2, ["新手课堂1期", "新手课堂2期"])]
    assert moderation.repeat_offenders(session, principal=principal_of(staff["zhang"])) == [], \
        "an advisor sees only their own group's hit: no pattern across groups they cannot see"


def test_the_owner_handles_a_hit_and_a_removal_seen_by_the_sync_closes_it(session, org):
    corp, staff = org
    group, _, outsider = _group_with_outsider(session, corp)
    _, (hit,) = _ingest_and_moderate(session, corp.id, [_say(group, outsider, "代开发票，联系 13800138000")])
    with pytest.raises(NotFound):
        moderation.handle_hit(session, principal=principal_of(staff["li"]), hit_id=hit.id, status="warned")
    with pytest.raises(Forbidden):
        moderation.handle_hit(session, principal=principal_of(staff["auditor"]), hit_id=hit.id, status="warned")
    with pytest.raises(InvalidInput) as exc:
        moderation.handle_hit(session, principal=principal_of(staff["zhang"]), hit_id=hit.id, status="dismissed")
    assert exc.value.field == "note"
    moderation.handle_hit(session, principal=principal_of(staff["zhang"]), hit_id=hit.id, status="warned",
                          note="已在群里提醒")
    with pytest.raises(Conflict):
        moderation.handle_hit(session, principal=principal_of(staff["ops"]), hit_id=hit.id, status="removed")

    _, (second,) = _ingest_and_moderate(session, corp.id, [_say(group, outsider, "代开发票，私聊")])
    assert second.suggested_action == "remove"
    members = [{"userid": "zhang", "type": 1, "join_scene": 1}]
    sync.apply_group_chat(session, corp_id=corp.id, at=T0 + dt.timedelta(hours=5), quit_scene=1, left_ids=[outsider],
                          detail=wecom_chat(group.chat_id, name=group.name, owner="zhang", members=members))
    from customers.factories import job_context
    from siyu.communities.moderation_jobs import removed_offender

    payload = next(j.payload for j in session.scalars(select(Job).where(
        Job.corp_id == corp.id, Job.name == "event:group.left:communities.removed_offender"))
        if j.payload["external_userid"] == outsider)
    removed_offender(session, payload, job_context(corp.id))
    session.refresh(second)
    assert (second.status, second.handled_by) == ("removed", "WeCom (removed by the owner)")


def test_the_list_is_edited_by_category_and_a_change_is_used_at_once(session, org):
    corp, staff = org
    ops = principal_of(staff["ops"])
    group, customer, _ = _group_with_outsider(session, corp)
    _, hits = _ingest_and_moderate(session, corp.id, [_say(group, customer, "鑫盛财富的产品更好")])
    assert hits == []
    term = moderation.add_term(session, principal=ops, category="competitor", phrase="鑫盛财富", severity="review")
    with pytest.raises(Conflict):
        moderation.add_term(session, principal=ops, category="scam", phrase="鑫 盛 财 富")
    with pytest.raises(InvalidInput) as exc:
        moderation.add_term(session, principal=ops, category="politics", phrase="x")
    assert exc.value.field == "category"
    with pytest.raises(Forbidden):
        moderation.add_term(session, principal=principal_of(staff["zhang"]), category="scam", phrase="新骗局")
    _, hits = _ingest_and_moderate(session, corp.id, [_say(group, customer, "鑫盛财富的产品更好")])
    assert [h.categories for h in hits] == [["competitor"]]
    moderation.set_term_active(session, principal=ops, term_id=term.id, active=False)
    _, hits = _ingest_and_moderate(session, corp.id, [_say(group, customer, "鑫盛财富的产品更好")])
    assert hits == []


def test_import_is_all_or_nothing_and_export_reads_back(session, org, tmp_path):
    corp, staff = org
    ops = principal_of(staff["ops"])
    before = session.scalar(select(func.count()).select_from(ModerationTerm).where(ModerationTerm.corp_id == corp.id))
    bad = tmp_path / "bad.csv"
    bad.write_text("类别,词语,级别\ncompetitor,鑫盛财富,review\npolitics,某话题,block\nscam,,block\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as exc:
        moderation.import_terms(session, principal=ops, path=bad)
    assert "row 3, column 类别" in exc.value.message % exc.value.params
    assert "row 4, column 词语" in exc.value.message % exc.value.params
    count = session.scalar(select(func.count()).select_from(ModerationTerm).where(ModerationTerm.corp_id == corp.id))
    assert count == (before or len(moderation.DEFAULT_TERMS)), "nothing of a bad file is imported"

    good = tmp_path / "good.csv"
    good.write_text("category,phrase,severity,note\ncompetitor,鑫盛财富,review,本地同业\nscam,刷单,review,改为复核\n",
                    encoding="utf-8")
    assert moderation.import_terms(session, principal=ops, path=good) == {"added": 1, "changed": 1, "unchanged": 0}
    out = io.BytesIO()
    n = moderation.export_terms(session, principal=ops, fmt="csv", out=out)
    assert n == len(moderation.DEFAULT_TERMS) + 1
    text = out.getvalue().decode("utf-8-sig")
    assert "competitor,鑫盛财富,review,本地同业,yes" in text and "outsider_ad,刷单,review,改为复核,yes" not in text
    assert "scam,刷单,review,改为复核,yes" in text
    again = tmp_path / "again.csv"
    again.write_bytes(out.getvalue())
    assert moderation.import_terms(session, principal=ops, path=again)["added"] == 0


def test_card_and_mini_program_records_are_read_from_the_archive():
    card = archive.parse_record({"msgid": "c1", "action": "send", "from": "wmx", "tolist": [], "roomid": "wr1",
                                 "msgtime": 1_780_000_000_000, "msgtype": "card",
                                 "card": {"corpname": "某某投资", "userid": "wangzong"}})
    assert card.text == "[名片] 某某投资 wangzong"
    app = archive.parse_record({"msgid": "a1", "action": "send", "from": "wmx", "tolist": [], "roomid": "wr1",
                                "msgtime": 1_780_000_000_000, "msgtype": "weapp",
                                "weapp": {"title": "领红包", "description": "点我", "displayname": "福利社"}})
    assert app.text == "[小程序] 领红包\n点我\n福利社"
    with pytest.raises(InvalidInput) as exc:
        archive.parse_record({"msgid": "a2", "action": "send", "from": "wmx", "tolist": [], "roomid": "wr1",
                              "msgtime": 1_780_000_000_000, "msgtype": "card"})
    assert exc.value.field == "card"


def test_scan_texts_uses_the_compliance_matcher():
    from siyu.compliance.matcher import DictEntry, Dictionary

    listing = moderation.CompiledList(Dictionary([DictEntry("赌球", "forbidden_topic", "block", "r")], version="t"), ())
    got = moderation.scan_texts(["今晚一起赌 球", "wx号：abc_123456", "保本吗"], ["text"] * 3, listing=listing)
    assert [[f.category for f in fs] for fs in got] == [["forbidden_topic"], ["wechat_id"], []]
    assert moderation.severity_of(got[0]) == "block" and moderation.severity_of(got[1]) == "review"
