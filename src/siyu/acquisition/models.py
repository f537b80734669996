"""Tables of the acquisition domain (获客): personas (人设), channel codes (渠道活码) with their
advisors, the adds attributed to them, welcome flows (欢迎语) with A/B variants, and the
follow-ups an advisor owes when WeCom gave no welcome code."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow


class Persona(IdMixin, TimestampMixin, Base):
    """An advisor persona (人设) that channel codes and welcome flows speak as."""

    __tablename__ = "persona"
    __table_args__ = (UniqueConstraint("corp_id", "display_name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # see service.PERSONA_KINDS
    display_name: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(60), default="")
    years_experience: Mapped[int] = mapped_column(Integer, default=0)
    avatar_url: Mapped[str] = mapped_column(String(500), default="")
    introduction: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChannelCode(IdMixin, TimestampMixin, Base):
    """A WeCom contact way (联系我 QR) whose `state` attributes every add to a channel, a
    campaign, the advisor who was added and the money spent on it.

    `status`: pending (created here, waiting for WeCom), active, failed (WeCom refused, see
    `wecom_detail`), expired, deleted."""

    __tablename__ = "channel_code"
    __table_args__ = (UniqueConstraint("corp_id", "state"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(32))  # see service.CHANNELS
    campaign: Mapped[str] = mapped_column(String(60), default="")
    persona_id: Mapped[int | None] = mapped_column(ForeignKey("persona.id", ondelete="SET NULL"))
    multi_advisor: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_fen: Mapped[int] = mapped_column(BigId, default=0)
    expires_at: Mapped[dt.datetime | None]
    state: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    config_id: Mapped[str | None] = mapped_column(String(64))
    qr_url: Mapped[str | None] = mapped_column(String(500))
    wecom_detail: Mapped[str] = mapped_column(String(500), default="")
    # The user list WeCom has, and the version of it: each change is one effect at WeCom.
    wecom_users: Mapped[list] = mapped_column(JSON, default=list)
    users_version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChannelCodeAdvisor(Base):
    """An advisor on a channel code, with the most adds a day they take from it (0: no cap)."""

    __tablename__ = "channel_code_advisor"

    code_id: Mapped[int] = mapped_column(ForeignKey("channel_code.id", ondelete="CASCADE"), primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    daily_cap: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ChannelAdd(IdMixin, Base):
    """One add attributed to a channel code (渠道归因), once per inbox event."""

    __tablename__ = "channel_add"
    __table_args__ = (
        UniqueConstraint("corp_id", "inbox_event_id"),
        Index("ix_channel_add_code_day", "code_id", "day", "advisor_userid"),
        Index("ix_channel_add_contact", "corp_id", "external_userid", "advisor_userid"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("channel_code.id", ondelete="CASCADE"))
    advisor_userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    inbox_event_id: Mapped[int] = mapped_column(BigId)
    at: Mapped[dt.datetime]
    day: Mapped[str] = mapped_column(String(10))  # the calendar day in Asia/Shanghai, for daily caps
    lost_at: Mapped[dt.datetime | None]


class WelcomeFlow(IdMixin, TimestampMixin, Base):
    """The welcome (欢迎语) of one channel code; its texts are the variants."""

    __tablename__ = "welcome_flow"
    __table_args__ = (UniqueConstraint("corp_id", "code_id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("channel_code.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    group_keyword: Mapped[str] = mapped_column(String(20), default="")  # e.g. "1"
    group_invitation: Mapped[str] = mapped_column(String(200), default="")  # e.g. "回复 1 加入理财学习群"
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WelcomeVariant(IdMixin, TimestampMixin, Base):
    """One A/B variant of a welcome flow: text with variables, attachments, a weight."""

    __tablename__ = "welcome_variant"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("welcome_flow.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(20))
    weight: Mapped[int] = mapped_column(Integer, default=1)
    text: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class WelcomeSend(IdMixin, Base):
    """A welcome that was sent (or held) for one add: the results of a variant."""

    __tablename__ = "welcome_send"
    __table_args__ = (UniqueConstraint("corp_id", "inbox_event_id"),
                      Index("ix_welcome_send_variant", "variant_id", "state"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    inbox_event_id: Mapped[int] = mapped_column(BigId)
    code_id: Mapped[int | None] = mapped_column(ForeignKey("channel_code.id", ondelete="SET NULL"))
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("welcome_variant.id", ondelete="SET NULL"))
    external_userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # the wecom_outbound state: sent, failed, unknown, blocked
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WelcomeFollowUp(IdMixin, TimestampMixin, Base):
    """An add that came without a welcome code: the advisor greets the customer by hand."""

    __tablename__ = "welcome_follow_up"
    __table_args__ = (UniqueConstraint("corp_id", "inbox_event_id"),
                      Index("ix_welcome_follow_up_open", "corp_id", "advisor_userid", "done_at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    inbox_event_id: Mapped[int] = mapped_column(BigId)
    advisor_userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    code_id: Mapped[int | None] = mapped_column(ForeignKey("channel_code.id", ondelete="SET NULL"))
    done_at: Mapped[dt.datetime | None]
