"""Tables of joining a group set: the set's join ways (群活码) kept over WeCom's join-way API and
rolled over before a group fills, each join attributed to the join way, channel and advisor, the
set's welcome-to-group texts (group welcome template, rules, announcement) and the tasks the owners
do by hand where WeCom has no API (the announcement).

Imported by `siyu.communities.models` so the model registry and Alembic see them."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow


class WhenFull(enum.StrEnum):
    """What happens when a set has no group with room left for its join way."""

    AUTO_CREATE = "auto_create"  # WeCom creates the next group (auto_create_room, room_base_name/id)
    ALERT = "alert"  # operations are alerted and add groups to the set


class JoinWayStatus(enum.StrEnum):
    ACTIVE = "active"
    EXHAUSTED = "exhausted"  # every group is (nearly) full and the set does not auto-create: alert
    DELETED = "deleted"


class GroupSetJoining(IdMixin, TimestampMixin, Base):
    """How a set's join ways roll over, and its welcome-to-group texts' WeCom side."""

    __tablename__ = "group_set_joining"
    __table_args__ = (UniqueConstraint("group_set_id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    group_set_id: Mapped[int] = mapped_column(ForeignKey("group_set.id", ondelete="CASCADE"))
    capacity: Mapped[int] = mapped_column(Integer, default=200)  # 200; 500 after the corp's certification
    rotate_at: Mapped[int] = mapped_column(Integer, default=190)  # members at which a group leaves the way
    when_full: Mapped[str] = mapped_column(String(16), default=WhenFull.ALERT.value)
    room_base_name: Mapped[str] = mapped_column(String(40), default="")
    room_base_id: Mapped[int] = mapped_column(Integer, default=1)
    # The group welcome template in WeCom's library and the approved version it carries.
    welcome_template_id: Mapped[str | None] = mapped_column(String(64))
    welcome_version: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GroupJoinWay(IdMixin, TimestampMixin, Base):
    """One join way (加入群聊 config) of a set, for the set as a whole or for one channel code. Its
    `state` (≤30 characters, unique in the corp) is what members who joined by it carry."""

    __tablename__ = "group_join_way"
    __table_args__ = (UniqueConstraint("corp_id", "state"), Index("ix_group_join_way_set", "group_set_id"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    group_set_id: Mapped[int] = mapped_column(ForeignKey("group_set.id", ondelete="CASCADE"))
    channel_code_id: Mapped[int | None] = mapped_column(ForeignKey("channel_code.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(30))
    config_id: Mapped[str | None] = mapped_column(String(64))  # None until WeCom made it
    qr_code: Mapped[str | None] = mapped_column(String(500))
    chat_ids: Mapped[list] = mapped_column(JSON, default=list)  # the groups WeCom has in it now, in order
    status: Mapped[str] = mapped_column(String(16), default=JoinWayStatus.ACTIVE.value)
    rotations: Mapped[int] = mapped_column(Integer, default=0)
    rotated_at: Mapped[dt.datetime | None]
    exhausted_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GroupJoin(IdMixin, Base):
    """One customer's join of a group, attributed: by which join way (and so set and channel), and
    which advisor brought them (the inviter WeCom names, else the advisor whose customer they are).
    One row per stay (group_member), so a redelivered event records nothing twice."""

    __tablename__ = "group_join"
    __table_args__ = (UniqueConstraint("stay_id"),
                      Index("ix_group_join_set_at", "corp_id", "group_set_id", "joined_at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    stay_id: Mapped[int] = mapped_column(BigId, ForeignKey("group_member.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("group_chat.id", ondelete="CASCADE"))
    group_set_id: Mapped[int | None] = mapped_column(ForeignKey("group_set.id", ondelete="SET NULL"))
    join_way_id: Mapped[int | None] = mapped_column(ForeignKey("group_join_way.id", ondelete="SET NULL"))
    channel_code_id: Mapped[int | None] = mapped_column(ForeignKey("channel_code.id", ondelete="SET NULL"))
    advisor_userid: Mapped[str | None] = mapped_column(String(64))
    advisor_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customer.id", ondelete="SET NULL"))
    join_scene: Mapped[int] = mapped_column(Integer, default=0)
    joined_at: Mapped[dt.datetime]


class GroupOwnerTask(IdMixin, TimestampMixin, Base):
    """Something a group's owner does by hand in the app, where WeCom has no API: post the set's
    announcement (群公告) in a new group. Done when the owner says so or the group's notice shows it."""

    __tablename__ = "group_owner_task"
    __table_args__ = (UniqueConstraint("group_id", "kind"), Index("ix_group_owner_task_owner", "corp_id",
                                                                  "owner_userid", "done_at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("group_chat.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))  # announcement
    owner_userid: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")  # the approved text to post
    version: Mapped[int | None] = mapped_column(Integer)
    done_at: Mapped[dt.datetime | None]


class GatedJoinWay(IdMixin, TimestampMixin, Base):
    """A verification gate (acquisition's gated community) that hands out a set's join way to the
    customers it verified, instead of an uploaded group QR image."""

    __tablename__ = "gated_join_way"
    __table_args__ = (UniqueConstraint("gated_community_id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    gated_community_id: Mapped[int] = mapped_column(ForeignKey("gated_community.id", ondelete="CASCADE"))
    group_set_id: Mapped[int] = mapped_column(ForeignKey("group_set.id", ondelete="CASCADE"))
