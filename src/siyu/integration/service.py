"""Firm integration: what the firm's core systems push (KYC risk levels, orders, redemptions), customer
lookups, and outbound webhooks signed with HMAC-SHA256.

Services take the session first and keyword-only arguments. Other domains are reached through their
services (`siyu.customers.service`, `siyu.compliance.suitability`) and through domain events
(`customer.invested`, `customer.redeemed`), never through their tables."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from siyu import pii
from siyu.db import dialect_insert, utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound, SiyuError
from siyu.integration.models import FirmOrder, FirmPhoneKey, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from siyu.jobs.events import publish
from siyu.jobs.service import backoff_seconds, enqueue
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id

# --- orders ------------------------------------------------------------------------------------------

ORDER_KINDS = ("investment", "redemption")
ORDER_EVENTS = {"investment": "customer.invested", "redemption": "customer.redeemed"}
# 10 billion yuan: more than any single order of a retail or private-banking customer.
MAX_AMOUNT_FEN = 10**12
BATCH_MAX = 1000
CLOCK_SKEW = dt.timedelta(minutes=5)
ORDER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")
ORDER_FIELDS = ("firm_customer_id", "amount_fen", "product_code", "occurred_at")
PHONE_HASH_KIND = "firm.phone"


def valid_amount(value: object, *, field: str = "amount_fen") -> int:
    """Integer fen, 1 … MAX_AMOUNT_FEN; floats, strings and booleans are refused (no rounding of money)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("an amount is a whole number of fen (分), not text or a decimal", field=field)
    if value <= 0:
        raise InvalidInput("an amount must be more than 0 fen", field=field)
    if value > MAX_AMOUNT_FEN:
        raise InvalidInput("an amount is at most %(max)s fen", field=field, params={"max": MAX_AMOUNT_FEN})
    return value


