"""Customers and what Siyu stores about them, built row by row so that each rule test knows exactly
who must match."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

from sqlalchemy.orm import Session

from siyu.customers.models import (
    Customer,
    CustomerEvent,
    CustomerFollow,
    CustomerTag,
    CustomerTagGroup,
    CustomerTagLink,
)
from siyu.integration.models import FirmOrder

_seq = itertools.count(1)
# 10:00 in Shanghai on Monday 2026-03-02.
NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def sh(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> dt.datetime:
    """A wall-clock time in Asia/Shanghai, as UTC."""
    from zoneinfo import ZoneInfo

    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(dt.UTC)


def customer(session: Session, corp_id: int, *, name: str = "张伟", stage: str = "new", gender: int = 1,
             added: dt.datetime = NOW - dt.timedelta(days=100), firm_customer_id: str | None = None) -> Customer:
    row = Customer(corp_id=corp_id, external_userid="wm" + uuid.uuid4().hex[:20], name=name, stage=stage,
                   gender=gender, first_added_at=added, firm_customer_id=firm_customer_id)
    session.add(row)
    session.flush()
    return row


def tag(session: Session, corp_id: int, name: str | None = None) -> CustomerTag:
    group = CustomerTagGroup(corp_id=corp_id, name=f"组{next(_seq)}")
    session.add(group)
    session.flush()
    row = CustomerTag(corp_id=corp_id, group_id=group.id, name=name or f"标签{next(_seq)}")
    session.add(row)
    session.flush()
    return row


def link(session: Session, c: Customer, *tags: CustomerTag) -> None:
    for t in tags:
        session.add(CustomerTagLink(customer_id=c.id, tag_id=t.id, corp_id=c.corp_id, stage=c.stage))
    session.flush()


def event(session: Session, c: Customer, kind: str, at: dt.datetime) -> None:
    session.add(CustomerEvent(corp_id=c.corp_id, customer_id=c.id, kind=kind, at=at, actor="test", detail={}))
    session.flush()


def order(session: Session, c: Customer, kind: str, at: dt.datetime, *, amount_fen: int = 100_000,
          product: str = "P1", risk: str | None = "R2") -> FirmOrder:
    row = FirmOrder(corp_id=c.corp_id, kind=kind, firm_order_id=f"o{next(_seq)}", customer_id=c.id,
                    firm_customer_id=c.firm_customer_id or "F", amount_fen=amount_fen, product_code=product,
                    product_risk_level=risk, occurred_at=at, fields={})
    session.add(row)
    session.flush()
    return row


def follow(session: Session, c: Customer, *, staff_id: int | None, userid: str, status: str = "active") -> None:
    session.add(CustomerFollow(corp_id=c.corp_id, customer_id=c.id, staff_id=staff_id, wecom_userid=userid,
                               add_time=c.first_added_at, status=status, stage=c.stage))
    session.flush()
