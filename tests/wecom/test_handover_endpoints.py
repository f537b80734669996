"""The handover endpoints of the client against the emulator: transfer_result for in-service and
resigned transfers (24 h settle, refusal, limit), and group handover (resigned and serving owners)."""

from __future__ import annotations

import pytest

from siyu.wecom.errors import WeComError
from siyu.wecom.events import parse_event

DAY = 24 * 3600


def test_in_service_transfer_result_moves_from_waiting_to_done_or_refused(corp, client, emulator):
    exts = [corp.add_contact("zhangsan")["external_userid"] for _ in range(3)]
    client.transfer_customer(handover_userid="zhangsan", takeover_userid="lisi", external_userids=exts,
                             transfer_success_msg="您好，李四将继续为您服务")
    waiting = client.transfer_result(handover_userid="zhangsan", takeover_userid="lisi")
    assert sorted((s.external_userid, s.status) for s in waiting) == sorted((e, 2) for e in exts)
    assert all(s.takeover_time > 0 for s in waiting)
    corp.post("/transfers/refuse", {"external_userid": exts[0]})
    emulator.post("/clock/advance", {"seconds": DAY + 1})
    done = {s.external_userid: s.status for s in client.transfer_result(handover_userid="zhangsan",
                                                                           takeover_userid="lisi")}
    assert done == {exts[0]: 3, exts[1]: 1, exts[2]: 1}
    follows = {(f["userid"], f["external_userid"]) for f in corp.get("/follows")}
    assert ("lisi", exts[1]) in follows and ("zhangsan", exts[1]) not in follows
    assert ("zhangsan", exts[0]) in follows
    # The resigned query knows nothing of in-service transfers.
    assert client.resigned_transfer_result(handover_userid="zhangsan", takeover_userid="lisi") == []


def test_resigned_transfer_result_reports_the_takeover_limit(make_corp, make_client, emulator):
    corp = make_corp(limits={"customers_per_staff": 2})
    client = make_client(corp)
    corp.add_contact("lisi")  # lisi's first customer: room for one more
    first, second = (corp.add_contact("zhangsan")["external_userid"] for _ in range(2))
    corp.post("/staff/zhangsan/resign")
    results = client.resigned_transfer_customer(handover_userid="zhangsan", takeover_userid="lisi",
                                                external_userids=[first, second])
    assert [r.errcode for r in results] == [0, 0]
    emulator.post("/clock/advance", {"seconds": DAY + 1})
    states = {s.external_userid: s.status for s in client.resigned_transfer_result(handover_userid="zhangsan",
                                                                                    takeover_userid="lisi")}
    assert states == {first: 1, second: 4}  # 4: the take-over member reached their customer limit
    fails = [c for c in corp.get("/callbacks") if c["change_type"] == "transfer_fail"]
    assert [parse_event(c["plaintext"]).fields["FailReason"] for c in fails] == ["customer_limit_exceed"]
    with pytest.raises(ValueError):
        client.resigned_transfer_result(handover_userid="", takeover_userid="lisi")


def test_a_transfer_that_no_longer_applies_has_no_record_and_no_limit_reason(corp, client, emulator):
    ext = corp.add_contact("zhangsan")["external_userid"]
    corp.add_contact("lisi", external_userid=ext)  # lisi has this customer already
    corp.post("/staff/zhangsan/resign")
    client.resigned_transfer_customer(handover_userid="zhangsan", takeover_userid="lisi", external_userids=[ext])
    emulator.post("/clock/advance", {"seconds": DAY + 1})
    states = {s.external_userid: s.status for s in client.resigned_transfer_result(handover_userid="zhangsan",
                                                                                    takeover_userid="lisi")}
    assert states == {ext: 5}
    assert not [c for c in corp.get("/callbacks") if c["change_type"] == "transfer_fail"]


def test_a_completed_transfer_sends_delete_by_transfer_and_an_add_for_the_new_advisor(corp, client, emulator):
    ext = corp.add_contact("zhangsan")["external_userid"]
    client.transfer_customer(handover_userid="zhangsan", takeover_userid="lisi", external_userids=[ext])
    assert [c["change_type"] for c in corp.get("/callbacks")] == ["add_external_contact"]  # the API call: none
    emulator.post("/clock/advance", {"seconds": DAY + 1})
    client.transfer_result(handover_userid="zhangsan", takeover_userid="lisi")
    events = [parse_event(c["plaintext"]) for c in corp.get("/callbacks")][1:]
    assert [(e.change_type, e.fields["UserID"], e.fields.get("Source")) for e in events] == [
        ("del_external_contact", "zhangsan", "DELETE_BY_TRANSFER"), ("add_external_contact", "lisi", None)]
    assert all(e.fields["ExternalUserID"] == ext for e in events)
    assert "WelcomeCode" not in events[1].fields and "State" not in events[1].fields


def test_group_handover_of_a_resigned_and_of_a_serving_owner(corp, client):
    ext = corp.add_contact("zhangsan")["external_userid"]
    mine = corp.post("/group_chats", {"owner": "zhangsan", "name": "理财学习群", "members": [ext]})["chat_id"]
    served = corp.post("/group_chats", {"owner": "wangwu", "name": "基金交流群", "members": [ext]})["chat_id"]
    # zhangsan still serves: the resigned endpoint refuses the group, the in-service one moves it.
    (failed,) = client.transfer_group_chats(chat_ids=[mine], new_owner="lisi")
    assert (failed.chat_id, failed.errcode) == (mine, 90500)
    assert client.onjob_transfer_group_chats(chat_ids=[mine, "wrunknown"], new_owner="lisi") == [
        type(failed)(chat_id="wrunknown", errcode=90501, errmsg="chat is not external group chat")]
    owners = {c["chat_id"]: c["owner"] for c in corp.get("/group_chats")}
    assert owners[mine] == "lisi"
    # Twice in 90 days at most for a serving owner's group.
    assert client.onjob_transfer_group_chats(chat_ids=[mine], new_owner="zhangsan") == []
    (limited,) = client.onjob_transfer_group_chats(chat_ids=[mine], new_owner="lisi")
    assert limited.errcode == 40128
    corp.post("/staff/wangwu/resign")
    assert client.transfer_group_chats(chat_ids=[served], new_owner="lisi") == []
    assert {c["chat_id"]: c["owner"] for c in corp.get("/group_chats")}[served] == "lisi"
    with pytest.raises(ValueError):
        client.transfer_group_chats(chat_ids=["wr1"] * 101, new_owner="lisi")
    with pytest.raises(WeComError) as info:
        client.transfer_group_chats(chat_ids=[served], new_owner="wangwu")  # resigned members take nothing
    assert info.value.errcode == 60111