def valid_time(value: object, *, field: str, future: bool = False) -> dt.datetime:
    """ISO-8601 text with a UTC offset (…Z or …+08:00), returned in UTC; not in the future."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        at = dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        at = None
    if at is None or "T" not in text.upper():
        raise InvalidInput("a time is ISO-8601 with a date, a time and a UTC offset, e.g. 2026-01-05T10:00:00+08:00",
                           field=field)
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("the time needs a UTC offset (Z or +08:00)", field=field)
    at = at.astimezone(dt.UTC)
    if not future and at > utcnow() + CLOCK_SKEW:
        raise InvalidInput("the time is in the future", field=field)
    if at.year < 1990:
        raise InvalidInput("the time is too old to be real", field=field)
    return at


def valid_order_id(value: object, *, field: str = "order_id") -> str:
    ref = value.strip() if isinstance(value, str) else ""
    if not ORDER_ID_RE.fullmatch(ref):
        raise InvalidInput("an order id is 1–64 letters, digits, '.', ':', '_' or '-'", field=field)
    return ref


def _body(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidInput("an order is a JSON object", field="body")
    return body


@dataclass
class _Prepared:
    kind: str
    order_id: str
    fields: dict[str, Any]
    occurred_at: dt.datetime
    existing: FirmOrder | None = None
    customer: Any = None  # siyu.customers.models.Customer, from the customers service


def _prepare(session: Session, *, principal: Principal, kind: str, body: object) -> _Prepared:
    from siyu.compliance.suitability import valid_product_code
    from siyu.customers.service import get_customer_by_firm_id, valid_firm_customer_id

    body = _body(body)
    order_id = valid_order_id(body.get("order_id"))
    firm_customer_id = valid_firm_customer_id(body.get("firm_customer_id"))
    amount = valid_amount(body.get("amount_fen"))
    product_code = valid_product_code(body.get("product_code"), field="product_code")
    occurred_at = valid_time(body.get("occurred_at"), field="occurred_at")
    fields = {"firm_customer_id": firm_customer_id, "amount_fen": amount, "product_code": product_code,
              "occurred_at": occurred_at.isoformat()}
    prepared = _Prepared(kind=kind, order_id=order_id, fields=fields, occurred_at=occurred_at)
    prepared.existing = session.scalar(select(FirmOrder).where(
        FirmOrder.corp_id == principal.corp_id, FirmOrder.kind == kind, FirmOrder.firm_order_id == order_id))
    if prepared.existing is not None:
        _same_or_conflict(prepared.existing.fields, fields)
        return prepared
    prepared.customer = get_customer_by_firm_id(session, principal=principal, firm_customer_id=firm_customer_id)
    return prepared


def _same_or_conflict(stored: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
    for name in ORDER_FIELDS:
        if stored.get(name) != fields.get(name):
            raise Conflict("this order id was pushed before with another %(field)s", field=name,
                           params={"field": name})


def _product_level(session: Session, *, corp_id: int, code: str) -> str | None:
    from siyu.compliance.suitability import get_product

    try:
        return get_product(session, corp_id=corp_id, code=code).risk_level
    except NotFound:
        return None


def _is_reinvestment(session: Session, *, customer_id: int, product_code: str) -> bool:
    """An investment after a redemption, or in another product than before (see docs/architecture.md)."""
    return session.scalar(select(func.count()).select_from(FirmOrder).where(
        FirmOrder.customer_id == customer_id,
        (FirmOrder.kind == "redemption") | (FirmOrder.product_code != product_code),
    )) > 0


def _write(session: Session, *, principal: Principal, p: _Prepared) -> FirmOrder:
    customer = p.customer
    level = _product_level(session, corp_id=principal.corp_id, code=p.fields["product_code"])
    reinvestment = p.kind == "investment" and _is_reinvestment(session, customer_id=customer.id,
                                                               product_code=p.fields["product_code"])
    order = FirmOrder(corp_id=principal.corp_id, kind=p.kind, firm_order_id=p.order_id, customer_id=customer.id,
                      firm_customer_id=p.fields["firm_customer_id"], amount_fen=p.fields["amount_fen"],
                      product_code=p.fields["product_code"], product_risk_level=level, occurred_at=p.occurred_at,
                      fields=p.fields)
    session.add(order)
    session.flush()
    publish(session, ORDER_EVENTS[p.kind], {
        "order_id": p.order_id, "kind": p.kind, "customer_id": customer.id,
        "external_userid": customer.external_userid, "firm_customer_id": customer.firm_customer_id,
        "name_masked": pii.mask_name(customer.name), "amount_fen": order.amount_fen,
        "product_code": order.product_code, "product_risk_level": level,
        "occurred_at": p.fields["occurred_at"], "reinvestment": reinvestment, "firm_order_pk": order.id,
    }, corp_id=principal.corp_id, key=f"firm_order:{order.id}")
    return order


def _check_kind(kind: str) -> str:
    if kind not in ORDER_KINDS:
        raise InvalidInput("unknown order kind", field="kind")
    return kind


def record_order(session: Session, *, principal: Principal, kind: str, body: object) -> tuple[FirmOrder, bool]:
    """Records an investment or redemption; returns (order, created). The same order id with the same
    body returns the stored order (created False); with another body: Conflict naming the field."""
    p = _prepare(session, principal=principal, kind=_check_kind(kind), body=body)
    if p.existing is not None:
        return p.existing, False
    return _write(session, principal=principal, p=p), True


class BatchRejected(SiyuError):
    """A batch with at least one bad record: nothing stored; `errors` name each index and field."""

    status_code = 422

    def __init__(self, errors: list[dict[str, Any]], *, status_code: int = 422):
        super().__init__("%(n)s of the records are not valid; nothing was stored", field="items",
                         params={"n": len(errors)})
        self.errors = errors
        self.status_code = status_code


def record_orders(session: Session, *, principal: Principal, kind: str, items: object) -> list[tuple[FirmOrder, bool]]:
    """Up to BATCH_MAX orders, all or nothing: every record is checked before any is written."""
    kind = _check_kind(kind)
    if not isinstance(items, list) or not items:
        raise InvalidInput("items is a list of 1–%(max)s records", field="items", params={"max": BATCH_MAX})
    if len(items) > BATCH_MAX:
        raise InvalidInput("a batch holds at most %(max)s records", field="items", params={"max": BATCH_MAX})
    prepared: list[_Prepared | None] = []
    repeats: dict[int, str] = {}  # index -> order id of an earlier record of this batch it repeats
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, body in enumerate(items):
        try:
            p = _prepare(session, principal=principal, kind=kind, body=body)
            first = seen.setdefault(p.order_id, index)
            if first != index:
                earlier = prepared[first]
                if earlier is not None:
                    _same_or_conflict(earlier.fields, p.fields)
                repeats[index] = p.order_id
                p = None
            prepared.append(p)
        except SiyuError as exc:
            prepared.append(None)
            errors.append({"index": index, "field": f"items.{index}.{exc.field or 'body'}", "detail": exc.message,
                           "status": exc.status_code})
    if errors:
        status = 409 if all(e["status"] == 409 for e in errors) else 422
        raise BatchRejected(errors, status_code=status)
    results: list[tuple[FirmOrder, bool]] = []
    written: dict[str, FirmOrder] = {}
    for index, p in enumerate(prepared):
        if p is None:
            results.append((written[repeats[index]], False))
        elif p.existing is not None:
            written[p.order_id] = p.existing
            results.append((p.existing, False))
        else:
            written[p.order_id] = order = _write(session, principal=principal, p=p)
            results.append((order, True))
    return results


@dataclass(frozen=True)
class Holding:
    product_code: str
    product_risk_level: str | None
    invested_fen: int
    redeemed_fen: int

    @property
    def held_fen(self) -> int:
        return self.invested_fen - self.redeemed_fen


def holdings(session: Session, *, corp_id: int, customer_id: int) -> list[Holding]:
    """Invested − redeemed per product (fen), from the orders the firm pushed."""
    invested = func.sum(case((FirmOrder.kind == "investment", FirmOrder.amount_fen), else_=0))
    redeemed = func.sum(case((FirmOrder.kind == "redemption", FirmOrder.amount_fen), else_=0))
    rows = session.execute(
        select(FirmOrder.product_code, func.max(FirmOrder.product_risk_level), invested, redeemed)
        .where(FirmOrder.corp_id == corp_id, FirmOrder.customer_id == customer_id)
        .group_by(FirmOrder.product_code).order_by(FirmOrder.product_code)
    ).all()
    return [Holding(product_code=code, product_risk_level=level, invested_fen=int(inv or 0), redeemed_fen=int(red or 0))
            for code, level, inv, red in rows]


def fen_text(fen: int) -> str:
    """1234567 -> "12,345.67" (yuan, for display; exact: integer arithmetic)."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan:,}.{cents:02d}"


