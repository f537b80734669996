"""The durable inbox of WeCom callback events: verify, decrypt, store once, answer quickly.

WeCom retries an event it did not see acknowledged within 5 s and may deliver one twice, each
time encrypted afresh. The callback endpoint therefore only verifies, decrypts and stores the event
under its natural key (`WecomEvent.natural_key`, built from the plaintext) in the caller's
transaction, and acts on it later (a job): a repeat delivery finds the stored event, counts
itself and is acknowledged without creating more work.

Service functions take the session first and never commit: the caller's transaction decides, so
"stored" and "job enqueued" commit together or not at all (the transactional outbox)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from siyu.db import dialect_insert, utcnow
from siyu.errors import NotFound
from siyu.wecom.crypto import WXBizMsgCrypt
from siyu.wecom.events import EventParseError, WecomEvent, parse_event
from siyu.wecom.models import WecomInboxEvent

__all__ = ["Delivery", "EventParseError", "ReceivedEvent", "get_event", "mark_processed", "open_callback",
           "receive_callback", "record_event", "store_event", "store_events", "unprocessed_events"]


@dataclass(frozen=True)
class ReceivedEvent:
    id: int
    created: bool  # False: WeCom delivered this event before (a retry or a duplicate)
    event: WecomEvent
    natural_key: str = ""
    received_at: dt.datetime | None = None  # of this delivery


def record_event(session: Session, *, plaintext: str | bytes) -> ReceivedEvent:
    """Store a decrypted event unless it is stored already. Raises `EventParseError` for
    plaintext that is not a WeCom event (the endpoint answers 400 and stores nothing)."""
    event = parse_event(plaintext)
    return _store(session, event, plaintext.decode("utf-8") if isinstance(plaintext, bytes) else plaintext)


_TABLE = WecomInboxEvent.__table__
_REPEAT = (
    update(_TABLE)
    .where(_TABLE.c.wecom_corp_id == bindparam("corp"), _TABLE.c.natural_key == bindparam("key"))
    .values(deliveries=_TABLE.c.deliveries + 1, last_received_at=bindparam("repeat_at"))
    .returning(_TABLE.c.id)
)


def _store(session: Session, event: WecomEvent, text: str, received_at: dt.datetime | None = None) -> ReceivedEvent:
    # Statements built once with parameters passed separately: the callback endpoint runs this
    # thousands of times a second, and SQLAlchemy then reuses their compiled form.
    now = received_at or utcnow()
    natural_key = event.natural_key
    # Insert-or-skip in one statement: two deliveries racing on two processes both succeed, and
    # exactly one of them sees its row created.
    conn = session.connection()  # Core: these statements need nothing of the ORM
    new_id = conn.execute(_insert_or_skip(session), {
        "wecom_corp_id": event.corp_id, "natural_key": natural_key, "event": event.event[:64],
        "change_type": event.change_type[:64], "create_time": event.create_time, "plaintext": text,
        "deliveries": 1, "received_at": now, "last_received_at": now,
    }).scalar_one_or_none()
    if new_id is not None:
        return ReceivedEvent(id=new_id, created=True, event=event, natural_key=natural_key, received_at=now)
    existing_id = conn.execute(_REPEAT, {"corp": event.corp_id, "key": natural_key, "repeat_at": now}).scalar_one()
    return ReceivedEvent(id=existing_id, created=False, event=event, natural_key=natural_key, received_at=now)


_INSERTS: dict[str, object] = {}


def _insert_or_skip(session: Session):
    dialect = session.get_bind().dialect.name
    stmt = _INSERTS.get(dialect)
    if stmt is None:
        stmt = _INSERTS[dialect] = (dialect_insert(session)(_TABLE)
                                    .on_conflict_do_nothing(index_elements=["wecom_corp_id", "natural_key"])
                                    .returning(_TABLE.c.id))
    return stmt


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of an opened event, as `store_events` takes it."""

    event: WecomEvent
    plaintext: str
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Stored:
    """What `store_events` did with one delivery: `id` of the row it created, or None when the
    event was stored before (by an earlier delivery, or an earlier one in the same batch)."""

    id: int | None
    natural_key: str

    @property
    def created(self) -> bool:
        return self.id is not None


