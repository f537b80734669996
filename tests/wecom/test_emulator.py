"""The emulator's WeCom behaviour, driven over HTTP with plain httpx (no client retries in the way)."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import pytest


class Raw:
    """Calls /cgi-bin/ directly and returns the JSON, whatever the errcode."""

    def __init__(self, corp) -> None:
        self.corp = corp
        self.http = httpx.Client(base_url=corp.emulator.api_url, timeout=10)
        self.token = self.gettoken()["access_token"]

    def gettoken(self, secret: str | None = None) -> dict[str, Any]:
        return self.http.get("gettoken", params={"corpid": self.corp.corp_id,
                                                 "corpsecret": secret or self.corp.secret}).json()

    def post(self, path: str, body: dict[str, Any] | str) -> dict[str, Any]:
        kw = {"content": body} if isinstance(body, str) else {"json": body}
        return self._fresh(lambda: self.http.post(path, params={"access_token": self.token}, **kw).json())

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self._fresh(lambda: self.http.get(path, params={"access_token": self.token, **params}).json())

    def _fresh(self, call):
        # Tests move the emulator clock by days; a token that expired on the way is renewed
        # (42001 itself is tested with bare requests).
        out = call()
        if out["errcode"] == 42001:
            self.token = self.gettoken()["access_token"]
            out = call()
        return out


@pytest.fixture
def raw(corp):
    r = Raw(corp)
    yield r
    r.http.close()


def test_gettoken_is_stable_while_valid_and_checks_corp_and_secret(corp, raw):
    again = raw.gettoken()
    assert again["access_token"] == raw.token and again["errcode"] == 0
    assert 0 < again["expires_in"] <= 7200
    assert raw.gettoken(secret="wrong")["errcode"] == 40001
    assert raw.http.get("gettoken", params={"corpid": "nope", "corpsecret": "x"}).json()["errcode"] == 40013


def test_token_errors(corp, raw, emulator):
    assert raw.http.get("externalcontact/list", params={"userid": "zhangsan"}).json()["errcode"] == 41001
    list_url = "externalcontact/list"
    assert raw.http.get(list_url, params={"userid": "zhangsan", "access_token": "forged"}).json()["errcode"] == 40014
    emulator.post("/clock/advance", {"seconds": 7201})
    assert raw.http.get(list_url, params={"userid": "zhangsan", "access_token": raw.token}).json()["errcode"] == 42001
    # After expiry gettoken hands out a new token.
    assert raw.gettoken()["access_token"] != raw.token


def test_unknown_path_bad_method_and_bad_json(raw):
    assert raw.http.post("externalcontact/nope", params={"access_token": raw.token}).status_code == 404
    assert raw.post("externalcontact/mark_tag", "{not json")["errcode"] == 47001
    assert raw.http.get("externalcontact/mark_tag", params={"access_token": raw.token}).json()["errcode"] == 40058


def test_external_userid_validation(corp, raw):
    added = corp.add_contact("zhangsan")
    assert raw.get("externalcontact/get", external_userid=added["external_userid"])["errcode"] == 0
    for bad in ["", "nonsense", "wm" + "x" * 30, "wm'; drop table"]:
        assert raw.get("externalcontact/get", external_userid=bad)["errcode"] == 40096
    # A well-formed id known to another corp is as invalid here.
    other_corps_id = "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w"
    assert raw.post("externalcontact/mark_tag", {"userid": "zhangsan", "external_userid": other_corps_id,
                                                 "add_tag": [corp.tags["C1"]]})["errcode"] == 40096
    assert raw.post("externalcontact/mark_tag", {"userid": "lisi", "external_userid": added["external_userid"],
                                                 "add_tag": [corp.tags["C1"]]})["errcode"] == 84061
    assert raw.post("externalcontact/mark_tag", {"userid": "nobody", "external_userid": added["external_userid"],
                                                 "add_tag": [corp.tags["C1"]]})["errcode"] == 60111
    assert raw.post("externalcontact/mark_tag", {"userid": "zhangsan", "external_userid": added["external_userid"],
                                                 "add_tag": ["etnope"]})["errcode"] == 40068


def test_list_without_customers_answers_84061(raw):
    assert raw.get("externalcontact/list", userid="wangwu")["errcode"] == 84061


def test_contact_way_state_limit(raw):
    ok = raw.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["zhangsan"], "state": "x" * 30})
    assert ok["errcode"] == 0 and ok["qr_code"].startswith("https://")
    too_long = raw.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["zhangsan"],
                                                           "state": "x" * 31})
    assert too_long["errcode"] == 40058
    assert raw.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["zhangsan", "lisi"]}
                    )["errcode"] == 40058


def test_scanning_a_contact_way_creates_a_follow_with_its_state(corp, raw):
    way = raw.post("externalcontact/add_contact_way", {"type": 2, "scene": 2, "user": ["zhangsan", "lisi"],
                                                       "state": "ch:42"})
    added = corp.post("/add_contact", {"config_id": way["config_id"]})
    assert added["state"] == "ch:42" and added["userid"] in ("zhangsan", "lisi") and added["welcome_code"]
    detail = raw.get("externalcontact/get", external_userid=added["external_userid"])
    assert detail["follow_user"][0]["state"] == "ch:42"
    assert detail["follow_user"][0]["add_way"] == 1


def test_welcome_code_is_single_use(corp, raw):
    code = corp.add_contact()["welcome_code"]
    first = raw.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "您好，我是小思"}})
    assert first["errcode"] == 0
    second = raw.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "again"}})
    assert second["errcode"] == 41051
    welcomes = corp.get("/welcomes")
    assert [w["text"] for w in welcomes] == ["您好，我是小思"]


def test_welcome_code_expires_after_20_seconds(corp, raw, emulator):
    on_time, late = corp.add_contact("zhangsan")["welcome_code"], corp.add_contact("lisi")["welcome_code"]
    emulator.post("/clock/advance", {"seconds": 19})
    assert raw.post("externalcontact/send_welcome_msg", {"welcome_code": on_time,
                                                         "text": {"content": "hi"}})["errcode"] == 0
    emulator.post("/clock/advance", {"seconds": 2})
    # WeCom names no errcode of its own for a code past its 20 s or unknown: an invalid parameter.
    assert raw.post("externalcontact/send_welcome_msg", {"welcome_code": late,
                                                         "text": {"content": "hi"}})["errcode"] == 40058
    assert raw.post("externalcontact/send_welcome_msg", {"welcome_code": "made-up",
                                                         "text": {"content": "hi"}})["errcode"] == 40058
    assert raw.post("externalcontact/send_welcome_msg", {"welcome_code": late})["errcode"] == 44004


def test_a_customer_who_started_chatting_gets_no_welcome_41051(corp, raw):
    added = corp.add_contact("zhangsan")
    corp.post("/messages", {"from": added["external_userid"], "to": ["zhangsan"], "msgtype": "text",
                            "text": "你好，请问理财产品怎么买？"})
    answer = raw.post("externalcontact/send_welcome_msg", {"welcome_code": added["welcome_code"],
                                                           "text": {"content": "您好"}})
    assert answer["errcode"] == 41051
    assert corp.get("/welcomes") == []


def test_another_application_sending_a_welcome_answers_41096_and_a_retry_is_accepted(corp, raw):
    code = corp.add_contact("zhangsan")["welcome_code"]
    corp.post("/faults", {"welcome_elsewhere_next": 1})
    busy = raw.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "您好"}})
    assert busy["errcode"] == 41096
    again = raw.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "您好"}})
    assert again["errcode"] == 0
    assert [w["text"] for w in corp.get("/welcomes")] == ["您好"]


def test_mass_message_cap_per_customer_per_day(corp, raw, emulator):
    a = corp.add_contact("zhangsan")["external_userid"]
    b = corp.add_contact("zhangsan")["external_userid"]
    first = raw.post("externalcontact/add_msg_template", {"sender": "zhangsan",
                                                          "external_userid": [a, b, "wmbogus12345"],
                                                          "text": {"content": "周五理财课"}})
    assert first["errcode"] == 0 and first["fail_list"] == ["wmbogus12345"]
    second = raw.post("externalcontact/add_msg_template", {"sender": "zhangsan", "external_userid": [a],
                                                           "text": {"content": "第二条"}})
    results = raw.post("externalcontact/get_groupmsg_send_result", {"msgid": second["msgid"], "userid": "zhangsan"})
    assert [(r["external_userid"], r["status"]) for r in results["send_list"]] == [(a, 3)]
    first_results = raw.post("externalcontact/get_groupmsg_send_result",
                             {"msgid": first["msgid"], "userid": "zhangsan"})
    assert {r["status"] for r in first_results["send_list"]} == {1}
    # The next China day the customer can receive one again.
    emulator.post("/clock/advance", {"seconds": 86400})
    third = raw.post("externalcontact/add_msg_template", {"sender": "zhangsan", "external_userid": [a],
                                                          "text": {"content": "明天"}})
    r3 = raw.post("externalcontact/get_groupmsg_send_result", {"msgid": third["msgid"], "userid": "zhangsan"})
    assert r3["send_list"][0]["status"] == 1


def test_mass_message_waits_for_confirmation_when_configured(make_corp):
    corp = make_corp(limits={"auto_confirm_mass_messages": False})
    raw = Raw(corp)
    a = corp.add_contact("zhangsan")["external_userid"]
    msg = raw.post("externalcontact/add_msg_template", {"sender": "zhangsan", "external_userid": [a],
                                                        "text": {"content": "x"}})
    body = {"msgid": msg["msgid"], "userid": "zhangsan"}
    assert raw.post("externalcontact/get_groupmsg_send_result", body)["send_list"][0]["status"] == 0
    corp.post(f"/mass_messages/{msg['msgid']}/confirm", {"userid": "zhangsan"})
    assert raw.post("externalcontact/get_groupmsg_send_result", body)["send_list"][0]["status"] == 1


def test_moments_cap_three_a_day_per_customer(corp, raw):
    ext = corp.add_contact("zhangsan")["external_userid"]
    jobs = [raw.post("externalcontact/add_moment_task", {"text": {"content": f"post {i}"},
                                                         "visible_range": {"sender_list": {"user_list": ["zhangsan"]}}})
            for i in range(4)]
    assert all(j["errcode"] == 0 for j in jobs)
    moments = corp.get("/moments")
    assert [ext in m["shown_to"] for m in moments] == [True, True, True, False]
    assert ext in moments[3]["capped"]
    result = raw.get("externalcontact/get_moment_task_result", jobid=jobs[0]["jobid"])
    assert result["status"] == 3 and result["result"]["moment_id"]


def test_moment_task_reports_invalid_senders_and_tags(corp, raw):
    job = raw.post("externalcontact/add_moment_task", {
        "text": {"content": "x"},
        "visible_range": {"sender_list": {"user_list": ["zhangsan", "ghost"]},
                          "external_contact_list": {"tag_list": ["etghost"]}}})
    result = raw.get("externalcontact/get_moment_task_result", jobid=job["jobid"])["result"]
    assert result["invalid_sender_list"]["user_list"] == ["ghost"]
    assert result["invalid_external_contact_list"]["tag_list"] == ["etghost"]


def _customers_of(corp, userid: str, n: int) -> list[str]:
    return [corp.add_contact(userid)["external_userid"] for _ in range(n)]


def test_resigned_handover_limits_and_takeover_after_24h(corp, raw, emulator):
    ids = _customers_of(corp, "wangwu", 3)
    body = {"handover_userid": "wangwu", "takeover_userid": "lisi", "external_userid": ids}
    assert raw.post("externalcontact/resigned/transfer_customer", body)["errcode"] == 40097  # not resigned yet
    corp.post("/staff/wangwu/resign")
    too_many = {**body, "external_userid": [f"wm{i:030d}" for i in range(101)]}
    assert raw.post("externalcontact/resigned/transfer_customer", too_many)["errcode"] == 40058
    result = raw.post("externalcontact/resigned/transfer_customer", {**body, "external_userid": [*ids, "wmnotmine000"]})
    assert [c["errcode"] for c in result["customer"]] == [0, 0, 0, 40096]
    again = raw.post("externalcontact/resigned/transfer_customer", body)
    assert {c["errcode"] for c in again["customer"]} == {40129}  # already being taken over
    emulator.post("/clock/advance", {"seconds": 23 * 3600})
    assert raw.get("externalcontact/list", userid="lisi")["errcode"] == 84061
    emulator.post("/clock/advance", {"seconds": 3600 + 1})
    assert sorted(raw.get("externalcontact/list", userid="lisi")["external_userid"]) == sorted(ids)
    follow = raw.get("externalcontact/get", external_userid=ids[0])["follow_user"]
    assert [(f["userid"], f["add_way"]) for f in follow] == [("lisi", 202)]


def test_active_transfer_at_most_twice_per_90_days(corp, raw, emulator):
    (ext,) = _customers_of(corp, "zhangsan", 1)

    def transfer(src: str, dst: str) -> int:
        out = raw.post("externalcontact/transfer_customer", {"handover_userid": src, "takeover_userid": dst,
                                                             "external_userid": [ext]})
        assert out["errcode"] == 0
        return out["customer"][0]["errcode"]

    assert transfer("zhangsan", "lisi") == 0
    emulator.post("/clock/advance", {"seconds": 86401})
    assert transfer("lisi", "wangwu") == 0
    emulator.post("/clock/advance", {"seconds": 86401})
    assert transfer("wangwu", "zhangsan") == 40128
    emulator.post("/clock/advance", {"seconds": 90 * 86400})
    assert transfer("wangwu", "zhangsan") == 0


def test_refused_active_transfer_sends_transfer_fail(corp_with_callback, receiver, emulator):
    corp = corp_with_callback
    raw = Raw(corp)
    (ext,) = _customers_of(corp, "zhangsan", 1)
    raw.post("externalcontact/transfer_customer", {"handover_userid": "zhangsan", "takeover_userid": "lisi",
                                                   "external_userid": [ext], "transfer_success_msg": "您好"})
    corp.post("/transfers/refuse", {"external_userid": ext})
    emulator.post("/clock/advance", {"seconds": 86401})
    assert corp.get("/transfers")[0]["status"] == "refused"
    receiver.wait_for(2)
    event = receiver.events()[-1]
    assert event.change_type == "transfer_fail" and event.fields["FailReason"] == "customer_refused"
    assert raw.get("externalcontact/list", userid="zhangsan")["external_userid"] == [ext]


def test_rate_limit_answers_45009_until_the_window_passes(make_corp, emulator):
    corp = make_corp(limits={"rate_limit_calls": 3, "rate_limit_window": 60})
    raw = Raw(corp)
    codes = [raw.post("externalcontact/get_corp_tag_list", {})["errcode"] for _ in range(5)]
    assert codes == [0, 0, 0, 45009, 45009]
    # Other endpoints have their own windows.
    assert raw.get("externalcontact/list", userid="wangwu")["errcode"] == 84061
    emulator.post("/clock/advance", {"seconds": 61})
    assert raw.post("externalcontact/get_corp_tag_list", {})["errcode"] == 0


def test_too_many_concurrent_calls_answer_45033(make_corp):
    corp = make_corp(limits={"max_concurrent_calls": 2})
    corp.post("/faults", {"latency_ms": 150})
    raw = Raw(corp)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: raw.post("externalcontact/get_corp_tag_list", {})["errcode"], range(6)))
    assert codes.count(45033) >= 1 and codes.count(0) >= 2


def test_fault_switches(corp, raw):
    corp.post("/faults", {"error_5xx_next": 1, "endpoints": ["externalcontact/get_corp_tag_list"]})
    r = raw.http.post("externalcontact/get_corp_tag_list", params={"access_token": raw.token}, json={})
    assert r.status_code == 503
    assert raw.post("externalcontact/get_corp_tag_list", {})["errcode"] == 0
    corp.post("/faults", {"rate_limit_next": 2})
    assert [raw.post("externalcontact/get_corp_tag_list", {})["errcode"] for _ in range(3)] == [45009, 45009, 0]
    corp.post("/faults", {"rate_limit_seconds": 30})
    assert raw.post("externalcontact/get_corp_tag_list", {})["errcode"] == 45009
    corp.emulator.admin.delete(corp.admin_path("/faults"))
    assert raw.post("externalcontact/get_corp_tag_list", {})["errcode"] == 0
    assert corp.emulator.admin.post(corp.admin_path("/faults"), json={"nonsense": 1}).status_code == 422


def test_groupchat_list_and_get(corp, raw):
    ext = corp.add_contact("zhangsan")["external_userid"]
    chat = corp.post("/group_chats", {"owner": "zhangsan", "name": "理财学习群", "members": [ext, "lisi"]})
    listed = raw.post("externalcontact/groupchat/list", {"status_filter": 0, "limit": 10})
    assert listed["group_chat_list"] == [{"chat_id": chat["chat_id"], "status": 0}]
    assert raw.post("externalcontact/groupchat/list", {"limit": 1001})["errcode"] == 40058
    got = raw.post("externalcontact/groupchat/get", {"chat_id": chat["chat_id"], "need_name": 1})["group_chat"]
    assert got["name"] == "理财学习群" and got["owner"] == "zhangsan"
    assert {(m["userid"], m["type"]) for m in got["member_list"]} == {("zhangsan", 1), ("lisi", 1), (ext, 2)}
    assert raw.post("externalcontact/groupchat/get", {"chat_id": "wrnope"})["errcode"] == 40050
    corp.post("/staff/zhangsan/resign")
    assert raw.post("externalcontact/groupchat/list", {"status_filter": 1, "limit": 10}
                    )["group_chat_list"][0]["status"] == 1


def test_admin_api_refuses_bad_input_with_4xx(emulator, corp):
    assert emulator.admin.post("/corps", json={"corp_id": corp.corp_id, "secret": "x"}).status_code == 409
    assert emulator.admin.post("/corps", json={"corp_id": "ww-nosecret"}).status_code == 422
    assert emulator.admin.post("/corps", json={"corp_id": "ww-badlimits", "secret": "s",
                                               "limits": {"token_ttl": -1}}).status_code == 422
    assert emulator.admin.get("/corps/nope").status_code == 404
    assert emulator.admin.post(corp.admin_path("/add_contact"), json={"config_id": "none"}).status_code == 404
    assert emulator.admin.post("/clock/advance", json={"seconds": -5}).status_code == 422


def test_batch_get_by_user_clamps_a_limit_over_100_rather_than_refusing_it(corp, raw):
    for _ in range(3):
        corp.add_contact("zhangsan")
    page = raw.post("externalcontact/batch/get_by_user", {"userid_list": ["zhangsan"], "limit": 500})
    assert page["errcode"] == 0 and len(page["external_contact_list"]) == 3
    assert raw.post("externalcontact/batch/get_by_user", {"userid_list": ["zhangsan"], "limit": 0})["errcode"] == 40058
