"""加入群聊 (群活码) over the emulator with the real client: WeCom's rules for add / get / update /
del_join_way, group capacity (200 members, 500 for a certified corp), and a scan that joins the
first group of the way that is not full, with the way's state, or a new group when all are."""

from __future__ import annotations

import pytest

from siyu.wecom.errors import InvalidChatId, InvalidRequest


def _group(corp, name: str, members: list[str] = ()) -> str:
    body = {"owner": "zhangsan", "name": name, "members": list(members)}
    return corp.post("/group_chats", body, expect=201)["chat_id"]


def _customers(corp, n: int) -> list[str]:
    return [corp.post("/customers", {"name": f"客户{i}"}, expect=201)["external_userid"] for i in range(n)]


def test_add_get_update_and_delete_with_wecoms_rules(corp, client):
    chats = [_group(corp, f"新手课堂{i}期") for i in range(6)]
    config_id = client.add_join_way(scene=2, chat_ids=chats[:2], state="set-7-way", remark="新手课堂群活码",
                                    auto_create_room=True, room_base_name="新手课堂", room_base_id=3)
    way = client.get_join_way(config_id)
    assert (way.scene, way.chat_id_list, way.state, way.auto_create_room, way.room_base_name, way.room_base_id) == (
        2, chats[:2], "set-7-way", 1, "新手课堂", 3)
    assert way.qr_code and way.qr_code.startswith("https://")
    client.update_join_way(config_id=config_id, scene=2, chat_ids=chats[2:5], state="set-7-way")
    assert client.get_join_way(config_id).chat_id_list == chats[2:5]

    with pytest.raises(ValueError, match="chat_ids"):
        client.add_join_way(scene=2, chat_ids=chats)  # six groups: the client refuses before WeCom does
    with pytest.raises(ValueError, match="state"):
        client.add_join_way(scene=2, chat_ids=chats[:1], state="x" * 31)
    with pytest.raises(InvalidChatId):
        client.add_join_way(scene=2, chat_ids=["wrnosuchgroup000"])
    client.del_join_way(config_id)
    with pytest.raises(InvalidRequest):
        client.get_join_way(config_id)


def test_the_emulator_refuses_what_wecom_refuses(corp, client):
    chats = [_group(corp, f"群{i}") for i in range(6)]
    token = client.access_token()
    http = corp.emulator.admin

    def call(body):
        return http.post(corp.emulator.base_url + "/cgi-bin/externalcontact/groupchat/add_join_way",
                         params={"access_token": token}, json=body).json()

    assert call({"scene": 3, "chat_id_list": chats[:1]})["errcode"] == 40058
    assert call({"scene": 2, "chat_id_list": chats})["errcode"] == 40058
    assert call({"scene": 2, "chat_id_list": []})["errcode"] == 40058
    assert call({"scene": 2, "chat_id_list": chats[:1], "state": "s" * 31})["errcode"] == 40058
    assert call({"scene": 2, "chat_id_list": chats[:1], "room_base_name": "名" * 41})["errcode"] == 40058
    long_remark = call({"scene": 2, "chat_id_list": chats[:1], "remark": "备" * 40})
    assert long_remark["errcode"] == 0, "a remark over 30 characters is cut, not refused"
    assert len(client.get_join_way(long_remark["config_id"]).remark) == 30


def test_a_scan_fills_the_first_group_that_has_room_then_opens_a_new_one(corp, client):
    first, second = _group(corp, "福利1群"), _group(corp, "福利2群")
    config_id = client.add_join_way(scene=2, chat_ids=[first, second], state="benefit-way", auto_create_room=True,
                                    room_base_name="福利", room_base_id=3)
    people = _customers(corp, 200 + 200 + 2)
    landed = [corp.post(f"/join_ways/{config_id}/scan", {"member_id": p})["chat_id"] for p in people]
    # 199 customers fill the first group (its owner is the 200th member), 199 the second, then a new one
    assert landed.count(first) == 199 and landed.count(second) == 199
    third = client.get_join_way(config_id).chat_id_list[2]
    assert landed[-4:] == [third] * 4
    chat = client.get_group_chat(third)
    assert chat.name == "福利3" and chat.owner == "zhangsan"
    assert {m.state for m in chat.member_list if m.type == 2} == {"benefit-way"}
    full = client.get_group_chat(first)
    assert len(full.member_list) == 200
    refused = corp.post(f"/group_chats/{first}/join", {"member_id": _customers(corp, 1)[0]}, expect=409)
    assert "full" in refused["detail"]


def test_a_certified_corps_groups_hold_500(make_corp, make_client):
    corp = make_corp(limits={"certified": True})
    chat = _group(corp, "高净值群")
    for p in _customers(corp, 300):
        corp.post(f"/group_chats/{chat}/join", {"member_id": p})
    assert len(make_client(corp).get_group_chat(chat).member_list) == 301
