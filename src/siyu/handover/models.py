"""Tables of customer handover (客户继承): a handover and its items (customers and groups)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow


class Handover(IdMixin, TimestampMixin, Base):
    """A handover of an advisor's customers and groups (客户继承): resigned (离职继承) or in-service
    (在职继承), to one take-over advisor or spread over several. Its items carry the states."""

    __tablename__ = "handover"
    __table_args__ = (Index("ix_handover_corp_created", "corp_id", "created_at"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # resigned | in_service
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userids: Mapped[list] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(String(200))  # transfer_success_msg, in-service only, reviewed
    all_groups: Mapped[bool] = mapped_column(Boolean, default=False)  # resolve the owner's groups at WeCom
    groups_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | attention
    created_by: Mapped[str] = mapped_column(String(120))
    next_poll_at: Mapped[dt.datetime | None] = mapped_column()  # a result query is queued for then
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class HandoverItem(IdMixin, TimestampMixin, Base):
    """One customer or group of a handover: pending → waiting (24 h) → done | refused | failed | limit
    (groups: pending → done | failed). A failure is retried (to the next take-over advisor) up to
    `handover.service.MAX_ATTEMPTS` times, then escalated."""

    __tablename__ = "handover_item"
    __table_args__ = (
        UniqueConstraint("handover_id", "kind", "target_id"),
        Index("ix_handover_item_corp_target", "corp_id", "kind", "target_id", "requested_at"),
        Index("ix_handover_item_handover_state", "handover_id", "state"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    handover_id: Mapped[int] = mapped_column(BigId, ForeignKey("handover.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # customer | group
    target_id: Mapped[str] = mapped_column(String(64))  # external_userid or chat_id
    takeover_userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(200), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # calls made for it
    accepted: Mapped[int] = mapped_column(Integer, default=0)  # transfers WeCom started (count to 2 per 90 days)
    batch_key: Mapped[str | None] = mapped_column(String(120))  # the send-once key of its current call
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_at: Mapped[dt.datetime | None] = mapped_column()
    takeover_at: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
