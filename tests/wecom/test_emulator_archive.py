"""The emulator's chat archive (会话存档): messages either side sends, the decrypted feed by seq, and
customers' consent (msg_audit_approved)."""

from __future__ import annotations

from siyu.wecom.events import parse_event


def _customer(corp, userid: str = "zhangsan", *, agrees: bool = True) -> str:
    """A customer of `userid` who answered WeCom's archive-consent prompt with yes (WeCom archives
    nobody's conversations before that)."""
    wm = corp.add_contact(userid)["external_userid"]
    if agrees:
        corp.post("/archive/consent", {"external_userid": wm, "agree": True})
    return wm


def test_messages_appear_in_the_feed_in_the_archive_tool_shape(corp):
    wm = _customer(corp)
    sent = corp.post("/messages", {"from": "zhangsan", "to": [wm], "text": "您好，我是您的理财经理",
                                   "msgtime": 1_700_000_000_123}, expect=201)
    assert sent["archived"] is True and sent["seq"] == 1
    corp.post("/messages", {"from": wm, "to": ["zhangsan"], "text": "好的"}, expect=201)
    corp.post("/messages", {"from": "zhangsan", "to": [wm], "msgtype": "redpacket", "amount": 888}, expect=201)
    corp.post("/messages", {"from": wm, "to": ["zhangsan"], "msgtype": "transfer", "amount": 10000,
                            "text": "还你的"}, expect=201)
    corp.post("/messages", {"from": "zhangsan", "to": [wm], "msgtype": "link", "text": "看看这个",
                            "link_url": "https://example.com/x"}, expect=201)
    corp.post("/messages", {"from": "zhangsan", "to": [wm], "msgtype": "image"}, expect=201)

    feed = corp.get("/archive?seq=0&limit=100")
    assert feed["errcode"] == 0
    data = feed["chatdata"]
    assert [d["seq"] for d in data] == [1, 2, 3, 4, 5, 6]
    first = data[0]
    assert first["publickey_ver"] == 1 and first["msgid"] == first["message"]["msgid"] == sent["msgid"]
    msg = first["message"]
    assert msg["action"] == "send" and msg["from"] == "zhangsan" and msg["tolist"] == [wm]
    assert msg["roomid"] == "" and msg["msgtime"] == 1_700_000_000_123 and msg["msgtype"] == "text"
    assert msg["text"] == {"content": "您好，我是您的理财经理"}
    assert data[2]["message"]["redpacket"]["totalamount"] == 888
    assert data[3]["message"]["transfer"] == {"amount": 10000, "memo": "还你的"}
    assert data[4]["message"]["link"]["link_url"] == "https://example.com/x"
    assert "sdkfileid" in data[5]["message"]["image"]
    # Paging by seq.
    assert [d["seq"] for d in corp.get("/archive?seq=2&limit=2")["chatdata"]] == [3, 4]
    assert corp.get("/archive?seq=6")["chatdata"] == []


def test_group_chat_messages_go_to_every_member(corp):
    wm = _customer(corp)
    chat = corp.post("/group_chats", {"owner": "zhangsan", "name": "理财学习群", "members": [wm, "lisi"]}, expect=201)
    corp.post("/messages", {"from": wm, "roomid": chat["chat_id"], "text": "大家好"}, expect=201)
    msg = corp.get("/archive")["chatdata"][0]["message"]
    assert msg["roomid"] == chat["chat_id"] and sorted(msg["tolist"]) == sorted(["zhangsan", "lisi"])


def test_only_consenting_customers_are_archived(corp):
    wm = _customer(corp)
    refuses = _customer(corp, "lisi", agrees=False)
    not_asked = _customer(corp, "lisi", agrees=False)
    corp.post("/archive/consent", {"external_userid": refuses, "agree": False})
    out = corp.post("/messages", {"from": "lisi", "to": [refuses], "text": "不会出现"}, expect=201)
    assert out["archived"] is False and out["seq"] is None
    # A customer who has not answered the prompt has not consented either (WeCom's default).
    answer = corp.post("/messages", {"from": "lisi", "to": [not_asked], "text": "也不会"}, expect=201)
    assert answer["archived"] is False
    corp.post("/messages", {"from": "zhangsan", "to": [wm], "text": "会出现"}, expect=201)
    feed = corp.get("/archive")["chatdata"]
    assert [d["message"]["text"]["content"] for d in feed] == ["会出现"]
    assert [d["seq"] for d in feed] == [1]
    # Agreeing later archives what is sent from then on, and sends msg_audit_approved.
    corp.post("/archive/consent", {"external_userid": refuses, "userid": "lisi", "agree": True})
    corp.post("/messages", {"from": refuses, "to": ["lisi"], "text": "现在可以了"}, expect=201)
    assert [d["seq"] for d in corp.get("/archive")["chatdata"]] == [1, 2]
    approved = [c for c in corp.get("/callbacks") if c["change_type"] == "msg_audit_approved"]
    assert len(approved) == 2  # wm's, then refuses' change of mind
    event = parse_event(approved[-1]["plaintext"])
    assert event.domain_event == "customer.archive_consented"
    assert event.fields["ExternalUserID"] == refuses and event.fields["UserID"] == "lisi"


def test_bad_messages_are_refused(corp, emulator):
    wm = _customer(corp)
    path = f"/corps/{corp.corp_id}"
    assert emulator.admin.post(path + "/messages", json={"from": "nobody", "to": [wm], "text": "x"}).status_code == 404
    assert emulator.admin.post(path + "/messages", json={"from": "zhangsan", "to": ["ghost"],
                                                         "text": "x"}).status_code == 404
    assert emulator.admin.post(path + "/messages", json={"from": "zhangsan", "text": "x"}).status_code == 422
    assert emulator.admin.post(path + "/messages", json={"from": "zhangsan", "to": [wm]}).status_code == 422
    assert emulator.admin.post(path + "/messages", json={"from": "zhangsan", "to": [wm], "msgtype": "voice",
                                                         "text": "x"}).status_code == 422
    assert emulator.admin.post(path + "/messages", json={"from": "zhangsan", "to": [wm],
                                                         "msgtype": "link"}).status_code == 422
    assert emulator.admin.get(path + "/archive", params={"limit": 1001}).status_code == 422
    assert emulator.admin.get(path + "/archive", params={"seq": -1}).status_code == 422
    assert emulator.admin.get("/corps/ww-none/archive").status_code == 404
    assert corp.get("/archive")["chatdata"] == []
