"""Tables of service quality (服务质量): a corp's working hours, first-reply waits and daily reports.
The messages themselves are the chat archive's (`compliance.models.ArchiveMessage`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, IdMixin, TimestampMixin, utcnow


class QualitySettings(TimestampMixin, Base):
    """A corp's working hours for service quality (Asia/Shanghai), its reply timeout and whether
    messages on non-working days count. Defaults: Mon–Fri 09:00–18:00, public holidays, 30 minutes."""

    __tablename__ = "quality_settings"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    weekdays: Mapped[list] = mapped_column(JSON, default=lambda: [0, 1, 2, 3, 4])  # Monday = 0
    day_start: Mapped[int] = mapped_column(SmallInteger, default=540)  # minutes after midnight
    day_end: Mapped[int] = mapped_column(SmallInteger, default=1080)
    public_holidays: Mapped[bool] = mapped_column(Boolean, default=True)  # China's holidays and make-up days
    timeout_minutes: Mapped[int] = mapped_column(Integer, default=30)  # working minutes
    count_off_days: Mapped[bool] = mapped_column(Boolean, default=True)  # messages on non-working days count
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReplyWait(IdMixin, TimestampMixin, Base):
    """A customer waiting for an advisor's reply in a 1-on-1 chat: opened by the first unanswered
    customer message, closed by the advisor's next message; its length counts working time only.
    `timeout_at` is when the reply-timeout alert was raised (open while the wait is)."""

    __tablename__ = "reply_wait"
    __table_args__ = (
        UniqueConstraint("corp_id", "opened_msgid"),
        Index("ix_reply_wait_conversation", "corp_id", "staff_userid", "customer_userid", "opened_at"),
        Index("ix_reply_wait_corp_opened", "corp_id", "opened_at"),
        Index("ix_reply_wait_open", "closed_at", "timeout_at", "opened_at"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    staff_userid: Mapped[str] = mapped_column(String(64))
    customer_userid: Mapped[str] = mapped_column(String(64))
    opened_msgid: Mapped[str] = mapped_column(String(128))
    opened_at: Mapped[dt.datetime] = mapped_column()
    customer_messages: Mapped[int] = mapped_column(Integer, default=1)  # before the reply
    counted: Mapped[bool] = mapped_column(Boolean, default=True)  # False: opened on a day that does not count
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    reply_msgid: Mapped[str] = mapped_column(String(128), default="")
    working_seconds: Mapped[int | None] = mapped_column(Integer)  # set when closed
    timeout_at: Mapped[dt.datetime | None] = mapped_column()


class QualityReport(IdMixin, TimestampMixin, Base):
    """The daily service-quality report of a corp (a China calendar day), stored at 08:00 the next day."""

    __tablename__ = "quality_report"
    __table_args__ = (UniqueConstraint("corp_id", "day"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
