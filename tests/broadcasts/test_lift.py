"""Lift of a broadcast over its holdout: the intervals (Newcombe's hybrid score for rates, Welch for
amounts) and the figures read from stored facts (firm orders, group joins)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from customers.factories import make_customer
from siyu.broadcasts import lift
from siyu.broadcasts.models import Broadcast
from siyu.delivery.models import DeliveryLedger
from siyu.integration.models import FirmOrder
from tenancy.factories import make_corp

START = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)


@given(n1=st.integers(1, 5000), n2=st.integers(1, 5000), data=st.data())
def test_the_newcombe_interval_holds_the_difference_and_stays_within_bounds(n1, n2, data):
    x1, x2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    d, low, high = lift.newcombe(x1, n1, x2, n2)
    assert -1 - 1e-9 <= low <= d <= high <= 1 + 1e-9
    assert math.isclose(d, x1 / n1 - x2 / n2)


def test_the_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), table II, example (a): 56/70 vs 48/80 → 0.2000, interval 0.0524 to 0.3339.
    d, low, high = lift.newcombe(56, 70, 48, 80)
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)


@given(a=st.lists(st.integers(0, 10**9), min_size=2, max_size=60),
       b=st.lists(st.integers(0, 10**9), min_size=2, max_size=60))
def test_welch_agrees_with_the_textbook_formula(a, b):
    x, y = np.array(a, dtype=float), np.array(b, dtype=float)
    d, low, high = lift.welch(x.sum(), (x * x).sum(), len(x), y.sum(), (y * y).sum(), len(y))
    assert math.isclose(d, x.mean() - y.mean(), rel_tol=1e-9, abs_tol=1e-3)
    se = math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
    if se > 1e-3:
        assert low <= d <= high
        assert math.isclose((high - low) / 2, lift.t_quantile(
            se ** 4 / ((x.var(ddof=1) / len(x)) ** 2 / (len(x) - 1) + (y.var(ddof=1) / len(y)) ** 2 / (len(y) - 1))
        ) * se, rel_tol=1e-6)


def test_t_quantile_is_close_to_the_table():
    for df, table in ((3, 3.182), (5, 2.571), (10, 2.228), (30, 2.042), (120, 1.980)):
        assert abs(lift.t_quantile(df) - table) / table < 0.01


def test_lift_of_treated_over_holdout_from_firm_orders(session):
    corp = make_corp(session)
    row = Broadcast(corp_id=corp.id, name="基金定投", status="sent", audience={"stages": []}, holdout_basis_points=2000,
                    holdout_salt=1, started_at=START, created_by="test")
    session.add(row)
    session.flush()
    order = iter(range(1, 10**6))

    def customer(reason, invests):
        c = make_customer(session, corp.id, userid="zhangsan")
        session.add(DeliveryLedger(corp_id=corp.id, customer_id=c.id, kind="broadcast", source=f"broadcast:{row.id}",
                                   state="sent" if not reason else "aborted", reason=reason, at=START))
        for at, amount in invests:
            session.add(FirmOrder(corp_id=corp.id, kind="investment", firm_order_id=f"o{next(order)}", customer_id=c.id,
                                  firm_customer_id="F1", amount_fen=amount, product_code="FUND-1", occurred_at=at,
                                  fields={}))

    later, earlier = START + dt.timedelta(days=2), START - dt.timedelta(days=30)
    for i in range(40):  # treated: 20 of 40 invest after the broadcast, 5 of them had invested before
        customer("", [(later, 100_000)] if i < 20 else [])
    for _ in range(5):
        customer("", [(earlier, 50_000)])
    session.flush()
    for i in range(20):  # holdout: 2 of 20 invest
        customer("holdout_broadcast", [(later, 100_000)] if i < 2 else [])
    customer("holdout_global", [(later, 100_000)])  # the global control group is not this broadcast's holdout
    session.flush()
    got = lift.lift(session, row=row, until=START + dt.timedelta(days=30))
    assert (got.treated, got.holdout) == (45, 20)
    invested = next(m for m in got.metrics if m.name == "invested")
    assert math.isclose(invested.treated, 20 / 45) and math.isclose(invested.holdout, 2 / 20)
    assert invested.significant and invested.low > 0
    amount = next(m for m in got.metrics if m.name == "amount_fen")
    assert math.isclose(amount.lift, 20 * 100_000 / 45 - 2 * 100_000 / 20)
    reinvested = next(m for m in got.metrics if m.name == "reinvested")
    assert reinvested.treated == 0, "those who invested before did not invest again after"
