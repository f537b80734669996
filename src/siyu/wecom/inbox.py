"""The durable inbox of WeCom callback events: verify, decrypt, store once, answer quickly.

WeCom retries an event it did not see acknowledged within 5 s and may deliver one twice, each
time encrypted afresh. The callback endpoint therefore only verifies, decrypts and stores the event
under its natural key (`WecomEvent.natural_key`, built from the plaintext) in the caller's
transaction, and acts on it later (a job): a repeat delivery finds the stored event, counts
itself and is acknowledged without creating more work.

Service functions take the session first and never commit: the caller's transaction decides, so
"stored" and "job enqueued" commit together or not at all (the transactional outbox)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.db import dialect_insert, utcnow
from siyu.errors import NotFound
from siyu.wecom.crypto import WXBizMsgCrypt
from siyu.wecom.events import EventParseError, WecomEvent, parse_event
from siyu.wecom.models import WecomInboxEvent

__all__ = ["EventParseError", "ReceivedEvent", "get_event", "mark_processed", "receive_callback", "record_event",
           "unprocessed_events"]


@dataclass(frozen=True)
class ReceivedEvent:
    id: int
    created: bool  # False: WeCom delivered this event before (a retry or a duplicate)
    event: WecomEvent


def record_event(session: Session, *, plaintext: str | bytes) -> ReceivedEvent:
    """Store a decrypted event unless it is stored already. Raises `EventParseError` for
    plaintext that is not a WeCom event (the endpoint answers 400 and stores nothing)."""
    event = parse_event(plaintext)
    return _store(session, event, plaintext.decode("utf-8") if isinstance(plaintext, bytes) else plaintext)


def _store(session: Session, event: WecomEvent, text: str) -> ReceivedEvent:
    now = utcnow()
    table = WecomInboxEvent.__table__
    insert = dialect_insert(session)(table).values(
        wecom_corp_id=event.corp_id, natural_key=event.natural_key, event=event.event[:64],
        change_type=event.change_type[:64], create_time=event.create_time, plaintext=text, deliveries=1,
        received_at=now, last_received_at=now,
    )
    # Insert-or-skip in one statement: two deliveries racing on two processes both succeed, and
    # exactly one of them sees its row created.
    new_id = session.execute(
        insert.on_conflict_do_nothing(index_elements=["wecom_corp_id", "natural_key"]).returning(table.c.id)
    ).scalar_one_or_none()
    if new_id is not None:
        return ReceivedEvent(id=new_id, created=True, event=event)
    existing_id = session.execute(
        update(table)
        .where(table.c.wecom_corp_id == event.corp_id, table.c.natural_key == event.natural_key)
        .values(deliveries=table.c.deliveries + 1, last_received_at=now)
        .returning(table.c.id)
    ).scalar_one()
    return ReceivedEvent(id=existing_id, created=False, event=event)


def receive_callback(session: Session, *, crypto: WXBizMsgCrypt, body: str | bytes, msg_signature: str,
                     timestamp: str, nonce: str) -> ReceivedEvent:
    """What the callback endpoint does with a POST: verify the signature, decrypt, store.
    Raises `siyu.wecom.crypto.CallbackCryptoError` (4xx) or `EventParseError` (400)."""
    plaintext = crypto.decrypt_message(body, msg_signature, timestamp, nonce)
    event = parse_event(plaintext)
    if event.corp_id != crypto.receive_id:
        # The receive id inside the ciphertext was checked; ToUserName is only what the plaintext
        # claims. A mismatch means a misconfigured corp, and is refused rather than misfiled.
        raise EventParseError("ToUserName does not match the corp of this callback URL")
    return _store(session, event, plaintext)


def get_event(session: Session, *, event_id: int) -> WecomInboxEvent:
    row = session.get(WecomInboxEvent, event_id)
    if row is None:
        raise NotFound("no such WeCom event", field="event_id")
    return row


def unprocessed_events(session: Session, *, limit: int = 100, wecom_corp_id: str | None = None
                       ) -> list[WecomInboxEvent]:
    """Stored events nobody has handled yet, oldest first (for a sweeper that re-enqueues work
    whose job was lost, and for the console)."""
    query = select(WecomInboxEvent).where(WecomInboxEvent.processed_at.is_(None))
    if wecom_corp_id is not None:
        query = query.where(WecomInboxEvent.wecom_corp_id == wecom_corp_id)
    return list(session.scalars(query.order_by(WecomInboxEvent.received_at, WecomInboxEvent.id).limit(limit)))


def mark_processed(session: Session, *, event_id: int) -> bool:
    """Mark an event handled. Returns False when it was handled already (or does not exist), so
    a handler running twice can tell and skip its side effects."""
    done = session.execute(
        update(WecomInboxEvent)
        .where(WecomInboxEvent.id == event_id, WecomInboxEvent.processed_at.is_(None))
        .values(processed_at=utcnow())
    )
    return bool(done.rowcount)
