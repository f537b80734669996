"""The plan preview: for an audience (any `Select` of customer ids) and a content item, before
anything is sent, the recipients and every excluded customer counted by reason — in SQL over the
audience subquery, one statement, so that it runs on a million customers.

Reasons, the first that applies (`service.REASONS`): not a friend any more (no active follow
relation), no advisor (followed only by members of staff Siyu does not know or who left), opted
out of marketing, in the global control group, in this broadcast's holdout, unsuitable for a
product in the content (`compliance.suitability`'s rule: R1 for all; else an unexpired assessment
at least the product's level, the assessment in force being the latest of the customer's
external_userid or firm customer id), then the caps (day, 7 days, 30 days, WeCom's allowance) as
`service.claim` counts them. Quiet hours exclude nobody: when the send time falls in them the
recipients are counted as held until `release_at`.

The advisor who sends to each recipient is their active follower known to Siyu who added them last.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Select, and_, case, func, literal, or_, select, text
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.delivery import service
from siyu.delivery.models import DeliveryLedger


@dataclass
class Plan:
    audience: int
    recipients: int
    excluded: dict[str, int] = field(default_factory=dict)
    held: int = 0
    release_at: dt.datetime | None = None
    at: dt.datetime | None = None

    def as_dict(self) -> dict:
        return {"audience": self.audience, "recipients": self.recipients, "excluded": dict(self.excluded),
                "held": self.held, "release_at": self.release_at.isoformat() if self.release_at else None,
                "release_local": (self.release_at.astimezone(service.SHANGHAI).strftime("%Y-%m-%d %H:%M")
                                  if self.release_at else None)}


def product_level(session: Session, *, corp_id: int, product_codes: Sequence[str]) -> int | None:
    """The highest risk level (1–5) of the content's products; 6 when one is inactive or unknown
    (then nobody is suitable); None without products."""
    from siyu.compliance.models import Product

    codes = sorted({c for c in product_codes if isinstance(c, str) and c})
    if not codes:
        return None
    rows = session.execute(select(Product.code, Product.risk_level, Product.is_active)
                           .where(Product.corp_id == corp_id, Product.code.in_(codes))).all()
    if len(rows) < len(codes) or any(not active for _c, _l, active in rows):
        return 6
    return max(int(level[1]) for _c, level, _a in rows)


def _columns(session: Session, *, corp_id: int, audience: Select, at: dt.datetime, product_codes: Sequence[str],
             holdout: tuple[int, int, int] | None, kind: str):
    from siyu.compliance.models import CustomerRiskAssessment
    from siyu.customers.models import Customer, CustomerFollow
    from siyu.privacy.models import ConsentRecord
    from siyu.tenancy.models import Staff

    policy = service.policy_for(session, corp_id=corp_id)
    aud = audience.subquery("aud")
    aud_id = list(aud.c)[0]
    c = Customer
    # One probe of the covering index (customer_id, status, staff_id) per customer: NULL no active
    # follow (not a friend any more), 1 only followed by people who are not active staff, 2 advised.
    known_staff = select(Staff.id).where(Staff.corp_id == corp_id, Staff.is_active.is_(True))
    follow = (select(func.max(case((CustomerFollow.staff_id.in_(known_staff), 2), else_=1)))
              .where(CustomerFollow.customer_id == c.id, CustomerFollow.status == "active")
              .correlate(c).scalar_subquery())
    consent = (select(ConsentRecord.granted)
               .where(ConsentRecord.corp_id == corp_id, ConsentRecord.external_userid == c.external_userid,
                      ConsentRecord.purpose == "marketing")
               .order_by(ConsentRecord.id.desc()).limit(1).scalar_subquery())
    d0, d7, d30 = service.day_start(at), service.day_start(at, days_back=6), service.day_start(at, days_back=29)
    a0, wecom_cap = service.allowance(policy.wecom_allowance, at)
    L = DeliveryLedger  # noqa: N806
    mass = L.kind.not_in(service.NOT_MASS_MESSAGE)
    sent = (select(L.customer_id.label("cid"),
                   func.sum(case((L.at >= d0, 1), else_=0)).label("day"),
                   func.sum(case((L.at >= d7, 1), else_=0)).label("d7"),
                   func.sum(case((L.at >= d30, 1), else_=0)).label("d30"),
                   func.sum(case(((L.at >= a0) & mass, 1), else_=0)).label("wc"))
            .where(L.corp_id == corp_id, L.state.in_(service.COUNTED), L.at >= min(d30, a0), L.at <= at)
            .group_by(L.customer_id).subquery("sent"))
    whens = [(follow.is_(None), "not_friend"), (follow != 2, "no_advisor"), (consent.is_(False), "opted_out")]
    if policy.holdout_basis_points > 0:
        whens.append((service.bucket_sql(c.id, policy.holdout_mult, policy.holdout_add)
                      < policy.holdout_basis_points, "holdout_global"))
    if holdout is not None and holdout[2] > 0:
        mult, add, bp = holdout
        whens.append((service.bucket_sql(c.id, mult, add) < bp, "holdout_broadcast"))
    level = product_level(session, corp_id=corp_id, product_codes=product_codes)
    if level is not None and level >= 2:
        # The assessment in force: the latest of the customer's external_userid or firm customer id, read
        # from the covering index (corp_id, customer_ref, assessed_at, id, level, expires_at).
        cra, need = CustomerRiskAssessment, f"C{min(level, 5)}"

        def in_force(*refs):
            return (select(and_(cra.level >= need, cra.expires_at > at))
                    .where(cra.corp_id == corp_id, or_(*[cra.customer_ref == r for r in refs]))
                    .order_by(cra.assessed_at.desc(), cra.id.desc()).limit(1).correlate(c).scalar_subquery())

        ok = case((c.firm_customer_id.is_(None), in_force(c.external_userid)),
                  else_=in_force(c.external_userid, c.firm_customer_id))
        suitable = func.coalesce(ok, False) == True  # noqa: E712 - SQL, not Python
        whens.append((literal(level >= 6) | ~suitable, "unsuitable"))
    day, d7c, d30c, wc = (func.coalesce(sent.c.day, 0), func.coalesce(sent.c.d7, 0),
                          func.coalesce(sent.c.d30, 0), func.coalesce(sent.c.wc, 0))
    whens += [(day >= policy.per_day, "capped_day"), (d7c >= policy.per_7_days, "capped_7_days"),
              (d30c >= policy.per_30_days, "capped_30_days")]
    if kind not in service.NOT_MASS_MESSAGE:
        whens.append((wc >= wecom_cap, "capped_wecom"))
    reason = case(*whens, else_=None).label("reason")
    base = (select(c.id.label("customer_id"), reason).select_from(aud)
            .join(c, and_(c.id == aud_id, c.corp_id == corp_id))
            .outerjoin(sent, sent.c.cid == c.id))
    return policy, base, c


@contextmanager
def _roomy_cache(session: Session):
    """On SQLite, a page cache big enough for the plan's index probes (256 MB) while it runs."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    before = session.execute(text("PRAGMA cache_size")).scalar()
    session.execute(text("PRAGMA cache_size=-262144"))
    try:
        yield
    finally:
        session.execute(text(f"PRAGMA cache_size={int(before)}"))


