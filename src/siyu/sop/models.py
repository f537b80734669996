"""Tables of the SOP domain.

A calendar is a group set's slots: its own (weekly or dated) and those of the templates applied to it
(a template is a week of slots reused across sets). A slot's text is content of the compliance gate
(owner type `sop_slot`, kind `sop_slot`): only its approved version in force goes out.

Each slot time of a set becomes a run (`SopRun`, one per slot, set and due time), planned into one
send per group owner (`SopSend`): one `add_msg_template` with chat_type=group, the owner as sender
and the owner's groups of the set as chat_id_list, which the owner confirms in WeCom. A send records
its intent (`calling`, with the exact text) before the call and the msgid after it: a send found
`calling` after a crash is reconciled with `get_groupmsg_list_v2`, never called again blindly.

Customer SOP: a journey (an event — the add, a course start, a maturity — and a filter) with steps
at day offsets; each customer enrolled gets one `SopJourneySend` per step, sent one-to-one with
their advisor as sender, under the same intent-then-call rule."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow


class ContentType(enum.StrEnum):
    RULES = "rules"  # 群规
    KNOWLEDGE = "knowledge"  # 知识
    PRODUCT = "product"  # 产品
    INTERACTION = "interaction"  # 互动 (games, quizzes)
    AFTER_SALES = "after_sales"  # 售后
    CULTURE = "culture"  # 文化
    COMPANY_NEWS = "company_news"  # 公司动态


class Channel(enum.StrEnum):
    GROUP = "group"  # the set's groups, through the owners' mass messages
    MOMENTS = "moments"  # 客户朋友圈, visible by tag


class RunState(enum.StrEnum):
    PLANNED = "planned"
    WAITING = "waiting"  # handed to WeCom, waiting for the owners to confirm
    SENT = "sent"
    PARTLY = "partly"  # some owners sent, others did not within the confirmation window
    LATE = "late"  # past its time and not (all) out yet
    MISSED = "missed"  # nothing went out within the confirmation window
    HELD = "held"  # held by compliance (no approved version, or the send-time guard blocked it)


class SendState(enum.StrEnum):
    PLANNED = "planned"
    CALLING = "calling"  # intent recorded; the call's answer not yet recorded
    WAITING = "waiting"  # WeCom made the task; the owner has not confirmed
    SENT = "sent"
    PARTLY = "partly"
    MISSED = "missed"
    HELD = "held"
    FAILED = "failed"  # WeCom refused the call (no groups left, owner gone)


class SopSettings(Base):
    """Per corp: the WeCom application that sends owners their reminders, and the timings."""

    __tablename__ = "sop_settings"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True)
    app_agent_id: Mapped[int | None] = mapped_column(Integer)
    notice_lead_minutes: Mapped[int] = mapped_column(Integer, default=30)
    confirm_window_minutes: Mapped[int] = mapped_column(Integer, default=120)
    late_after_minutes: Mapped[int] = mapped_column(Integer, default=10)
    check_seconds: Mapped[int] = mapped_column(Integer, default=60)  # how often delivery results are read
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SopTemplate(IdMixin, TimestampMixin, Base):
    """A week of slots, applied to any number of group sets."""

    __tablename__ = "sop_template"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SopSetTemplate(IdMixin, TimestampMixin, Base):
    """A template applied to a group set: its slots are the set's too."""

    __tablename__ = "sop_set_template"
    __table_args__ = (UniqueConstraint("group_set_id", "template_id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    group_set_id: Mapped[int] = mapped_column(ForeignKey("group_set.id", ondelete="CASCADE"))
    template_id: Mapped[int] = mapped_column(BigId, ForeignKey("sop_template.id", ondelete="CASCADE"))


class SopSlot(IdMixin, TimestampMixin, Base):
    """One slot: weekly (`weekday`, Monday = 0) or dated (`on_date`), at `minute_of_day` in
    Asia/Shanghai. Belongs to a template or to one group set."""

    __tablename__ = "sop_slot"
    __table_args__ = (Index("ix_sop_slot_corp_set", "corp_id", "group_set_id"),
                      Index("ix_sop_slot_corp_template", "corp_id", "template_id"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    template_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("sop_template.id", ondelete="CASCADE"))
    group_set_id: Mapped[int | None] = mapped_column(ForeignKey("group_set.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16), default=Channel.GROUP.value)
    weekday: Mapped[int | None] = mapped_column(Integer)
    on_date: Mapped[dt.date | None] = mapped_column(Date)
    minute_of_day: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(24))
    title: Mapped[str] = mapped_column(String(60))
    working_days_only: Mapped[bool] = mapped_column(Boolean, default=False)
    moment_tag_ids: Mapped[list] = mapped_column(JSON, default=list)  # WeCom tag ids (Moments slots)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SopRun(IdMixin, TimestampMixin, Base):
    """A slot's time for one set: planned once (the unique key makes planning idempotent)."""

    __tablename__ = "sop_run"
    __table_args__ = (UniqueConstraint("slot_id", "group_set_id", "due_at"),
                      Index("ix_sop_run_corp_set_due", "corp_id", "group_set_id", "due_at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    slot_id: Mapped[int] = mapped_column(BigId, ForeignKey("sop_slot.id", ondelete="CASCADE"))
    group_set_id: Mapped[int] = mapped_column(ForeignKey("group_set.id", ondelete="CASCADE"))
    due_at: Mapped[dt.datetime]
    state: Mapped[str] = mapped_column(String(16), default=RunState.PLANNED.value)
    held_reason: Mapped[str] = mapped_column(String(300), default="")
    content_version: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SopSend(IdMixin, TimestampMixin, Base):
    """One owner's part of a run: their groups of the set in one mass message (or, for a Moments
    slot, the one Moments task of the run, `owner_userid` empty)."""

    __tablename__ = "sop_send"
    __table_args__ = (UniqueConstraint("run_id", "owner_userid"),
                      Index("ix_sop_send_corp_owner_state", "corp_id", "owner_staff_id", "state"),
                      Index("ix_sop_send_corp_msgid", "corp_id", "msgid"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("sop_run.id", ondelete="CASCADE"))
    owner_userid: Mapped[str] = mapped_column(String(64))
    owner_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    chat_ids: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default=SendState.PLANNED.value)
    text: Mapped[str | None] = mapped_column(Text)  # the exact text handed to WeCom (for reconciling)
    attachments: Mapped[list] = mapped_column(JSON, default=list)  # WeCom-shaped, as handed over
    intent_at: Mapped[dt.datetime | None]
    msgid: Mapped[str | None] = mapped_column(String(64))  # WeCom's msgid (Moments: the task's jobid)
    called_at: Mapped[dt.datetime | None]  # when WeCom made the task (its create_time)
    notified_at: Mapped[dt.datetime | None]  # the owner's reminder (application message)
    sent_at: Mapped[dt.datetime | None]  # the owner confirmed (WeCom's send_time)
    sent_chats: Mapped[int] = mapped_column(Integer, default=0)
    total_chats: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SopJourney(IdMixin, TimestampMixin, Base):
    """Customer SOP: steps relative to an event, for the customers matching a filter."""

    __tablename__ = "sop_journey"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    event: Mapped[str] = mapped_column(String(24))  # added | course_start | maturity
    filter_channel: Mapped[str] = mapped_column(String(64), default="")  # the add's state / channel code
    filter_tag: Mapped[str] = mapped_column(String(64), default="")  # a WeCom tag id on the follow
    filter_stage: Mapped[str] = mapped_column(String(32), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SopJourneyStep(IdMixin, TimestampMixin, Base):
    """A step at `day_offset` days from the event (negative: before it) at `minute_of_day`
    (Asia/Shanghai); its text is gate content (owner type `sop_step`)."""

    __tablename__ = "sop_journey_step"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(BigId, ForeignKey("sop_journey.id", ondelete="CASCADE"), index=True)
    day_offset: Mapped[int] = mapped_column(Integer)
    minute_of_day: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(60))


class SopJourneySend(IdMixin, TimestampMixin, Base):
    """One step for one customer: one-to-one through add_msg_template, the advisor as sender."""

    __tablename__ = "sop_journey_send"
    __table_args__ = (UniqueConstraint("step_id", "customer_id"),
                      Index("ix_sop_journey_send_corp_state_due", "corp_id", "state", "due_at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    step_id: Mapped[int] = mapped_column(BigId, ForeignKey("sop_journey_step.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customer.id", ondelete="CASCADE"))
    advisor_userid: Mapped[str] = mapped_column(String(64))
    advisor_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    due_at: Mapped[dt.datetime]
    state: Mapped[str] = mapped_column(String(16), default=SendState.PLANNED.value)
    text: Mapped[str | None] = mapped_column(Text)
    intent_at: Mapped[dt.datetime | None]
    msgid: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[dt.datetime | None]
    detail: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
