"""The WeCom surface SOP relies on, client against emulator: group mass messages to a chat_id_list,
get_groupmsg_list_v2 and get_groupmsg_task paged by cursor, the task unsent until the owner confirms,
and application messages (message/send) with WeCom's answers to bad input."""

from __future__ import annotations

import time

import pytest

from siyu.wecom.errors import WeComError
from wecom.conftest import client, corp, emulator, make_client, make_corp  # noqa: F401 - fixtures


def _groups(emulator, corp, owner, n):  # noqa: F811
    return [emulator.post(f"/corps/{corp.corp_id}/group_chats", {"owner": owner, "name": f"群{i}"}, expect=201)
            ["chat_id"] for i in range(n)]


def test_group_mass_messages_wait_for_their_owner_and_page_by_cursor(emulator, corp, client):  # noqa: F811
    chats = _groups(emulator, corp, "zhangsan", 3)
    start = int(time.time()) - 5
    made = [client.add_msg_template(chat_type="group", sender="zhangsan", chat_ids=chats[:2], text=f"第{i}条")
            for i in range(3)]
    listed = list(client.iter_groupmsg_list(chat_type="group", start_time=start, end_time=start + 600,
                                            creator="zhangsan", limit=2))
    assert [m.msgid for m in listed] == [r.msgid for r in made], "three messages over two pages"
    assert [m.content for m in listed] == ["第0条", "第1条", "第2条"]
    tasks = list(client.iter_groupmsg_task(msgid=made[0].msgid))
    assert [(t.userid, t.status) for t in tasks] == [("zhangsan", 0)], "strict: not sent before the owner confirms"
    assert emulator.get(f"/corps/{corp.corp_id}/mass_messages/pending?userid=zhangsan")[0]["msgid"] == made[0].msgid
    emulator.post(f"/corps/{corp.corp_id}/mass_messages/{made[0].msgid}/confirm", {"userid": "zhangsan"})
    tasks = list(client.iter_groupmsg_task(msgid=made[0].msgid))
    assert tasks[0].status == 2 and tasks[0].send_time
    sent = list(client.iter_groupmsg_send_result(msgid=made[0].msgid, userid="zhangsan", limit=1))
    assert sorted(r.chat_id for r in sent) == sorted(chats[:2]) and {r.status for r in sent} == {1}
    other = client.add_msg_template(chat_type="group", sender="lisi", chat_ids=chats, text="不是群主")
    assert sorted(other.fail_list) == sorted(chats), "only the owner's groups are accepted"


def test_bad_input_is_answered_as_wecom_does(emulator, corp, client):  # noqa: F811
    with pytest.raises(WeComError) as err:
        list(client.iter_groupmsg_list(chat_type="group", start_time=0, end_time=40 * 86400))
    assert err.value.errcode == 40058, "more than a month apart"
    with pytest.raises(ValueError):
        client.add_msg_template(chat_type="group", text="x")  # a group mass message needs its sender


def test_application_messages_reach_active_staff(emulator, corp, client):  # noqa: F811
    agent = corp.summary["agent_id"]
    out = client.send_app_text(agentid=agent, touser=["zhangsan", "nobody"], content="【群SOP待发送】09:30 产品解读")
    assert out.invaliduser == "nobody"
    got = emulator.get(f"/corps/{corp.corp_id}/app_messages")
    assert [(m["touser"], m["content"]) for m in got] == [(["zhangsan"], "【群SOP待发送】09:30 产品解读")]
    for bad, code in (({"agentid": agent + 1}, 40056), ({"touser": ["nobody"]}, 81013)):
        with pytest.raises(WeComError) as err:
            client.send_app_text(**{"agentid": agent, "touser": ["zhangsan"], "content": "x", **bad})
        assert err.value.errcode == code
