"""The durable inbox: each event stored once however often WeCom delivers it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import delete, select

from siyu.db import session_scope
from siyu.wecom import inbox
from siyu.wecom.crypto import InvalidSignature, WXBizMsgCrypt, generate_aes_key
from siyu.wecom.emulator.callbacks import event_xml
from siyu.wecom.emulator.server import ServerThread
from siyu.wecom.events import EventParseError
from siyu.wecom.models import WecomInboxEvent


def _add_event(corp_id: str = "wwinbox", create_time: int = 1700000000, ext: str = "wmAAAAAAAAAAAA1") -> str:
    return event_xml(corp_id, create_time, "change_external_contact", "add_external_contact",
                     [("UserID", "zhangsan"), ("ExternalUserID", ext), ("State", "ch:1"), ("WelcomeCode", "WC")])


def test_an_event_is_stored_once_and_repeats_are_counted(session):
    first = inbox.record_event(session, plaintext=_add_event())
    again = inbox.record_event(session, plaintext=_add_event().encode())
    assert first.created and not again.created and first.id == again.id
    row = inbox.get_event(session, event_id=first.id)
    session.refresh(row)
    assert row.deliveries == 2 and row.change_type == "add_external_contact" and row.wecom_corp_id == "wwinbox"
    assert row.plaintext == _add_event() and row.natural_key == first.event.natural_key
    other = inbox.record_event(session, plaintext=_add_event(create_time=1700000001))
    assert other.created and other.id != first.id


def test_a_batch_stores_each_event_once_and_counts_every_repeat(session):
    """The group commit's store: one event delivered three times in a batch and once before it,
    another twice in the batch: two rows (one of them earlier), every delivery counted."""
    from siyu.db import utcnow
    from siyu.wecom.events import parse_event

    earlier = inbox.record_event(session, plaintext=_add_event(ext="wmBATCH0"))
    at = utcnow()
    texts = [_add_event(ext="wmBATCH0"), _add_event(ext="wmBATCH1"), _add_event(ext="wmBATCH0"),
             _add_event(ext="wmBATCH1"), _add_event(ext="wmBATCH0")]
    stored = inbox.store_events(session, [inbox.Delivery(parse_event(t), t, at) for t in texts], processed_at=at)
    assert [s.created for s in stored] == [False, True, False, False, False]
    rows = {r.natural_key: r for r in session.scalars(
        select(WecomInboxEvent).where(WecomInboxEvent.natural_key.in_({s.natural_key for s in stored})))}
    assert len(rows) == 2
    first, second = rows[stored[0].natural_key], rows[stored[1].natural_key]
    session.refresh(first)
    assert (first.id, first.deliveries, first.processed_at) == (earlier.id, 4, None)  # marked by its dispatcher
    assert (second.id, second.deliveries, second.plaintext) == (stored[1].id, 2, texts[1])
    assert second.processed_at is not None
    assert inbox.store_events(session, []) == []


def test_unparseable_plaintext_is_refused_and_nothing_stored(session):
    with pytest.raises(EventParseError):
        inbox.record_event(session, plaintext="<xml><ToUserName>ww</ToUserName></xml>")
    assert session.scalar(select(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == "ww")) is None


def test_receive_callback_verifies_decrypts_and_stores(session):
    crypto = WXBizMsgCrypt("tok", generate_aes_key(), "wwinbox2")
    cb = crypto.encrypt_callback(_add_event("wwinbox2"), agent_id=1000002)
    received = inbox.receive_callback(session, crypto=crypto, body=cb.body, msg_signature=cb.msg_signature,
                                      timestamp=cb.timestamp, nonce=cb.nonce)
    assert received.created and received.event.payload()["state"] == "ch:1"
    retry = crypto.encrypt_callback(_add_event("wwinbox2"))  # WeCom's retry: new envelope, same event
    assert not inbox.receive_callback(session, crypto=crypto, body=retry.body, msg_signature=retry.msg_signature,
                                      timestamp=retry.timestamp, nonce=retry.nonce).created
    with pytest.raises(InvalidSignature):
        inbox.receive_callback(session, crypto=crypto, body=cb.body, msg_signature="0" * 40, timestamp=cb.timestamp,
                               nonce=cb.nonce)


def test_event_claiming_another_corp_is_refused(session):
    crypto = WXBizMsgCrypt("tok", generate_aes_key(), "wwinbox3")
    cb = crypto.encrypt_callback(_add_event("wwsomeoneelse"))
    with pytest.raises(EventParseError):
        inbox.receive_callback(session, crypto=crypto, body=cb.body, msg_signature=cb.msg_signature,
                               timestamp=cb.timestamp, nonce=cb.nonce)
    assert session.scalar(select(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == "wwsomeoneelse")) is None


def test_mark_processed_once_and_unprocessed_listing(session):
    a = inbox.record_event(session, plaintext=_add_event("wwinbox4", 1))
    b = inbox.record_event(session, plaintext=_add_event("wwinbox4", 2))
    assert [e.id for e in inbox.unprocessed_events(session, wecom_corp_id="wwinbox4")] == [a.id, b.id]
    assert inbox.mark_processed(session, event_id=a.id) is True
    assert inbox.mark_processed(session, event_id=a.id) is False  # a second run of the handler can tell
    assert [e.id for e in inbox.unprocessed_events(session, wecom_corp_id="wwinbox4")] == [b.id]


def test_emulator_retries_land_in_the_inbox_once(engine, make_corp):
    """End to end: the emulator pushes an add event, drops the first acknowledgement (a fault) and
    so delivers it twice; an endpoint built on the inbox stores it once, with two deliveries."""
    holder: dict[str, WXBizMsgCrypt] = {}
    app = FastAPI()

    @app.post("/cb")
    async def callback(request: Request) -> Response:
        q = request.query_params
        with session_scope() as s:
            inbox.receive_callback(s, crypto=holder["crypto"], body=await request.body(),
                                   msg_signature=q["msg_signature"], timestamp=q["timestamp"], nonce=q["nonce"])
        return PlainTextResponse("")

    with ServerThread(app) as server:
        corp = make_corp(callback_url=server.base_url + "/cb", limits={"callback_retry_delay": 0.01})
        holder["crypto"] = corp.crypto()
        try:
            corp.post("/faults", {"drop_acks_next": 1})
            corp.add_contact("zhangsan")
            corp.post("/callbacks/wait")
            (record,) = corp.get("/callbacks")
            assert record["status"] == "acknowledged" and len(record["attempts"]) == 2
            with session_scope() as s:
                rows = s.scalars(select(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == corp.corp_id)).all()
                assert [(r.change_type, r.deliveries) for r in rows] == [("add_external_contact", 2)]
        finally:
            with session_scope() as s:
                s.execute(delete(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == corp.corp_id))
