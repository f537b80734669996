"""The integration domain's part in data-subject requests and retention (see `siyu.privacy`):
the orders and redemptions the firm pushed for a customer.

They are sales records: an export lists them, an erasure keeps them under legal hold (the firm must
keep sales-process records for their retention period), and the purge of the "order" record class
removes them once that period has passed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.integration.models import FirmOrder
from siyu.privacy.service import Erased, purge_older, register_purger, register_subject_domain


def _orders(session: Session, *, corp_id: int, external_userid: str):
    from siyu.customers.contacts import get_by_external_id

    customer = get_by_external_id(session, corp_id=corp_id, external_userid=external_userid)
    if customer is None:
        return None, None
    customer_id = customer.id
    return customer_id, select(FirmOrder).where(FirmOrder.corp_id == corp_id, FirmOrder.customer_id == customer_id)


def export(session: Session, *, corp_id: int, external_userid: str) -> dict[str, list[dict[str, Any]]]:
    customer_id, query = _orders(session, corp_id=corp_id, external_userid=external_userid)
    if customer_id is None:
        return {"orders": []}
    return {"orders": [
        {"kind": o.kind, "firm_order_id": o.firm_order_id, "product_code": o.product_code,
         "amount_fen": o.amount_fen, "occurred_at": o.occurred_at}
        for o in session.scalars(query.order_by(FirmOrder.occurred_at, FirmOrder.id))]}


def erase(session: Session, *, corp_id: int, external_userid: str) -> Erased:
    out = Erased()
    customer_id, query = _orders(session, corp_id=corp_id, external_userid=external_userid)
    if customer_id is None:
        return out
    kept = session.scalar(select(func.count()).select_from(query.subquery()))
    if kept:
        out.kept.append({"record": "orders", "count": kept,
                         "reason": "sales record under legal hold for its retention period"})
    return out


def purge(session: Session, *, corp_id: int, before: dt.datetime, limit: int) -> int:
    return purge_older(session, FirmOrder, corp_id=corp_id, at=FirmOrder.occurred_at, before=before, limit=limit)


register_subject_domain("integration", exporter=export, eraser=erase)
register_purger("order", purge)
