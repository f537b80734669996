"""Tables of audiences: saved segments (a rule over what Siyu stores) and their daily counts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.communities.joinway_models import GroupJoin
from siyu.customers.models import CustomerEvent
from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow
from siyu.integration.models import FirmOrder


class Segment(IdMixin, TimestampMixin, Base):
    """A saved segment (客群): a name, a description, a rule (`siyu.audiences.rules`) and its owner.
    Members are never stored: the rule is compiled to one SQL statement each time it is used."""

    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(500), default="")
    rule: Mapped[dict] = mapped_column(JSON, default=dict)
    owner_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(120), default="")
    # The last count (on demand or by the daily job), shown in the list without counting again.
    last_count: Mapped[int | None] = mapped_column(Integer)
    last_counted_at: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SegmentCount(IdMixin, Base):
    """A segment's member count on one calendar day (Asia/Shanghai), recorded by the daily job: the
    history behind the segment page's chart. A later count on the same day replaces it."""

    __tablename__ = "segment_count"
    __table_args__ = (UniqueConstraint("segment_id", "day"), Index("ix_segment_count_corp_day", "corp_id", "day"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    segment_id: Mapped[int] = mapped_column(BigId, ForeignKey("segment.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)  # how long the count took
    counted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# Indexes of other domains' tables that segment rules need (declared here, where the queries that need
# them are): the customers with an event of a kind in a window, or an order of a kind in a window, as
# one index range (corp, kind, time) that holds the customer id; a join through a join way, per customer.
Index("ix_customer_event_corp_kind_at", CustomerEvent.corp_id, CustomerEvent.kind, CustomerEvent.at,
      CustomerEvent.customer_id)
Index("ix_firm_order_corp_kind_at", FirmOrder.corp_id, FirmOrder.kind, FirmOrder.occurred_at, FirmOrder.customer_id)
Index("ix_group_join_customer", GroupJoin.customer_id, GroupJoin.join_way_id)