def build_plan(session: Session, *, corp_id: int, audience: Select, at: dt.datetime | None = None,
               product_codes: Sequence[str] = (), holdout: tuple[int, int, int] | None = None,
               kind: str = "broadcast") -> Plan:
    """Count the audience's recipients and exclusions by reason (one statement)."""
    at = at or utcnow()
    policy, base, _c = _columns(session, corp_id=corp_id, audience=audience, at=at, product_codes=product_codes,
                                holdout=holdout, kind=kind)
    reason = base.selected_columns.reason
    with _roomy_cache(session):  # (a flat GROUP BY: SQLite evaluates the reason once per customer)
        rows = session.execute(base.with_only_columns(reason, func.count()).group_by(reason)).all()
    excluded = {r: n for r, n in rows if r is not None}
    recipients = sum(n for r, n in rows if r is None)
    quiet = service.in_quiet_hours(policy, at)
    return Plan(audience=recipients + sum(excluded.values()), recipients=recipients,
                excluded={r: excluded[r] for r in service.REASONS if r in excluded},
                held=recipients if quiet else 0, release_at=service.release_at(policy, at) if quiet else None, at=at)


def plan_rows(session: Session, *, corp_id: int, audience: Select, at: dt.datetime | None = None,
              product_codes: Sequence[str] = (), holdout: tuple[int, int, int] | None = None,
              kind: str = "broadcast") -> Select:
    """(customer_id, reason, advisor_userid) of every audience member: what a broadcast records in its
    ledger (reason None: a recipient, sent to by `advisor_userid`)."""
    from siyu.customers.models import CustomerFollow
    from siyu.tenancy.models import Staff

    at = at or utcnow()
    _policy, base, c = _columns(session, corp_id=corp_id, audience=audience, at=at, product_codes=product_codes,
                                holdout=holdout, kind=kind)
    advisor = (select(CustomerFollow.wecom_userid)
               .join(Staff, Staff.id == CustomerFollow.staff_id)
               .where(CustomerFollow.customer_id == c.id, CustomerFollow.status == "active",
                      Staff.is_active.is_(True))
               .order_by(CustomerFollow.add_time.desc(), CustomerFollow.id.desc()).limit(1)
               .scalar_subquery().label("advisor_userid"))
    return base.add_columns(advisor, c.external_userid)