# --- KYC and lookups -----------------------------------------------------------------------------------


def normalise_phone(value: object, *, field: str = "phone") -> str:
    digits = re.sub(r"[\s\-()]", "", value) if isinstance(value, str) else ""
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not re.fullmatch(r"1[3-9]\d{9}", digits):
        raise InvalidInput("a phone is a mainland mobile number of 11 digits", field=field)
    return digits


def phone_hash(phone: str) -> str:
    return pii.lookup_hash(normalise_phone(phone), kind=PHONE_HASH_KIND)


def _find_customer(session: Session, *, principal: Principal, firm_customer_id: object = None,
                   external_userid: object = None, phone: object = None):
    from siyu.customers import service as customers

    given = [n for n, v in (("firm_customer_id", firm_customer_id), ("external_userid", external_userid),
                            ("phone", phone)) if v is not None]
    if len(given) != 1:
        raise InvalidInput("give exactly one of firm_customer_id, external_userid or phone",
                           field=given[1] if len(given) > 1 else "firm_customer_id")
    if given[0] == "firm_customer_id":
        return customers.get_customer_by_firm_id(session, principal=principal, firm_customer_id=firm_customer_id)
    if given[0] == "external_userid":
        return customers.get_customer_by_external_id(session, principal=principal, external_userid=external_userid)
    key = session.scalar(select(FirmPhoneKey.customer_id).where(FirmPhoneKey.corp_id == principal.corp_id,
                                                                FirmPhoneKey.phone_hash == phone_hash(phone)))
    if key is None:
        raise NotFound("customer not found", field="phone")
    try:
        return customers.get_customer(session, principal=principal, customer_id=key)
    except NotFound:
        raise NotFound("customer not found", field="phone") from None