_REPEATS = (
    update(_TABLE)
    .where(_TABLE.c.wecom_corp_id == bindparam("corp"), _TABLE.c.natural_key == bindparam("key"))
    .values(deliveries=_TABLE.c.deliveries + bindparam("n"), last_received_at=bindparam("repeat_at"))
)
_BATCH_INSERTS: dict[str, object] = {}


def _batch_insert(session: Session):
    dialect = session.get_bind().dialect.name
    stmt = _BATCH_INSERTS.get(dialect)
    if stmt is None:
        stmt = _BATCH_INSERTS[dialect] = (dialect_insert(session)(_TABLE)
                                          .on_conflict_do_nothing(index_elements=["wecom_corp_id", "natural_key"])
                                          .returning(_TABLE.c.id, _TABLE.c.wecom_corp_id, _TABLE.c.natural_key))
    return stmt


def store_events(session: Session, deliveries: Sequence[Delivery], *,
                 processed_at: dt.datetime | None = None) -> list[Stored]:
    """Store many opened events at once, each unless stored already (then count the repeat), in
    the caller's transaction: one multi-row insert-or-skip for all of them and one UPDATE per
    event delivered again, whatever their number (the callback endpoint's group commit stores
    a whole batch of requests this way). A delivery repeated within `deliveries` is stored once
    and counted as a repeat. `processed_at`: rows created are marked handled at that time (the
    caller dispatches them in the same transaction)."""
    if not deliveries:
        return []
    conn = session.connection()  # Core: no ORM object per event
    rows = []
    for d in deliveries:
        ev = d.event
        rows.append({"wecom_corp_id": ev.corp_id, "natural_key": ev.natural_key, "event": ev.event[:64],
                     "change_type": ev.change_type[:64], "create_time": ev.create_time, "plaintext": d.plaintext,
                     "deliveries": 1, "received_at": d.received_at, "last_received_at": d.received_at,
                     "processed_at": processed_at})
    # Insert-or-skip in one statement (sent as multi-row VALUES): deliveries racing on other
    # processes or connections both succeed, and exactly one sees its row created.
    created = {(r.wecom_corp_id, r.natural_key): r.id for r in conn.execute(_batch_insert(session), rows)}
    out: list[Stored] = []
    repeats: dict[tuple[str, str], tuple[int, dt.datetime]] = {}
    for row in rows:
        key = (row["wecom_corp_id"], row["natural_key"])
        new_id = created.pop(key, None)  # the first delivery of a key in the batch is the one stored
        if new_id is None:
            n, at = repeats.get(key, (0, row["received_at"]))
            repeats[key] = (n + 1, max(at, row["received_at"]))
        out.append(Stored(id=new_id, natural_key=key[1]))
    if repeats:
        conn.execute(_REPEATS, [{"corp": corp, "key": key, "n": n, "repeat_at": at}
                                for (corp, key), (n, at) in repeats.items()])
    return out


def open_callback(*, crypto: WXBizMsgCrypt, body: str | bytes, msg_signature: str, timestamp: str,
                  nonce: str) -> tuple[WecomEvent, str]:
    """Verify the signature, decrypt and parse a callback POST (no database): the event and its
    plaintext. Raises `siyu.wecom.crypto.CallbackCryptoError` (4xx) or `EventParseError` (400)."""
    plaintext = crypto.decrypt_message(body, msg_signature, timestamp, nonce)
    event = parse_event(plaintext)
    if event.corp_id != crypto.receive_id:
        # The receive id inside the ciphertext was checked; ToUserName is only what the plaintext
        # claims. A mismatch means a misconfigured corp, and is refused rather than misfiled.
        raise EventParseError("ToUserName does not match the corp of this callback URL")
    return event, plaintext


def store_event(session: Session, *, event: WecomEvent, plaintext: str,
                received_at: dt.datetime | None = None) -> ReceivedEvent:
    """Store an opened event unless it is stored already (then count the repeat delivery).
    `received_at`: when the delivery arrived, if not now (an event kept in the callback spool
    while the database was unavailable)."""
    return _store(session, event, plaintext, received_at)


def receive_callback(session: Session, *, crypto: WXBizMsgCrypt, body: str | bytes, msg_signature: str,
                     timestamp: str, nonce: str) -> ReceivedEvent:
    """Verify, decrypt and store a callback POST in one call."""
    event, plaintext = open_callback(crypto=crypto, body=body, msg_signature=msg_signature, timestamp=timestamp,
                                     nonce=nonce)
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
