"""Recording analytics events and entering acquisition spend.

`record` writes one event of one of the corp's customers, idempotent by (corp, source_key): the
same domain event's job run twice, a backfill run twice, a firm event pushed twice store one row
(INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike). `record_many` does the same for
many rows in one statement (the backfill, the demo). Dimensions are keys, never names: the channel
code's state, the advisor's WeCom user id, the persona's and the welcome variant's ids, the group's
chat id, the firm's product code."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics.events import DIMENSIONS, EVENT_TYPES
from siyu.analytics.models import AnalyticsEvent, AnalyticsSpend
from siyu.db import dialect_insert, utcnow
from siyu.errors import InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

MAX_KEY = 64
MAX_SOURCE_KEY = 160
_COLUMNS = ("corp_id", "customer_id", "customer_key", "type", "ts", *DIMENSIONS, "amount_fen", "source_key",
            "recorded_at")


def _utc(ts: dt.datetime) -> dt.datetime:
    """UTC, stored naive-or-aware as the column's database gives it back (aware in, UTC out)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC)


def event_row(*, corp_id: int | None, customer_id: int | None, type: str, ts: dt.datetime, source_key: str,
              customer_key: str | None = None, amount_fen: int | None = None, **dims: Any) -> dict[str, Any]:
    """The row of one event, checked: a known type, known dimensions of at most 64 characters,
    integer fen, a source key."""
    if type not in EVENT_TYPES:
        raise InvalidInput("unknown event type %(type)s", field="type", params={"type": str(type)[:40]})
    unknown = set(dims) - set(DIMENSIONS)
    if unknown:
        raise InvalidInput("unknown dimension %(name)s", field=sorted(unknown)[0],
                           params={"name": sorted(unknown)[0]})
    if amount_fen is not None and (not isinstance(amount_fen, int) or isinstance(amount_fen, bool)):
        raise InvalidInput("an amount is a whole number of fen", field="amount_fen")
    if not source_key or len(source_key) > MAX_SOURCE_KEY:
        raise InvalidInput("a source key is 1–160 characters", field="source_key")
    key = customer_key if customer_key is not None else (str(customer_id) if customer_id is not None else None)
    if not key:
        raise InvalidInput("an event names its customer", field="customer_id")
    row: dict[str, Any] = {"corp_id": corp_id, "customer_id": customer_id, "customer_key": key[:MAX_KEY],
                           "type": type, "ts": _utc(ts), "amount_fen": amount_fen, "source_key": source_key,
                           "recorded_at": utcnow()}
    for name in DIMENSIONS:
        value = dims.get(name)
        row[name] = str(value)[:MAX_KEY] if value not in (None, "") else None
    return row


def record(session: Session, *, corp_id: int | None, customer_id: int | None, type: str, ts: dt.datetime,
           source_key: str, **dims: Any) -> bool:
    """Records one event; False when (corp, source_key) was recorded before (nothing changes)."""
    return record_many(session, [event_row(corp_id=corp_id, customer_id=customer_id, type=type, ts=ts,
                                           source_key=source_key, **dims)]) == 1


def record_many(session: Session, rows: Iterable[Mapping[str, Any]], *, batch: int = 2000) -> int:
    """Inserts rows made by `event_row`, skipping those recorded before; returns how many were new."""
    table = AnalyticsEvent.__table__
    new, chunk = 0, []
    for row in rows:
        chunk.append({c: row.get(c) for c in _COLUMNS})
        if len(chunk) >= batch:
            new += _insert(session, table, chunk)
            chunk = []
    if chunk:
        new += _insert(session, table, chunk)
    return new


def _insert(session: Session, table, chunk: list[dict[str, Any]]) -> int:
    # The rows RETURNING gives back are the new ones (a multi-row INSERT's rowcount is not reliable
    # on every driver: psycopg reports -1).
    # One statement executed for many rows (compiled once, sent as multi-row batches by SQLAlchemy).
    stmt = dialect_insert(session)(table).on_conflict_do_nothing(
        index_elements=["corp_id", "source_key"]).returning(table.c.id)
    return len(session.execute(stmt, chunk).all())


def count(session: Session, *, corp_id: int | None, type: str | None = None) -> int:
    from sqlalchemy import func

    q = select(func.count()).select_from(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id)
    if type is not None:
        q = q.where(AnalyticsEvent.type == type)
    return session.scalar(q) or 0


# --- spend (投放费用) ----------------------------------------------------------------------------------

_YUAN_RE = re.compile(r"\d{1,11}(\.\d{1,2})?")
MAX_SPEND_FEN = 10**12  # ten billion yuan
MAX_NOTE = 200


