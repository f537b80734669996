"""The emulator checked against an independent implementation, wechatpy, so that it does not drift
into our own client's assumptions: wechatpy's WeChatClient drives the emulator's endpoints, and
wechatpy's WeChatCrypto reads our callbacks (and we read its)."""

from __future__ import annotations

import pytest
from wechatpy.enterprise import WeChatClient
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException, WeChatClientException

from siyu.wecom.crypto import InvalidSignature, WXBizMsgCrypt, generate_aes_key
from siyu.wecom.events import parse_event, parse_xml


def wechatpy_client(corp) -> WeChatClient:
    base = corp.emulator.api_url

    class EmulatedWeChatClient(WeChatClient):
        API_BASE_URL = base

        def fetch_access_token(self):  # wechatpy hard-codes the gettoken URL; point it here too
            return self._fetch_access_token(url=base + "gettoken",
                                            params={"corpid": self.corp_id, "corpsecret": self.secret})

    return EmulatedWeChatClient(corp.corp_id, corp.secret)


def test_wechatpy_client_drives_the_external_contact_endpoints(corp):
    wc = wechatpy_client(corp)
    way = wc.external_contact.add_contact_way(type=1, scene=2, state="wechatpy", user=["zhangsan"])
    assert way["errcode"] == 0 and way["config_id"]
    added = corp.post("/add_contact", {"config_id": way["config_id"]})
    ext = added["external_userid"]

    assert wc.external_contact.list("zhangsan")["external_userid"] == [ext]
    detail = wc.external_contact.get(ext)
    assert detail["external_contact"]["external_userid"] == ext
    assert detail["follow_user"][0]["state"] == "wechatpy"

    tags = wc.external_contact.get_corp_tag_list()["tag_group"]
    c1 = next(t["id"] for g in tags for t in g["tag"] if t["name"] == "C1")
    assert wc.external_contact.get_corp_tag_list([c1])["tag_group"][0]["tag"][0]["id"] == c1
    assert wc.external_contact.mark_tag("zhangsan", ext, add_tag=[c1])["errcode"] == 0
    assert wc.external_contact.get(ext)["follow_user"][0]["tags"][0]["tag_id"] == c1

    assert wc.external_contact.send_welcome_msg({"welcome_code": added["welcome_code"],
                                                 "text": {"content": "hello from wechatpy"}})["errcode"] == 0
    msg = wc.external_contact.add_msg_template({"external_userid": [ext], "sender": "zhangsan",
                                                "text": {"content": "群发"}})
    assert msg["errcode"] == 0 and msg["msgid"] and msg["fail_list"] == []

    chat = corp.post("/group_chats", {"owner": "zhangsan", "name": "wechatpy 群", "members": [ext]})
    assert wc.external_contact_group_chat.list_all(limit=10) == [{"chat_id": chat["chat_id"], "status": 0}]
    got = wc.external_contact_group_chat.get(chat["chat_id"])["group_chat"]
    assert got["owner"] == "zhangsan" and {m["userid"] for m in got["member_list"]} == {"zhangsan", ext}


def test_wechatpy_sees_wecom_errors_and_refreshes_tokens(corp):
    wc = wechatpy_client(corp)
    with pytest.raises(WeChatClientException) as info:
        wc.external_contact.get("wmnotacustomer00")
    assert info.value.errcode == 40096
    with pytest.raises(WeChatClientException) as info:
        wc.external_contact.send_welcome_msg({"welcome_code": "expired", "text": {"content": "x"}})
    assert info.value.errcode == 40058  # WeCom names no code of its own for an unknown or expired code
    corp.post("/tokens/revoke")  # wechatpy retries 40014 with a fresh token, as WeCom expects
    assert wc.external_contact.get_corp_tag_list()["errcode"] == 0
    assert len(corp.calls("gettoken")) == 2


def test_wechatpy_decrypts_a_callback_signed_by_the_emulator(corp_with_callback, receiver):
    corp = corp_with_callback
    corp.add_contact("zhangsan", name="赵客户")
    (delivery,) = receiver.wait_for(1)
    q = delivery["params"]
    theirs = WeChatCrypto(corp.token, corp.aes_key, corp.corp_id)
    plaintext = theirs.decrypt_message(delivery["body"], q["msg_signature"], q["timestamp"], q["nonce"])
    assert plaintext == delivery["plaintext"]
    xml = parse_xml(plaintext)
    assert xml["ChangeType"] == "add_external_contact" and xml["UserID"] == "zhangsan"
    with pytest.raises(InvalidSignatureException):
        theirs.decrypt_message(delivery["body"], "0" * 40, q["timestamp"], q["nonce"])


def test_our_crypto_decrypts_what_wechatpy_encrypts():
    token, key, corp_id = "wechatpy-token", generate_aes_key(), "ww1234567890abcdef"
    event = ("<xml><ToUserName><![CDATA[ww1234567890abcdef]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
             "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
             "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[del_follow_user]]></ChangeType>"
             "<UserID><![CDATA[lisi]]></UserID><ExternalUserID><![CDATA[wmABCDEFGHIJ1234]]></ExternalUserID></xml>")
    reply = WeChatCrypto(token, key, corp_id).encrypt_message(event, "1234567", "1700000001")
    reply_xml = parse_xml(reply)
    ours = WXBizMsgCrypt(token, key, corp_id)
    plain = ours.decrypt_message(reply, reply_xml["MsgSignature"], reply_xml["TimeStamp"], reply_xml["Nonce"])
    assert plain == event
    assert parse_event(plain).domain_event == "customer.lost"
    with pytest.raises(InvalidSignature):
        ours.decrypt_message(reply, reply_xml["MsgSignature"], "1700000002", reply_xml["Nonce"])


def test_wechatpy_verifies_our_url_verification_and_reply():
    token, key, corp_id = "t", generate_aes_key(), "wwabc"
    ours = WXBizMsgCrypt(token, key, corp_id)
    params = ours.url_verification("8848")
    theirs = WeChatCrypto(token, key, corp_id)
    assert theirs.check_signature(params["msg_signature"], params["timestamp"], params["nonce"],
                                  params["echostr"]) == "8848"
    reply = ours.encrypt_message("<xml><Content>hi</Content></xml>", "99", 1700000000)
    parsed = parse_xml(reply)
    assert theirs.decrypt_message(reply, parsed["MsgSignature"], parsed["TimeStamp"], parsed["Nonce"]) == \
        "<xml><Content>hi</Content></xml>"
