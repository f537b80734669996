"""Tables of the delivery policy: the corp's policy (caps, quiet hours, WeCom's allowance, the global
control group's share and key) and the ledger of marketing sends, one row per (source, customer)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.compliance.models import CustomerRiskAssessment
from siyu.customers.models import CustomerFollow
from siyu.db import Base, IdMixin, TimestampMixin, utcnow


class DeliveryPolicy(TimestampMixin, Base):
    """A corp's delivery policy (absent row: the defaults, `service.DEFAULTS`)."""

    __tablename__ = "delivery_policy"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True)
    per_day: Mapped[int] = mapped_column(Integer, default=1)  # per Asia/Shanghai calendar day
    per_7_days: Mapped[int] = mapped_column(Integer, default=3)  # today and the 6 calendar days before
    per_30_days: Mapped[int] = mapped_column(Integer, default=8)  # today and the 29 calendar days before
    wecom_allowance: Mapped[str] = mapped_column(String(8), default="month")  # month | week | day
    quiet_start_minute: Mapped[int] = mapped_column(Integer, default=21 * 60)  # minutes after midnight, Shanghai
    quiet_end_minute: Mapped[int] = mapped_column(Integer, default=8 * 60)
    sends_per_minute: Mapped[int] = mapped_column(Integer, default=600)  # WeCom calls of this corp's sends
    holdout_basis_points: Mapped[int] = mapped_column(Integer, default=500)  # 500 = 5% of customers
    # The global control group's key (a keyed universal hash of the customer id); re-drawn on request.
    holdout_mult: Mapped[int] = mapped_column(BigInteger)
    holdout_add: Mapped[int] = mapped_column(BigInteger)
    holdout_drawn_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeliveryLedger(IdMixin, Base):
    """One marketing send to one customer: claimed (`planned`) before the WeCom call, then `sent`,
    `failed` (WeCom answered that it did not reach them), `held` (quiet hours; released at `due_at`)
    or `aborted` with the reason (capped, opted out, in the holdout, ...). Unique per (source,
    customer): a send is never repeated for a customer, whatever crashes."""

    __tablename__ = "delivery_ledger"
    __table_args__ = (
        UniqueConstraint("source", "customer_id"),
        Index("ix_delivery_ledger_customer_at", "corp_id", "customer_id", "at"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    # broadcast | sop_slot | sop_step | moment | campaign | keyword_marketing
    kind: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(80))  # e.g. "broadcast:12", "sop_step_send:40"
    state: Mapped[str] = mapped_column(String(12))  # planned | sent | failed | held | aborted
    reason: Mapped[str] = mapped_column(String(40), default="")
    # When the send counts against the caps (claimed or sent); for a held send, when it was held.
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    due_at: Mapped[dt.datetime | None] = mapped_column()  # a held send's release time
    sent_at: Mapped[dt.datetime | None] = mapped_column()
    advisor_userid: Mapped[str | None] = mapped_column(String(64))


# Indexes the plan preview probes once per audience member (siyu.delivery.plan), on other domains'
# tables: covering, so that a million probes read index pages only.
Index("ix_customer_follow_plan", CustomerFollow.customer_id, CustomerFollow.status, CustomerFollow.staff_id)
Index("ix_customer_risk_assessment_plan", CustomerRiskAssessment.corp_id, CustomerRiskAssessment.customer_ref,
      CustomerRiskAssessment.assessed_at, CustomerRiskAssessment.id, CustomerRiskAssessment.level,
      CustomerRiskAssessment.expires_at)
