"""Tables of the analytics domain.

`analytics_event` is append-only: one row per thing that happened to a customer, written by the
domains (through their domain events), by the firm integration API, by the backfill from what is
already stored, and by `siyu analytics import`. Events imported without a corp have `corp_id`
NULL and name their customer only by `customer_key` (the other system's id).

No personal data: customers, advisors, channels and campaigns are named by keys, never by names;
money is integer fen; `ts` is UTC."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin


class AnalyticsEvent(IdMixin, Base):
    """One event of one customer: `type` is e.g. customer.added, order.invested (see
    siyu.analytics.events.EVENT_TYPES)."""

    __tablename__ = "analytics_event"
    __table_args__ = (
        # idempotent writes: the same source (a domain event's job, a stored row, an import line)
        # is recorded once per corp (NULL corp: imported data, deduplicated by the importer)
        UniqueConstraint("corp_id", "source_key"),
        Index("ix_analytics_event_corp_type_ts", "corp_id", "type", "ts"),
        Index("ix_analytics_event_corp_customer_ts", "corp_id", "customer_key", "ts"),
    )

    corp_id: Mapped[int | None] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    # Siyu's customer, when the event is of one (NULL for imported events).
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    # The key reports group by: str(customer_id) for Siyu's customers, the other system's id otherwise.
    customer_key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(40))
    ts: Mapped[dt.datetime] = mapped_column()
    channel: Mapped[str | None] = mapped_column(String(64))  # the channel code's key (its state)
    join_way: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(64))
    advisor: Mapped[str | None] = mapped_column(String(64))  # the advisor's WeCom user id
    persona: Mapped[str | None] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(64))  # the welcome variant
    product: Mapped[str | None] = mapped_column(String(64))
    group_key: Mapped[str | None] = mapped_column(String(64))  # the group chat's id
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    source_key: Mapped[str] = mapped_column(String(160))
    recorded_at: Mapped[dt.datetime] = mapped_column()


class AnalyticsSpend(IdMixin, TimestampMixin, Base):
    """Money spent on acquisition that no customer event carries (ad spend, a poster print run),
    entered by operations for a channel or a campaign and a period, in fen."""

    __tablename__ = "analytics_spend"
    __table_args__ = (Index("ix_analytics_spend_corp_day", "corp_id", "day_from"),)

    corp_id: Mapped[int | None] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    channel: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(64))
    day_from: Mapped[dt.date] = mapped_column(Date)
    day_to: Mapped[dt.date] = mapped_column(Date)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(200), default="")
    entered_by_staff_id: Mapped[int | None] = mapped_column(BigId)
