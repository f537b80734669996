"""The firm's orders in data-subject requests and retention: exported, kept under legal hold by an
erasure, purged only once the sales-record retention period has passed."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select, update

from siyu.customers import contacts
from siyu.db import utcnow
from siyu.integration import privacy as integration_privacy
from siyu.integration.models import FirmOrder
from siyu.privacy import service as privacy
from siyu.tenancy import service as tenancy


def _corp_with_orders(session, n: int = 2):
    corp = tenancy.create_corp(session, slug="ord-" + uuid.uuid4().hex[:8], name="订单银行")
    ext = "wm" + uuid.uuid4().hex[:20]
    customer = contacts.ensure_customer(session, corp_id=corp.id, external_userid=ext, added_at=utcnow())
    for i in range(n):
        session.add(FirmOrder(corp_id=corp.id, kind="investment", firm_order_id=f"O{i}", customer_id=customer.id,
                              firm_customer_id="F1", amount_fen=100_000 * (i + 1), product_code="FUND-3",
                              occurred_at=utcnow() - dt.timedelta(days=30 * i), fields={}))
    session.flush()
    return corp, ext


def test_orders_are_exported_kept_by_erasure_and_purged_after_retention(session):
    corp, ext = _corp_with_orders(session)
    bundle = integration_privacy.export(session, corp_id=corp.id, external_userid=ext)
    assert sorted(o["amount_fen"] for o in bundle["orders"]) == [100_000, 200_000]
    erased = integration_privacy.erase(session, corp_id=corp.id, external_userid=ext)
    assert [(k["record"], k["count"]) for k in erased.kept] == [("orders", 2)]
    assert "orders" not in erased.erased

    purge_orders = next(fn for fn in privacy.purgers()["order"] if fn is integration_privacy.purge)
    count = select(func.count()).select_from(FirmOrder).where(FirmOrder.corp_id == corp.id)
    assert purge_orders(session, corp_id=corp.id, before=utcnow() - dt.timedelta(days=20 * 365), limit=500) == 0
    session.execute(update(FirmOrder).where(FirmOrder.firm_order_id == "O1")
                    .values(occurred_at=utcnow() - dt.timedelta(days=21 * 365)))
    assert purge_orders(session, corp_id=corp.id, before=utcnow() - dt.timedelta(days=20 * 365), limit=500) == 1
    assert session.scalar(count) == 1


def test_a_customer_siyu_does_not_know_has_nothing(session):
    corp, _ext = _corp_with_orders(session, n=1)
    assert integration_privacy.export(session, corp_id=corp.id, external_userid="wmnobody") == {"orders": []}
    assert integration_privacy.erase(session, corp_id=corp.id, external_userid="wmnobody").kept == []
