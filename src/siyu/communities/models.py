"""Tables of the communities domain (社群): customer group chats (客户群) as WeCom has them, their
members with how and when they joined and left, and group sets (群组) that manage many groups as one.

A group is WeCom's: its name, owner, admins, notice and members are written only by the sync from
`groupchat/get` (the source of truth), never edited here. Positioning, tags and the set are Siyu's
own. A member who left keeps their row (with `left_at`) so joins and leaves can be counted over time;
joining again opens a new row."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow
from siyu.pii import EncryptedString


class Positioning(enum.StrEnum):
    """群定位: what the group is for (DESIGN.md §2, playbook 4)."""

    NOVICE_CLASS = "novice_class"  # 新手课堂
    BENEFIT = "benefit"  # 福利群
    PRODUCT = "product"  # 产品群
    HIGH_NET_WORTH = "high_net_worth"  # 高净值群
    OTHER = "other"


class MemberType(enum.StrEnum):
    STAFF = "staff"  # WeCom type 1
    CUSTOMER = "customer"  # WeCom type 2 (external contact)


class GroupSet(IdMixin, TimestampMixin, Base):
    """群组: groups managed as one (one positioning, later one join way and one SOP calendar)."""

    __tablename__ = "group_set"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(500), default="")
    positioning: Mapped[str] = mapped_column(String(24), default=Positioning.OTHER.value)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GroupChat(IdMixin, TimestampMixin, Base):
    """A customer group chat (客户群) of the corp, by WeCom's chat id."""

    __tablename__ = "group_chat"
    __table_args__ = (
        UniqueConstraint("corp_id", "chat_id"),
        Index("ix_group_chat_corp_owner", "corp_id", "owner_staff_id"),
        Index("ix_group_chat_corp_set", "corp_id", "group_set_id"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    owner_userid: Mapped[str] = mapped_column(String(64), default="")
    # The tenancy Staff row with the owner's WeCom user id; None while Siyu does not know them.
    owner_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    admin_userids: Mapped[list] = mapped_column(JSON, default=list)
    notice: Mapped[str] = mapped_column(Text, default="")
    wecom_created_at: Mapped[dt.datetime | None]
    dismissed_at: Mapped[dt.datetime | None]
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    customer_count: Mapped[int] = mapped_column(Integer, default=0)
    member_version: Mapped[str] = mapped_column(String(64), default="")
    positioning: Mapped[str] = mapped_column(String(24), default=Positioning.OTHER.value)
    group_set_id: Mapped[int | None] = mapped_column(ForeignKey("group_set.id", ondelete="SET NULL"))
    synced_at: Mapped[dt.datetime | None]  # the last read from groupchat/get
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GroupMember(IdMixin, TimestampMixin, Base):
    """One stay of a member in a group: from `joined_at` until `left_at` (None: still in it)."""

    __tablename__ = "group_member"
    __table_args__ = (
        Index("ix_group_member_group_member", "group_id", "member_id", "left_at"),
        Index("ix_group_member_corp_customer", "corp_id", "customer_id"),
        Index("ix_group_member_group_joined", "group_id", "joined_at"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("group_chat.id", ondelete="CASCADE"))
    member_id: Mapped[str] = mapped_column(String(64))  # the userid (staff) or external_userid (customer)
    member_type: Mapped[str] = mapped_column(String(16))
    # The customer record of a customer member (customers' service links it); None for staff or a
    # customer Siyu does not know (not a contact of any advisor: joined through a colleague's invite).
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customer.id", ondelete="SET NULL"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    name: Mapped[str | None] = mapped_column(EncryptedString(context="group_member.name"))
    joined_at: Mapped[dt.datetime]
    join_scene: Mapped[int] = mapped_column(Integer, default=0)  # 1 invited, 2 link, 3 QR
    invitor_userid: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(64))  # the join way's state (群活码)
    left_at: Mapped[dt.datetime | None]
    quit_scene: Mapped[int | None] = mapped_column(Integer)  # 0 left, 1 removed by the owner/admin
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GroupTag(IdMixin, Base):
    """A free tag on a group (e.g. 2026春季, 深圳), for search and filters."""

    __tablename__ = "group_tag"
    __table_args__ = (UniqueConstraint("group_id", "tag"), Index("ix_group_tag_corp_tag", "corp_id", "tag"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("group_chat.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(30))


from siyu.communities import joinway_models  # noqa: E402,F401 - join ways, joins, owner tasks (same registry)

# --- red-line moderation (群红线): see siyu.communities.moderation -------------------------------------------------


class ModerationTerm(IdMixin, TimestampMixin, Base):
    """One entry of the corp's red-line list for group chats (群红线词库): a phrase of a category
    (outsiders' ads, competitors, scams, illegal fund-raising, forbidden topics, an allowed link
    domain), matched by the compliance matcher. Deactivated, never deleted (the list is audited)."""

    __tablename__ = "moderation_term"
    __table_args__ = (UniqueConstraint("corp_id", "phrase_key"), Index("ix_moderation_term_corp_cat", "corp_id",
                                                                        "category"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(24))
    phrase: Mapped[str] = mapped_column(String(100))
    phrase_key: Mapped[str] = mapped_column(String(100))  # normalised (siyu.compliance.normalize)
    severity: Mapped[str] = mapped_column(String(8), default="review")  # block | review
    note: Mapped[str] = mapped_column(String(300), default="")
    is_active: Mapped[bool] = mapped_column(default=True)
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ModerationHit(IdMixin, TimestampMixin, Base):
    """A member's group message that crossed a red line (群红线告警), once per message (msgid): the
    evidence, the member, the group and its owner, the suggested action and what the owner did.
    `status`: open → warned | removed (the owner removed the member in WeCom) | dismissed."""

    __tablename__ = "moderation_hit"
    __table_args__ = (
        UniqueConstraint("corp_id", "msgid"),
        Index("ix_moderation_hit_corp_status", "corp_id", "status", "sent_at"),
        Index("ix_moderation_hit_corp_member", "corp_id", "member_id"),
        Index("ix_moderation_hit_owner", "corp_id", "owner_staff_id", "status"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    msgid: Mapped[str] = mapped_column(String(128))
    group_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("group_chat.id", ondelete="SET NULL"))
    chat_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[str] = mapped_column(String(64))  # the sender's external_userid
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customer.id", ondelete="SET NULL"))
    member_name: Mapped[str | None] = mapped_column(EncryptedString(context="moderation_hit.member_name"))
    owner_userid: Mapped[str] = mapped_column(String(64), default="")
    owner_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    msgtype: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[dt.datetime]
    severity: Mapped[str] = mapped_column(String(8))  # block | review
    categories: Mapped[list] = mapped_column(JSON, default=list)
    findings: Mapped[list] = mapped_column(JSON, default=list)  # category, severity, source, start, end, phrase
    excerpt: Mapped[str] = mapped_column(EncryptedString(context="moderation_hit.excerpt", length=2000), default="")
    suggested_action: Mapped[str] = mapped_column(String(8))  # warn | remove
    # In how many groups this member crossed a red line (this one included) when the hit was raised.
    offender_groups: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(12), default="open")
    handled_by: Mapped[str] = mapped_column(String(120), default="")
    handled_at: Mapped[dt.datetime | None]
    note: Mapped[str] = mapped_column(String(500), default="")


# --- group health (社群健康度): see siyu.communities.health ----------------------------------------------------------


class GroupHealth(IdMixin, TimestampMixin, Base):
    """A group's health on one calendar day (Asia/Shanghai), computed by the daily job over the 7 days
    ending that day: the figures, the score (0–100) and whether the group is dying."""

    __tablename__ = "group_health"
    __table_args__ = (UniqueConstraint("group_id", "day"), Index("ix_group_health_corp_day", "corp_id", "day"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("group_chat.id", ondelete="CASCADE"))
    day: Mapped[dt.date]
    score: Mapped[int] = mapped_column(Integer)
    dying: Mapped[bool] = mapped_column(default=False)
    reasons: Mapped[list] = mapped_column(JSON, default=list)  # why dying: quiet, shrinking, low_score
    figures: Mapped[dict] = mapped_column(JSON, default=dict)