def record_kyc(session: Session, *, principal: Principal, body: object):
    """A risk level C1–C5 for a customer known by firm_customer_id or external_userid, recorded by the
    compliance domain's `record_assessment`. A phone given with it is kept as a keyed hash for lookups."""
    from siyu.compliance.suitability import record_assessment

    body = _body(body)
    firm_id, ext_id = body.get("firm_customer_id"), body.get("external_userid")
    if firm_id and ext_id:
        raise InvalidInput("give firm_customer_id or external_userid, not both", field="external_userid")
    customer = _find_customer(session, principal=principal, firm_customer_id=firm_id, external_userid=ext_id)
    assessed_at = valid_time(body["assessed_at"], field="assessed_at") if body.get("assessed_at") else None
    expires_at = valid_time(body["expires_at"], field="expires_at", future=True) if body.get("expires_at") else None
    phone = body.get("phone")
    hashed = phone_hash(phone) if phone not in (None, "") else None
    ref = customer.firm_customer_id if firm_id else customer.external_userid
    assessment = record_assessment(session, corp_id=principal.corp_id, actor=principal, customer_ref=ref,
                                   level=body.get("level"), source=body.get("source") or "firm_kyc_api",
                                   assessed_at=assessed_at, expires_at=expires_at,
                                   reference=body.get("reference") or "")
    if hashed is not None:
        session.execute(dialect_insert(session)(FirmPhoneKey.__table__).values(
            corp_id=principal.corp_id, phone_hash=hashed, customer_id=customer.id, created_at=utcnow(),
        ).on_conflict_do_update(index_elements=["corp_id", "phone_hash"], set_={"customer_id": customer.id}))
    return customer, assessment


@dataclass(frozen=True)
class CustomerLookup:
    external_userid: str
    firm_customer_id: str | None
    name_masked: str
    stage: str
    risk_level: str | None
    risk_expires_at: dt.datetime | None
    risk_expired: bool
    holdings: list[Holding]


def lookup_customer(session: Session, *, principal: Principal, firm_customer_id: object = None,
                    external_userid: object = None, phone: object = None) -> CustomerLookup:
    from siyu.customers import service as customers

    customer = _find_customer(session, principal=principal, firm_customer_id=firm_customer_id,
                              external_userid=external_userid, phone=phone)
    risk = customers.risk_of(session, corp_id=principal.corp_id,
                             refs=(customer.external_userid, customer.firm_customer_id))
    return CustomerLookup(
        external_userid=customer.external_userid, firm_customer_id=customer.firm_customer_id,
        name_masked=pii.mask_name(customer.name), stage=customer.stage,
        risk_level=risk.level if risk else None, risk_expires_at=risk.expires_at if risk else None,
        risk_expired=bool(risk and risk.expired),
        holdings=holdings(session, corp_id=principal.corp_id, customer_id=customer.id),
    )


def customer_holdings(session: Session, *, principal: Principal, customer_id: int) -> list[Holding]:
    """The holdings of a customer the caller may see (the 360 page)."""
    from siyu.customers import service as customers

    customer = customers.get_customer(session, principal=principal, customer_id=customer_id)
    return holdings(session, corp_id=principal.corp_id, customer_id=customer.id)


# --- outbound webhooks ----------------------------------------------------------------------------------

# The customer events a firm can subscribe to (those Siyu publishes).
WEBHOOK_EVENTS = ("customer.added", "customer.edited", "customer.deleted", "customer.lost",
                  "customer.transfer_failed", "customer.stage_changed", "customer.invested", "customer.redeemed",
                  "customer.verified", "customer.transferred")
