"""The emulator against WeCom's documented behaviour (issue 12, "WeCom fidelity"): mass messages
(sender, attachments, chat_id_list, tag_filter, the monthly allowance), the read endpoints'
documented leniencies, contact-way membership rules and the callbacks API operations never send."""

from __future__ import annotations

import pytest

from .test_emulator import Raw


@pytest.fixture
def raw(corp):
    r = Raw(corp)
    yield r
    r.http.close()


def _send(raw, **body):
    return raw.post("externalcontact/add_msg_template", {"text": {"content": "本周理财早报"}, **body})


def _results(raw, msgid, userid):
    return raw.post("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": userid})["send_list"]


def test_without_a_sender_the_task_goes_to_the_advisor_who_last_chatted(corp, raw):
    ext = corp.add_contact("zhangsan")["external_userid"]
    corp.add_contact("lisi", external_userid=ext)
    corp.post("/messages", {"from": "zhangsan", "to": [ext], "text": "早上好"}, expect=201)
    msg = _send(raw, external_userid=[ext])
    assert [r["external_userid"] for r in _results(raw, msg["msgid"], "zhangsan")] == [ext]
    assert _results(raw, msg["msgid"], "lisi") == []
    corp.post("/messages", {"from": ext, "to": ["lisi"], "text": "请问基金怎么买"}, expect=201)
    later = _send(raw, external_userid=[ext])
    assert [r["external_userid"] for r in _results(raw, later["msgid"], "lisi")] == [ext]


def test_a_mass_message_waits_for_the_advisor_and_carries_at_most_nine_attachments(corp, raw):
    ext = corp.add_contact("zhangsan")["external_userid"]
    image = {"msgtype": "image", "image": {"media_id": "m1"}}
    assert _send(raw, sender="zhangsan", external_userid=[ext], attachments=[image] * 10)["errcode"] == 40058
    msg = _send(raw, sender="zhangsan", external_userid=[ext], attachments=[image] * 9)
    assert msg["errcode"] == 0
    assert [r["status"] for r in _results(raw, msg["msgid"], "zhangsan")] == [0]  # not confirmed yet


def test_group_sends_need_a_sender_and_follow_chat_id_list(corp, raw):
    ext = corp.add_contact("zhangsan")["external_userid"]
    mine = [corp.post("/group_chats", {"owner": "zhangsan", "name": f"群{i}", "members": [ext]})["chat_id"]
            for i in range(2)]
    theirs = corp.post("/group_chats", {"owner": "lisi", "name": "李四的群", "members": [ext]})["chat_id"]
    assert _send(raw, chat_type="group", chat_id_list=mine)["errcode"] == 40058
    msg = _send(raw, chat_type="group", sender="zhangsan", chat_id_list=[mine[1], theirs])
    assert msg["fail_list"] == [theirs]
    assert [r["chat_id"] for r in _results(raw, msg["msgid"], "zhangsan")] == [mine[1]]


def test_tag_filter_narrows_the_customers_within_and_across_groups(corp, raw):
    tags = corp.tags
    a, b, c = (corp.add_contact("zhangsan")["external_userid"] for _ in range(3))
    for ext, add in ((a, ["C1", "新客"]), (b, ["C2"]), (c, ["C3", "新客"])):
        raw.post("externalcontact/mark_tag", {"userid": "zhangsan", "external_userid": ext,
                                              "add_tag": [tags[t] for t in add]})
    tag_filter = {"group_list": [{"tag_list": [tags["C1"], tags["C2"]]}, {"tag_list": [tags["新客"]]}]}
    msg = _send(raw, sender="zhangsan", tag_filter=tag_filter)
    assert [r["external_userid"] for r in _results(raw, msg["msgid"], "zhangsan")] == [a]
    bad = _send(raw, sender="zhangsan", tag_filter={"group_list": [{"tag_list": ["etnosuchtag"]}]})
    assert bad["errcode"] == 40068


def test_a_customer_receives_as_many_mass_messages_a_month_as_it_has_days(make_corp):
    # Confirmation switched on: the allowance, not the advisor's tap, is under test here.
    corp = make_corp(limits={"auto_confirm_mass_messages": True})
    raw = Raw(corp)
    ext = corp.add_contact("zhangsan")["external_userid"]
    statuses = [_results(raw, _send(raw, sender="zhangsan", external_userid=[ext])["msgid"], "zhangsan")[0]["status"]
                for _ in range(32)]
    days = statuses.count(1)
    assert 28 <= days <= 31 and statuses == [1] * days + [3] * (32 - days)
    raw.http.close()


def test_batch_get_by_user_clamps_a_large_limit(corp, raw):
    for _ in range(3):
        corp.add_contact("zhangsan")
    out = raw.post("externalcontact/batch/get_by_user", {"userid_list": ["zhangsan"], "limit": 1000})
    assert out["errcode"] == 0 and len(out["external_contact_list"]) == 3
    assert raw.post("externalcontact/batch/get_by_user", {"userid_list": ["zhangsan"], "limit": 0})["errcode"] == 40058


def test_get_corp_tag_list_filters_by_group_when_both_are_given(corp, raw):
    groups = {g["group_name"]: g for g in raw.post("externalcontact/get_corp_tag_list", {})["tag_group"]}
    risk, life = groups["风险等级"], groups["生命周期"]
    out = raw.post("externalcontact/get_corp_tag_list", {"tag_id": [risk["tag"][0]["id"]],
                                                         "group_id": [life["group_id"]]})
    assert [g["group_id"] for g in out["tag_group"]] == [life["group_id"]]
    assert len(out["tag_group"][0]["tag"]) == len(life["tag"])


def test_contact_way_membership_rules(corp, raw):
    base = {"scene": 2}
    assert raw.post("externalcontact/add_contact_way", {**base, "type": 1, "user": ["zhangsan"],
                                                        "party": [2]})["errcode"] == 40058
    assert raw.post("externalcontact/add_contact_way", {**base, "type": 2, "party": [2]})["errcode"] == 0
    too_many = [f"u{i}" for i in range(101)]
    out = raw.post("externalcontact/add_contact_way", {**base, "type": 2, "user": too_many})
    assert out["errcode"] == 40058 and "100" in out["errmsg"]


def test_operations_made_through_the_api_send_no_callbacks(corp, raw, emulator):
    ext = corp.add_contact("zhangsan")["external_userid"]
    chat = corp.post("/group_chats", {"owner": "zhangsan", "name": "理财学习群", "members": [ext]})["chat_id"]
    before = len(corp.get("/callbacks"))
    out = raw.post("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat], "new_owner": "lisi"})
    assert out["errcode"] == 0 and out["failed_chat_list"] == []
    raw.post("externalcontact/mark_tag", {"userid": "zhangsan", "external_userid": ext,
                                          "add_tag": [corp.tags["C1"]]})
    assert len(corp.get("/callbacks")) == before
