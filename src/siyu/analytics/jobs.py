"""The analytics feed: the domains' events written into the event store.

Every subscriber here only writes to the database, so each is `together=True`: it runs in the
event's one shared job with the event's other database-only subscribers (an add still costs three
jobs). Together-subscribers of an event run in the order of their names, and the feed needs the
customer the customers domain records on an add: so the feed's subscribers are named
`record.analytics.…`, after `customers.…`. Each event is recorded once, by a source key made from
the domain event's natural key (the inbox event, the verification, the group stay, the firm
order, the archived message), whichever job delivers it and however often.

| domain event | analytics event | dimensions |
| --- | --- | --- |
| customer.added (WeCom) | customer.added | channel (the code's state), campaign, advisor, persona, variant |
| customer.verified (H5 gate) | customer.verified | (reports take the channel of the customer's add) |
| customer.lost (WeCom) | customer.lost | advisor |
| group.joined / group.left | group.joined / group.left | group_key (chat id), join_way (state), advisor |
| chat.direct_messages (chat archive) | message.received / message.sent | advisor |
| customer.invested / customer.redeemed (firm orders) | order.invested / order.redeemed | product, amount_fen |

The firm pushes campaign.reward_paid, coupon.redeemed and order.matured through its API
(`siyu.analytics.api`); `siyu.analytics.backfill` writes the same rows from what was stored before."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.analytics import backfill, service  # noqa: F401 - backfill registers its job
from siyu.db import utcnow
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater

log = logging.getLogger(__name__)

PREFIX = "record.analytics"  # sorts after "customers.": see the module's docstring


def _corp_id(job: JobContext) -> int:
    if job.corp_id is None:
        raise PermanentFailure("an event without a corp")
    return job.corp_id


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _customer(session: Session, corp_id: int, *, external_userid: object = None, firm_customer_id: object = None):
    from sqlalchemy import select

    from siyu.customers import contacts
    from siyu.customers.models import Customer

    if isinstance(external_userid, str) and external_userid:
        customer = contacts.get_by_external_id(session, corp_id=corp_id, external_userid=external_userid)
        if customer is not None:
            return customer
    if isinstance(firm_customer_id, str) and firm_customer_id:
        return session.scalar(select(Customer).where(Customer.corp_id == corp_id,
                                                     Customer.firm_customer_id == firm_customer_id))
    return None


def add_dimensions(session: Session, *, corp_id: int, state: str | None, userid: str | None,
                   external_userid: str) -> dict[str, str | None]:
    """The dimensions of an add: the channel code's state, its campaign and persona, the advisor, and
    the welcome variant this customer gets (the one the welcome job chooses: by weight among the
    flow's active, approved variants, the same for the same customer)."""
    from siyu.acquisition import service as acquisition
    from siyu.acquisition import welcome

    dims: dict[str, str | None] = {"channel": state or None, "advisor": userid or None}
    code = acquisition.code_by_state(session, corp_id=corp_id, state=state) if state else None
    if code is None:
        return dims
    dims["campaign"] = code.campaign or None
    dims["persona"] = str(code.persona_id) if code.persona_id else None
    flow = welcome.get_flow(session, corp_id=corp_id, code_id=code.id)
    if flow is not None and flow.enabled:
        from siyu.compliance.service import OwnerRef, sendable_owners

        active = welcome.list_variants(session, corp_id=corp_id, flow_id=flow.id, active_only=True)
        live = sendable_owners(session, corp_id=corp_id, kind="welcome",
                               owners=[OwnerRef(welcome.WELCOME_VARIANT, v.id) for v in active])
        variant = welcome.choose_variant([v for v in active if OwnerRef(welcome.WELCOME_VARIANT, v.id) in live],
                                         external_userid=external_userid)
        dims["variant"] = str(variant.id) if variant is not None else None
    return dims


@subscribe("customer.added", name=f"{PREFIX}.customer_added", together=True)
def customer_added(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户添加 → customer.added, attributed to its channel code (a handover's take-over add is no
    acquisition and is not recorded)."""
    from siyu.customers.jobs import event_time
    from siyu.customers.service import is_transfer_add

    corp_id = _corp_id(job)
    ext, userid, event_id = payload.get("external_userid"), payload.get("userid"), payload.get("inbox_event_id")
    if not isinstance(ext, str) or not isinstance(userid, str) or event_id is None:
        raise PermanentFailure("payload.external_userid, userid and inbox_event_id are required")
    at = event_time(payload)
    if not payload.get("welcome_code") and is_transfer_add(session, corp_id=corp_id, external_userid=ext,
                                                           wecom_userid=userid, at=at):
        return
    customer = _customer(session, corp_id, external_userid=ext)
    if customer is None:  # the customers subscriber did not store the contact (it failed and retries alone)
        raise RetryLater(5, "the customer record is not there yet")
    state = payload.get("state") if isinstance(payload.get("state"), str) else None
    service.record(session, corp_id=corp_id, customer_id=customer.id, type="customer.added", ts=at,
                   source_key=f"wecom:{event_id}:added",
                   **add_dimensions(session, corp_id=corp_id, state=state, userid=userid, external_userid=ext))


@subscribe("customer.lost", name=f"{PREFIX}.customer_lost", together=True)
def customer_lost(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """被客户删除 → customer.lost (the advisor the customer deleted)."""
    from siyu.customers.jobs import event_time

    corp_id = _corp_id(job)
    customer = _customer(session, corp_id, external_userid=payload.get("external_userid"))
    event_id = payload.get("inbox_event_id")
    if customer is None or event_id is None:
        return
    userid = payload.get("userid") if isinstance(payload.get("userid"), str) else None
    service.record(session, corp_id=corp_id, customer_id=customer.id, type="customer.lost", ts=event_time(payload),
                   source_key=f"wecom:{event_id}:lost", advisor=userid)


@subscribe("customer.verified", name=f"{PREFIX}.customer_verified", together=True)
def customer_verified(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """A customer passed the verification gate (H5) → customer.verified."""
    corp_id = _corp_id(job)
    verification_id = payload.get("verification_id")
    customer = _customer(session, corp_id, external_userid=payload.get("external_userid"),
                         firm_customer_id=payload.get("firm_customer_id"))
    if customer is None or not isinstance(verification_id, int):
        return  # a visitor Siyu knows no contact of: nobody to count
    service.record(session, corp_id=corp_id, customer_id=customer.id, type="customer.verified",
                   ts=_time(payload.get("at")) or utcnow(), source_key=f"verification:{verification_id}")


def _group_event(session: Session, payload: dict[str, Any], job: JobContext, type: str) -> None:
    corp_id = _corp_id(job)
    customer_id, stay_id = payload.get("customer_id"), payload.get("stay_id")
    if not isinstance(customer_id, int) or not isinstance(stay_id, int):
        return  # a member who is not (yet) a known customer
    at = _time(payload.get("joined_at" if type == "group.joined" else "left_at")) or utcnow()
    service.record(session, corp_id=corp_id, customer_id=customer_id, type=type, ts=at,
                   source_key=f"stay:{stay_id}:{type.split('.')[1]}", group_key=payload.get("chat_id"),
                   join_way=payload.get("state"), advisor=payload.get("owner_userid"))


@subscribe("group.joined", name=f"{PREFIX}.group_joined", together=True)
def group_joined(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    _group_event(session, payload, job, "group.joined")


@subscribe("group.left", name=f"{PREFIX}.group_left", together=True)
def group_left(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    _group_event(session, payload, job, "group.left")


@subscribe("chat.direct_messages", name=f"{PREFIX}.direct_messages", together=True)
def direct_messages(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """One archive ingest's 1-on-1 messages → message.received (the customer wrote) and message.sent
    (the advisor wrote), one event per message, for the customers Siyu knows."""
    from siyu.compliance.archive import direct_messages as read
    from siyu.customers.service import customer_refs

    corp_id = _corp_id(job)
    first, last = payload.get("first_id"), payload.get("last_id")
    if not isinstance(first, int) or not isinstance(last, int):
        raise PermanentFailure("payload.first_id and last_id are required")
    messages = read(session, corp_id=corp_id, first_id=first, last_id=last)
    refs = customer_refs(session, corp_id=corp_id, external_userids=[m.customer_userid for m in messages])
    rows = []
    for m in messages:
        ref = refs.get(m.customer_userid)
        if ref is None:
            continue
        rows.append(service.event_row(
            corp_id=corp_id, customer_id=ref.id, type="message.sent" if m.sender_is_staff else "message.received",
            ts=m.sent_at, source_key=f"msg:{m.msgid}"[:service.MAX_SOURCE_KEY], advisor=m.staff_userid))
    service.record_many(session, rows)


def _order(session: Session, payload: dict[str, Any], job: JobContext, type: str) -> None:
    corp_id = _corp_id(job)
    customer_id, pk = payload.get("customer_id"), payload.get("firm_order_pk")
    if not isinstance(customer_id, int) or not isinstance(pk, int):
        raise PermanentFailure("payload.customer_id and firm_order_pk are required")
    amount = payload.get("amount_fen") if isinstance(payload.get("amount_fen"), int) else None
    service.record(session, corp_id=corp_id, customer_id=customer_id, type=type,
                   ts=_time(payload.get("occurred_at")) or utcnow(), source_key=f"firm_order:{pk}",
                   product=payload.get("product_code"), amount_fen=amount)


@subscribe("customer.invested", name=f"{PREFIX}.order_invested", together=True)
def order_invested(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """An investment the firm pushed (firm_order kind investment) → order.invested."""
    _order(session, payload, job, "order.invested")


@subscribe("customer.redeemed", name=f"{PREFIX}.order_redeemed", together=True)
def order_redeemed(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """A redemption the firm pushed (firm_order kind redemption) → order.redeemed."""
    _order(session, payload, job, "order.redeemed")