DELIVER_JOB = "integration.deliver_webhook"
# Retries: exponential backoff with full jitter, base 10 s, ceiling 3 h per wait; 25 attempts
# spread over about a day on average (the expected sum of the waits is ~24 h), then dead.
MAX_ATTEMPTS = 25
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 3 * 3600.0
TIMEOUT_SECONDS = 10.0
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_ENDPOINTS = 20
# What a webhook's `data` may carry: ids, codes, amounts and masked names; never clear personal data.
SAFE_KEYS = frozenset({
    "external_userid", "userid", "state", "change_type", "source", "fail_reason", "create_time", "order_id",
    "kind", "amount_fen", "product_code", "product_risk_level", "occurred_at", "firm_customer_id", "name_masked",
    "stage", "from", "to", "reinvestment", "method", "community_id", "handover_userid", "takeover_userid",
})


def sign(secret: str, *, timestamp: str | int, body: bytes | str) -> str:
    """`v1=<hex HMAC-SHA256 over "{timestamp}.{body}">` with the endpoint's secret."""
    raw = body if isinstance(body, bytes) else body.encode()
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def verify_signature(secret: str, *, timestamp: str | int, body: bytes | str, signature: str,
                     tolerance: int | None = SIGNATURE_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """What a receiver does: recompute the signature over the raw body, compare in constant time, and
    refuse a timestamp further than `tolerance` seconds from now (a replayed request)."""
    try:
        ts = int(str(timestamp))
    except ValueError:
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = sign(secret, timestamp=ts, body=body)
    return any(hmac.compare_digest(expected, part.strip()) for part in str(signature).split(",") if part.strip())


def valid_url(value: object, *, field: str = "url") -> str:
    """A webhook endpoint: https to a public address (siyu.netguard), checked after DNS resolution."""
    from siyu import netguard

    return netguard.check_url(value, field=field)


def valid_events(value: object, *, field: str = "events") -> list[str]:
    events = [value] if isinstance(value, str) else list(value) if isinstance(value, list | tuple) else []
    chosen = sorted({e for e in events if isinstance(e, str) and e})
    unknown = [e for e in chosen if e not in WEBHOOK_EVENTS]
    if unknown:
        raise InvalidInput("unknown event(s): %(events)s", field=field, params={"events": ", ".join(unknown)})
    if not chosen:
        raise InvalidInput("choose at least one event", field=field)
    return chosen


def _admin(principal: Principal) -> None:
    if principal.kind != "staff" or not principal.has_role("administrator"):
        raise Forbidden("your role does not allow this")


# The events each corp's enabled endpoints subscribe to, as last read by this process:
# {corp_id: (read at, events)}. The event fan-out asks it on every customer event (in the WeCom
# callback's transaction), so it reads the database at most once per ENDPOINTS_TTL_SECONDS and
# corp. An endpoint created or changed in another process therefore receives the events published
# from at most that long after the change.
ENDPOINTS_TTL_SECONDS = 5.0
_endpoint_events: dict[int, tuple[float, frozenset[str]]] = {}


def corp_webhook_events(session: Session, corp_id: int | None) -> frozenset[str]:
    """The events some enabled endpoint of the corp subscribes to (cached per process for a few
    seconds)."""
    if corp_id is None:
        return frozenset()
    now = time.monotonic()
    seen = _endpoint_events.get(corp_id)
    if seen is not None and now - seen[0] < ENDPOINTS_TTL_SECONDS:
        return seen[1]
    chosen = session.scalars(select(WebhookEndpoint.events).where(WebhookEndpoint.corp_id == corp_id,
                                                                  WebhookEndpoint.enabled.is_(True))).all()
    events = frozenset(e for row in chosen for e in (row or []) if isinstance(e, str))
    _endpoint_events[corp_id] = (now, events)
    return events


def corp_has_endpoints(session: Session, corp_id: int | None) -> bool:
    """Whether the corp has an enabled webhook endpoint for some event (cached like
    `corp_webhook_events`)."""
    return bool(corp_webhook_events(session, corp_id))


def wants_event(event: str):
    """`interested` of the fan-out subscriber of `event`: only a corp with an enabled endpoint
    subscribed to that very event gets a fan-out job for it (no job, no delivery row for the others)."""

    def interested(session: Session, corp_id: int | None) -> bool:
        return event in corp_webhook_events(session, corp_id)

    return interested


def _endpoints_changed(corp_id: int) -> None:
    _endpoint_events.pop(corp_id, None)


def create_endpoint(session: Session, *, principal: Principal, url: object, events: object,
                    ip: str | None = None) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (returned once: the console shows it one time)."""
    _admin(principal)
    url = valid_url(url)
    chosen = valid_events(events)
    count = session.scalar(select(func.count()).select_from(WebhookEndpoint)
                           .where(WebhookEndpoint.corp_id == principal.corp_id))
    if count >= MAX_ENDPOINTS:
        raise InvalidInput("a corp has at most %(max)s webhook endpoints", field="url", params={"max": MAX_ENDPOINTS})
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(corp_id=principal.corp_id, url=url, events=chosen, secret=secret, enabled=True,
                               created_by_staff_id=principal.staff_id)
    session.add(endpoint)
    session.flush()
    _endpoints_changed(principal.corp_id)
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="webhook_endpoint.created",
                 target_type="webhook_endpoint", target_id=endpoint.id, detail={"url": url, "events": chosen}, ip=ip)
    return endpoint, secret


def get_endpoint(session: Session, *, corp_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id) if valid_id(endpoint_id) else None
    if endpoint is None or endpoint.corp_id != corp_id:
        raise NotFound("no such webhook endpoint", field="endpoint_id")
    return endpoint


def set_enabled(session: Session, *, principal: Principal, endpoint_id: int, enabled: bool,
                ip: str | None = None) -> WebhookEndpoint:
    _admin(principal)
    endpoint = get_endpoint(session, corp_id=principal.corp_id, endpoint_id=endpoint_id)
    if endpoint.enabled != enabled:
        endpoint.enabled = enabled
        _endpoints_changed(principal.corp_id)
        audit.record(session, corp_id=principal.corp_id, actor=principal,
                     action="webhook_endpoint.enabled" if enabled else "webhook_endpoint.disabled",
                     target_type="webhook_endpoint", target_id=endpoint.id, ip=ip)
    return endpoint


def list_endpoints(session: Session, *, corp_id: int) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.corp_id == corp_id)
                                .order_by(WebhookEndpoint.id)))


@dataclass
class DeliveryView:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt] = field(default_factory=list)


def list_deliveries(session: Session, *, corp_id: int, limit: int = 50) -> list[DeliveryView]:
    rows = list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.corp_id == corp_id)
                                .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)))
    views = {d.id: DeliveryView(d) for d in rows}
    if views:
        for a in session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(views)))
                                 .order_by(WebhookAttempt.id)):
            views[a.delivery_id].attempts.append(a)
    return list(views.values())


def get_delivery(session: Session, *, corp_id: int, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id) if valid_id(delivery_id) else None
    if delivery is None or delivery.corp_id != corp_id:
        raise NotFound("no such delivery", field="delivery_id")
    return delivery


def delivery_attempts(session: Session, *, corp_id: int, delivery_id: int) -> list[WebhookAttempt]:
    delivery = get_delivery(session, corp_id=corp_id, delivery_id=delivery_id)
    return list(session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
                                .order_by(WebhookAttempt.id)))


def _enqueue_delivery(session: Session, delivery: WebhookDelivery, *, key: str) -> None:
    enqueue(session, name=DELIVER_JOB, payload={"delivery_id": delivery.id}, corp_id=delivery.corp_id,
            queue="default", max_attempts=MAX_ATTEMPTS, idempotency_key=key)


def safe_data(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k in SAFE_KEYS and (v is None or isinstance(v, str | int | bool))}


def fan_out(session: Session, *, corp_id: int, event: str, payload: Mapping[str, Any], source_key: str) -> int:
    """One delivery (and one delivery job) per enabled endpoint of the corp subscribed to `event`;
    a second call with the same `source_key` adds nothing. Returns the number of new deliveries."""
    created = 0
    data = safe_data(payload)
    for endpoint in list_endpoints(session, corp_id=corp_id):
        if not endpoint.enabled or event not in (endpoint.events or []):
            continue
        result = session.execute(dialect_insert(session)(WebhookDelivery.__table__).values(
            corp_id=corp_id, endpoint_id=endpoint.id, event=event, delivery_uid=str(uuid.uuid4()),
            source_key=source_key[:120], payload=data, state="pending", attempts=0, created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["endpoint_id", "source_key"]).returning(WebhookDelivery.id))
        # The new row's id, or none when this source already made its delivery (rowcount is not
        # reliable here: PostgreSQL reports -1 for an INSERT … RETURNING through psycopg).
        delivery_id = result.scalar_one_or_none()
        if delivery_id is None:
            continue
        delivery = session.get(WebhookDelivery, delivery_id)
        _enqueue_delivery(session, delivery, key=f"webhook:{delivery.id}")
        created += 1
    return created


def redeliver(session: Session, *, principal: Principal, delivery_id: int, ip: str | None = None) -> WebhookDelivery:
    """Sends a delivery again (same delivery id, so the receiver can tell a repeat), from the console."""
    _admin(principal)
    delivery = get_delivery(session, corp_id=principal.corp_id, delivery_id=delivery_id)
    delivery.state = "pending"
    _enqueue_delivery(session, delivery, key=f"webhook:{delivery.id}:again:{delivery.attempts}:{uuid.uuid4().hex[:8]}")
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="webhook_delivery.redelivered",
                 target_type="webhook_delivery", target_id=delivery.id, ip=ip)
    return delivery


@dataclass(frozen=True)
class Outgoing:
    url: str
    body: bytes
    headers: dict[str, str]


def outgoing(delivery: WebhookDelivery, endpoint: WebhookEndpoint, *, now: float | None = None) -> Outgoing:
    """The request of one attempt: the body is the same on every attempt, the timestamp is the attempt's."""
    envelope = {"id": delivery.delivery_uid, "event": delivery.event, "created_at": delivery.created_at.isoformat(),
                "data": delivery.payload}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time() if now is None else now))
    return Outgoing(url=endpoint.url, body=body, headers={
        "Content-Type": "application/json",
        "User-Agent": "Siyu-Webhooks/1",
        "X-Siyu-Event": delivery.event,
        "X-Siyu-Delivery": delivery.delivery_uid,
        "X-Siyu-Timestamp": timestamp,
        "X-Siyu-Signature": sign(endpoint.secret, timestamp=timestamp, body=body),
    })


def record_attempt(session: Session, *, delivery_id: int, status_code: int | None, latency_ms: int, error: str,
                   final: bool) -> str:
    """Writes one attempt and the delivery's state: delivered (2xx), dead (`final` failure) or pending."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return "gone"
    ok = status_code is not None and 200 <= status_code < 300
    session.add(WebhookAttempt(corp_id=delivery.corp_id, delivery_id=delivery.id, at=utcnow(), status_code=status_code,
                               latency_ms=latency_ms, error=error[:300]))
    delivery.attempts += 1
    delivery.last_status_code = status_code
    if ok:
        delivery.state, delivery.delivered_at = "delivered", utcnow()
    elif final:
        delivery.state = "dead"
    else:
        delivery.state = "pending"
    return delivery.state


def retry_delay(attempt: int) -> float:
    return backoff_seconds(attempt, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS)


def delivery_counts(session: Session, *, corp_id: int) -> dict[str, int]:
    return dict(session.execute(select(WebhookDelivery.state, func.count()).where(WebhookDelivery.corp_id == corp_id)
                                .group_by(WebhookDelivery.state)).all())