def parse_yuan(text: object, *, field: str = "amount") -> int:
    """An amount typed in yuan ("1500", "1,500.5", "0.75", "¥ 20") as integer fen, exactly (decimal,
    never a float): more than 0, at most two decimals, at most ten billion yuan."""
    if not isinstance(text, str):
        raise InvalidInput("type the amount in yuan, e.g. 1500 or 0.75", field=field)
    clean = text.strip().replace(",", "").replace("，", "").replace("¥", "").replace("￥", "").replace(" ", "")
    if clean.endswith("元"):
        clean = clean[:-1]
    if not _YUAN_RE.fullmatch(clean):
        raise InvalidInput("type the amount in yuan with at most two decimals, e.g. 1500 or 0.75", field=field)
    fen = int(decimal.Decimal(clean) * 100)
    if fen <= 0:
        raise InvalidInput("the amount must be more than 0", field=field)
    if fen > MAX_SPEND_FEN:
        raise InvalidInput("the amount is at most %(max)s yuan", field=field, params={"max": MAX_SPEND_FEN // 100})
    return fen


def _day(text: object, field: str) -> dt.date:
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise InvalidInput("a day is written YYYY-MM-DD", field=field) from None


def _key(value: object, field: str) -> str | None:
    text = str(value or "").strip()
    if len(text) > MAX_KEY:
        raise InvalidInput("at most %(n)s characters", field=field, params={"n": MAX_KEY})
    return text or None


def add_spend(session: Session, *, corp_id: int, actor: Principal, amount: object, day_from: object,
              day_to: object, channel: object = None, campaign: object = None, note: object = "") -> AnalyticsSpend:
    """Spend on a channel (its code's state) or a campaign for the days day_from … day_to (Asia/Shanghai
    calendar days, both included); the amount typed in yuan, stored in fen; audited."""
    fen = parse_yuan(amount)
    start, end = _day(day_from, "day_from"), _day(day_to, "day_to")
    if end < start:
        raise InvalidInput("the last day is before the first", field="day_to")
    channel_key, campaign_key = _key(channel, "channel"), _key(campaign, "campaign")
    if channel_key is None and campaign_key is None:
        raise InvalidInput("name the channel or the campaign the money was spent on", field="channel")
    text = str(note or "").strip()
    if len(text) > MAX_NOTE:
        raise InvalidInput("a note is at most %(n)s characters", field="note", params={"n": MAX_NOTE})
    row = AnalyticsSpend(corp_id=corp_id, channel=channel_key, campaign=campaign_key, day_from=start, day_to=end,
                         amount_fen=fen, note=text, entered_by_staff_id=actor.staff_id)
    session.add(row)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="analytics.spend_added",
                 target_type="analytics_spend", target_id=row.id,
                 detail={"amount_fen": fen, "channel": channel_key, "campaign": campaign_key,
                         "day_from": start.isoformat(), "day_to": end.isoformat()})
    return row


def list_spend(session: Session, *, corp_id: int, limit: int = 200) -> list[AnalyticsSpend]:
    return list(session.scalars(select(AnalyticsSpend).where(AnalyticsSpend.corp_id == corp_id)
                                .order_by(AnalyticsSpend.day_from.desc(), AnalyticsSpend.id.desc()).limit(limit)))


def delete_spend(session: Session, *, corp_id: int, actor: Principal, spend_id: int) -> None:
    row = session.get(AnalyticsSpend, spend_id)
    if row is None or row.corp_id != corp_id:
        raise NotFound("no such spend entry", field="spend_id")
    audit.record(session, corp_id=corp_id, actor=actor, action="analytics.spend_deleted",
                 target_type="analytics_spend", target_id=row.id,
                 detail={"amount_fen": row.amount_fen, "channel": row.channel, "campaign": row.campaign})
    session.delete(row)
    session.flush()


# --- events the firm pushes (firm integration API) ---------------------------------------------------

FIRM_EVENT_TYPES = ("campaign.reward_paid", "coupon.redeemed", "order.matured")
FIRM_BATCH_MAX = 1000
# Which fields each kind needs: money that was paid or used has an amount; a maturity names its product.
_FIRM_REQUIRED = {"campaign.reward_paid": ("amount_fen",), "coupon.redeemed": ("amount_fen",),
                  "order.matured": ("product_code",)}
_FIRM_FIELDS = ("type", "firm_customer_id", "occurred_at", "amount_fen", "product_code", "campaign", "channel")


def _firm_key(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_KEY:
        raise InvalidInput("1–%(n)s characters", field=field, params={"n": MAX_KEY})
    return value.strip()


def check_firm_event(session: Session, *, principal: Principal, body: object):
    """The event row of a firm's event, checked field by field (InvalidInput names the field; an
    unknown customer is NotFound naming firm_customer_id)."""
    from siyu.customers.service import get_customer_by_firm_id
    from siyu.integration.service import valid_amount, valid_order_id, valid_time

    if not isinstance(body, Mapping):
        raise InvalidInput("an event is a JSON object", field="body")
    event_id = valid_order_id(body.get("event_id"), field="event_id")
    kind = body.get("type")
    if kind not in FIRM_EVENT_TYPES:
        raise InvalidInput("type is one of %(types)s", field="type", params={"types": ", ".join(FIRM_EVENT_TYPES)})
    for name in _FIRM_REQUIRED[kind]:
        if body.get(name) is None:
            raise InvalidInput("%(type)s needs %(field)s", field=name, params={"type": kind, "field": name})
    amount = valid_amount(body["amount_fen"]) if body.get("amount_fen") is not None else None
    occurred_at = valid_time(body.get("occurred_at"), field="occurred_at")
    product = _firm_key(body.get("product_code"), "product_code")
    campaign, channel = _firm_key(body.get("campaign"), "campaign"), _firm_key(body.get("channel"), "channel")
    customer = get_customer_by_firm_id(session, principal=principal, firm_customer_id=body.get("firm_customer_id"))
    return event_row(corp_id=principal.corp_id, customer_id=customer.id, type=kind, ts=occurred_at,
                     source_key=f"firm_event:{event_id}", amount_fen=amount, product=product, campaign=campaign,
                     channel=channel), event_id, customer


def _stored_firm_event(session: Session, corp_id: int, source_key: str) -> AnalyticsEvent | None:
    return session.scalar(select(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id,
                                                       AnalyticsEvent.source_key == source_key))


def _same_or_conflict(stored: AnalyticsEvent, row: Mapping[str, Any]) -> None:
    from siyu.errors import Conflict

    pairs = {"type": "type", "customer_id": "firm_customer_id", "ts": "occurred_at", "amount_fen": "amount_fen",
             "product": "product_code", "campaign": "campaign", "channel": "channel"}
    for column, field in pairs.items():
        if getattr(stored, column) != row[column]:
            raise Conflict("this event id was pushed before with another %(field)s", field=field,
                           params={"field": field})


def record_firm_event(session: Session, *, principal: Principal, body: object) -> tuple[AnalyticsEvent, bool]:
    """Records a reward paid, a coupon used or an order matured, as the firm pushed it; idempotent by the
    firm's event id: (event, created). The same id with another body: Conflict naming the field."""
    row, _event_id, _customer = check_firm_event(session, principal=principal, body=body)
    stored = _stored_firm_event(session, principal.corp_id, row["source_key"])
    if stored is not None:
        _same_or_conflict(stored, row)
        return stored, False
    record_many(session, [row])
    return _stored_firm_event(session, principal.corp_id, row["source_key"]), True


def record_firm_events(session: Session, *, principal: Principal, items: object
                       ) -> list[tuple[AnalyticsEvent, bool]]:
    """Up to FIRM_BATCH_MAX events, all or nothing: every item is checked before any is stored; a bad
    one raises `siyu.integration.service.BatchRejected` naming each index and field."""
    from siyu.errors import SiyuError
    from siyu.integration.service import BatchRejected

    if not isinstance(items, list) or not 1 <= len(items) <= FIRM_BATCH_MAX:
        raise InvalidInput("items is a list of 1–%(max)s events", field="items", params={"max": FIRM_BATCH_MAX})
    errors, checked, seen = [], [], {}
    for index, item in enumerate(items):
        try:
            row, event_id, _customer = check_firm_event(session, principal=principal, body=item)
            if event_id in seen:
                raise InvalidInput("event %(id)s is in the batch twice", field="event_id", params={"id": event_id})
            seen[event_id] = index
            stored = _stored_firm_event(session, principal.corp_id, row["source_key"])
            if stored is not None:
                _same_or_conflict(stored, row)
            checked.append((row, stored))
        except SiyuError as exc:
            errors.append({"index": index, "field": f"items.{index}.{exc.field or 'body'}", "detail": exc.message,
                           "status": exc.status_code})
    if errors:
        status = 404 if all(e["status"] == 404 for e in errors) else 422
        raise BatchRejected(errors, status_code=status)
    record_many(session, [row for row, stored in checked if stored is None])
    return [(stored or _stored_firm_event(session, principal.corp_id, row["source_key"]), stored is None)
            for row, stored in checked]
