"""Lift of a broadcast: its treated customers (the plan's recipients: intention to treat, whether or
not their advisor confirmed) against its holdout (the audience's customers held out by the
broadcast's own holdout), on conversions after the broadcast started, read from the customers'
stored facts:

- verified: a customer verification (the gate's phone check) by the customer;
- joined: the customer joined a group (a `group_member` stay that began);
- invested: an investment order pushed by the firm;
- reinvested: an investment by a customer who had invested before the broadcast;
- amount: the amount invested per customer, in fen (zero for those who did not invest).

Proportions: the difference of the two rates with Newcombe's hybrid score interval (method 10, from
the two Wilson intervals), which stays inside [-1, 1] and behaves with rates near 0 — what a
conversion rate of a few percent needs; the Wald interval does not. Amounts: the difference of the
means with Welch's interval (unequal variances; the t quantile by the Cornish–Fisher expansion).
95% intervals."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from statistics import NormalDist

from sqlalchemy import Float, and_, cast, exists, func, select
from sqlalchemy.orm import Session

from siyu.broadcasts.models import Broadcast
from siyu.db import utcnow
from siyu.delivery.models import DeliveryLedger

Z95 = NormalDist().inv_cdf(0.975)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """p1 − p2 and its hybrid score interval (Newcombe 1998, method 10)."""
    p1 = x1 / n1 if n1 else 0.0
    p2 = x2 / n2 if n2 else 0.0
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def t_quantile(df: float, z: float = Z95) -> float:
    """Student's t quantile from the normal one (Cornish–Fisher; within 0.5% for df ≥ 3)."""
    if df <= 0 or math.isinf(df):
        return z
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


def welch(sum1: float, sumsq1: float, n1: int, sum2: float, sumsq2: float, n2: int) -> tuple[float, float, float]:
    """Mean difference and Welch's 95% interval from sums and sums of squares."""
    if n1 < 2 or n2 < 2:
        m1 = sum1 / n1 if n1 else 0.0
        m2 = sum2 / n2 if n2 else 0.0
        return m1 - m2, -math.inf, math.inf
    m1, m2 = sum1 / n1, sum2 / n2
    v1 = max(0.0, (sumsq1 - n1 * m1 * m1) / (n1 - 1))
    v2 = max(0.0, (sumsq2 - n2 * m2 * m2) / (n2 - 1))
    se2 = v1 / n1 + v2 / n2
    if se2 == 0:
        return m1 - m2, m1 - m2, m1 - m2
    df = se2 ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    half = t_quantile(df) * math.sqrt(se2)
    return m1 - m2, m1 - m2 - half, m1 - m2 + half


@dataclass(frozen=True)
class Metric:
    name: str
    treated: float  # rate (or mean amount in fen)
    holdout: float
    lift: float  # treated − holdout
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Lift:
    treated: int
    holdout: int
    since: dt.datetime | None
    metrics: tuple[Metric, ...]


def _flags(session: Session, *, row: Broadcast, since: dt.datetime, until: dt.datetime, reason: str):
    from siyu.acquisition.models import CustomerVerification
    from siyu.communities.models import GroupMember
    from siyu.customers.models import Customer
    from siyu.integration.models import FirmOrder

    L, c = DeliveryLedger, Customer  # noqa: N806
    group = (select(L.customer_id.label("cid")).where(L.source == f"broadcast:{row.id}", L.reason == reason)
             .subquery("grp"))
    verified = exists().where(CustomerVerification.corp_id == row.corp_id,
                              CustomerVerification.external_userid == c.external_userid,
                              CustomerVerification.at >= since, CustomerVerification.at < until)
    joined = exists().where(GroupMember.customer_id == c.id, GroupMember.joined_at >= since,
                            GroupMember.joined_at < until)
    after = and_(FirmOrder.customer_id == c.id, FirmOrder.kind == "investment", FirmOrder.occurred_at >= since,
                 FirmOrder.occurred_at < until)
    invested = exists().where(after)
    before = select(FirmOrder.id).where(FirmOrder.customer_id == c.id, FirmOrder.kind == "investment",
                                        FirmOrder.occurred_at < since).exists()
    amount = (select(func.coalesce(func.sum(FirmOrder.amount_fen), 0)).where(after).scalar_subquery())
    per = (select(c.id, verified.label("v"), joined.label("j"), invested.label("i"), (invested & before).label("r"),
                  amount.label("a"))
           .select_from(group).join(c, c.id == group.c.cid).subquery("per"))
    from sqlalchemy import case

    def count(col):
        return func.coalesce(func.sum(case((col, 1), else_=0)), 0)

    return session.execute(select(func.count(), count(per.c.v), count(per.c.j), count(per.c.i), count(per.c.r),
                                  func.coalesce(func.sum(per.c.a), 0),
                                  func.coalesce(func.sum(cast(per.c.a, Float) * cast(per.c.a, Float)), 0))).one()


def lift(session: Session, *, row: Broadcast, until: dt.datetime | None = None) -> Lift | None:
    """The broadcast's lift on each conversion, or None before it started or without a holdout."""
    if row.started_at is None or not row.holdout_basis_points:
        return None
    until = until or utcnow()
    t = _flags(session, row=row, since=row.started_at, until=until, reason="")
    h = _flags(session, row=row, since=row.started_at, until=until, reason="holdout_broadcast")
    nt, nh = int(t[0]), int(h[0])
    metrics = []
    for i, name in enumerate(("verified", "joined", "invested", "reinvested"), start=1):
        d, low, high = newcombe(int(t[i]), nt, int(h[i]), nh)
        metrics.append(Metric(name, int(t[i]) / nt if nt else 0.0, int(h[i]) / nh if nh else 0.0, d, low, high))
    d, low, high = welch(float(t[5]), float(t[6]), nt, float(h[5]), float(h[6]), nh)
    metrics.append(Metric("amount_fen", float(t[5]) / nt if nt else 0.0, float(h[5]) / nh if nh else 0.0, d, low, high))
    return Lift(treated=nt, holdout=nh, since=row.started_at, metrics=tuple(metrics))
