"""Callbacks the emulator pushes: signed and encrypted, retried when not acknowledged, with faults."""

from __future__ import annotations

import time

from siyu.wecom.events import parse_event


def test_add_via_contact_way_sends_signed_event_with_state_and_welcome_code(corp_with_callback, receiver,
                                                                            make_client):
    corp = corp_with_callback
    client = make_client(corp)
    way = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="ch:spring-2026")
    added = corp.post("/add_contact", {"config_id": way.config_id})
    (delivery,) = receiver.wait_for(1)
    # The receiver decrypted it with the corp's token/key (a bad signature would have been a 403).
    assert set(delivery["params"]) == {"msg_signature", "timestamp", "nonce"}
    assert "<Encrypt>" in delivery["body"] and "<ToUserName><![CDATA[" + corp.corp_id in delivery["body"]
    event = parse_event(delivery["plaintext"])
    assert (event.corp_id, event.domain_event) == (corp.corp_id, "customer.added")
    payload = event.payload()
    assert payload["state"] == "ch:spring-2026"
    assert payload["userid"] == "zhangsan" and payload["external_userid"] == added["external_userid"]
    # The welcome code in the event works once, within 20 s.
    client.send_welcome_msg(welcome_code=payload["welcome_code"], text="您好！")
    assert corp.get("/welcomes")[0]["external_userid"] == added["external_userid"]
    corp.post("/callbacks/wait")
    assert corp.get("/callbacks")[0]["status"] == "acknowledged"


def test_no_welcome_code_when_staff_have_a_configured_welcome(make_corp, receiver):
    corp = make_corp(callback_url=receiver.url, limits={"issue_welcome_codes": False})
    receiver.crypto = corp.crypto()
    corp.add_contact("lisi")
    event = parse_event(receiver.wait_for(1)[0]["plaintext"])
    assert "welcome_code" not in event.payload()


def test_unacknowledged_event_is_retried_after_the_timeout(corp_with_callback, receiver):
    corp = corp_with_callback
    corp.emulator.admin.patch(corp.admin_path("/limits"), json={"callback_timeout": 0.4})
    receiver.behaviour = lambda n: (1.0, 200) if n == 1 else (0.0, 200)  # first answer comes too late
    corp.add_contact("zhangsan")
    first, second = receiver.wait_for(2)
    assert first["plaintext"] == second["plaintext"]  # same event...
    assert first["body"] != second["body"]  # ...encrypted afresh
    assert parse_event(first["plaintext"]).natural_key == parse_event(second["plaintext"]).natural_key
    corp.post("/callbacks/wait")
    (record,) = corp.get("/callbacks")
    assert record["status"] == "acknowledged"
    assert [a["acknowledged"] for a in record["attempts"]] == [False, True]
    assert "no answer within" in record["attempts"][0]["error"]


def test_failing_receiver_gets_three_retries_then_the_event_is_given_up(corp_with_callback, receiver):
    corp = corp_with_callback
    receiver.behaviour = lambda n: (0.0, 500)
    corp.add_contact("zhangsan")
    receiver.wait_for(4)
    corp.post("/callbacks/wait")
    (record,) = corp.get("/callbacks")
    assert record["status"] == "failed" and len(record["attempts"]) == 4
    time.sleep(0.15)
    assert len(receiver.deliveries) == 4


def test_duplicate_and_dropped_ack_faults(corp_with_callback, receiver):
    corp = corp_with_callback
    corp.post("/faults", {"duplicate_callbacks_next": 1})
    corp.add_contact("zhangsan")
    receiver.wait_for(2)
    corp.post("/callbacks/wait")
    records = corp.get("/callbacks")
    assert [r["duplicate"] for r in records] == [False, True]
    assert {r["plaintext"] for r in records} == {records[0]["plaintext"]}

    corp.post("/faults", {"drop_acks_next": 1})
    corp.add_contact("lisi")
    receiver.wait_for(4)
    corp.post("/callbacks/wait")
    last = corp.get("/callbacks")[-1]
    assert [a["acknowledged"] for a in last["attempts"]] == [False, True]
    assert last["attempts"][0]["error"] == "acknowledgement dropped (fault)"


def test_url_verification(corp_with_callback):
    result = corp_with_callback.post("/callback/verify")
    assert result["ok"] is True and result["received"] == result["expected"]


def test_customer_deleting_staff_and_group_changes(corp_with_callback, receiver):
    corp = corp_with_callback
    ext = corp.add_contact("zhangsan")["external_userid"]
    chat = corp.post("/group_chats", {"owner": "zhangsan", "name": "稳健理财交流群"})
    corp.post(f"/group_chats/{chat['chat_id']}/join", {"member_id": ext})
    corp.post(f"/group_chats/{chat['chat_id']}/leave", {"member_id": ext})
    corp.post("/delete_follow", {"userid": "zhangsan", "external_userid": ext, "by": "customer"})
    receiver.wait_for(5)
    corp.post("/callbacks/wait")
    events = sorted(receiver.events(), key=lambda e: e.natural_key)  # delivery order across threads may vary
    names = sorted(e.domain_event for e in events)
    assert names == sorted(["customer.added", "group.created", "group.member_joined", "group.member_left",
                            "customer.lost"])
    joined = next(e for e in events if e.domain_event == "group.member_joined").payload()
    assert joined["member_change_list"] == [ext] and joined["join_scene"] == "3"


def test_corp_without_callback_url_records_events_only(corp):
    corp.add_contact("zhangsan")
    (record,) = corp.get("/callbacks")
    assert record["status"] == "no_callback_url" and "add_external_contact" in record["plaintext"]
