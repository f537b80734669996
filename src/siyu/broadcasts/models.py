"""Tables of broadcasts (群发): the broadcast and its per-advisor WeCom tasks. Who receives it (and
who is excluded, and why) is in the delivery ledger (`delivery_ledger`, source "broadcast:<id>")."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow


class Broadcast(IdMixin, TimestampMixin, Base):
    """A 1-on-1 mass message to an audience: draft → scheduled → sending → sent (or cancelled).
    Its text is gate content (kind `broadcast`, owner type `broadcast`): only the approved version
    goes out."""

    __tablename__ = "broadcast"
    __table_args__ = (Index("ix_broadcast_corp", "corp_id", "id"), Index("ix_broadcast_due", "status", "scheduled_at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(12), default="draft")
    # The audience: {"segment_id": n} (a saved segment) or {"stages": [...]} (every customer, or those
    # at the lifecycle stages listed).
    audience: Mapped[dict] = mapped_column(JSON, default=dict)
    product_codes: Mapped[list] = mapped_column(JSON, default=list)  # products the text offers (suitability)
    allow_select: Mapped[bool] = mapped_column(Boolean, default=False)  # advisors may untick customers
    holdout_basis_points: Mapped[int] = mapped_column(Integer, default=0)  # this broadcast's own holdout share
    holdout_salt: Mapped[int] = mapped_column(BigInteger)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column()
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    content_version: Mapped[int | None] = mapped_column(Integer)
    plan: Mapped[dict] = mapped_column(JSON, default=dict)  # the plan's counts when it was started
    detail: Mapped[str] = mapped_column(String(300), default="")
    created_by: Mapped[str] = mapped_column(String(120))
    created_by_staff_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BroadcastSend(IdMixin, TimestampMixin, Base):
    """One advisor's WeCom task of a broadcast (add_msg_template with their customers, ≤10,000 a
    call: `part` numbers the calls). planned → calling (intent committed before the call) → waiting
    (msgid known; the advisor confirms in WeCom) → done | failed."""

    __tablename__ = "broadcast_send"
    __table_args__ = (UniqueConstraint("broadcast_id", "advisor_userid", "part"),
                      Index("ix_broadcast_send_state", "state", "corp_id"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    broadcast_id: Mapped[int] = mapped_column(BigId, ForeignKey("broadcast.id", ondelete="CASCADE"))
    advisor_userid: Mapped[str] = mapped_column(String(64))
    part: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(12), default="planned")
    customers: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str | None] = mapped_column(String(4000))
    attachments: Mapped[list] = mapped_column(JSON, default=list)
    intent_at: Mapped[dt.datetime | None] = mapped_column()
    msgid: Mapped[str | None] = mapped_column(String(64))
    sent: Mapped[int] = mapped_column(Integer, default=0)
    not_friend: Mapped[int] = mapped_column(Integer, default=0)
    over_allowance: Mapped[int] = mapped_column(Integer, default=0)
    unconfirmed: Mapped[int] = mapped_column(Integer, default=0)
    reminded_at: Mapped[dt.datetime | None] = mapped_column()
    detail: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
